"""Tidy tables reproduce the metrics they are built from."""
import numpy as np
import pandas as pd
import pytest
import torch

from lib import tables
from lib.centers import compare
from tests.synthetic import eps_run, references


@pytest.fixture
def runs():
    return [eps_run(e, seed=i) for i, e in enumerate((0.0, 0.1, 0.3))]


@pytest.fixture
def refs():
    return {"A-200d": references(1), "B-200d": references(2)}


def test_centers_table_matches_compare(runs, refs):
    table = tables.centers_table(runs, refs, "train")
    assert len(table) == 2 * 3 * 3 * 10
    row = table[(table.model == "B-200d") & (table.eps == 0.1) & (table.reference == "weight")]
    expected = compare(runs[1]["models"]["B-200d"]["adv_centers"], refs["B-200d"]["weight"])
    np.testing.assert_allclose(row.cosine, expected["cosine"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(row.mse, expected["mse"].numpy(), rtol=1e-6)
    means = table[(table.reference == "feature_mean") & (table.model == "A-200d") & (table.eps == 0.0)]
    np.testing.assert_allclose(means.cosine, compare(runs[0]["models"]["A-200d"]["adv_centers"],
                                                     refs["A-200d"]["feature_mean_train"])["cosine"].numpy(), rtol=1e-6)


def test_mean_split_selects_the_reference(runs, refs):
    train = tables.centers_table(runs, refs, "train")
    test = tables.centers_table(runs, refs, "test")
    assert not np.allclose(train[train.reference == "feature_mean"].cosine, test[test.reference == "feature_mean"].cosine)
    assert np.allclose(train[train.reference == "weight"].cosine, test[test.reference == "weight"].cosine)


def test_class_average(runs, refs):
    table = tables.centers_table(runs, refs, "train")
    avg = tables.class_average(table)
    assert len(avg) == 2 * 3 * 3
    one = avg[(avg.model == "A-200d") & (avg.reference == "center") & (avg.eps == 0.3)].iloc[0]
    part = table[(table.model == "A-200d") & (table.reference == "center") & (table.eps == 0.3)]
    assert one.cosine == pytest.approx(part.cosine.mean()) and one.cosine_std == pytest.approx(part.cosine.std())


def test_sample_and_attack_tables(runs):
    samples = tables.sample_table(runs, "test")
    row = samples[(samples.model == "A-200d") & (samples.eps == 0.1) & (samples.reference == "feature_mean")]
    assert row.sample_cosine.item() == pytest.approx(runs[1]["models"]["A-200d"]["sample_cosine"]["feature_mean_test"].mean().item())
    attacks = tables.attack_table(runs)
    assert list(attacks.eps[attacks.model == "B-200d"]) == [0.0, 0.1, 0.3]
    assert attacks.linf_max.max() == pytest.approx(0.3)


def test_unknown_reference_is_named():
    with pytest.raises(ValueError, match="reference must be one of"):
        tables.reference(references(0), "median", "train")


def test_export_copies_csv_and_adds_parquet_only_when_pyarrow_is_there(tmp_path):
    import importlib.util

    from lib.tables import export, save_csv

    source = tmp_path / "made" / "centers.csv"
    save_csv(pd.DataFrame({"model": ["A-200d"], "eps": [0.1], "cosine": [0.5]}), source)
    written = export([source], tmp_path / "out")
    assert (tmp_path / "out" / "centers.csv").read_bytes() == source.read_bytes()
    parquet = tmp_path / "out" / "centers.parquet"
    if importlib.util.find_spec("pyarrow"):
        assert parquet in written and pd.read_parquet(parquet).equals(pd.read_csv(source))
    else:
        assert written == [tmp_path / "out" / "centers.csv"] and not parquet.exists()
