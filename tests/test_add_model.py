"""A model is one declaration: docs/how-to/add-a-model.md done to the letter in a copy of the project, then `make
report PROFILE=smoke` there. The new model is trained and attacked, shows in the models table, the contrasts and the
figures, and no existing model's product is made again (their keys do not change)."""
from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from lib import ROOT
from lib.core.data import DATA_DIR
from tests import smoke
from tests.smoke import OFFLINE, PIPELINE_RUNS, follow_up_env

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]
HOWTO = ROOT / "docs" / "how-to" / "add-a-model.md"
MARKER = "# --- the declared models, as everything else reads them"  # where the page says to paste
COPIED = ("lib", "notebooks", "tools", "Makefile", "pyproject.toml")  # what `make report` reads
# The smoke run's steps whose products H's run finds made (A–G keep their keys); the steps that gather every model
# get new keys with H, so H's run starts once these are made, while the suite's run computes its own aggregates.
REUSED = ("train", "eps", "evaluate", "autoattack")


def howto_edits() -> tuple[str, tuple[str, str]]:
    """(the declaration, (import line, its edited form)) as the how-to page gives them."""
    text = HOWTO.read_text()
    [declaration] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    old, new = re.search(r"`(from lib\.core\.rules import [^`]+)` becomes `(from lib\.core\.rules import [^`]+)`",
                         text.replace("\n", " ")).groups()
    return declaration, (old, new)


def declare(project) -> None:
    """The page's two edits of lib/core/recipes.py, and nothing else."""
    declaration, (old_import, new_import) = howto_edits()
    recipes = project / "lib" / "core" / "recipes.py"
    text = recipes.read_text()
    assert text.count(MARKER) == 1 and text.count(old_import + "\n") == 1
    recipes.write_text(text.replace(old_import + "\n", new_import + "\n").replace(MARKER, declaration + "\n\n" + MARKER))


def start_h(jobs: int, log: Path) -> tuple[subprocess.Popen, tuple[Path, set[Path]]]:
    """Start `make -jJOBS report PROFILE=smoke` in a new copy of the project with H declared, its runs folder a copy
    of the suite's smoke products it reuses: (the process, (the project, the executed notebooks already made))."""
    project = Path(tempfile.mkdtemp(prefix="project-", dir=PIPELINE_RUNS.parent))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, project / name)
    declare(project)
    smoke.copy_of_smoke_runs(project / "runs", REUSED)
    before = {p.relative_to(project / "runs") for p in (project / "runs").rglob("*.ipynb") if not p.name.startswith(".")}
    env = follow_up_env(PYTHONPATH=f"{project}:{OFFLINE}", INVADV_RUNS=str(project / "runs"),
                      INVADV_REPORTS=str(project / "reports"), INVADV_STORE=str(project / "products"),
                      INVADV_DATA=str(DATA_DIR), INVADV_THREADS="1")
    installed = f"{sys.prefix}/.installed"  # the suite's environment: never reinstalled from the copy
    with open(log, "w") as out:  # the child keeps its own handle
        process = subprocess.Popen(["make", "-s", f"-j{jobs}", "report", "PROFILE=smoke", f"VENV={sys.prefix}",
                                    "-o", installed], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    return process, (project, before)


smoke.after_smoke_run("add-model", start_h, needs=REUSED)  # in the background while other tests run (tests/smoke.py)


@pytest.fixture(scope="module")
def with_h():
    """A copy of the project with H declared, after `make report PROFILE=smoke` there: (project, make's log, the
    executed notebooks that were already made)."""
    (project, before), log = smoke.follow_up("add-model", start_h)
    return project, log, before


def test_the_how_to_touches_one_file(with_h):
    project, _, _ = with_h
    differing = [str(p.relative_to(project)) for p in (project / "lib").rglob("*.py")
                 if not filecmp.cmp(p, ROOT / p.relative_to(project), shallow=False)]
    assert differing == ["lib/core/recipes.py"]


def test_only_the_new_model_and_the_steps_that_gather_every_model_run(with_h):
    project, log, before = with_h
    made = {p.relative_to(project / "runs") for p in (project / "runs").rglob("*.ipynb") if not p.name.startswith(".")}
    new = {p.parts[-2].rsplit("-", 1)[0] for p in made - before}
    own = {name for name in new if "-H-" in name}
    assert {"train-H-200d", "evaluate-H-200d", "autoattack-H-200d"} <= own and any(n.startswith("eps-") for n in own)
    assert new - own == {"centers", "check", "extension", "figures"}, new - own  # A–G keep their keys


def test_the_new_model_is_in_the_models_table_the_contrasts_and_the_figures(with_h):
    project, _, _ = with_h
    report = (project / "reports" / "report-smoke.html").read_text()
    assert "H-200d" in report and "CE + 0.01·L_C + 0.01·pull to own inverse adversary (ε=0.1, T=1)" in report
    contrasts = pd.read_csv(project / "reports" / "results" / "smoke" / "contrasts.csv")
    assert {("H-200d", "B-200d"), ("H-200d", "D-200d")} <= set(zip(contrasts.model, contrasts.baseline))
    figures = project / "reports" / "figures" / "smoke"
    for figure in ("comparison", "autoattack", "probe"):  # matplotlib's SVG keeps each label's text in a comment
        assert "H-200d" in (figures / f"{figure}.svg").read_text(), figure
