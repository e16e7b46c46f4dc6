"""Where are the high-likelihood regions the extractor can reach? (docs/study.md §6)

For each class, candidate points in feature space — the feature mean, the center-loss center, the
adversarial center at each ε and the weight direction scaled to the class's typical feature norm —
are scored by the classifier head's probability of the class there (likelihood) and by their distance
to the nearest feature the extractor actually produced for the class (reachability).
"""
from __future__ import annotations

import pandas as pd
import torch

from lib.core.models import SmallCNN
from lib.core.protocol import NUM_CLASSES


@torch.no_grad()
def head_probability(model: SmallCNN, points: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """softmax(W p + b)[class] for each point p (row) and its class."""
    logits = model.classify(points.to(model.class_weights))
    return logits.softmax(1).gather(1, classes.to(logits.device)[:, None]).squeeze(1).cpu()


def weight_direction(weights: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """W_c / ||W_c|| scaled to the class's mean feature norm: the weight row as a point features could be."""
    norms = torch.stack([features[labels == c].norm(dim=1).mean() for c in range(len(weights))])
    return weights / weights.norm(dim=1, keepdim=True).clamp(min=1e-12) * norms[:, None]


def reachability(points: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from each class's point to the nearest feature of that class, raw and relative to the
    class's spread (median distance of its features to their mean): ≲ 1 means inside the cloud."""
    nearest, spread = [], []
    for c in range(len(points)):
        own = features[labels == c]
        nearest.append(torch.cdist(points[c:c + 1], own).min())
        spread.append((own - own.mean(0)).norm(dim=1).median())
    nearest, spread = torch.stack(nearest), torch.stack(spread)
    return nearest, nearest / spread.clamp(min=1e-12)


def candidates(refs: dict[str, torch.Tensor], adv_centers: dict[float, torch.Tensor], features: torch.Tensor,
               labels: torch.Tensor, mean_split: str) -> list[tuple[str, float, torch.Tensor]]:
    """(candidate, ε or NaN, [C, D] points) for one model."""
    nan = float("nan")
    points = [("feature mean", nan, refs[f"feature_mean_{mean_split}"]), ("center", nan, refs["center"]),
              ("weight direction", nan, weight_direction(refs["weight"], features, labels))]
    return points + [("adversarial center", eps, centers) for eps, centers in sorted(adv_centers.items())]


def probe(model: SmallCNN, name: str, refs: dict[str, torch.Tensor], adv_centers: dict[float, torch.Tensor],
          features: torch.Tensor, labels: torch.Tensor, mean_split: str) -> pd.DataFrame:
    """Tidy table: model × candidate × ε × class → probability of the class, distance to the nearest feature."""
    classes = torch.arange(NUM_CLASSES)
    rows = []
    for candidate, eps, points in candidates(refs, adv_centers, features, labels, mean_split):
        points = points.float().cpu()
        prob = head_probability(model, points, classes)
        distance, relative = reachability(points, features.cpu(), labels.cpu())
        rows += [{"model": name, "candidate": candidate, "eps": eps, "class": c, "probability": p,
                  "distance": d, "relative_distance": r}
                 for c, (p, d, r) in enumerate(zip(prob.tolist(), distance.tolist(), relative.tolist()))]
    return pd.DataFrame(rows)
