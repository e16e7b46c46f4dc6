"""The regression check of the smoke report's numbers, on both of the suite's computations of it.

The suite computes the smoke study twice, independently: nbval re-executes the stored notebooks
(with another CPU kernel set, see conftest.py) and `make report` runs the pipeline in the background
(with this CPU's own). Each is compared with the references in tests/test_regression/ — numbers
within the tolerances of tests/regression.py, labels and counts exactly, verdicts and the words of
the interpretations wherever the references are not within those tolerances of a threshold.
`make nbval-refresh` regenerates the references (and nbval's notebooks) from a fresh smoke run.
"""
from functools import cache
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from lib.core import products
from lib.pipeline import dag
from lib.pipeline.steps.train import checkpoint
from lib.pipeline.config import study
from tests import regression
from tests.smoke import PIPELINE_RUNS, make_report, offline_env, other_kernels, smoke_report

TABLES = regression.TABLES
CATEGORIES = ("claim 1", "claim 2", "claim 3", "claim 4", "accuracy", "figure 2", "figure 3", "probe", "sweep")
RUNS = ("default-kernels", "other-kernels")
pytestmark = [pytest.mark.slow, pytest.mark.pipeline]


def products_made(runs: Path) -> bool:
    """Whether `runs` holds every smoke product the tables are read from (the figures' notebook aside)."""
    with regression.runs_at(runs):
        return all(t.output.exists() for t in dag.plan(study("smoke")).values() if t.name != "figures")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Callable[[str], Path]:
    """The runs folder of a computation by name, made now when it is missing (this module run alone)."""

    @cache
    def folder(run: str) -> Path:
        smoke_report()  # the background pipeline run: waits for it
        if run == "default-kernels":
            return PIPELINE_RUNS
        nbval = dag.runs_dir()
        if not products_made(nbval):
            reports = tmp_path_factory.mktemp("reports")
            make_report(env=offline_env(INVADV_RUNS=str(nbval), INVADV_REPORTS=str(reports), **other_kernels()))
        return nbval

    return folder


@pytest.fixture(scope="module")
def smoke_tables(runs) -> Callable[[str], dict[str, pd.DataFrame]]:
    """The tables of a computation by name, read once."""
    return cache(lambda run: regression.smoke_tables(runs(run)))


@pytest.fixture(scope="module")
def reference_tables() -> dict[str, pd.DataFrame]:
    return regression.reference_tables()


@pytest.fixture(scope="module")
def expected(reference_tables) -> dict[str, str]:
    """The verdicts and texts the report's code derives from the stored numbers."""
    return regression.categories(reference_tables)


@pytest.fixture(scope="module")
def decisive(reference_tables) -> dict[str, bool]:
    return regression.decisive(reference_tables)


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("run", RUNS)
def test_numbers_match_the_references(smoke_tables, run, table, dataframe_regression):
    frame = smoke_tables(run)[table]
    dataframe_regression.check(frame, basename=table, tolerances=regression.tolerances(table, frame))


def test_the_stored_verdicts_follow_from_the_stored_numbers(expected, data_regression):
    """The report's code, applied to the reference tables, gives the stored verdicts and texts."""
    data_regression.check(expected, basename="categories")


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("run", RUNS)
def test_verdicts_and_texts_match_where_the_numbers_decide_them(smoke_tables, expected, decisive, run, category):
    if not decisive[category]:
        pytest.skip(f"{category}: the references lie within the tolerances of a threshold, so float noise "
                    "may flip it; not compared")
    assert regression.categories(smoke_tables(run))[category] == expected[category]


def test_the_two_computations_used_different_kernels(runs):
    """Otherwise the portability check above would compare a computation with itself."""
    checkpoints = []
    for run in RUNS:
        with regression.runs_at(runs(run)):
            checkpoints.append(products.load(dag.task(study("smoke"), "train-A-200d").output))
    a, b = checkpoints
    assert a["provenance"]["cpu_kernels"] != b["provenance"]["cpu_kernels"]
    assert any(not (x == y).all() for x, y in zip(a["model"].values(), b["model"].values()))


def test_same_kernels_and_threads_give_bit_identical_products(tmp_path, monkeypatch):
    """On one machine, with one kernel set and one thread, a step repeats bit for bit: the background
    pipeline's training of A-200d, made again in this process."""
    smoke_report()
    with regression.runs_at(PIPELINE_RUNS):
        first = products.load(dag.task(study("smoke"), "train-A-200d").output)
    monkeypatch.setenv("INVADV_RUNS", str(tmp_path))
    again = checkpoint(study("smoke"), "A", 200)
    regression.assert_tensors_equal(again["model"], first["model"], "A-200d")
    regression.assert_tensors_equal(again["references"], first["references"], "A-200d references")
