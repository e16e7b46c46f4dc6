"""SmallCNN matches TRADES' architecture and exposes features / classify."""
import torch
from torch import nn

from lib.core.models import SmallCNN

# TRADES' state_dict keys (models/small_cnn.py), in order.
TRADES_KEYS = [f"feature_extractor.conv{i}.{p}" for i in (1, 2, 3, 4) for p in ("weight", "bias")] + [
    f"classifier.fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")]


def test_architecture_matches_trades():
    model = SmallCNN()
    assert list(model.state_dict()) == TRADES_KEYS
    # conv 320 + 9248 + 18496 + 36928, fc 205000 + 40200 + 2010
    assert sum(p.numel() for p in model.parameters()) == 312202
    assert torch.count_nonzero(model.classifier.fc3.weight) == 0 and torch.count_nonzero(model.classifier.fc3.bias) == 0
    assert all(torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_features_then_classify_is_forward():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    model.classifier.fc3.weight.data.normal_()
    x = torch.rand(4, 1, 28, 28)
    f = model.features(x)
    assert f.shape == (4, 200) and (f >= 0).all()  # ReLU output
    assert torch.allclose(model.classify(f), model(x))
    assert model.class_weights.shape == (10, 200)


def test_two_dimensional_variant_uses_prelu():
    torch.manual_seed(0)
    model = SmallCNN(feature_dim=2).eval()
    assert isinstance(model.classifier.relu2, nn.PReLU)
    f = model.features(torch.rand(64, 1, 28, 28))
    assert f.shape == (64, 2) and (f < 0).any()  # not confined to one quadrant


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = SmallCNN()
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model.features(x), model.features(x))
    model.train()
    assert not torch.equal(model.features(x), model.features(x))
