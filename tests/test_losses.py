"""Center loss: value, gradient and Wen et al.'s center update against closed forms."""
import numpy as np
import pytest
import torch

from lib.core.losses import AdversarialCenters, CenterLoss, pull


def make(centers):
    loss = CenterLoss(num_classes=len(centers), feature_dim=len(centers[0]), alpha=0.5)
    loss.centers.copy_(torch.tensor(centers, dtype=torch.float32))
    return loss


def test_value_by_hand():
    loss = make([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    f = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    # ||(1,2)-(0,0)||² = 5, ||(3,1)-(1,1)||² = 4, ||(0,0)-(1,1)||² = 2 → 1/2 · (5+4+2)/3
    assert loss(f, y).item() == pytest.approx(11 / 6)


def test_gradient_is_f_minus_c_over_n():
    loss = make([[0.0, 1.0], [2.0, -1.0]])
    f = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.5, 0.0]], requires_grad=True)
    y = torch.tensor([0, 1, 1])
    loss(f, y).backward()
    assert torch.allclose(f.grad, (f.detach() - loss.centers[y]) / 3)


def test_update_matches_wen_closed_form():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(4, 3)).astype(np.float32)
    f = rng.normal(size=(7, 3)).astype(np.float32)
    y = np.array([0, 0, 1, 3, 3, 3, 0])
    loss = make(c.tolist())
    loss.update(torch.from_numpy(f), torch.from_numpy(y))
    expected = c.copy()
    for j in range(4):
        members = f[y == j]
        delta = (len(members) * c[j] - members.sum(axis=0)) / (1 + len(members))
        expected[j] = c[j] - 0.5 * delta
    np.testing.assert_allclose(loss.centers.numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(loss.centers[2].numpy(), c[2])  # absent class: unchanged


def test_centers_are_not_trained_by_the_optimizer():
    loss = make([[1.0, 1.0], [2.0, 2.0]])
    assert list(loss.parameters()) == []  # a buffer: no optimizer step, no weight decay
    linear = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(list(linear.parameters()) + list(loss.parameters()), lr=0.1, weight_decay=0.5)
    before = loss.centers.clone()
    loss(linear(torch.ones(3, 2)), torch.tensor([0, 1, 1])).backward()
    optimizer.step()
    assert torch.equal(loss.centers, before)
    assert "centers" in loss.state_dict()


def test_alpha_is_validated():
    with pytest.raises(ValueError, match="alpha"):
        CenterLoss(10, 2, alpha=0.0)


def test_pull_is_the_center_loss_against_per_sample_targets():
    f, t = torch.tensor([[1.0, 2.0], [3.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert pull(f, t).item() == pytest.approx(0.5 * (5 + 4) / 2)
    loss = make([[0.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1])
    assert loss(f, y).item() == pull(f, loss.centers[y]).item()


def test_adversarial_centers_start_at_the_first_batch_mean_then_move_by_the_rate():
    ema = AdversarialCenters(num_classes=3, feature_dim=2, rate=0.25)
    ema.update(torch.tensor([[2.0, 0.0], [4.0, 2.0], [1.0, 1.0]]), torch.tensor([0, 0, 2]))
    np.testing.assert_allclose(ema.centers.numpy(), [[3.0, 1.0], [0.0, 0.0], [1.0, 1.0]])  # no pull towards 0
    ema.update(torch.tensor([[7.0, 5.0], [9.0, 9.0]]), torch.tensor([0, 1]))
    # class 0: 0.75·(3, 1) + 0.25·(7, 5); class 1 first seen: its mean; class 2 absent: unchanged
    np.testing.assert_allclose(ema.centers.numpy(), [[4.0, 2.0], [9.0, 9.0], [1.0, 1.0]])
    assert ema.seen.tolist() == [True, True, True] and list(ema.parameters()) == []


def test_adversarial_centers_ignore_gradients_and_validate_the_rate():
    ema = AdversarialCenters(2, 2, rate=0.5)
    f = torch.ones(2, 2, requires_grad=True)
    ema.update(f * 2, torch.tensor([0, 1]))
    assert not ema.centers.requires_grad
    with pytest.raises(ValueError, match="rate"):
        AdversarialCenters(2, 2, rate=0.0)
