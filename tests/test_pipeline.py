"""The pipeline's DAG: content keys, what a change recomputes, and the smoke report end to end."""
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from lib import ROOT
from lib.core import products
from lib.core.recipes import key_params
from lib.pipeline import dag, make, runner
from lib.pipeline.config import study
from tests.smoke import (background_log, executed_steps, make_report, planned_steps, ready_rank, run_make_report,
                         smoke_report)


def keys(s):
    return {name: t.key for name, t in dag.plan(s).items()}


def changed(before, after):
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


# the smoke study's, at its seed
MODELS_ATTACKED = ("A-200d", "B-200d", "A-2d", "B-2d", "C-200d", "D-200d", "E-200d", "F-200d")


def eps_tasks(*eps: str, models=MODELS_ATTACKED, suffix: str = "") -> set[str]:
    return {f"eps-{e}-{m}{suffix}" for e in eps for m in models}


def test_changing_one_eps_recomputes_only_what_depends_on_it():
    before = keys(study("smoke"))
    after = keys(study("smoke", "eps=0,0.1,0.2"))
    assert changed(before, after) == {*eps_tasks("0.3", "0.2"), "centers", "extension", "figures"}


def test_the_extension_adds_its_tasks_and_extended_0_leaves_them_out():
    full = dag.plan(study("smoke", "extra_seeds=5 sweep_dims=2,16,200"))
    plain = dag.plan(study("smoke", "extended=0 extra_seeds=5 sweep_dims=2,16,200"))
    assert set(plain) == {"train-A-200d", "train-B-200d", "train-A-2d", "train-B-2d",
                          *eps_tasks("0", "0.1", "0.3", models=("A-200d", "B-200d")), "centers", "figures"}
    compared = [f"{m}-200d" for m in "ABCDEFG"]
    assert set(full) - set(plain) == {
        *(f"train-{m}-200d" for m in "CDEFG"), "train-A-16d", "train-B-16d", "extension", "check",
        *eps_tasks("0", "0.1", "0.3", models=("A-2d", "B-2d", "C-200d", "D-200d", "E-200d", "F-200d", "A-16d", "B-16d")),
        *(f"evaluate-{m}" for m in compared), *(f"train-{m}-s5" for m in compared),
        # the adversarially trained models' ε runs only at the first seed (figures 2–3 show E and F)
        *eps_tasks("0", "0.1", "0.3", models=compared[:4], suffix="-s5"), *(f"evaluate-{m}-s5" for m in compared),
        *(f"autoattack-{m}{suffix}" for m in compared for suffix in ("", "-s5"))}
    assert [d.name for d in full["eps-0.1-C-200d-s5"].deps] == ["train-C-200d-s5"]  # one model's ε run reads its model
    assert {d.name for d in full["check"].deps} == {*(f"train-{m}" for m in compared), *(f"evaluate-{m}" for m in compared)}
    assert [d.name for d in full["autoattack-C-200d-s5"].deps] == ["train-C-200d-s5", "evaluate-C-200d-s5"]
    # the reproduction's own steps are the same computation either way
    assert full["train-A-200d"].key == plain["train-A-200d"].key
    assert full["figures"].deps[-1].name == "extension"


def test_parameters_of_c_and_d_retrain_only_them():
    diff = changed(keys(study("smoke")), keys(study("smoke", "train_eps=0.2 train_step_size=0.2")))
    assert {"train-C-200d", "train-D-200d"} <= diff and not any(n.startswith("train-") and n[6] in "AB" for n in diff)
    diff = changed(keys(study("smoke")), keys(study("smoke", "ema_rate=0.5")))
    assert "train-C-200d" in diff and "train-D-200d" not in diff


def test_training_parameters_change_everything_downstream():
    before, after = keys(study("smoke")), keys(study("smoke", "epochs=3"))
    assert changed(before, after) == set(before)


def test_mean_split_changes_only_centers_and_figures():
    assert changed(keys(study("smoke")), keys(study("smoke", "mean_split=test"))) == {"centers", "extension", "figures"}


def test_center_weight_changes_model_b_and_its_dependents_only():
    diff = changed(keys(study("smoke")), keys(study("smoke", "center_weight=0.5")))
    assert "train-B-200d" in diff and not {"train-A-200d", "train-A-2d", "train-B-2d"} & diff


def test_makefile_has_a_rule_per_task():
    s = study("smoke", "epochs=3")
    text = make.makefile(s, "epochs=3")
    tasks = dag.plan(s)
    for t in tasks.values():
        assert f"{t.executed}:" in text
    assert "--set epochs=3" in text and "report:" in text


@pytest.mark.parametrize("flags, expected", [("", None), ("-j1", None), ("-j2 --jobserver-auth=3,4", (os.cpu_count() or 1) // 2 or 1)])
def test_threads_are_shared_out_under_make_j(monkeypatch, flags, expected):
    monkeypatch.setenv("MAKEFLAGS", flags)
    assert make.jobs_threads() == (max(1, expected) if expected else None)


@pytest.mark.parametrize("overrides, message", [
    ("eps=0,0.1,0.1", "eps must be distinct values"), ("eps=-0.1", r"eps must be distinct values, each in \[0, 1\]"), ("steps=0", "steps must be"),
    ("seed=1.5", "seed must be an integer"), ("lambda=0.1", r"unknown parameter\(s\) \['lambda'\]"),
    ("epochs", "name=value"), ("step_size=0", "step_size must be"), ("center_weight=-1", "center_weight"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        study("smoke", overrides)


def test_unknown_profile_is_named():
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        study("fast")


def test_a_notebook_run_by_hand_makes_its_missing_inputs(tmp_path, monkeypatch):
    from lib.pipeline.steps.eps import eps_run

    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    s = study("smoke", "seed=11 epochs=1 train_samples=300 test_samples=100 attack_samples=100 eps=0,0.1 extended=0")
    run = eps_run(s, 0.1)  # as the centers notebook does, with nothing trained yet
    assert set(run["models"]) == {"A-200d", "B-200d"} and dag.task(s, "eps-0.1-B-200d").output.exists()
    made = {t.name for t in dag.plan(s).values() if t.output.exists()}
    assert made == {"train-A-200d", "train-B-200d", "eps-0.1-A-200d", "eps-0.1-B-200d"}  # its inputs, nothing more
    assert eps_run(s, 0.1)["provenance"] == run["provenance"]  # the second call only loads


@pytest.mark.slow
@pytest.mark.pipeline
def test_smoke_report_end_to_end():
    smoke_report()  # the suite's background run, rendered (`make report` again only where it left something undone)
    html = (dag.reports_dir() / "report-smoke.html").read_text()
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', html)) >= 3
    for text in ("Figure 1", "Figure 2", "Figure 3", '<table class="claims">', "Profile:", "Device:",
                 "Beyond the original", "Claim 4 —", "Feature dimension sweep", "over seeds", "AutoAttack, stage by stage",
                 "robust accuracy under AutoAttack", "Why PGD stalls", "median logit margin"):
        assert text in html, text
    assert "injected-parameters" not in html and not re.search(r"<script[^>]+src=\"http", html)
    assert float(re.search(r"wall time of the pipeline: (\d+\.\d) min", html).group(1)) > 0  # the steps' running time
    assert re.search(r"Compute time of the steps:</b> \d+\.\d min before this report's own step: 9 trainings", html)
    notebooks = dag.reports_dir() / "report-smoke_notebooks"
    assert {p.stem for p in notebooks.glob("*.ipynb")} == set(dag.plan(study("smoke")))
    if background_log("main").exists():  # absent where the smoke run was given (INVADV_PIPELINE_RUNS)
        assert executed_steps(background_log("main").read_text()) <= set(dag.plan(study("smoke")))
    trainings = [t for t in dag.plan(study("smoke")).values() if t.step.name == "train"]
    assert all(runner.recorded_compute(notebooks / f"{t.name}.ipynb") > 0 for t in trainings)  # resumed ones too

    results, figures = (dag.reports_dir() / kind / "smoke" for kind in ("results", "figures"))
    assert {"centers.csv", "samples.csv", "attacks.csv", "models.csv", "history.csv", "comparison.csv", "probe.csv",
            "sweep.csv", "seed_centers.csv", "attack_check.csv", "autoattack.csv", "masking.csv",
            "heldout.csv"} <= {
        p.name for p in results.iterdir()}
    assert list(pd.read_csv(results / "centers.csv").columns) == [
        "model", "eps", "reference", "class", "cosine", "mse", "relative_mse"]  # the schema in docs/reference/pipeline.md
    for name in ("figure1", "figure2", "figure3", "training_curves", "attack_effect", "examples", "comparison", "probe",
                 "sweep", "figure2_seeds", "figure3_seeds", "autoattack"):
        assert (figures / f"{name}.png").stat().st_size > 5000 and (figures / f"{name}.svg").exists(), name

    assert executed_steps(make_report()) == set()  # nothing changed: no work

    # One ε changed: make's own decision, from the same generated Makefile, without running the steps
    # (running them is what the run above tested).
    log = make_report("-n", "SET=eps=0,0.1,0.2")
    assert planned_steps(log) == {*eps_tasks("0.2"), "centers", "extension", "figures"} and executed_steps(log) == set()
    # (which steps each other parameter recomputes is the plan's decision: tests/test_keys.py, in-process)
    assert planned_steps(make_report("-n")) == set()  # the dry run changed nothing


def test_the_smoke_run_makes_the_steps_in_the_order_the_suite_expects_them():
    """The suite orders the tests that read the smoke run by when the run makes their steps (smoke.ready_rank): the
    plan, and so the generated Makefile's `report`, lists every task of a step before the next step's."""
    ranks = [ready_rank([t.step.name]) for t in dag.plan(study("smoke")).values()]
    assert ranks == sorted(ranks)
    with pytest.raises(AssertionError, match="names no step"):
        ready_rank(["trian"])


def test_mid_run_edit_is_caught():
    with pytest.raises(SystemExit, match="changed while the pipeline ran"):
        make.main(["--profile", "smoke", "execute", "centers", "--key", "0123456789ab"])


def test_bad_override_on_the_command_line_is_one_line():
    with pytest.raises(SystemExit, match=r"^error: Study: eps must be distinct values"):
        make.main(["--profile", "smoke", "--set", "eps=0.1,0.1", "makefile"])


@pytest.mark.pipeline  # a `make report` in the suite's runs folder: after the background run
def test_bad_parameter_is_the_first_line_of_make_report():
    result = run_make_report("SET=eps=-0.1,0.2")
    assert result.returncode != 0
    assert (result.stdout + result.stderr).startswith("error: Study: eps must be distinct values, each in [0, 1]")


def test_broken_product_is_set_aside_and_named(tmp_path, monkeypatch):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    s = study("smoke", "seed=7")
    t = dag.task(s, "train-A-200d")
    t.folder.mkdir(parents=True)
    t.executed.write_text("{}")
    products.save({"model": {"w": torch.ones(1000)}}, t.output)
    t.output.write_bytes(t.output.read_bytes()[:200])  # truncated, e.g. a full disk
    [note] = make.set_aside_broken(dag.plan(s))
    assert "step train-A-200d" in note and "unreadable" in note and "will be recomputed" in note
    assert not t.executed.exists() and not t.output.exists()
    assert len(list(t.folder.glob("*.broken-*"))) == 2  # kept for inspection, not deleted
    assert make.set_aside_broken(dag.plan(s)) == []


def test_checkpoint_of_another_config_is_set_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    s = study("smoke", "seed=7")
    a, b = dag.task(s, "train-A-200d"), dag.task(s, "train-B-200d")
    a.folder.mkdir(parents=True)
    a.executed.write_text("{}")
    products.save({"config": b.key_params, "model": {}}, a.output)  # B's checkpoint copied into A's place
    [note] = make.set_aside_broken(dag.plan(s))
    assert "another config" in note and "'model': ('B', 'A')" in note


def test_seeds_models_and_extended_flag_of_a_study():
    s = study("paper")
    assert s.seeds == (0, 1, 2) and s.models(2) == [(m, 200) for m in "ABCDEFG"]
    # the adversarially trained models' ε runs only at the first seed, and only E and F's (figures 2–3)
    assert ("E", 200) in s.attacked() and ("G", 200) not in s.attacked() and ("E", 200) not in s.attacked(1)
    assert ("A", 64) in s.models() and ("A", 64) in s.attacked() and ("A", 64) not in s.attacked(1)
    plain = study("paper", "extended=0")
    assert plain.seeds == (0,) and plain.models() == [("A", 200), ("B", 200), ("A", 2), ("B", 2)]
    assert study("paper", "extra_seeds=4,5").seeds == (0, 4, 5) and study("paper", "extended=false").extended is False
    assert study("paper", "seed=1 extended=0").seeds == (1,)  # the extra seeds (1, 2) are not used there
    inverse = study("paper", "train_eps=0.3 train_step_size=0.15")  # A does not read them: its key stays
    assert key_params(inverse.train_config("A", 200)) == key_params(s.train_config("A", 200))
    assert key_params(inverse.train_config("C", 200)) != key_params(s.train_config("C", 200))
    assert study("paper", "train_eps=0.3 train_step_size=0.15").train_config("D", 200).train_eps == 0.3


@pytest.mark.parametrize("overrides, message", [
    ("extended=maybe", "extended must be 1 or 0"), ("extra_seeds=0", "extra_seeds must be distinct integers other"),
    ("seed=1 extra_seeds=1,2", r"other than seed=1, got \(1, 2\); e.g. extra_seeds=2,3"),
    ("extra_seeds=1.5", "extra_seeds must be a comma-separated list of integers"), ("sweep_dims=0,2", "sweep_dims"),
    ("robust_eps=2", "robust_eps must be distinct values"), ("train_steps=0", "train_steps must be"),
    ("ema_rate=0", "ema_rate must be in"), ("robust_samples=5", "robust_samples must be None"),
])
def test_bad_extension_overrides_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        study("smoke", overrides)


def test_notebook_seed_outside_the_study_is_named():
    with pytest.raises(ValueError, match=r"seed=7 is not one of the study's seeds \[0\]; add it"):
        dag.train_task(study("smoke"), "A", 200, seed=7)
    with pytest.raises(ValueError, match="leaves out"):
        dag.evaluate_task(study("smoke", "extended=0"), "A", 200)
    with pytest.raises(ValueError, match=r"model A-2d is not one the study evaluates at seed 0; choose one of"):
        dag.evaluate_task(study("smoke"), "A", 2)


def test_a_steps_process_validates_notebooks_without_compiling_iri_grammars():
    """lib.pipeline's command line keeps jsonschema from compiling rfc3987_syntax's grammars (1.5 s a step)."""
    script = ("import runpy, sys\nsys.argv = ['lib.pipeline', '--help']\n"
              "try:\n    runpy.run_module('lib.pipeline', run_name='__main__')\nexcept SystemExit:\n    pass\n"
              "import nbformat, papermill\nnbformat.validate(nbformat.read('notebooks/01_train.ipynb', as_version=4))\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lark', 'rfc3987_syntax') and sys.modules[m]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "[]", result.stdout[-500:] + result.stderr[-2000:]
