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
@pytest.mark.pipeline
def test_the_step_starts_from_the_evaluations_outcomes_and_each_stage_only_takes_more():
    """Step autoattack in the background smoke run: its first row per ε is the evaluation's own PGD outcome on the
    same images, each stage keeps a subset of the images the one before kept, and the table and the logit-scale row
    report those same outcomes. And the cross-check of the two implementations: the authors' AutoAttack, from the
    same PGD outcome at the same settings, keeps the same images at every stage (measured on all seven smoke models
    at ε 0.1 and 0.3, and on a one-epoch model at full settings on 64 images at ε 0.1, 0.15 and 0.2: all agree)."""
    import pandas as pd

    from lib.core import products
    from lib.core.autoattack import run
    from lib.core.data import first
    from lib.core.train import restore
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
        model = restore(products.load(dag.train_task(s, "C", 200).output))[0]
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
    outcomes = per_image[0.1]
    with threads(1):  # Square's small queries: one thread, so the smoke run beside it does not stall them
        theirs = run(model, first("test", n), 0.1, outcomes[f"PGD-{s.robust_steps}"], task.key_params["seed"],
                     iterations=task.key_params["iterations"], queries=task.key_params["queries"])
    assert tuple(theirs.stages) == STAGES and theirs.flags == {} and outcomes["Square"].any()
    for stage in STAGES:
        assert torch.equal(theirs.stages[stage], outcomes[stage]), stage
    merged = with_autoattack(comparison, table)
    assert merged["autoattack_acc@0.1"].item() == pytest.approx(table.set_index(["eps", "attack"]).accuracy[0.1, "Square"])
    with pytest.raises(ValueError, match=r"no AutoAttack for \[\('C-200d', 1\)\]"):
        with_autoattack(pd.concat([comparison, comparison.assign(seed=1)]), table)


# The authors' implementation (pyautoattack), with its checks and the follow-up, cross-checked against the
# torchattacks composition above.

class Rounded(nn.Module):
    """A model that rounds its input to 1/4 steps first: its gradient is zero everywhere (rounding's), so gradient
    attacks see nothing, while a black-box attack, which only reads the decisions, is not held off."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner((x * 4).round() / 4)


class Probabilities(nn.Module):
    """A model that outputs its softmax instead of its logits: the mistake pyautoattack's range check names."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).softmax(1)


def test_the_authors_adversary_is_their_standard_version_and_the_follow_up_only_adds_queries_and_restarts():
    from pyautoattack import AutoAttack

    from lib.core.autoattack import AUTHORS, FOLLOWUP_QUERIES, FOLLOWUP_RESTARTS, adversary

    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    ours, theirs = adversary(linear, 0.3, seed=0, device="cpu"), AutoAttack(linear, eps=0.3, version="standard", seed=0)
    assert list(AUTHORS.values()) == theirs.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    for part in ("apgd", "apgd_targeted", "fab", "square"):
        assert vars(getattr(ours, part)).keys() == vars(getattr(theirs, part)).keys()
        differing = {k for k, v in vars(getattr(ours, part)).items()
                     if k != "logger" and v != vars(getattr(theirs, part))[k] and not callable(v)}
        assert not differing, part
    assert (ours.apgd.n_iter, ours.apgd_targeted.n_target_classes, ours.fab.n_target_classes) == (100, 9, 9)
    assert (ours.square.n_queries, ours.square.n_restarts, ours.square.p_init) == (QUERIES, 1, 0.8)
    smoke = adversary(linear, 0.3, seed=0, device="cpu", iterations=10)
    assert (smoke.apgd.n_iter, smoke.apgd.n_iter_2, smoke.apgd_targeted.n_iter, smoke.fab.n_iter) == (10, 2, 10, 10)
    assert smoke.apgd_targeted.n_target_classes == 9
    follow_up = adversary(linear, 0.3, seed=1, device="cpu", queries=FOLLOWUP_QUERIES, restarts=FOLLOWUP_RESTARTS)
    assert (follow_up.square.n_queries, follow_up.square.n_restarts) == (10_000, 2) and FOLLOWUP_QUERIES > QUERIES


def test_the_authors_autoattack_takes_only_what_is_left_and_flags_nothing_on_a_plain_model(capfd):
    from lib.core.autoattack import AUTHORS, run

    linear, split = linear_world(n=24)
    start = torch.ones(len(split), dtype=torch.bool)
    start[:10] = False
    found = run(linear, split, 0.02, start)
    assert tuple(found.stages) == tuple(AUTHORS) == STAGES and found.flags == {}
    outcomes = torch.stack(list(found.stages.values()))
    assert not outcomes[:, :10].any() and (outcomes[1:] <= outcomes[:-1]).all()
    assert set(found.seconds) == set(AUTHORS) and all(t >= 0 for t in found.seconds.values())
    with pytest.raises(ValueError, match="robust must hold one outcome per image"):
        run(linear, split, 0.05, start[:5])
    assert "Square Attack" not in capfd.readouterr().err


def test_its_checks_fire_where_gradients_are_zero_and_the_follow_up_then_attacks_what_square_left(capfd, monkeypatch):
    """Rounded inputs: every gradient is zero, so the gradient stages fool nothing that PGD's start did not, Square
    fools images (its check fires) and the follow-up runs on what Square left, in its own smaller batches. The
    warnings become flags, not stderr."""
    from lib.core import autoattack as aa
    from lib.core.autoattack import FOLLOWUP, SQUARE_CHECK, run

    linear, split = linear_world(seed=1)
    rounded = Rounded(linear)
    start = torch.ones(len(split), dtype=torch.bool)
    real, sizes = aa.attack_batch, []
    monkeypatch.setattr(aa, "FOLLOWUP_BATCH", 3)
    monkeypatch.setattr(aa, "attack_batch", lambda attack, stage, x, y: sizes.append((stage, len(x))) or real(
        attack, stage, x, y))
    found = run(rounded, split, 0.1, start, iterations=10, queries=300)  # zero gradients need no more
    assert max(n for stage, n in sizes if stage == FOLLOWUP) == 3 < max(n for stage, n in sizes if stage == "Square")
    assert {"zero gradients", SQUARE_CHECK} <= set(found.flags)
    assert "Square Attack has decreased the robust accuracy" in found.flags[SQUARE_CHECK]
    assert found.stages["Square"].sum() < found.stages["FAB-T"].sum()
    assert FOLLOWUP in found.stages and (found.stages[FOLLOWUP] <= found.stages["Square"]).all()
    err = capfd.readouterr().err
    assert "zero gradient" not in err and "Square Attack" not in err
    probabilities = run(Probabilities(linear), split.subset(8), 0.02, torch.ones(8, dtype=torch.bool), iterations=10)
    assert "probabilities, not logits" in probabilities.flags


def test_an_interrupted_run_resumes_from_its_state_and_ends_as_an_uninterrupted_one(tmp_path, monkeypatch):
    from lib.core import autoattack as aa

    linear, split = linear_world(n=24, seed=2)
    rounded = Rounded(linear)
    start = torch.ones(len(split), dtype=torch.bool)
    settings = {"batch_size": 4, "iterations": 10, "queries": 200}  # the plumbing, not the attack's strength
    whole = aa.run(rounded, split, 0.1, start, **settings)
    state, real, calls = tmp_path / "state.pt", aa.attack_batch, []

    def interrupted(attack, stage, x, y):
        calls.append(stage)
        if stage == "Square" and calls.count("Square") == 2:
            raise KeyboardInterrupt  # in the middle of Square
        return real(attack, stage, x, y)

    monkeypatch.setattr(aa, "attack_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        aa.run(rounded, split, 0.1, start, state=state, **settings)
    monkeypatch.setattr(aa, "attack_batch", real)
    saved = aa.products.load(state)
    assert saved["stage"] == "Square" and saved["done"] == 4 and set(saved["stages"]) == {"APGD-CE", "APGD-T", "FAB-T"}
    resumed = aa.run(rounded, split, 0.1, start, state=state, **settings)
    assert resumed.stages.keys() == whole.stages.keys() and resumed.flags.keys() == whole.flags.keys()
    assert all(torch.equal(resumed.stages[k], whole.stages[k]) for k in whole.stages)
    assert resumed.seconds["APGD-CE"] == pytest.approx(saved["seconds"]["APGD-CE"])  # not attacked again

    def first_call(attack, stage, x, y):
        raise RuntimeError(f"attacked with {stage}")

    monkeypatch.setattr(aa, "attack_batch", first_call)
    with pytest.raises(RuntimeError, match="attacked with APGD-CE"):  # another radius: the state is not reused
        aa.run(rounded, split, 0.05, start, state=state, **settings)
