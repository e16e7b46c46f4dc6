"""AutoAttack at the original standard settings: each stage on the images the ones before left robust, a model
with masked gradients exposed, and never weaker than PGD on a plain model."""
import pytest
import torch
from torch import nn

from lib.core.attacks import pgd_attack
from lib.core.autoattack import ITERATIONS, QUERIES, STAGES, autoattack, stages
from lib.core.data import Split, to_input
from lib.pipeline.cost import threads


class Saturated(nn.Module):
    """A model whose logits are multiplied by a large constant: the same decisions, but the softmax saturates, so the
    cross-entropy's gradient underflows to zero on confidently classified inputs (masked gradients)."""

    def __init__(self, inner: nn.Module, scale: float = 1e4):
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x):
        return self.inner(x) * self.scale


def linear_world(n: int = 48, seed: int = 0):
    torch.manual_seed(seed)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        labels = linear(to_input(images)).argmax(1)  # 100 % clean accuracy
    return linear, Split(images, labels)


def pgd_outcome(model, split: Split, eps: float, steps: int = 40) -> torch.Tensor:
    x, y = to_input(split.images), split.labels
    x_adv = pgd_attack(model, x, y, eps, 0.01, steps, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def test_the_stages_are_autoattacks_standard_version_with_its_original_settings():
    attacks = stages(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), eps=0.3)
    assert tuple(attacks) == STAGES == ("APGD-CE", "APGD-T", "FAB-T", "Square")
    apgd, apgdt, fab, square = attacks.values()
    assert ITERATIONS == 100 and QUERIES == 5000  # torchattacks' own AutoAttack class gives APGD 10 iterations
    assert (apgd.steps, apgd.n_restarts, apgd.loss, apgd.norm, apgd.eps) == (100, 1, "ce", "Linf", 0.3)
    assert (apgdt.steps, apgdt.n_restarts, apgdt.n_target_classes) == (100, 1, 9)
    assert (fab.steps, fab.n_restarts, fab.multi_targeted, fab.n_target_classes) == (100, 1, True, 9)
    assert (square.n_queries, square.n_restarts, square.loss) == (5000, 1, "margin")


def test_each_stage_attacks_only_what_is_left_and_an_image_counts_if_it_survives_all():
    linear, split = linear_world()
    start = torch.ones(len(split), dtype=torch.bool)
    start[:10] = False  # fooled before AutoAttack: never counted robust again
    after = autoattack(linear, split, 0.05, start)
    assert tuple(after) == STAGES
    outcomes = torch.stack(list(after.values()))
    assert not outcomes[:, :10].any()
    assert (outcomes[1:] <= outcomes[:-1]).all()  # robust after a stage implies robust after the one before
    with pytest.raises(ValueError, match="robust must hold one outcome per image"):
        autoattack(linear, split, 0.05, start[:5])


def test_masked_gradients_hold_pgd_off_but_not_autoattack():
    linear, split = linear_world()
    masked = Saturated(linear)
    eps = 0.05
    plain_pgd, masked_pgd = pgd_outcome(linear, split, eps), pgd_outcome(masked, split, eps)
    assert plain_pgd.float().mean() < 0.2  # the same decisions are not robust at all
    assert masked_pgd.float().mean() > 0.7  # but PGD on the saturated cross-entropy cannot move (bar its start)
    after = autoattack(masked, split, eps, masked_pgd)
    assert after["APGD-T"].float().mean() < 0.2  # the scale-free targeted DLR loss is not fooled by the scale
    assert after["Square"].float().mean() <= after["APGD-T"].float().mean()


@pytest.mark.slow
def test_autoattack_is_never_weaker_than_pgd_on_a_plain_model(small_model, mnist):
    split = mnist[1].subset(16)
    eps = 0.2  # PGD leaves a few images robust; AutoAttack may take more, never fewer
    with threads(1):  # Square's 5,000 small queries: one thread, so a busy machine's other processes don't stall it
        with torch.no_grad():
            clean = small_model(to_input(split.images)).argmax(1) == split.labels
        after = autoattack(small_model, split, eps, clean)  # from clean accuracy, not from PGD's survivors
        pgd = pgd_outcome(small_model, split, eps)
    assert 0 < pgd.float().mean() < 1 and after["Square"].float().mean() <= pgd.float().mean()
