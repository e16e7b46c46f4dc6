"""The paired, two-level intervals that decide claims 4 and 5 (lib/analysis/paired.py), each estimator against a
published or closed-form result, and the interval's coverage in the study's own design."""
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from lib.analysis import paired

# Colditz et al.'s BCG vaccine trials (metafor's dat.bcg): TB cases and non-cases, vaccinated and not.
BCG = [(4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619), (33, 5036, 47, 5761),
       (180, 1361, 372, 1079), (8, 2537, 10, 619), (505, 87886, 499, 87892), (29, 7470, 45, 7232),
       (17, 1699, 65, 1600), (186, 50448, 141, 27197), (5, 2493, 3, 2338), (27, 16886, 29, 17825)]


def test_dersimonian_laird_matches_the_published_bcg_analysis():
    """metafor's rma(yi, vi, method="DL") on the log risk ratios: −0.7141 [−1.0644, −0.3638], τ² = 0.3088 (its test
    suite checks these against Stata's metan)."""
    yi = [math.log((tp / (tp + tn)) / (cp / (cp + cn))) for tp, tn, cp, cn in BCG]
    vi = [1 / tp - 1 / (tp + tn) + 1 / cp - 1 / (cp + cn) for tp, tn, cp, cn in BCG]
    pooled = paired.random_effects(yi, vi, hartung_knapp=False)
    assert pooled.estimate == pytest.approx(-0.7141, abs=1e-4)
    assert (pooled.low, pooled.high) == (pytest.approx(-1.0644, abs=1e-4), pytest.approx(-0.3638, abs=1e-4))
    assert pooled.tau2 == pytest.approx(0.3088, abs=1e-4) and pooled.seeds == 13


@pytest.mark.parametrize("spread", [0.05, 0.001])
def test_hartung_knapp_with_equal_variances_is_the_t_interval_over_seeds_or_the_image_noise(spread):
    """With equal within-seed variances v the pooled interval has a closed form: the seeds' mean ± t_{k−1} · s/√k
    when the seeds vary more than the images do (s² > v), else ± t_{k−1} · √(v/k) (Röver's floor)."""
    d = np.array([0.10, 0.10 + spread, 0.10 - 0.5 * spread])
    v = np.full(3, 2e-4)
    pooled = paired.random_effects(d, v)
    s2 = d.var(ddof=1)
    half = student_t.ppf(0.975, 2) * math.sqrt(max(s2, v[0]) / 3)
    assert pooled.estimate == pytest.approx(d.mean())
    assert (pooled.low, pooled.high) == (pytest.approx(d.mean() - half), pytest.approx(d.mean() + half))
    assert pooled.tau2 == pytest.approx(max(0.0, s2 - v[0]))


def test_one_seed_is_its_own_normal_interval():
    pooled = paired.random_effects([0.02], [1e-4])
    assert (pooled.low, pooled.high) == (pytest.approx(0.02 - 1.959964 * 0.01), pytest.approx(0.02 + 1.959964 * 0.01))
    with pytest.raises(ValueError, match="positive variances"):
        paired.random_effects([0.1, 0.2], [1e-4, 0.0])


def test_a_paired_difference_counts_the_images_only_one_model_keeps():
    a = np.array([1, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    b = np.array([1, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    p = paired.paired(a, b)
    assert (p.only_a, p.only_b, p.images) == (3, 1, 8) and p.difference == pytest.approx(a.mean() - b.mean())
    # Bonett & Price: (n10 + 1)/(n + 2) and (n01 + 1)/(n + 2), variance (p10 + p01 − (p10 − p01)²)/(n + 2)
    assert p.variance == pytest.approx((0.4 + 0.2 - 0.2 ** 2) / 10)
    with pytest.raises(ValueError, match="equally long"):
        paired.paired(a, b[:5])


def test_two_models_that_agree_on_every_image_still_get_an_interval():
    """No discordant image is no proof of no difference: the adjusted variance is 2/(n + 2)², not 0."""
    same = np.ones(250, dtype=bool)
    p = paired.paired(same, same)
    assert p.difference == 0 and p.variance == pytest.approx(2 / 252 ** 2)
    pooled = paired.random_effects([p.difference] * 3, [p.variance] * 3)
    assert pooled.low < 0 < pooled.high and pooled.high < 0.02


def test_the_adjusted_variance_is_the_paired_wald_variance_with_many_discordant_images():
    rng = np.random.default_rng(0)
    a, b = rng.random(10000) < 0.6, rng.random(10000) < 0.5
    wald = (a.astype(float) - b.astype(float)).var() / len(a)
    assert paired.paired(a, b).variance == pytest.approx(wald, rel=1e-3)


def test_holm_adjusts_step_down_and_keeps_the_order():
    """p = (0.01, 0.04, 0.03, 0.005): 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.04·1, 0.06) = 0.06."""
    assert paired.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert paired.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_seeds_to_decide_is_the_fewest_that_reach_the_power():
    n = paired.seeds_to_decide(0.01, tau2=1e-4, within=2e-5)
    reach = lambda k: (student_t.ppf(0.975, k - 1) + student_t.ppf(0.8, k - 1)) * math.sqrt(1.2e-4 / k)
    assert reach(n) <= 0.01 < reach(n - 1)
    assert paired.seeds_to_decide(0.01, tau2=1.0, within=0.0) is None  # beyond 1000 seeds


def test_more_images_help_only_as_far_as_the_seeds_agree():
    n = paired.images_to_decide(0.01, tau2=0.0, within=4e-4, images=250, seeds=3)
    reach = lambda m: (student_t.ppf(0.975, 2) + student_t.ppf(0.8, 2)) * math.sqrt(4e-4 * 250 / m / 3)
    assert n > 250 and reach(n) <= 0.01 < reach(n - 25)  # the first of the candidates, 25 images apart
    assert paired.images_to_decide(0.01, tau2=1e-3, within=4e-4, images=250, seeds=3) is None


def test_the_pooled_interval_covers_in_the_studys_design():
    """Three seeds, 250 images each, a mean difference of 2 points that varies from seed to seed by 3 (sd), the two
    models' outcomes correlated through each image's difficulty: the 95 % interval covers the mean difference in at
    least 93 % of 2,000 simulated studies (Hartung–Knapp's purpose: DerSimonian–Laird's normal interval covers less
    with three seeds)."""
    rng = np.random.default_rng(1)
    covered = normal = 0
    for _ in range(2000):
        d, v = [], []
        for _ in range(3):
            accuracy, gap = 0.6 + rng.normal(0, 0.03), 0.02 + rng.normal(0, 0.03)
            difficulty = rng.random(250)
            a, b = difficulty < accuracy + gap / 2, difficulty < accuracy - gap / 2
            p = paired.paired(a, b)
            d.append(p.difference)
            v.append(p.variance)
        pooled = paired.random_effects(d, v)
        covered += pooled.low <= 0.02 <= pooled.high
        plain = paired.random_effects(d, v, hartung_knapp=False)
        normal += plain.low <= 0.02 <= plain.high
    assert covered / 2000 >= 0.93 and normal < covered
