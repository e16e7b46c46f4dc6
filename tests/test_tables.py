"""Tidy tables reproduce the metrics they are built from."""
import numpy as np
import pandas as pd
import pytest

from lib.analysis import tables
from lib.core import inverse
from lib.core.centers import compare, cosine
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
    attacks = inverse.attack_table(runs)
    assert list(attacks.eps[attacks.model == "B-200d"]) == [0.0, 0.1, 0.3]
    assert attacks.linf_max.max() == pytest.approx(0.3)


def test_unknown_reference_is_named():
    with pytest.raises(ValueError, match="reference must be one of"):
        tables.reference(references(0), "median", "train")


def test_export_copies_csv_and_adds_parquet_only_when_pyarrow_is_there(tmp_path):
    import importlib.util

    from lib.analysis.tables import export, save_csv

    source = tmp_path / "made" / "centers.csv"
    save_csv(pd.DataFrame({"model": ["A-200d"], "eps": [0.1], "cosine": [0.5]}), source)
    written = export([source], tmp_path / "out")
    assert (tmp_path / "out" / "centers.csv").read_bytes() == source.read_bytes()
    parquet = tmp_path / "out" / "centers.parquet"
    if importlib.util.find_spec("pyarrow"):
        assert parquet in written and pd.read_parquet(parquet).equals(pd.read_csv(source))
    else:
        assert written == [tmp_path / "out" / "centers.csv"] and not parquet.exists()


def test_across_seeds_and_its_text():
    table = pd.DataFrame({"model": ["A", "A", "B"], "seed": [0, 1, 0], "acc": [0.9, 0.8, 0.7]})
    summary = tables.across_seeds(table, ["model"], ["acc"])
    a, b = summary.set_index("model").loc["A"], summary.set_index("model").loc["B"]
    assert a.acc == pytest.approx(0.85) and a.acc_std == pytest.approx(0.0707, abs=1e-4) and a.seeds == 2
    assert b.seeds == 1 and pd.isna(b.acc_std)
    text = tables.mean_std_text(summary, ["acc"], scale=100).set_index("model").acc
    assert text["A"] == "85.00 ± 7.07" and text["B"] == "70.00"  # no ± with one seed


def test_comparison_text_splits_the_evaluation_into_its_three_tables():
    rows = [{"model": m, "seed": seed, "samples": 100, "clean_acc": acc, "robust_acc@0.1": acc / 2,
             "compactness": 0.1, "alignment": 0.7, "nc3": 0.4, "epoch_seconds": 10.0 + seed, "device": "cpu"}
            for m, acc in (("A-200d", 0.98), ("B-200d", 0.96)) for seed, acc in ((0, acc), (1, acc - 0.02))]
    text = tables.comparison_text(pd.DataFrame(rows))
    assert list(text["accuracy"].columns) == ["model", "seeds", "clean_acc", "robust_acc@0.1"]
    assert text["accuracy"].set_index("model").loc["B-200d", "clean_acc"] == "95.00 ± 1.41"
    assert list(text["geometry"].columns) == ["model", "compactness", "alignment", "nc3"]
    assert text["geometry"].nc3.tolist() == ["0.400 ± 0.000"] * 2
    assert text["time"].epoch_seconds.tolist() == ["10.5 ± 0.7"] * 2


def test_seed_class_average_is_the_mean_over_seeds_of_class_means():
    rows = [{"model": "A-200d", "reference": "weight", "eps": 0.1, "class": c, "cosine": cos + c * 0.0,
             "mse": 1.0, "relative_mse": 0.5, "seed": seed} for seed, cos in ((0, 0.2), (1, 0.4)) for c in range(10)]
    out = tables.seed_class_average(pd.DataFrame(rows))
    assert len(out) == 1 and out.cosine.iloc[0] == pytest.approx(0.3) and out.seeds.iloc[0] == 2
    assert out.cosine_std.iloc[0] == pytest.approx(0.1414, abs=1e-4)


def test_sweep_table_adds_the_clean_alignment_per_dimension():
    refs = {"A-2d": references(0, dim=2), "B-16d": references(1, dim=16)}
    runs = [eps_run(0.1, models=("A-2d",), dim=2)]
    runs[0]["models"]["B-16d"] = eps_run(0.1, models=("B-16d",), dim=16)["models"]["B-16d"]
    centers = tables.centers_table(runs, refs, "train")
    sweep = tables.sweep_table(centers, refs, "train")
    assert set(sweep.feature_dim) == {2, 16} and set(sweep.loss) == {"A", "B"}
    clean = sweep[sweep.reference == "mean_vs_weight"].set_index("model").cosine
    expected = cosine(refs["B-16d"]["feature_mean_train"], refs["B-16d"]["weight"]).mean().item()
    assert clean["B-16d"] == pytest.approx(expected)
