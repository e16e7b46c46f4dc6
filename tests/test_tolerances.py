"""The regression check's tolerances stand on a measurement of the noise: every compared quantity's tolerance is at
least twice the largest difference that any of four CPU kernel sets made from the references
(tools/kernel_spread.py, tests/test_regression/kernel_spread.csv), and docs/explanation/reproducibility.md shows
those numbers."""
import numpy as np
import pandas as pd
import pytest

from tests import regression
from tools import kernel_spread


@pytest.fixture(scope="module")
def spread() -> pd.DataFrame:
    return pd.read_csv(kernel_spread.SPREAD)


def test_the_spread_was_measured_on_every_compared_quantity_and_row(spread):
    stored = regression.reference_tables()
    measured = spread.groupby(["table", "column"], sort=False).row.count().to_dict()
    expected = {(table, column): int(stored[table][column].notna().sum())
                for table, column in kernel_spread.compared(stored) if stored[table][column].notna().any()}
    assert measured == expected, "the references changed since the spread was measured: run tools/kernel_spread.py"
    current = [stored[r.table][r.column].iloc[r.row] for r in spread.itertuples()]
    assert np.allclose(spread.reference, current, rtol=1e-6, atol=0), \
        "the references changed since the spread was measured: run tools/kernel_spread.py"
    assert spread.set.nunique() >= 2 or (spread.difference == 0).all()


def test_every_tolerance_is_at_least_twice_the_largest_measured_spread(spread):
    table = kernel_spread.margins(spread)
    low = table[table.margin < kernel_spread.MINIMUM_MARGIN]
    assert low.empty, f"tolerances below {kernel_spread.MINIMUM_MARGIN}× the measured spread:\n{low.to_string()}"


def test_the_docs_show_the_measured_spread_and_the_tolerances(spread):
    text = kernel_spread.DOC.read_text()
    shown = text[text.index(kernel_spread.BEGIN) + len(kernel_spread.BEGIN):text.index(kernel_spread.END)]
    assert shown.strip() == kernel_spread.markdown(kernel_spread.margins(spread)).strip(), \
        "docs/explanation/reproducibility.md's table is stale: python tools/kernel_spread.py --table"


def test_a_tolerance_below_twice_the_spread_is_caught(spread, monkeypatch):
    """The check above has teeth: a quarter of every tolerance leaves some margin below 2 with the stored spread."""
    quarter = {name: (atol / 4, rtol / 4) for name, (atol, rtol) in regression.TOLERANCES.items()}
    monkeypatch.setattr(regression, "TOLERANCES", quarter)
    monkeypatch.setattr(regression, "PER_CLASS", {n: (a / 4, r / 4) for n, (a, r) in regression.PER_CLASS.items()})
    assert (kernel_spread.margins(spread).margin < kernel_spread.MINIMUM_MARGIN).any()
