"""The pipeline's DAG: content keys, what a change recomputes, and the smoke report end to end."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lib import pipeline
from lib.config import ROOT, study


def keys(s):
    return {name: t.key for name, t in pipeline.plan(s).items()}


def changed(before, after):
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


def test_changing_one_eps_recomputes_only_what_depends_on_it():
    before = keys(study("smoke"))
    after = keys(study("smoke", "eps=0,0.1,0.2"))
    assert changed(before, after) == {"eps-0.3", "eps-0.2", "centers", "figures"}


def test_training_parameters_change_everything_downstream():
    before, after = keys(study("smoke")), keys(study("smoke", "epochs=3"))
    assert changed(before, after) == set(before)


def test_mean_split_changes_only_centers_and_figures():
    assert changed(keys(study("smoke")), keys(study("smoke", "mean_split=test"))) == {"centers", "figures"}


def test_center_weight_changes_model_b_and_its_dependents_only():
    diff = changed(keys(study("smoke")), keys(study("smoke", "center_weight=0.5")))
    assert "train-B-200d" in diff and not {"train-A-200d", "train-A-2d", "train-B-2d"} & diff


def test_code_change_recomputes_the_steps_that_run_it(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "lib", tmp_path / "lib")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setattr(pipeline, "ROOT", tmp_path)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", tmp_path / "notebooks")
    before = keys(study("smoke"))
    with open(tmp_path / "lib" / "attacks.py", "a") as f:
        f.write("\n# a change\n")
    after = keys(study("smoke"))
    assert changed(before, after) == {"eps-0", "eps-0.1", "eps-0.3", "centers", "figures"}


def test_makefile_has_a_rule_per_task():
    s = study("smoke", "epochs=3")
    text = pipeline.makefile(s, "epochs=3")
    tasks = pipeline.plan(s)
    for t in tasks.values():
        assert f"{t.executed}:" in text
    assert "--set epochs=3" in text and "report:" in text


@pytest.mark.parametrize("flags, expected", [("", None), ("-j1", None), ("-j2 --jobserver-auth=3,4", (os.cpu_count() or 1) // 2 or 1)])
def test_threads_are_shared_out_under_make_j(monkeypatch, flags, expected):
    monkeypatch.setenv("MAKEFLAGS", flags)
    assert pipeline.jobs_threads() == (max(1, expected) if expected else None)


@pytest.mark.parametrize("overrides, message", [
    ("eps=0,0.1,0.1", "duplicates"), ("eps=-0.1", r"eps must lie in \[0, 1\]"), ("steps=0", "steps must be"),
    ("seed=1.5", "seed must be an integer"), ("lambda=0.1", r"unknown parameter\(s\) \['lambda'\]"),
    ("epochs", "name=value"), ("step_size=0", "step_size must be"), ("center_weight=-1", "center_weight"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        study("smoke", overrides)


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        study("fast")


def test_missing_input_names_the_step_and_command():
    s = study("smoke", "seed=12345")
    with pytest.raises(FileNotFoundError, match=r"step train-A-200d.*make report PROFILE=smoke"):
        pipeline.load_checkpoints(s)


def make_report(*args: str) -> str:
    result = subprocess.run(["make", "-s", "report", "PROFILE=smoke", f"VENV={sys.prefix}", *args], cwd=ROOT,
                            capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def executed_steps(log: str) -> set[str]:
    return set(re.findall(r"^\[([\w.-]+)\] \d\d_", log, flags=re.M))


@pytest.mark.slow
def test_smoke_report_end_to_end():
    log = make_report()
    html = (pipeline.reports_dir() / "report-smoke.html").read_text()
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 3
    for text in ("Figure 1", "Figure 2", "Figure 3", '<table class="claims">', "Profile:", "Device:"):
        assert text in html, text
    assert "injected-parameters" not in html and not re.search(r"<script[^>]+src=\"http", html)
    notebooks = pipeline.reports_dir() / "report-smoke_notebooks"
    assert {p.stem for p in notebooks.glob("*.ipynb")} == set(pipeline.plan(study("smoke")))
    assert executed_steps(log) <= set(pipeline.plan(study("smoke")))

    assert executed_steps(make_report()) == set()  # nothing changed: no work

    log = make_report("SET=eps=0,0.1,0.2")
    assert executed_steps(log) == {"eps-0.2", "centers", "figures"}


def test_mid_run_edit_is_caught():
    with pytest.raises(SystemExit, match="changed while the pipeline ran"):
        pipeline.main(["--profile", "smoke", "execute", "centers", "--key", "0123456789ab"])


def test_bad_override_on_the_command_line_is_one_line():
    with pytest.raises(SystemExit, match=r"^error: Study: eps has duplicates"):
        pipeline.main(["--profile", "smoke", "--set", "eps=0.1,0.1", "makefile"])
