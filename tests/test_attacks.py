"""Inverse adversaries and PGD: constraints, effect on the loss, and agreement with torchattacks."""
import pytest
import torch
import torch.nn.functional as F
import torchattacks

from lib.core.attacks import ASCEND, DESCEND, inverse_adversary, pgd, pgd_attack

EPS, STEP, STEPS = 0.1, 0.01, 10  # ten steps of 0.01 reach the ball's edge, as the study's T·α' does
WIDE = 0.04  # a step whose ten reach past every ε up to 0.3, so that the projection acts at each of them


def per_sample_loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def assert_same_adversaries(ours, reference):
    """Equal up to float rounding of the projection; torchattacks averages the loss where we sum
    it, so a gradient entry near zero can round to the other sign and flip a rare pixel's step, nothing more.
    How rare depends on the kernel set: 99.84 % of pixels agree with oneDNN, ATen and MKL held to SSE4.1, more on
    AVX2 and AVX-512; a wrong sign, step or projection changes nearly every pixel."""
    close = (ours - reference).abs() <= 1e-6
    assert close.float().mean() > 0.995, f"only {close.float().mean():.4%} of pixels agree"
    # the adversaries' effect agrees too: per-image L∞ distance within one step
    assert (ours - reference).abs().flatten(1).amax(1).median() <= 1e-6


def test_outputs_stay_in_the_ball_and_in_pixel_range(small_model, test_batch):
    x, y = test_batch
    eps = torch.linspace(0, 0.3, len(x))
    for x_adv in (inverse_adversary(small_model, x, y, eps, WIDE, STEPS),
                  pgd_attack(small_model, x, y, eps, WIDE, STEPS, generator=torch.Generator().manual_seed(0))):
        assert ((x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
        assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_inverse_adversary_lowers_the_loss(small_model, test_batch):
    x, y = test_batch
    before = per_sample_loss(small_model, x, y)
    after = per_sample_loss(small_model, inverse_adversary(small_model, x, y, 0.1, STEP, STEPS), y)
    assert after.mean() < before.mean()
    assert (after < before).float().mean() > 0.9  # the large majority of samples
    assert (after <= before + 1e-6).float().mean() > 0.99


def test_pgd_attack_raises_the_loss(small_model, test_batch):
    x, y = test_batch
    before = per_sample_loss(small_model, x, y)
    after = per_sample_loss(small_model, pgd_attack(small_model, x, y, 0.1, STEP, STEPS, random_start=False), y)
    assert (after > before).float().mean() > 0.9


def test_agrees_with_torchattacks_targeted_pgd_at_the_true_label(small_model, test_batch):
    x, y = test_batch
    attack = torchattacks.PGD(small_model, eps=EPS, alpha=STEP, steps=STEPS, random_start=False)
    attack.set_mode_targeted_by_label(quiet=True)
    reference = attack(x, y)
    ours = inverse_adversary(small_model, x, y, EPS, STEP, STEPS)
    assert_same_adversaries(ours, reference)


def test_ascending_pgd_agrees_with_torchattacks(small_model, test_batch):
    x, y = test_batch
    reference = torchattacks.PGD(small_model, eps=EPS, alpha=STEP, steps=STEPS, random_start=False)(x, y)
    ours = pgd(small_model, x, y, EPS, STEP, STEPS, direction=ASCEND)
    assert_same_adversaries(ours, reference)


def test_pgd_steps_on_the_objective_it_is_given(small_model, test_batch):
    """Ascending the negated cross-entropy is descending the cross-entropy: the same adversaries, bit for bit."""
    x, y = test_batch
    negated = lambda logits, labels: -F.cross_entropy(logits, labels, reduction="sum")
    ours = pgd(small_model, x, y, EPS, STEP, STEPS, direction=ASCEND, loss=negated)
    assert torch.equal(ours, inverse_adversary(small_model, x, y, EPS, STEP, STEPS))
    assert not torch.equal(ours, pgd(small_model, x, y, EPS, STEP, STEPS, direction=ASCEND))


def test_per_sample_eps_equals_separate_runs(small_model, test_batch):
    x, y = test_batch
    x, y = x[:64], y[:64]
    eps = torch.tensor([0.05] * 32 + [0.2] * 32)
    together = inverse_adversary(small_model, x, y, eps, WIDE, STEPS)
    apart = torch.cat([inverse_adversary(small_model, x[:32], y[:32], 0.05, WIDE, STEPS),
                       inverse_adversary(small_model, x[32:], y[32:], 0.2, WIDE, STEPS)])
    assert (together == apart).float().mean() > 0.999


def test_zero_eps_or_zero_steps_is_identity(small_model, test_batch):
    x, y = test_batch
    assert torch.equal(inverse_adversary(small_model, x, y, 0.0, STEP, STEPS), x)
    assert torch.equal(inverse_adversary(small_model, x, y, 0.3, STEP, 0), x)


def test_no_parameter_gradients_and_mode_restored(small_model, test_batch):
    x, y = test_batch
    small_model.train()
    try:
        inverse_adversary(small_model, x[:8], y[:8], EPS, STEP, 3)
        assert small_model.training
        assert all(p.grad is None for p in small_model.parameters())
    finally:
        small_model.eval()


def test_eval_mode_is_used_inside(small_model, test_batch):
    x, y = test_batch
    small_model.train()  # dropout would make the result random if the attack ran in train mode
    try:
        a = inverse_adversary(small_model, x[:16], y[:16], EPS, STEP, 5)
        b = inverse_adversary(small_model, x[:16], y[:16], EPS, STEP, 5)
    finally:
        small_model.eval()
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": -0.1}, "eps must lie in"),
    ({"eps": 1.5}, "eps must lie in"),
    ({"eps": torch.tensor([0.1, 0.2])}, "eps has 2 values"),
    ({"steps": -1}, "steps must be"),
    ({"step_size": 0.0}, "step_size must be"),
    ({"direction": 2.0}, "direction must be"),
])
def test_bad_parameters_are_named(small_model, test_batch, kwargs, message):
    x, y = test_batch
    args = {"eps": 0.1, "step_size": STEP, "steps": 2, "direction": DESCEND, **kwargs}
    with pytest.raises(ValueError, match=message):
        pgd(small_model, x[:4], y[:4], **args)
