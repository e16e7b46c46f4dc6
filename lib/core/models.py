"""The TRADES SmallCNN for MNIST (docs/study.md §2), split into a feature extractor and a linear head."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class SmallCNN(nn.Module):
    """TRADES' `models/small_cnn.py`, with the same module names so its checkpoints load.

    `features(x)` is the penultimate activation f(x) (fc2 + ReLU, or + PReLU when feature_dim == 2,
    since a ReLU would confine 2-D features to one quadrant); `classify(f)` is the last layer fc3.
    """

    def __init__(self, feature_dim: int = 200, dropout: float = 0.5, num_classes: int = 10):
        super().__init__()
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {feature_dim}")
        self.feature_dim = feature_dim
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(1, 32, 3)),
            ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(32, 32, 3)),
            ("relu2", nn.ReLU()),
            ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(64, 64, 3)),
            ("relu4", nn.ReLU()),
            ("maxpool2", nn.MaxPool2d(2, 2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(64 * 4 * 4, 200)),
            ("relu1", nn.ReLU()),
            ("drop", nn.Dropout(dropout)),
            ("fc2", nn.Linear(200, feature_dim)),
            ("relu2", nn.PReLU() if feature_dim == 2 else nn.ReLU()),
            ("fc3", nn.Linear(feature_dim, num_classes)),
        ]))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # TRADES starts the last layer at zero; its first gradient step breaks the symmetry.
        nn.init.zeros_(self.classifier.fc3.weight)
        nn.init.zeros_(self.classifier.fc3.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activation f(x), shape [N, feature_dim]."""
        h = self.feature_extractor(x).flatten(1)
        return self.classifier[:-1](h)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits W f + b from features."""
        return self.classifier.fc3(features)

    @property
    def class_weights(self) -> torch.Tensor:
        """W: one row per class, shape [num_classes, feature_dim]."""
        return self.classifier.fc3.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))
