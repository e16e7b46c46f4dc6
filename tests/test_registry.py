"""The registry: every step declared once, and what reads it (plan, keys, notebooks, export) agrees with it."""
import importlib

import pytest

from lib import ROOT
from lib.pipeline import dag
from lib.pipeline.config import study
from lib.pipeline.registry import STEPS


@pytest.mark.parametrize("step", STEPS.values(), ids=list(STEPS))
def test_each_step_names_a_notebook_and_a_maker_that_notebook_runs(step):
    assert (ROOT / "notebooks" / f"{step.notebook}.ipynb").is_file()
    module, function = step.make.split(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert (module, function) in dag.step_code(step)  # so the maker's code is in the step's key
    assert set(step.exports) <= set(step.files) and step.files


def test_notebooks_are_numbered_in_the_order_the_steps_run():
    numbered = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert numbered == [step.notebook for step in STEPS.values()]


@pytest.mark.parametrize("overrides", ["", "extended=0", "extra_seeds=3,4 sweep_dims=2,8,200"])
def test_the_plan_runs_every_input_first_and_exports_only_from_steps_that_run_once(overrides):
    tasks = dag.plan(study("smoke", overrides))
    order = list(tasks)
    for t in tasks.values():
        assert all(order.index(d.name) < order.index(t.name) for d in t.deps), t.name
    for step in STEPS.values():
        runs = [t for t in tasks.values() if t.step is step]
        assert len(runs) == len(step.runs(study("smoke", overrides)))
        if step.exports:
            assert len(runs) <= 1, f"{step.name} exports tables but runs {len(runs)} times (their names would collide)"


def test_a_task_refuses_a_file_its_step_does_not_declare():
    with pytest.raises(KeyError, match="not a product of step centers"):
        dag.task(study("smoke"), "centers").file("models.csv")
