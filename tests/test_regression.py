"""The regression check of the smoke report's numbers.

The suite computes the smoke study once, `make report` in the background (tests/smoke.py), with this CPU's own
kernels, or with another set where the references were computed with this CPU's (an AVX-512 one, see
test_regression/kernels.txt): so the numbers compared always come from two kernel sets. They are compared with the
references in tests/test_regression/ — numbers within the tolerances of tests/regression.py, labels and counts
exactly, verdicts and the words of the interpretations wherever the references are not within those tolerances of a
threshold. `make nbval-refresh` regenerates the references (and nbval's notebooks) from a fresh smoke run.
"""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lib import ROOT
from lib.core import products
from lib.pipeline import dag
from lib.pipeline.config import study
from tests import regression
from tests.smoke import PIPELINE_RUNS, REFERENCE_KERNELS, pipeline_env, smoke_report

TABLES = regression.TABLES
CATEGORIES = ("claim 1", "claim 2", "claim 3", "claim 4", "accuracy", "figure 2", "figure 3", "probe", "sweep")
# The tests that read the smoke run are marked `pipeline`; those of the references alone run with the unit tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_tables() -> dict[str, pd.DataFrame]:
    """The tables of the suite's smoke run, after it."""
    smoke_report()
    return regression.smoke_tables(PIPELINE_RUNS)


@pytest.fixture(scope="session")
def reference_tables() -> dict[str, pd.DataFrame]:
    return regression.reference_tables()


@pytest.fixture(scope="session")
def expected(reference_tables) -> dict[str, str]:
    """The verdicts and texts the report's code derives from the stored numbers."""
    return regression.categories(reference_tables)


@pytest.fixture(scope="session")  # computed once, with the unit tests: see the stored verdicts' test
def decisive(reference_tables) -> dict[str, bool]:
    return regression.decisive(reference_tables)


@pytest.mark.pipeline
@pytest.mark.parametrize("table", TABLES)
def test_numbers_match_the_references(smoke_tables, table, dataframe_regression):
    frame = smoke_tables[table]
    dataframe_regression.check(frame, basename=table, tolerances=regression.tolerances(table, frame))


def test_the_stored_verdicts_follow_from_the_stored_numbers(expected, decisive, data_regression):
    """The report's code, applied to the reference tables, gives the stored verdicts and texts; each is either
    decided by its numbers or not (the test below compares the decided ones with the smoke run's)."""
    data_regression.check(expected, basename="categories")
    assert set(decisive) == set(expected)


@pytest.mark.pipeline
@pytest.mark.parametrize("category", CATEGORIES)
def test_verdicts_and_texts_match_where_the_numbers_decide_them(smoke_tables, expected, decisive, category):
    if not decisive[category]:
        pytest.skip(f"{category}: the references lie within the tolerances of a threshold, so float noise "
                    "may flip it; not compared")
    assert regression.categories(smoke_tables)[category] == expected[category]


def smoke_checkpoint() -> dict:
    """The smoke run's training of A-200d."""
    with regression.runs_at(PIPELINE_RUNS):
        return products.load(dag.task(study("smoke"), "train-A-200d").output)


@pytest.mark.pipeline
def test_the_run_used_other_kernels_than_the_references(smoke_tables, reference_tables):
    """Otherwise the check above would compare a computation with itself: the run records another kernel set, and
    its training losses round otherwise (the references hold every float to 17 digits)."""
    assert smoke_checkpoint()["provenance"]["cpu_kernels"] != REFERENCE_KERNELS
    assert not np.array_equal(smoke_tables["history"].ce, reference_tables["history"].ce)


@pytest.mark.pipeline("train")
def test_same_kernels_and_threads_give_bit_identical_products(tmp_path):
    """On one machine, with one kernel set and one thread, a step repeats bit for bit: the smoke run's training of
    A-200d, made again in a process of its kernel set (its marker waits for the trainings)."""
    again = tmp_path / "again.pt"
    code = ("import sys, torch; from lib.pipeline.config import study; from lib.pipeline.steps.train import checkpoint; "
            "torch.save(checkpoint(study('smoke'), 'A', 200), sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(again)], cwd=ROOT, check=True,
                   env={**pipeline_env(), "INVADV_RUNS": str(tmp_path / "runs")})
    first, again = smoke_checkpoint(), products.load(again)
    regression.assert_tensors_equal(again["model"], first["model"], "A-200d")
    regression.assert_tensors_equal(again["references"], first["references"], "A-200d references")
