"""The logits' scale as evidence of masked gradients: a saturated model is measured as saturated, and PGD on its
rescaled logits finds what PGD on the raw ones missed."""
import pytest
import torch

from lib.core.masking import RESCALED_MARGIN, Rescaled, logit_scale, masking, temperature
from lib.core.data import to_input
from tests.test_autoattack import Saturated, linear_world, pgd_outcome


def test_rescaling_changes_no_prediction_and_divides_the_logits():
    linear, split = linear_world()
    x = to_input(split.images)
    with torch.no_grad():
        raw, rescaled = linear(x), Rescaled(linear, 4.0)(x)
    torch.testing.assert_close(rescaled * 4.0, raw)
    assert torch.equal(rescaled.argmax(1), raw.argmax(1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        Rescaled(linear, 0.0)


def test_temperature_brings_the_median_margin_of_correct_images_to_the_target():
    margins = torch.tensor([-3.0, 2.0, 5.0, 100.0])  # the misclassified image is left out
    assert temperature(margins) == pytest.approx(5.0 / RESCALED_MARGIN)
    with pytest.raises(ValueError, match="no image is correctly classified"):
        temperature(torch.tensor([-1.0, -2.0]))


def test_a_saturated_softmax_and_its_vanishing_gradient_are_measured_where_they_are():
    linear, split = linear_world()
    plain, saturated = logit_scale(linear, split), logit_scale(Saturated(linear), split)
    assert (plain["margin"] > 0).all()  # the world's labels are the linear model's decisions
    torch.testing.assert_close(saturated["margin"], plain["margin"] * 1e4, rtol=1e-4, atol=1e-3)
    assert not plain["vanishing"].any() and plain["saturated"].float().mean() < 0.5
    # every other class's probability underflows where the margin exceeds ~104 nats: the gradient is exactly 0
    assert saturated["vanishing"][saturated["margin"] > 110].all()
    assert (saturated["margin"][saturated["vanishing"]] > 87).all()  # below e^-87 fp32 leaves its normal range
    assert saturated["vanishing"].float().mean() > 0.8 and saturated["saturated"].float().mean() > 0.8


def test_pgd_on_the_rescaled_logits_breaks_what_the_saturation_hid():
    linear, split = linear_world()
    masked, eps = Saturated(linear), 0.05
    pgd = {eps: pgd_outcome(masked, split, eps)}
    row = masking(masked, split, (0.0, eps), 40, 0.01, pgd)
    assert row[f"pgd@{eps:g}"] > 0.7  # PGD on the raw logits cannot move
    assert row[f"pgd_rescaled@{eps:g}"] < 0.2  # the same attack on the same decisions, rescaled: broken
    assert row["vanishing"] > 0.8 and row["temperature"] > 1e3
    assert "pgd@0" not in row  # ε = 0 is clean accuracy, not an attack
    plain = masking(linear, split, (eps,), 40, 0.01, {eps: pgd_outcome(linear, split, eps)})
    assert plain["vanishing"] == 0 and plain["margin_median"] < row["margin_median"] / 1e3
    with pytest.raises(ValueError, match="one outcome per image"):
        masking(masked, split, (eps,), 40, 0.01, {eps: pgd[eps][:3]})
