"""The high-likelihood probe: the head's probability at a point, the weight direction, reachability."""
import math

import pytest
import torch

from lib.core.models import SmallCNN
from lib.core.probe import head_probability, probe, reachability, weight_direction


def head_model(weights: torch.Tensor, bias: torch.Tensor) -> SmallCNN:
    model = SmallCNN(weights.shape[1])
    with torch.no_grad():
        model.classifier.fc3.weight.copy_(weights)
        model.classifier.fc3.bias.copy_(bias)
    return model.eval()


def test_head_probability_is_the_softmax_of_the_last_layer():
    g = torch.Generator().manual_seed(0)
    w, b, p = torch.randn(10, 4, generator=g), torch.randn(10, generator=g), torch.randn(10, 4, generator=g)
    expected = (p @ w.T + b).softmax(1).diagonal()
    assert torch.allclose(head_probability(head_model(w, b), p, torch.arange(10)), expected, atol=1e-6)


def test_weight_direction_has_the_class_mean_norm_and_the_weight_direction():
    w = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
    features = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1])
    points = weight_direction(w, features, labels)
    assert torch.allclose(points, torch.tensor([[1.2, 1.6], [0.0, -5.0]]))


def test_reachability_is_the_nearest_own_feature_over_the_spread():
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [10.0, 12.0]])
    labels = torch.tensor([0, 0, 1, 1])
    points = torch.tensor([[1.0, 0.0], [10.0, 12.0]])
    distance, relative = reachability(points, features, labels)
    assert distance.tolist() == pytest.approx([1.0, 0.0])
    assert relative.tolist() == pytest.approx([1.0, 0.0])  # class 0's spread: both features 1 from their mean


def test_probe_table_has_every_candidate_for_every_class():
    g = torch.Generator().manual_seed(2)
    dim = 4
    model = head_model(torch.randn(10, dim, generator=g), torch.zeros(10))
    features, labels = torch.rand(50, dim, generator=g), torch.arange(50) % 10
    refs = {"feature_mean_train": torch.rand(10, dim, generator=g), "center": torch.rand(10, dim, generator=g),
            "weight": model.class_weights.detach()}
    table = probe(model, "X-4d", refs, {0.1: features[:10], 0.3: torch.rand(10, dim, generator=g)}, features, labels,
                  "train")
    assert len(table) == 5 * 10 and set(table.candidate) == {"feature mean", "center", "weight direction",
                                                             "adversarial center"}
    at_features = table[(table.candidate == "adversarial center") & (table.eps == 0.1)]
    assert (at_features.distance == 0).all()  # those points are real features
    assert table.probability.between(0, 1).all() and math.isnan(table.eps.iloc[0])
