"""The extension's evaluation: robust accuracy (cross-checked with torchattacks), NC3, alignment, compactness."""
import pytest
import torch
import torchattacks

from lib.core.centers import compactness
from lib.core.data import Split
from lib.core.evaluation import alignment, evaluate, feature_geometry, nc3, robust_accuracy
from lib.core.train import accuracy


def test_nc3_is_zero_for_self_dual_weights_and_sqrt2_for_orthogonal_ones():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(10, 6, generator=g)
    global_mean = torch.randn(6, generator=g)
    assert nc3(means, 3.0 * (means - global_mean), global_mean) == pytest.approx(0.0, abs=1e-6)
    centred = torch.zeros(4, 8)
    centred[:, :4] = torch.eye(4)
    weights = torch.zeros(4, 8)
    weights[:, 4:] = torch.eye(4)  # orthogonal to every centred mean
    assert nc3(centred, weights, torch.zeros(8)) == pytest.approx(2 ** 0.5, rel=1e-6)


def test_alignment_and_geometry_by_hand():
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert alignment(means, 2 * means) == pytest.approx(1.0)
    assert alignment(means, means.flip(1)) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(1)
    features, labels = torch.randn(100, 5, generator=g), torch.arange(100) % 10
    geometry = feature_geometry(features, labels, torch.randn(10, 5, generator=g))
    assert geometry["compactness"] == pytest.approx(compactness(features, labels).item())


def test_robust_accuracy_at_eps_zero_is_clean_accuracy_and_falls_with_eps(small_model, mnist):
    split = mnist[1].subset(300)
    clean = robust_accuracy(small_model, split, 0.0, 10, 0.03)
    with torch.no_grad():
        from lib.core.data import to_input
        expected = (small_model(to_input(split.images)).argmax(1) == split.labels).float().mean().item()
    assert clean == pytest.approx(expected)
    weak, strong = (robust_accuracy(small_model, split, e, 10, 0.03) for e in (0.05, 0.3))
    assert clean >= weak >= strong and strong < 0.2
    assert robust_accuracy(small_model, split, 0.1, 10, 0.03, seed=4) == robust_accuracy(small_model, split, 0.1, 10, 0.03, seed=4)


@pytest.mark.slow
def test_robust_accuracy_agrees_with_torchattacks_pgd(small_model, mnist):
    """The standard MNIST PGD (40 steps of 0.01, random start) against torchattacks' PGD: within two images.

    Seeded alike, both draw the same random start, so they agree exactly today; the slack is for float rounding."""
    split = Split(mnist[1].images[:200], mnist[1].labels[:200])
    ours = robust_accuracy(small_model, split, 0.1, 40, 0.01, seed=0)
    from lib.core.data import to_input

    torch.manual_seed(0)
    x, y = to_input(split.images), split.labels
    attack = torchattacks.PGD(small_model, eps=0.1, alpha=0.01, steps=40, random_start=True)
    x_adv = attack(x, y)
    with torch.no_grad():
        theirs = (small_model(x_adv).argmax(1) == y).float().mean().item()
    assert 0.05 < ours < 0.95, ours  # an informative operating point, neither trivial nor hopeless
    assert abs(ours - theirs) <= 2 / len(split), (ours, theirs)


def test_evaluate_reports_every_metric(small_model, mnist):
    split = mnist[1].subset(100)
    row = evaluate(small_model, split, (0.1, 0.3), 5, 0.05)
    assert row["clean_acc"] == accuracy(small_model, split)  # read off the features, same as the forward pass
    assert set(row) == {"clean_acc", "compactness", "alignment", "nc3", "robust_acc@0.1", "robust_acc@0.3"}
    assert row["robust_acc@0.3"] <= row["robust_acc@0.1"] <= row["clean_acc"]
