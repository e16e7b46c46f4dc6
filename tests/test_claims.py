"""Claims verdicts follow the numbers: each verdict flips when the evidence does."""
import pytest

from lib import claims
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
