"""Center loss (Wen et al., ECCV 2016) with its own center update rule (STUDY.md §3)."""
from __future__ import annotations

import torch
from torch import nn


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
        return 0.5 * (features - self.centers[labels]).pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """c_j ← c_j − α · Σ_{i: y_i=j} (c_j − f_i) / (1 + n_j), for the classes in the batch."""
        features = features.detach().to(self.centers.dtype)
        counts = torch.bincount(labels, minlength=len(self.centers)).to(self.centers.dtype)
        sums = torch.zeros_like(self.centers).index_add_(0, labels, features)
        delta = (counts[:, None] * self.centers - sums) / (1 + counts[:, None])
        self.centers -= self.alpha * delta
