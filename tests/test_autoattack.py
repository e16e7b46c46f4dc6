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


@pytest.mark.slow
@pytest.mark.pipeline
def test_the_step_starts_from_the_evaluations_outcomes_and_each_stage_only_takes_more():
    """Step autoattack in the background smoke run: its first row per ε is the evaluation's own PGD outcome on the
    same images, each stage keeps a subset of the images the one before kept, and the table and the logit-scale row
    report those same outcomes."""
    import pandas as pd

    from lib.core import products
    from lib.pipeline import dag
    from lib.pipeline.config import study
    from lib.pipeline.steps.extension import with_autoattack
    from tests.regression import runs_at
    from tests.smoke import PIPELINE_RUNS, smoke_report

    smoke_report()
    s = study("smoke")
    with runs_at(PIPELINE_RUNS):
        task, evaluation = dag.autoattack_task(s, "C", 200), dag.evaluate_task(s, "C", 200)
        table, scale = pd.read_csv(task.output), pd.read_csv(task.file("masking.csv"))
        per_image = products.load(task.file("autoattack.pt"))["outcomes"]
        evaluated = products.load(evaluation.file("outcomes.pt"))["outcomes"]
        comparison = pd.read_csv(evaluation.output)
    n = task.key_params["images"]
    assert n == s.autoattack_samples == 20
    for eps in (e for e in s.robust_eps if e > 0):
        outcomes = per_image[eps]
        assert list(outcomes) == [f"PGD-{s.robust_steps}", *STAGES]
        assert torch.equal(outcomes[f"PGD-{s.robust_steps}"], evaluated[eps][:n])
        stacked = torch.stack(list(outcomes.values()))
        assert (stacked[1:] <= stacked[:-1]).all()
        rows = table[table.eps == eps].set_index("attack").accuracy
        assert rows.to_dict() == pytest.approx({k: v.float().mean().item() for k, v in outcomes.items()})
        assert scale[f"pgd@{eps:g}"].item() == pytest.approx(rows.iloc[0])
    merged = with_autoattack(comparison, table)
    assert merged["autoattack_acc@0.1"].item() == pytest.approx(table.set_index(["eps", "attack"]).accuracy[0.1, "Square"])
    with pytest.raises(ValueError, match=r"no AutoAttack for \[\('C-200d', 1\)\]"):
        with_autoattack(pd.concat([comparison, comparison.assign(seed=1)]), table)
