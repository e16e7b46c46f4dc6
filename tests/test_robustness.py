"""The attack check behind claim 4: a margin attack that reaches the closed-form worst case of a linear model, and
a check that tells masked gradients from real robustness."""
import pytest
import torch
from torch import nn

from lib.core.data import Split, to_input
from lib.core.robustness import ALL, LONGER, attack_check, margin_loss, margin_pgd


def test_margin_loss_is_the_best_other_logit_minus_the_true_one():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.5, 4.0, -1.0]])
    y = torch.tensor([0, 2])
    assert margin_loss(logits, y).tolist() == [-1.0, 5.0]  # first correct (negative), second misclassified


def test_margin_pgd_reaches_the_worst_case_of_a_linear_model_in_closed_form():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    x, y, eps = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 0, 1, 0]), 0.1
    w = model[1].weight.detach()
    direction = (w[1 - y] - w[y]).view(-1, 1, 28, 28)  # gradient of the margin in x, constant for two classes
    corner = torch.where(direction > 0, (x + eps).clamp(max=1), (x - eps).clamp(min=0))
    x_adv = margin_pgd(model, x, y, eps, step_size=2 * eps, steps=1, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(x_adv, corner)  # one step of 2ε from anywhere in the ball lands on the optimal corner
    assert margin_loss(model(x_adv), y).detach() == pytest.approx(margin_loss(model(corner), y).detach())


class Quantized(nn.Module):
    """A linear model behind input rounding: the same decisions as `inner` up to rounding, but zero gradient
    everywhere (masked gradients)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 8) / 8)


def linear_world(n: int = 64):
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        labels = Quantized(linear)(to_input(images)).argmax(1)  # every model starts at 100 % clean accuracy
    return linear, Split(images, labels)


def test_the_check_reports_every_attack_and_counts_an_image_only_if_it_survives_all():
    linear, split = linear_world()
    table = attack_check({"linear": linear, "masked": Quantized(linear)}, split, eps=(0.0, 0.05), steps=3,
                         step_size=0.02, source="linear")
    assert set(table.eps) == {0.05} and (table.samples == len(split)).all()  # ε = 0 is clean accuracy: no attack
    assert table.groupby("model").size().to_dict() == {"linear": 5, "masked": 5}
    assert f"PGD, {LONGER * 3} steps" in set(table.attack)
    for _, rows in table.groupby("model"):
        acc = rows.set_index("attack").accuracy
        assert acc[ALL] <= acc.drop(ALL).min()
    # The evaluation's outcomes, when given, are its row (not attacked again) and count towards ALL.
    fooled = {m: {0.05: torch.zeros(len(split), dtype=torch.bool)} for m in ("linear", "masked")}
    given = attack_check({"linear": linear, "masked": Quantized(linear)}, split, eps=(0.05,), steps=3,
                         step_size=0.02, source="linear", evaluated=fooled).set_index(["model", "attack"]).accuracy
    assert given["masked", "PGD, 3 steps (the evaluation's)"] == 0 and given["masked", ALL] == 0
    assert given["masked", "PGD, 15 steps"] == table.set_index(["model", "attack"]).accuracy["masked", "PGD, 15 steps"]
    with pytest.raises(ValueError, match="source must be one of the models"):
        attack_check({"linear": linear}, split, (0.1,), 3, 0.02, source="B-200d")


def test_the_check_exposes_masked_gradients_by_transfer():
    linear, split = linear_world()
    table = attack_check({"linear": linear, "masked": Quantized(linear)}, split, eps=(0.1,), steps=5,
                         step_size=0.04, source="linear").set_index(["model", "attack"]).accuracy
    white_box = table["masked", "PGD, 5 steps (the evaluation's)"]
    transferred = table["masked", "transferred from linear"]
    assert white_box > 0.7  # zero gradients: the white-box attack adds only its random start
    assert transferred < white_box - 0.5  # the same model falls to adversaries made on its unmasked twin
    assert table["masked", ALL] <= transferred
