"""Report text follows this run's numbers; figures are labelled and show what they claim."""
import re
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
import torch

from lib.analysis import plots, report
from lib.core import inverse
from tests import synthetic
from tests.synthetic import averages, eps_run


def rising(m, r, e):
    return 0.5 + e


def falling(m, r, e):
    return 0.9 - e


def test_interpretation_changes_with_the_numbers():
    up, down = report.interpret_figure2(averages(rising)), report.interpret_figure2(averages(falling))
    assert up != down
    assert "rises from 0.500 at ε=0 to 0.800 at ε=0.3" in up
    assert "falls from 0.900 at ε=0 to 0.600 at ε=0.3" in down
    assert "0.800" in report.interpret_figure3(averages(rising))
    flat = report.interpret_figure2(averages(lambda m, r, e: 0.7))
    assert "stays at 0.700 from ε=0 to ε=0.3 (highest 0.700" in flat  # not 'stays from 0.700 to 0.700'


def test_the_probe_names_adversarial_centers_as_one_item():
    rows = [("A-200d", c, e, p) for c, e, p in [("feature mean", None, 1.0), ("center", None, 0.95),
                                                 ("weight direction", None, 0.0)]
            + [("adversarial center", e, 1.0) for e in (0.0, 0.1, 0.3)]]
    rows += [("B-200d", c, e, p) for c, e, p in [("feature mean", None, 1.0)]
             + [("adversarial center", e, 1.0 if e < 0.2 else 0.0) for e in (0.0, 0.1, 0.3)]]
    rows += [("F-200d", c, e, 0.0) for c, e in [("feature mean", None), ("adversarial center", 0.1)]]
    probe = pd.DataFrame([{"model": m, "candidate": c, "eps": e, "class": k, "probability": p,
                           "relative_distance": 0.5 if p else 4.0} for m, c, e, p in rows for k in range(10)])
    text = report.interpret_probe(report.probe_summary(probe))
    assert "A-200d: likely and reachable for most classes — feature mean, center, adversarial centers at every ε; " \
           "farthest from real features: weight direction (4.00 spreads)." in text
    assert "B-200d: likely and reachable for most classes — feature mean, adversarial centers at ε=0, 0.1;" in text
    assert "F-200d: no candidate is likely and reachable for most classes; farthest from real features: " in text


def test_header_states_provenance():
    product = {"provenance": {"commit": "abc", "device": "cpu (x86_64, 2 threads)", "packages": {"torch": "2.14.1"},
                              "python": "3.11.7"},
               "compute_seconds": 120.0}
    text = report.header({"profile": "smoke", "epochs": 1}, [product, product], wall_seconds=60)
    for expected in ("`smoke`", "epochs=1", "`abc`", "torch 2.14.1", "python 3.11.7", "cpu (x86_64, 2 threads)", "4.0 min", "1.0 min"):
        assert expected in text
    assert "keyed" not in text  # one commit: nothing to explain


def test_header_gives_each_kind_of_steps_compute_and_explains_several_commits():
    products = [{"provenance": {"commit": c, "device": "cpu", "packages": {}, "python": "3.11"}} for c in ("abc", "def")]
    steps = {"train-A": 600.0, "train-B": 3000.0, "eps-0": 120.0, "centers": 30.0, "extension": 7200.0}
    kinds = {"train-A": "trainings", "train-B": "trainings", "eps-0": "ε runs"}
    text = report.header({"profile": "paper"}, products, wall_seconds=9000, step_seconds=steps, kinds=kinds)
    assert "**Compute time of the steps:** 3.04 h before this report's own step: 2 trainings 60.0 min (10.0 min–50.0 min " \
           "each), 1 ε runs 2.0 min, 1 centers 0.5 min, 1 extension 2.00 h; wall time of the pipeline: 2.50 h" in text
    assert "`abc`, `def` (a product is reused across commits only while the code it depends on is unchanged" in text


def test_pick_eps_and_examples():
    assert report.pick_eps([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]) == [0.0, 0.15, 0.3]
    assert report.pick_eps([0.0, 0.1]) == [0.0, 0.1]
    runs = [eps_run(e) for e in (0.0, 0.1, 0.2, 0.3)]
    assert sorted(report.examples(runs, "A-200d")) == [0.0, 0.2, 0.3]


def test_figure_table_has_one_column_per_eps():
    table = report.figure_table(averages(rising), ["feature_mean", "weight"])
    assert list(table.columns) == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    assert table.loc[("A-200d", "weight"), 0.3] == 0.8
    mixed = averages(rising).assign(mse=[0.000823456 if r == "weight" else 2.4912 for r in averages(rising).reference])
    mse = report.figure_table(mixed, ["feature_mean", "weight"], "mse")
    assert mse.loc[("A-200d", "weight"), 0.0] == "0.000823" and mse.loc[("A-200d", "feature_mean"), 0.0] == "2.49"


def test_claims_html_colours_verdicts():
    table = pd.DataFrame([{"claim": 1, "statement": "s", "evidence": "e", "verdict": "holds"}])
    assert "#d8f0d8" in report.claims_html(table).data and "<table class='claims'>" in report.claims_html(table).data


def test_figure2_and_3_panels():
    fig = plots.figure2(averages(rising))
    left, right = fig.axes
    assert "feature means" in left.get_title() and "weight vectors" in right.get_title()
    assert left.get_xlabel().startswith("ε") and "cosine" in left.get_ylabel()
    assert [l.get_label() for l in left.get_lines()] == ["A-200d", "B-200d"]
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), 0.5 + np.array([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]))
    fig3 = plots.figure3(averages(rising))
    assert [l.get_label() for l in fig3.axes[0].get_lines()] == ["B-200d"] and "MSE" in fig3.axes[1].get_ylabel()


def test_figure1_shows_origin_and_weight_arrows():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 10
    features = torch.randn(200, 2, generator=g) + 5
    panel = {"features": features, "labels": labels, "means": torch.randn(10, 2, generator=g),
             "weights": torch.randn(10, 2, generator=g), "title": "t"}
    ax = plots.figure1([panel, panel]).axes[0]
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    assert x0 <= 0 <= x1 and y0 <= 0 <= y1  # arrows start at the origin, which must be visible
    assert ax.get_xlabel() == "feature 1" and "weight vector" in ax.get_legend().get_texts()[1].get_text()


def test_other_figures_render():
    runs = [eps_run(e) for e in (0.0, 0.1, 0.3)]

    assert len(plots.attack_effect(inverse.attack_table(runs)).axes) == 4
    assert len(plots.example_grid(report.examples(runs, "B-200d")).axes) == 9 * 6
    history = pd.DataFrame([{"model": "A-200d", "epoch": i, "ce": 1 / i, "test_acc": 0.9} for i in (1, 2)])
    assert plots.training_curves(history).axes[1].get_ylabel() == "test accuracy"


def test_contrasts_read_in_points_and_say_how_many_seeds_would_decide_the_rest():
    from tests.test_claims import evaluation_table

    table = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51])
    table.loc[table.model == "C-200d", "robust_acc@0.3"] = [0.26, 0.25, 0.27]  # vs B's 0.25, 0.26, 0.255: open
    contrast = synthetic.contrast(table)
    shown = report.contrast_table(contrast)
    row = shown[(shown.comparison == "C − B") & (shown.metric == "PGD ε=0.1")].iloc[0]
    assert row["difference"] == "+20.00 pp" and row["excludes 0"] == "yes" and row["95 % interval"].startswith("[+")
    assert row["each seed"] == "s0 +20.0, s1 +20.0, s2 +20.0" and row["left out"] == ""
    compact = shown[(shown.comparison == "C − A") & (shown.metric == "compactness")].iloc[0]
    assert compact["difference"] == "-0.2000" and compact["seeds for 1 pp"] == ""  # 0.1 vs 0.3 at every seed
    text = report.interpret_contrasts(contrast)
    assert text.startswith("* Over 3 seed(s), the 95 % interval excludes 0 for C − B (PGD ε=0.1) +20.00 pp")
    assert re.search(r"deciding a 1-point difference would take \d+–\d+ seeds per model", text)
    assert "rule out a difference of 1 pp or more either way, for C − B (clean)" in text  # 0 ± 0.3 pp
    assert shown.loc[(shown.comparison == "C − B") & (shown.metric == "clean"), "within ±1 pp"].item() == "yes"
    assert report.interpret_contrasts(contrast[contrast.model == "B-200d"]).startswith("* No model trained")
    # the effect is one number: asked for 2 points, the table and the text say 2 points, and fewer seeds suffice
    coarse = synthetic.contrast(table, effect=0.02)
    assert "within ±2 pp" in report.contrast_table(coarse).columns
    assert "deciding a 2-point difference" in report.interpret_contrasts(coarse)
    assert (coarse.seeds_for_effect.fillna(1e9) <= contrast.seeds_for_effect.fillna(1e9)).all()


def test_the_report_says_whether_the_seeds_that_would_decide_fit_the_budget():
    from tests.test_claims import evaluation_table

    table = evaluation_table([0.45, 0.60, 0.52], [0.50, 0.48, 0.55])  # noisy: nothing decided
    table["epoch_seconds"] = table.model.map({"A-200d": 20.0, "B-200d": 25.0, "C-200d": 99.0})
    hours, counted = report.hours_per_seed(table, epochs=25)
    assert hours == pytest.approx((20 + 25 + 99) * 25 / 3600) and "trainings alone" in counted  # 1.0 h
    steps = {"train-A-200d": 500.0, "eps-0.1": 100.0, "train-A-200d-s1": 3000.0, "eps-0.1-s1": 600.0,
             "evaluate-s1": 0.0, "train-A-200d-s2": 4000.0, "eps-0.1-s2": 1600.0}
    seed_of = {"train-A-200d": 0, "eps-0.1": 0, "train-A-200d-s1": 1, "eps-0.1-s1": 1, "evaluate-s1": 1,
               "train-A-200d-s2": 2, "eps-0.1-s2": 2, "figures": None}
    hours, counted = report.hours_per_seed(table, 25, steps, seed_of, extra_seeds=(1, 2))
    assert hours == pytest.approx((3600 + 5600) / 2 / 3600) and "all of a seed's steps" in counted  # seeds 1, 2 only
    assert "trainings alone" in report.hours_per_seed(table, 25, steps, seed_of, extra_seeds=(1, 3))[1]  # 3 untimed

    contrast = synthetic.contrast(table)
    wide = contrast[(contrast.model == "C-200d") & ~contrast.decided & ~contrast.bounded & (contrast.metric != "compactness")]
    fewest = int(wide.seeds_for_effect.min())  # not the clean accuracy's: its interval already bounds it within ±1 pp
    assert fewest > 3
    text = report.interpret_contrasts(contrast, cost=(1.0, "the trainings alone"))
    more = fewest - 3
    assert f"The fewest, {fewest}, means {more} more seed(s): ≈ {more:.1f} h of compute (the trainings alone), " \
           f"≈ {more / 2:.1f} h of wall time with 2 steps at once" in text
    assert text.endswith(("beyond" if more / 2 > 2 else "within") + " the 2 h this study budgets for more seeds.")
    assert report.interpret_contrasts(contrast, cost=(0.001, "x")).endswith("within the 2 h this study budgets "
                                                                             "for more seeds.")
    table.loc[table.model == "C-200d", "robust_acc@0.3"] = [0.0, 0.5, 1.0]  # a spread no count of seeds decides
    shown = report.contrast_table(synthetic.contrast(table))
    assert shown.loc[(shown.comparison == "C − B") & (shown.metric == "PGD ε=0.3"), "seeds for 1 pp"].item() == "> 1000"


def test_an_interval_wider_than_its_spread_predicts_asks_for_one_more_seed_not_fewer():
    # 3 seeds, and the spread says 3 would detect a 1-point difference, yet this interval reaches past +1 pp
    contrast = pd.DataFrame([{"model": "C-200d", "baseline": "B-200d", "metric": "robust_acc@0.1", "difference": 0.005,
                              "low": -0.002, "high": 0.012, "seeds": 3, "decided": False, "bounded": False,
                              "seeds_for_effect": 3, "effect": 0.01}])
    text = report.interpret_contrasts(contrast, cost=(1.5, "x"))
    assert "The fewest, 3, is no more than this run has (its interval is wider than the spread predicts): 1 more " \
           "seed: ≈ 1.5 h of compute (x), ≈ 0.8 h of wall time with 2 steps at once — within" in text


def test_a_previous_run_is_compared_with_this_runs_seed_range(monkeypatch, tmp_path):
    rows = []
    for seed, shift in ((0, 0.00), (1, 0.02), (2, -0.01)):
        for eps in (0.0, 0.3):
            for c in range(10):
                rows.append({"model": "A-200d", "reference": "weight", "eps": eps, "class": c, "cosine": 0.5 + shift,
                             "mse": 1.0, "relative_mse": 0.1, "seed": seed})
    seed_centers = pd.DataFrame(rows)
    previous = seed_centers[seed_centers.seed == 0].drop(columns="seed").copy()
    # seeds 0.50, 0.52, 0.49: mean 0.5033, s = 0.01528, so the prediction interval is ± t₀.₉₇₅(2)·s·√(4/3) = ± 0.0759
    previous.loc[previous.eps == 0.0, "cosine"] = 0.55  # outside the seeds' range, inside the prediction interval
    previous.loc[previous.eps == 0.3, "cosine"] = 0.58  # outside both (0.5792 is the interval's end)
    table = report.agreement(seed_centers, previous, ("A-200d",))
    assert list(table.within) == [True, False] and list(table.in_range) == [False, False]
    assert table["min"].iloc[0] == pytest.approx(0.49) and table["high"].iloc[0] == pytest.approx(0.5792, abs=1e-4)
    text = report.interpret_agreement(table, "abc1234", 3)
    assert text.startswith("1 of 2 class-averaged cosines of figures 2–3 from the run of abc1234 lie within the 95 % "
                           "prediction interval of this run's 3 seeds")
    assert "0 lie within the seeds' min–max range, which holds a rerun with probability 2/4 only" in text
    assert "the largest difference from this run's mean is +0.0767 (A-200d, weight, ε = 0.3" in text
    assert report.compare_with_previous("smoke", seed_centers, ("A-200d",)).data == \
        "<p>No earlier reference run exists for the smoke profile.</p>"
    monkeypatch.setitem(report.PREVIOUS, "smoke", ("abc1234", tmp_path / "previous.csv"))
    previous.to_csv(tmp_path / "previous.csv", index=False)
    html = report.compare_with_previous("smoke", seed_centers, ("A-200d",)).data
    assert "<table" in html and "1 of 2 class-averaged cosines" in html


def check_rows(model: str, pgd: float, long: float, margin: float, transfer: float, eps: float = 0.1) -> list[dict]:
    attacks = {"PGD, 40 steps (the evaluation's)": pgd, "PGD, 200 steps": long, "PGD on the margin, 40 steps": margin,
               "transferred from B-200d": transfer}
    from lib.core.robustness import ALL
    return [{"model": model, "eps": eps, "attack": a, "accuracy": v, "samples": 1000} for a, v in attacks.items()] + \
        [{"model": model, "eps": eps, "attack": ALL, "accuracy": min(attacks.values()) - 0.01}]


def test_the_attack_check_reads_as_a_table_and_names_masked_gradients():
    honest = pd.DataFrame(check_rows("B-200d", 0.55, 0.50, 0.54, 0.55) + check_rows("C-200d", 0.81, 0.78, 0.80, 0.95))
    table = report.attack_table(honest)
    assert table.loc[("C-200d", "PGD, 200 steps"), "ε=0.1"] == 78.0 and list(table.columns) == ["ε=0.1"]
    text = report.interpret_attack_check(honest, "B-200d")
    assert text.startswith("* On 1000 test images, all attacks together take at most 6.0 pp more than the evaluation's "
                           "PGD (B-200d at ε=0.1).")
    assert text.endswith("this test finds no masked gradients, which does not rule them out (AutoAttack decides).")
    masked = pd.DataFrame(check_rows("B-200d", 0.55, 0.50, 0.54, 0.55) + check_rows("C-200d", 0.81, 0.78, 0.80, 0.20))
    assert "beat the model's own white-box attacks for C-200d at ε=0.1 (20.0 % vs 78.0 %): a sign of masked " \
           "gradients" in report.interpret_attack_check(masked, "B-200d")


def test_autoattack_reads_stage_by_stage_and_names_masking_with_the_size_of_the_drop():
    from tests.test_claims import stages_table

    table = stages_table(c={0.2: [0.262, 0.144, 0.0, 0.0, 0.0]}, a={0.2: [0.148, 0.140, 0.120, 0.012, 0.012]})
    shown = report.autoattack_table(table)
    assert list(shown.columns) == ["PGD-40", "APGD-CE", "APGD-T", "FAB-T", "Square"]
    assert shown.loc[("C-200d", "ε=0.2"), "PGD-40"] == 26.2 and shown.loc[("A-200d", "ε=0.2"), "Square"] == 1.2
    text = report.interpret_autoattack(table)
    assert "On the first 500 test images (mean over 2 seed(s)), AutoAttack takes up to 26.2 points beyond PGD-40" in text
    assert "FAB-T and Square add at most 10.8 points" in text
    assert "C-200d at ε=0.2: 26.2 % → 0.0 % (−26.2 points, 26.2 of them at APGD-CE/APGD-T)" in text
    assert "A-200d at ε" not in text  # A's drop is FAB-T's: a stronger attack, not masked gradients
    plain = stages_table(c={0.2: [0.26, 0.25, 0.25, 0.25, 0.25]}, a={0.2: [0.15, 0.15, 0.15, 0.15, 0.15]})
    assert "no sign of masked gradients" in report.interpret_autoattack(plain)


def test_the_logits_scale_reads_per_model_with_pgd_raw_and_rescaled():
    rows = [{"model": m, "seed": seed, "samples": 1000, "margin_median": margin + seed, "margin_p90": 2 * margin,
             "saturated": sat, "vanishing": van, "temperature": margin, "pgd@0.1": 0.8, "pgd_rescaled@0.1": low,
             "pgd@0.3": 0.1, "pgd_rescaled@0.3": 0.0}
            for m, margin, sat, van, low in (("A-200d", 12.0, 0.1, 0.0, 0.78), ("C-200d", 300.0, 0.99, 0.9, 0.3))
            for seed in (0, 1)]
    text = report.interpret_masking(pd.DataFrame(rows))
    assert "first 1000 test images" in text and "median margin is 1" in text
    assert ("* C-200d: median logit margin 300.5 (90th percentile 600.0); softmax saturated for 99.0 %, input "
            "gradient exactly 0 for 90.0 %; PGD raw → rescaled logits ε=0.1: 80.0 → 30.0 %, ε=0.3: 10.0 → 0.0 %") in text
    assert "* A-200d: median logit margin 12.5" in text


def test_autoattack_stages_figure_has_a_panel_per_eps():
    from tests.test_claims import stages_table

    fig = plots.autoattack_stages(stages_table(c={0.1: [0.8, 0.7, 0.6, 0.6, 0.6], 0.2: [0.3, 0.1, 0.0, 0.0, 0.0]},
                                               a={0.1: [0.7] * 5, 0.2: [0.2] * 5}))
    assert [ax.get_title() for ax in fig.axes] == ["ε = 0.1", "ε = 0.2"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["PGD-40", "APGD-CE", "APGD-T", "FAB-T", "Square"]


def heldout_history(collapse: tuple[int, ...]) -> pd.DataFrame:
    """E over two seeds and five epochs: rising held-out robustness, or (in the seeds of `collapse`) a fall after
    epoch 2 while the accuracy on its own training examples keeps rising."""
    rows = []
    for seed in (0, 1):
        for epoch in range(1, 6):
            robust = 0.3 + 0.1 * epoch if seed not in collapse or epoch <= 2 else 0.05
            rows.append({"model": "E-200d", "seed": seed, "epoch": epoch, "heldout_pgd": robust + 0.01 * seed,
                         "train_acc_running": 0.5 + 0.08 * epoch})
    return pd.DataFrame(rows)


def test_the_held_out_curve_shows_catastrophic_overfitting_when_robustness_collapses():
    steady, collapsed = report.interpret_heldout(heldout_history(())), report.interpret_heldout(heldout_history((0, 1)))
    assert "E-200d: 80.5 % held-out robust accuracy after epoch 5 (best 80.5 % at epoch 5), 90.0 %" in steady
    assert "catastrophic" not in steady
    assert "5.5 % held-out robust accuracy after epoch 5 (best 50.5 % at epoch 2)" in collapsed
    assert "catastrophic overfitting in 2 of 2 seed(s): seed 0: the held-out accuracy fell 45 points from its best " \
           "(50.0 % at epoch 2) while its own training examples' rose to 90.0 %; seed 1:" in collapsed


def test_one_seeds_collapse_is_named_where_the_mean_over_seeds_hides_it():
    """Seed 1 falls 45 points; the mean over seeds falls 15, less than the 20 points that flag a collapse."""
    text = report.interpret_heldout(heldout_history((1,)).assign(
        heldout_pgd=lambda h: h.heldout_pgd.where(h.seed == 1, 0.3 + 0.05 * h.epoch)))
    assert "catastrophic overfitting in 1 of 2 seed(s): seed 1: the held-out accuracy fell 45 points" in text
    assert "seed 0:" not in text


def test_the_held_out_curves_draw_each_seed_so_that_one_seeds_collapse_shows():
    fig = plots.heldout_curves(heldout_history((0,)))
    curves = [line.get_ydata() for line in fig.axes[0].lines if len(line.get_ydata())]  # not the legend's handle
    assert [min(c) for c in curves] == pytest.approx([0.05, 0.41])
    assert [ax.get_ylabel() for ax in fig.axes] == ["held-out PGD-10 accuracy, ε = 0.3",
                                                    "accuracy on its own training examples"]
