"""Adversarial training (models E–G, issue 32): each method's examples against a hand-written construction, one
training step against a hand-written step, the inverse adversaries as targets only, G's alignment term, and the
held-out robustness monitor."""
import pytest
import torch
import torch.nn.functional as F

from lib.core.attacks import fgsm_rs, n_fgsm, pgd_attack, pgd_training
from lib.core.data import Split, to_input
from lib.core.errors import ConfigError
from lib.core.protocol import TrainConfig
from lib.core.recipes import HELDOUT, Batch, adversarial_inputs, heldout_robustness, to_inverse_output
from lib.core.train import build, train

EPS = 0.3


@pytest.fixture(scope="module")
def tiny(mnist):
    train_split, test_split = mnist
    return train_split.subset(128), test_split.subset(200)


@pytest.fixture(scope="module")
def batch(mnist):
    """A model trained for a few steps (so that gradients are not degenerate) and 64 training images."""
    config = TrainConfig(model="A", epochs=1, train_samples=512, seed=1)
    checkpoint = train(config, mnist[0], mnist[1].subset(100), progress=False)
    model, _ = build(config)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), to_input(mnist[0].images[:64]), mnist[0].labels[:64]


def signed_step(model, x_start, y, size, lower, upper):
    """One ascent step on the summed cross-entropy from x_start, clipped to [lower, upper]: by hand."""
    x_start = x_start.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_start), y, reduction="sum"), x_start)
    return torch.min(torch.max(x_start.detach() + size * grad.sign(), lower), upper)


def test_fgsm_rs_is_a_uniform_start_and_one_step_of_five_quarters_eps(batch):
    model, x, y = batch
    torch.manual_seed(7)
    ours = fgsm_rs(model, x, y, EPS)
    torch.manual_seed(7)
    lower, upper = (x - EPS).clamp(min=0), (x + EPS).clamp(max=1)
    start = torch.min(torch.max(x + (torch.rand(x.shape) * 2 - 1) * EPS, lower), upper)
    theirs = signed_step(model, start, y, 1.25 * EPS, lower, upper)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (ours - x).abs().max() <= EPS + 1e-6 and ours.min() >= 0 and ours.max() <= 1
    with torch.no_grad():  # it is an attack: the loss rises over the clean images'
        assert F.cross_entropy(model(ours), y) > F.cross_entropy(model(x), y)


def test_n_fgsm_starts_in_twice_the_ball_and_is_not_projected_back(batch):
    model, x, y = batch
    torch.manual_seed(7)
    ours = n_fgsm(model, x, y, EPS)
    torch.manual_seed(7)
    start = (x + (torch.rand(x.shape) * 2 - 1) * 2 * EPS).clamp(0, 1)
    theirs = signed_step(model, start, y, EPS, torch.zeros_like(x), torch.ones_like(x))
    assert torch.allclose(ours, theirs, atol=1e-6)
    distance = (ours - x).abs().amax(dim=(1, 2, 3))
    assert distance.max() <= 3 * EPS + 1e-6 and (distance > EPS + 1e-3).all()  # beyond ε: no projection
    assert ours.min() >= 0 and ours.max() <= 1


def test_pgd_training_takes_steps_of_two_and_a_half_eps_over_their_number(batch):
    model, x, y = batch
    torch.manual_seed(7)
    ours = pgd_training(model, x, y, EPS, 4)
    torch.manual_seed(7)
    assert torch.equal(ours, pgd_attack(model, x, y, EPS, 2.5 * EPS / 4, 4, generator=None))


@pytest.mark.parametrize("method, make", [("fgsm-rs", lambda m, x, y: fgsm_rs(m, x, y, EPS)),
                                          ("n-fgsm", lambda m, x, y: n_fgsm(m, x, y, EPS)),
                                          ("pgd", lambda m, x, y: pgd_training(m, x, y, EPS, 3))])
def test_the_adversarial_inputs_are_the_configured_method(batch, method, make):
    model, x, y = batch
    config = TrainConfig(model="E", at_method=method, at_steps=3 if method == "pgd" else 1)
    torch.manual_seed(3)
    ours = adversarial_inputs(model, x, y, config)
    torch.manual_seed(3)
    assert torch.equal(ours, make(model, x, y))


def test_a_single_step_method_refuses_a_step_count():
    with pytest.raises(ConfigError, match="at_steps=3 applies to at_method='pgd' only; 'fgsm-rs' takes one step: set at_steps=1"):
        TrainConfig(model="E", at_method="fgsm-rs", at_steps=3)
    with pytest.raises(ConfigError, match="at_method"):
        TrainConfig(model="E", at_method="fgsm")


def manual_adversarial_step(config: TrainConfig, split: Split):
    """E's first step by hand: the shuffled batch, its adversarial examples, cross-entropy on them, SGD."""
    model, _ = build(config)  # seeds the global stream as train() does: the start's noise, then dropout
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))
    x, y = to_input(split.images[order]), split.labels[order]
    x_adv = adversarial_inputs(model, x, y, config)
    model.train()
    loss = F.cross_entropy(model(x_adv), y)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    loss.backward()
    optimizer.step()
    return model


@pytest.mark.parametrize("method", ["fgsm-rs", "pgd"])
def test_one_step_of_e_matches_a_hand_written_adversarial_training_step(tiny, method):
    train_split, test_split = tiny
    config = TrainConfig(model="E", epochs=1, seed=3, at_method=method, at_steps=2 if method == "pgd" else 1)
    checkpoint = train(config, train_split, test_split, progress=False)
    for key, value in manual_adversarial_step(config, train_split).state_dict().items():
        assert torch.allclose(checkpoint["model"][key], value, atol=1e-6), key


@pytest.mark.parametrize("name, weight", [("F", "center_weight"), ("G", "align_weight")])
def test_f_and_g_with_zero_weight_train_exactly_like_e(tiny, name, weight):
    """The inverse adversaries are targets only: at weight 0 they change nothing (no gradient, no RNG draw)."""
    train_split, test_split = tiny
    e = train(TrainConfig(model="E", epochs=1, seed=3), train_split, test_split, progress=False)
    x = train(TrainConfig(model=name, epochs=1, seed=3, **{weight: 0.0}), train_split, test_split, progress=False)
    for key in e["model"]:
        assert torch.equal(e["model"][key], x["model"][key]), key
    assert x["history"][0]["heldout_pgd"] == e["history"][0]["heldout_pgd"]


def test_f_and_g_with_their_weight_train_otherwise_than_e(tiny):
    train_split, test_split = tiny
    e = train(TrainConfig(model="E", epochs=1, seed=3), train_split, test_split, progress=False)
    for name in "FG":
        x = train(TrainConfig(model=name, epochs=1, seed=3, center_weight=0.5), train_split, test_split,
                  progress=False)
        assert not all(torch.equal(e["model"][k], x["model"][k]) for k in e["model"]), name


def test_the_alignment_is_the_kl_of_the_inverse_adversaries_output_to_the_adversarial_one(batch):
    model, x, y = batch
    with torch.no_grad():
        targets = model.features(x[:8])
        inverse = model.classify(targets)
    logits = torch.randn(8, 10, requires_grad=True)
    outputs = Batch(targets, logits, y[:8], None, targets, model, x[:8])
    p, q = inverse.softmax(1), logits.softmax(1)
    by_hand = (p * (p.log() - q.log())).sum(1).mean()
    value = to_inverse_output(outputs)
    assert torch.allclose(value, by_hand, atol=1e-6) and value > 0
    value.backward()  # the adversarial output gets the gradient, the inverse adversary's is a target
    assert logits.grad is not None and all(p.grad is None for p in model.parameters())
    same = Batch(targets, inverse.clone(), y[:8], None, targets, model, x[:8])
    assert abs(to_inverse_output(same).item()) < 1e-6


def test_adversarial_training_records_held_out_robustness_every_epoch(tiny):
    train_split, test_split = tiny
    e = train(TrainConfig(model="E", epochs=2, seed=3), train_split, test_split, progress=False)
    a = train(TrainConfig(model="A", epochs=1, seed=3), train_split, test_split, progress=False)
    assert [0 <= h["heldout_pgd"] <= h["test_acc"] + 1e-9 for h in e["history"]] == [True, True]
    assert "heldout_pgd" not in a["history"][0]


def test_the_monitor_draws_nothing_from_the_training_stream(batch, mnist):
    """It runs between epochs: a draw from the global stream would change the next epoch's noise and dropout."""
    model, _, _ = batch
    state = torch.get_rng_state()
    value = heldout_robustness(model, mnist[1].subset(HELDOUT + 100), TrainConfig(model="E"))
    assert torch.equal(state, torch.get_rng_state()) and 0 <= value <= 1
