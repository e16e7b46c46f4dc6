"""Class centers in feature space and the metrics that compare them (docs/study.md §3)."""
from __future__ import annotations

import torch
from torch import nn

from lib.core.data import Split, to_input
from lib.core.protocol import NUM_CLASSES

REFERENCES = ("feature_mean", "weight", "center")  # what adversarial centers are compared with


@torch.no_grad()
def extract_features(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """f(x) for float inputs [N, 1, 28, 28] in eval mode (dropout off); returns [N, feature_dim]."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.features(inputs[i:i + batch_size]) for i in range(0, len(inputs), batch_size)])
    finally:
        model.train(was_training)


def class_sums(features: torch.Tensor, labels: torch.Tensor,
               num_classes: int = NUM_CLASSES) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sum of features, [num_classes, D], and sample count, [num_classes] (0 for an absent class)."""
    counts = torch.bincount(labels, minlength=num_classes)
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    return sums.index_add_(0, labels, features), counts


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Per-class mean of features, [num_classes, D]. Every class must have at least one sample."""
    sums, counts = class_sums(features, labels, num_classes)
    if (empty := (counts == 0).nonzero().flatten().tolist()):
        raise ValueError(f"class(es) {empty} have no samples; a class mean needs at least one")
    return sums / counts[:, None].to(features.dtype)


def unit(v: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length; zero rows stay zero. Rescaling by the largest entry first keeps
    tiny vectors from underflowing when squared."""
    scale = v.abs().amax(dim=-1, keepdim=True)
    v = v / torch.where(scale > 0, scale, torch.ones_like(scale))
    norm = v.norm(dim=-1, keepdim=True)
    return v / torch.where(norm > 0, norm, torch.ones_like(norm))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity. By definition 0 when either vector is exactly zero (no NaN)."""
    return (unit(a) * unit(b)).sum(dim=-1)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise mean over feature dimensions of the squared difference."""
    return (a - b).pow(2).mean(dim=-1)


def compare(centers: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class cosine and MSE between two [C, D] sets of centers, plus their class averages."""
    if centers.shape != reference.shape:
        raise ValueError(f"centers {tuple(centers.shape)} and reference {tuple(reference.shape)} differ in shape")
    cos, err = cosine(centers, reference), mse(centers, reference)
    return {"cosine": cos, "mse": err, "mean_cosine": cos.mean(), "mean_mse": err.mean()}


def sample_cosine(features: torch.Tensor, labels: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Sample-level variant: mean over samples i of cos(f(x̌_i), reference_{y_i})."""
    return cosine(features, reference[labels]).mean()


def within_class_scatter(features: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Mean squared distance of each feature to its class mean."""
    means = class_means(features, labels, num_classes)
    return (features - means[labels]).pow(2).sum(dim=1).mean()


def between_class_scatter(means: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between distinct class means."""
    d2 = torch.cdist(means, means).pow(2)
    c = len(means)
    return d2.sum() / (c * (c - 1))


def compactness(features: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Within-class over between-class scatter: scale-free, so shrinking all features does not count."""
    return within_class_scatter(features, labels, num_classes) / between_class_scatter(
        class_means(features, labels, num_classes))


@torch.no_grad()
def split_features(model: nn.Module, split: Split, batch_size: int = 1000) -> torch.Tensor:
    """f(x) for every image of a split, converted to float batch by batch (memory stays flat)."""
    device = next(model.parameters()).device
    return torch.cat([extract_features(model, to_input(split.images[i:i + batch_size]).to(device))
                      for i in range(0, len(split), batch_size)])


def references(model: nn.Module, center_buffer: torch.Tensor, splits: dict[str, Split]) -> dict[str, torch.Tensor]:
    """What adversarial centers are compared with: feature means per split, weight rows W, centers."""
    result = {f"feature_mean_{name}": class_means(split_features(model, split).cpu(), split.labels)
              for name, split in splits.items()}
    result["weight"] = model.class_weights.detach().cpu().clone()
    result["center"] = center_buffer.detach().cpu().clone()
    return result


def snapshot(model: nn.Module, split: Split) -> dict[str, torch.Tensor]:
    """Features of a split with their class means and the weight rows (Figure 1's ingredients)."""
    features = split_features(model, split).cpu()
    return {"features": features, "labels": split.labels, "means": class_means(features, split.labels),
            "weights": model.class_weights.detach().cpu()}
