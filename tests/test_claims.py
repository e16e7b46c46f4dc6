"""Claims verdicts follow the numbers: each verdict flips when the evidence does."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm, ttest_ind

from lib.analysis import claims
from lib.core.robustness import ALL
from tests.synthetic import averages


def verdicts(table):
    return dict(zip(table.claim, table.verdict))


def rising(m, r, e):
    return {"feature_mean": 0.8 + e / 2, "weight": 0.1 + e / 10, "center": 0.9 + e / 4}[r]


def falling(m, r, e):
    return {"feature_mean": 0.99 - e, "weight": 0.2, "center": 0.99 - e / 2}[r]


def test_original_claims_hold_when_the_numbers_say_so():
    assert verdicts(claims.check(averages(rising))) == {1: claims.HOLDS, 2: claims.HOLDS, 3: claims.HOLDS,
                                                       4: claims.INCONCLUSIVE}


def test_falling_similarity_contradicts_claim_1():
    table = claims.check(averages(falling))
    assert verdicts(table)[1] == claims.FAILS
    assert "ρ=-1.00" in table.evidence[0]


def test_flat_noisy_series_is_inconclusive():
    noise = [0.90, 0.93, 0.89, 0.92, 0.90, 0.93, 0.91]
    table = claims.check(averages(lambda m, r, e: noise[round(e / 0.05)]))
    assert verdicts(table)[1] == claims.INCONCLUSIVE


def test_claim_2_and_3_thresholds():
    high_weight = averages(lambda m, r, e: 0.7 if r == "weight" else 0.95)
    assert verdicts(claims.check(high_weight))[2] == claims.FAILS
    assert verdicts(claims.check(averages(rising, relative_mse=0.5)))[3] == claims.FAILS
    low_center = averages(lambda m, r, e: 0.5 if r == "center" else 0.2)
    assert verdicts(claims.check(low_center))[3] == claims.FAILS
    crossing = averages(lambda m, r, e: 0.3 + 2 * e if r == "weight" else 0.95)
    assert verdicts(claims.check(crossing))[2] == claims.INCONCLUSIVE


def test_extension_decides_claim_4():
    table = claims.check(averages(rising), extension=(claims.FAILS, "C is no more robust than B"))
    assert verdicts(table)[4] == claims.FAILS and "no more robust" in table.evidence[3]


@pytest.mark.parametrize("parts, expected", [
    ([claims.HOLDS, claims.HOLDS], claims.HOLDS),
    ([claims.HOLDS, claims.INCONCLUSIVE], claims.INCONCLUSIVE),
    ([claims.HOLDS, claims.FAILS], claims.FAILS),
])
def test_combine(parts, expected):
    assert claims.combine(parts) == expected


def test_sample_level_trend_is_context_not_verdict():
    samples = averages(rising).rename(columns={"cosine": "sample_cosine"})
    table = claims.check(averages(falling), samples=samples)
    assert verdicts(table)[1] == claims.FAILS  # the claim is about centers
    assert "sample level" in table.evidence[0] and "ρ=+1.00" in table.evidence[0]


def evaluation_table(c_robust: list[float], b_robust: list[float], c_clean: float = 0.99, n_seeds: int = 3):
    rows = []
    for seed in range(n_seeds):
        for model, robust, clean, compact in (("A-200d", 0.5, 0.99, 0.3), ("B-200d", b_robust[seed], 0.99, 0.1),
                                              ("C-200d", c_robust[seed], c_clean, 0.1)):
            rows.append({"model": model, "seed": seed, "clean_acc": clean + 0.001 * seed, "compactness": compact,
                         "robust_acc@0.1": robust, "robust_acc@0.3": robust / 2})
    return pd.DataFrame(rows)


def test_claim4_holds_when_c_is_clearly_more_robust_and_keeps_separability():
    verdict, evidence = claims.claim4(evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51]), samples=10000)
    assert verdict == claims.HOLDS and "ε=0.1: +20.00 pp" in evidence and "3 seed(s)" in evidence


def attack_check_table(c_worst: float, b_worst: float = 0.30, samples: int = 1000) -> pd.DataFrame:
    rows = [{"model": m, "eps": 0.1, "attack": a, "accuracy": acc, "samples": samples}
            for m, worst in (("B-200d", b_worst), ("C-200d", c_worst))
            for a, acc in (("PGD, 40 steps (the evaluation's)", worst + 0.1), (ALL, worst))]
    return pd.DataFrame(rows)


def test_claim4_holds_only_if_the_gain_survives_the_attack_check():
    table = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51])
    verdict, evidence = claims.claim4(table, 10000, check=attack_check_table(c_worst=0.40))
    assert verdict == claims.HOLDS and "C-200d − B-200d ε=0.1: +10.00 pp [+5." in evidence and "survives." in evidence
    assert "PGD, 40 steps (the evaluation's)" in evidence and "1000 test images" in evidence
    verdict, evidence = claims.claim4(table, 10000, check=attack_check_table(c_worst=0.31))  # +1 pp ± 4: masked?
    assert verdict == claims.INCONCLUSIVE and "no gain survives all attacks at any ε, so the gain under the " \
        "evaluation's PGD may be masked gradients." in evidence
    low = claims.worst_case_gain(attack_check_table(c_worst=0.31), "C-200d", "B-200d")[0.1][1]
    assert low == pytest.approx(claims.score_difference(0.31, 1000, 0.30, 1000)[0])  # two accuracies, 1000 images each
    failing = evaluation_table([0.40, 0.41, 0.42], [0.50, 0.52, 0.51])
    verdict, evidence = claims.claim4(failing, 10000, check=attack_check_table(c_worst=0.29))
    assert verdict == claims.FAILS and evidence.endswith("no gain survives all attacks at any ε.")  # only lowers


def test_claim4_is_cs_verdict_and_gives_d_the_same_rule_as_context():
    table = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51])
    d = table[table.model == "C-200d"].assign(model="D-200d")
    d["robust_acc@0.1"] = [0.40, 0.41, 0.42]  # D clearly less robust than B
    verdict, evidence = claims.claim4(pd.concat([table, d]), samples=10000)
    assert verdict == claims.HOLDS  # D does not change C's verdict
    assert "Context, not part of the verdict: D-200d" in evidence and "by the same rule does not hold" in evidence
    assert "D-200d − B-200d under PGD: ε=0.1: -10.00 pp" in evidence
    assert "Context" not in claims.claim4(table, samples=10000)[1]  # no D in the table, no context


def test_claim4_fails_when_c_is_less_robust_or_loses_clean_accuracy():
    assert claims.claim4(evaluation_table([0.40, 0.41, 0.42], [0.50, 0.52, 0.51]), 10000)[0] == claims.FAILS
    table = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51], c_clean=0.95)
    assert claims.claim4(table, 10000)[0] == claims.FAILS


def test_claim4_fails_when_every_interval_rules_out_a_one_point_gain():
    same = [0.500, 0.501, 0.502]
    assert claims.claim4(evaluation_table(same, [0.501, 0.500, 0.502]), 10000)[0] == claims.FAILS


def test_claim4_is_inconclusive_when_the_data_cannot_tell():
    noisy = evaluation_table([0.45, 0.60, 0.52], [0.50, 0.48, 0.55])  # wide intervals around a small gain
    assert claims.claim4(noisy, 10000)[0] == claims.INCONCLUSIVE
    one_seed = evaluation_table([0.52], [0.50], n_seeds=1)  # +2 points on 100 images: within the noise
    verdict, evidence = claims.claim4(one_seed, samples=100)
    assert verdict == claims.INCONCLUSIVE and "one seed: 100 clean, 100 attacked" in evidence


# Newcombe (Stat. Med. 1998), Table II: his eight examples and method 10's 95 % intervals, to four decimals.
NEWCOMBE = [((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)), ((6, 7, 2, 7), (0.0582, 0.8062)),
            ((5, 56, 0, 29), (-0.0381, 0.1926)), ((0, 10, 0, 20), (-0.1611, 0.2775)),
            ((0, 10, 0, 10), (-0.2775, 0.2775)), ((10, 10, 0, 20), (0.6791, 1.0)), ((10, 10, 0, 10), (0.6075, 1.0))]


@pytest.mark.parametrize("counts, published", NEWCOMBE)
def test_score_difference_matches_newcombes_published_intervals(counts, published):
    ka, na, kb, nb = counts
    assert claims.score_difference(ka / na, na, kb / nb, nb) == pytest.approx(published, abs=6e-5)


def test_wilson_matches_scipy():
    for k, n in ((0, 750), (13, 250), (250, 250)):
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert claims.wilson(k / n, n, norm.ppf(0.975)) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_seeds_that_agree_at_zero_keep_an_interval_from_the_images():
    """Three seeds each at 0 % under AutoAttack: Welch has no spread to use, and the normal interval of two zero
    accuracies is a point; the score interval on one seed's 750 images is about ±0.5 points."""
    zeros = pd.Series([0.0, 0.0, 0.0])
    diff, low, high = claims.difference(zeros, zeros, samples=750)
    assert diff == 0 and low == pytest.approx(-high) and 0.004 < high < 0.006
    assert np.isnan(claims.difference(zeros, zeros, samples=None)[1:]).all()  # not an accuracy: no fallback


def test_a_collapsed_seed_widens_an_accuracy_interval_to_the_possible_range_not_past_it():
    """F at 3 % in one seed and 90 % in the other against E at 91–92 %: Welch with one degree of freedom reaches far
    past −100 points; a difference of accuracies cannot, so the interval stops at ±1. A quantity that is not an
    accuracy (samples=None) keeps Welch's interval as it is."""
    collapsed, steady = pd.Series([0.03, 0.90]), pd.Series([0.91, 0.92])
    welch = ttest_ind(collapsed, steady, equal_var=False).confidence_interval(0.95)
    assert welch.low < -1 < 1 < welch.high  # the uncut interval, for the record
    diff, low, high = claims.difference(collapsed, steady, samples=500)
    assert diff == pytest.approx(-0.45) and (low, high) == (-1.0, 1.0)
    narrow = claims.difference(pd.Series([0.70, 0.72]), pd.Series([0.50, 0.53]), samples=500)
    assert -1 < narrow[1] < narrow[2] < 1  # inside the range: untouched
    assert claims.difference(collapsed * 100, steady * 100, samples=None)[1] == pytest.approx(100 * welch.low)


def test_seeds_needed_matches_the_normal_approximation_and_grows_with_the_spread():
    """For a large n the t quantiles approach z: n ≈ (z₀.₉₇₅ + z₀.₈)²·(σa² + σb²)/effect²."""
    rng = np.random.default_rng(0)
    a, b = pd.Series(rng.normal(0.9, 0.02, 50)), pd.Series(rng.normal(0.9, 0.02, 50))
    n = claims.seeds_needed(a, b, effect=0.01)
    approx = (norm.ppf(0.975) + norm.ppf(0.8)) ** 2 * (a.var() + b.var()) / 0.01 ** 2
    assert abs(n - approx) <= 2 and n > 20
    assert claims.seeds_needed(a / 2, b / 2, effect=0.01) < n  # half the spread, fewer seeds
    assert claims.seeds_needed(a[:1], b[:1], effect=0.01) is None


def test_contrasts_report_every_pair_and_metric_with_intervals():
    table = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51])
    result = claims.contrasts(table, samples=10000)
    assert set(zip(result.model, result.baseline)) == {("C-200d", "B-200d"), ("C-200d", "A-200d"), ("B-200d", "A-200d")}
    row = result[(result.model == "C-200d") & (result.baseline == "B-200d") & (result.metric == "robust_acc@0.1")].iloc[0]
    assert row.difference == pytest.approx(0.20) and row.low < 0.20 < row.high and row.decided and row.seeds == 3
    assert row.seeds_for_effect >= 2
    clean = result[(result.model == "C-200d") & (result.baseline == "B-200d") & (result.metric == "clean_acc")].iloc[0]
    assert clean.difference == pytest.approx(0.0) and not clean.decided
    assert clean.bounded and not row.bounded  # clean: within ±1 pp, no 1-point difference; PGD: +20 pp
    table.loc[table.model == "C-200d", "compactness"] = [0.05, 0.06, 0.055]
    table.loc[table.model == "B-200d", "compactness"] = [0.10, 0.11, 0.105]
    compact = claims.contrasts(table, 10000).query("model == 'C-200d' and baseline == 'B-200d' and metric == 'compactness'")
    low, high = ttest_ind([0.05, 0.06, 0.055], [0.10, 0.11, 0.105], equal_var=False).confidence_interval(0.95)
    assert compact.difference.item() == pytest.approx(-0.05) and compact.decided.item()
    assert (compact.low.item(), compact.high.item()) == pytest.approx((low, high))
    one = claims.contrasts(table[table.seed == 0], 10000).query("metric == 'compactness'")
    assert one.low.isna().all() and not one.decided.any()  # one seed: no interval for compactness


def with_autoattack(table: pd.DataFrame, c_final: list[float], b_final: list[float], images: int = 1000):
    """The evaluation table with AutoAttack's accuracies (at ε 0.1 and 0.3), as the extension merges them."""
    table = table.copy()
    for model, final in (("C-200d", c_final), ("B-200d", b_final), ("A-200d", [0.45] * len(c_final))):
        rows = table.model == model
        table.loc[rows, "autoattack_acc@0.1"] = final
        table.loc[rows, "autoattack_acc@0.3"] = [f / 3 for f in final]
    return table.assign(autoattack_samples=images)


def test_claim4_is_decided_under_autoattack_with_pgd_beside_it():
    pgd_gain = evaluation_table([0.70, 0.72, 0.71], [0.50, 0.52, 0.51])  # +20 points under PGD
    masked = with_autoattack(pgd_gain, c_final=[0.38, 0.40, 0.39], b_final=[0.45, 0.46, 0.44])  # −6 under AutoAttack
    verdict, evidence = claims.claim4(masked, samples=10000)
    assert verdict == claims.FAILS
    assert "under AutoAttack (the first 1000 test images): ε=0.1: -6.00 pp" in evidence
    assert "Under the evaluation's PGD alone" in evidence and "ε=0.1: +20.00 pp" in evidence and "holds by" in evidence
    real = with_autoattack(pgd_gain, c_final=[0.60, 0.62, 0.61], b_final=[0.45, 0.46, 0.44])
    assert claims.claim4(real, samples=10000)[0] == claims.HOLDS
    assert claims.claim4(pgd_gain, samples=10000)[0] == claims.HOLDS  # without AutoAttack, PGD decides
    one_seed = with_autoattack(evaluation_table([0.7], [0.5], n_seeds=1), [0.6], [0.45], images=20)
    evidence = claims.claim4(one_seed, samples=10000)[1]
    assert "one seed: 10000 clean, 20 attacked" in evidence
    assert "clean accuracy: +0.00 pp [-0.28, +0.28]" in evidence  # from the 10,000 clean images, not AutoAttack's 20


def test_contrasts_cover_autoattack_with_its_own_image_count_for_one_seed():
    table = with_autoattack(evaluation_table([0.60], [0.50], n_seeds=1), [0.40], [0.30], images=400)
    result = claims.contrasts(table, samples=10000).set_index(["model", "baseline", "metric"])
    row = result.loc[("C-200d", "B-200d", "autoattack_acc@0.1")]
    low = claims.score_difference(0.4, 400, 0.3, 400)[0]  # AutoAttack's 400 images, not the evaluation's 10,000
    assert row.difference == pytest.approx(0.10) and row.low == pytest.approx(low)
    pgd = result.loc[("C-200d", "B-200d", "robust_acc@0.1")]
    assert pgd.high - pgd.low < row.high - row.low


def stages_table(c: dict[float, list[float]], a: dict[float, list[float]], seeds=(0, 1)) -> pd.DataFrame:
    """Rows of step autoattack: per model × seed × ε the accuracy after PGD-40 and each stage."""
    attacks = ["PGD-40", "APGD-CE", "APGD-T", "FAB-T", "Square"]
    return pd.DataFrame([{"model": m, "seed": seed, "eps": e, "attack": attack, "accuracy": acc, "samples": 500,
                          "seconds": 1.0}
                         for m, per_eps in (("C-200d", c), ("A-200d", a)) for seed in seeds
                         for e, accs in per_eps.items() for attack, acc in zip(attacks, accs)])


def test_masking_is_a_large_drop_taken_mostly_by_the_gradient_stages():
    table = stages_table(c={0.2: [0.26, 0.14, 0.0, 0.0, 0.0], 0.1: [0.82, 0.81, 0.80, 0.79, 0.78]},
                         a={0.2: [0.15, 0.14, 0.13, 0.05, 0.05], 0.1: [0.73, 0.71, 0.70, 0.70, 0.70]})
    found = claims.masking_findings(table).set_index(["model", "eps"])
    assert found.loc[("C-200d", 0.2), "masked"] and found.loc[("C-200d", 0.2), "drop"] == pytest.approx(0.26)
    assert not found.loc[("C-200d", 0.1), "masked"]  # 4 points, below the 5 that count
    assert not found.loc[("A-200d", 0.2), "masked"]  # 10 points, but FAB-T took most of them
    assert not found.loc[("A-200d", 0.1), "masked"]  # 3 points: PGD was nearly right
    stages = claims.stage_table(table)
    assert list(stages.columns) == ["model", "eps", "PGD-40", "APGD-CE", "APGD-T", "FAB-T", "Square", "seeds"]
    assert (stages.seeds == 2).all()


def robust_table(f: list[float], g: list[float], e: list[float], f_clean: float = 0.99, attack=None):
    """Adversarially trained models E, F, G over seeds: PGD at ε 0.1 and 0.3, AutoAttack where `attack` gives
    each model's accuracy at 0.3 per seed."""
    rows = []
    for seed in range(len(e)):
        for model, robust, clean in (("E-200d", e[seed], 0.99), ("F-200d", f[seed], f_clean), ("G-200d", g[seed], 0.99)):
            row = {"model": model, "seed": seed, "clean_acc": clean + 0.001 * seed, "compactness": 0.2,
                   "robust_acc@0.1": 0.95, "robust_acc@0.3": robust}
            if attack:
                row |= {"autoattack_acc@0.3": attack[model][seed], "autoattack_samples": 500}
            rows.append(row)
    return pd.DataFrame(rows)


def test_claim5_holds_when_either_use_of_inverse_adversaries_is_more_robust_than_adversarial_training():
    e = [0.88, 0.89, 0.885]
    verdict, evidence, key = claims.claim5(robust_table(f=[0.92, 0.93, 0.925], g=[0.88, 0.885, 0.89], e=e), 10000)
    assert verdict == claims.HOLDS
    assert "F-200d (C's center loss towards adversarial centers) − E-200d under PGD: ε=0.1: +0.00 pp" in evidence
    assert "ε=0.3: +4.00 pp" in evidence and "F-200d − G-200d under PGD" in evidence and "3 seed(s)" in evidence
    assert key.startswith("F-200d − E-200d under PGD:") and "G-200d − E-200d" in key


def test_claim5_fails_when_both_uses_fail_and_is_inconclusive_when_the_data_cannot_tell():
    e = [0.88, 0.89, 0.885]
    worse = [0.80, 0.81, 0.805]
    assert claims.claim5(robust_table(f=worse, g=worse, e=e), 10000)[0] == claims.FAILS
    noisy = [0.85, 0.93, 0.88]
    assert claims.claim5(robust_table(f=noisy, g=worse, e=e), 10000)[0] == claims.INCONCLUSIVE
    costly = robust_table(f=[0.92, 0.93, 0.925], g=worse, e=e, f_clean=0.97)  # robust, 2 points less clean
    assert claims.claim5(costly, 10000)[0] == claims.FAILS


def test_claim5_is_decided_under_autoattack_with_pgd_beside_it():
    e, gain = [0.88, 0.89, 0.885], [0.92, 0.93, 0.925]
    attack = {"E-200d": [0.85, 0.86, 0.855], "F-200d": [0.80, 0.81, 0.805], "G-200d": [0.80, 0.81, 0.805]}
    verdict, evidence, key = claims.claim5(robust_table(f=gain, g=gain, e=e, attack=attack), 10000)
    assert verdict == claims.FAILS  # PGD's gain is AutoAttack's loss
    assert "under AutoAttack: ε=0.3: -5.00 pp" in evidence and "; under PGD: ε=0.1: +0.00 pp" in evidence and "ε=0.3: +4.00 pp" in evidence
    assert "AutoAttack on the first 500 test images" in evidence and "under AutoAttack" in key


def test_claim5_names_a_collapsed_seed_since_the_contrast_compares_last_epochs():
    """F at seed 0 rises to 92 % held-out by epoch 9 and ends at 4 %; its other seeds and E and G stay up. The
    evidence says so (a mean over seeds would hide it); without the curves, or with no collapse, it says nothing."""
    rows = []
    for model in ("E-200d", "F-200d", "G-200d"):
        for seed in range(3):
            for epoch in range(1, 26):
                held = min(0.92, 0.1 * epoch + 0.02)
                if model == "F-200d" and seed == 0 and epoch > 9:
                    held = 0.04
                rows.append({"model": model, "seed": seed, "epoch": epoch, "heldout_pgd": held})
    history = pd.DataFrame(rows)
    table = robust_table(f=[0.04, 0.90, 0.91], g=[0.90, 0.91, 0.92], e=[0.90, 0.91, 0.92])
    evidence = claims.claim5(table, 10000, history=history)[1]
    assert evidence.endswith(" Catastrophic overfitting (held-out robust accuracy ending 20 points or more below its "
                             "best epoch): F-200d in 1 of 3 seed(s) (seed 0: 92 % at epoch 9, 4 % after epoch 25); the "
                             "contrasts compare each training's last epoch, as the protocol has no early stopping.")
    assert "Catastrophic" not in claims.claim5(table, 10000)[1]
    steady = history.assign(heldout_pgd=lambda h: np.minimum(0.92, 0.1 * h.epoch + 0.02))
    assert "Catastrophic" not in claims.claim5(table, 10000, history=steady)[1]


def test_the_baseline_is_held_to_the_published_level_as_a_mean_over_seeds():
    """Clean ≥ 98 % and PGD ≥ 88 % at ε 0.3, each a mean over seeds; one seed below 88 % does not fail a mean above."""
    verdict, evidence = claims.published_level(robust_table(f=[0.9] * 3, g=[0.9] * 3, e=[0.90, 0.87, 0.91]))
    assert verdict == claims.HOLDS and "PGD 89.33 ± 2.08 % over 3 seed(s) (each seed: 90.0 %, 87.0 %, 91.0 %)" in evidence
    assert claims.published_level(robust_table(f=[0.9] * 3, g=[0.9] * 3, e=[0.90, 0.846, 0.87]))[0] == claims.FAILS
    low_clean = robust_table(f=[0.9] * 3, g=[0.9] * 3, e=[0.92] * 3)
    low_clean.loc[low_clean.model == "E-200d", "clean_acc"] = 0.975
    assert claims.published_level(low_clean)[0] == claims.FAILS
    attack = {m: [0.86, 0.87, 0.88] for m in ("E-200d", "F-200d", "G-200d")}
    evidence = claims.published_level(robust_table(f=[0.9] * 3, g=[0.9] * 3, e=[0.9] * 3, attack=attack))[1]
    assert evidence.endswith("; AutoAttack 87.00 ± 1.00 % on its first 500 test images.")
    assert claims.published_level(robust_table(f=[0.9], g=[0.9], e=[0.9]).query("model != 'E-200d'"))[0] == \
        claims.INCONCLUSIVE  # E not evaluated


def test_claim5_joins_the_claims_table_only_when_decided():
    assert 5 not in verdicts(claims.check(averages(rising)))
    table = claims.check(averages(rising), robust=(claims.HOLDS, "F beats E", "F − E: +4 pp"))
    assert verdicts(table)[5] == claims.HOLDS and table.key.iloc[-1] == "F − E: +4 pp"


def test_contrasts_include_the_adversarially_trained_models_when_present():
    table = claims.contrasts(robust_table(f=[0.92, 0.93, 0.925], g=[0.88, 0.885, 0.89], e=[0.88, 0.89, 0.885]), 10000)
    pairs = set(zip(table.model, table.baseline))
    assert pairs == {("F-200d", "E-200d"), ("G-200d", "E-200d"), ("F-200d", "G-200d")}
    row = table[(table.model == "F-200d") & (table.baseline == "E-200d") & (table.metric == "robust_acc@0.3")].iloc[0]
    assert row.difference == pytest.approx(0.04) and row.decided
