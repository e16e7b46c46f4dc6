"""Center loss (Wen et al., ECCV 2016) with its own center update rule (docs/study.md §3), and the extension's
two variants that pull features towards inverse adversaries instead (docs/study.md §6)."""
from __future__ import annotations

import torch
from torch import nn

from lib.core.centers import class_sums


def pull(features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1/2 · mean_i ||f_i − t_i||²: the center-loss term against any per-sample targets."""
    return 0.5 * (features - targets).pow(2).sum(dim=1).mean()


class CenterLoss(nn.Module):
    """L_C = 1/2 · mean_i ||f_i − c_{y_i}||².

    The centers are a buffer, not a parameter: the model optimizer never sees them (so they get no
    weight decay and no momentum); `update` moves them by Wen et al.'s rule instead.
    """

    def __init__(self, num_classes: int, feature_dim: int, alpha: float = 0.5):
        super().__init__()
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.register_buffer("centers", torch.zeros(num_classes, feature_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return pull(features, self.centers[labels])

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """c_j ← c_j − α · Σ_{i: y_i=j} (c_j − f_i) / (1 + n_j), for the classes in the batch."""
        sums, counts = class_sums(features.detach().to(self.centers.dtype), labels, len(self.centers))
        counts = counts.to(self.centers.dtype)
        delta = (counts[:, None] * self.centers - sums) / (1 + counts[:, None])
        self.centers -= self.alpha * delta


class AdversarialCenters(CenterLoss):
    """Model C's centers: a running mean (EMA) of the features of inverse adversaries, per class.

    `update` receives the batch's inverse-adversary features: c_j ← (1 − r)·c_j + r·mean_{i: y_i=j} f(x̌_i)
    for the classes in the batch. A class's first batch sets its center outright, so the running mean
    carries no bias towards the zero it starts from.
    """

    def __init__(self, num_classes: int, feature_dim: int, rate: float = 0.1):
        super().__init__(num_classes, feature_dim)
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self.rate = rate
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        sums, counts = class_sums(features.detach().to(self.centers.dtype), labels, len(self.centers))
        present = counts > 0
        means = sums / counts.clamp(min=1)[:, None].to(self.centers.dtype)
        rate = torch.where(self.seen, self.rate, 1.0)[:, None].to(self.centers.dtype)
        self.centers.copy_(torch.where(present[:, None], (1 - rate) * self.centers + rate * means, self.centers))
        self.seen |= present
