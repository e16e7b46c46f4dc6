"""How good a trained model is beyond clean accuracy (STUDY.md §6): robustness to the standard MNIST
PGD attack, intra-class compactness, and how its class means line up with its weight vectors."""
from __future__ import annotations

import torch
from tqdm import tqdm

from lib.attacks import pgd_attack
from lib.centers import class_means, compactness, cosine, split_features
from lib.data import Split, to_input
from lib.models import SmallCNN


@torch.no_grad()
def _correct(model: SmallCNN, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x).argmax(1) == y).sum()


def robust_accuracy(model: SmallCNN, split: Split, eps: float, steps: int, step_size: float, seed: int = 0,
                    batch_size: int = 500, desc: str = "") -> float:
    """Accuracy under PGD (ascending CE, random uniform start, seeded), in eval mode; ε = 0 is clean accuracy."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in tqdm(range(0, len(split), batch_size), desc=desc, leave=False, mininterval=2):
        x = to_input(split.images[start:start + batch_size]).to(device)
        y = split.labels[start:start + batch_size].to(device)
        if eps > 0:
            x = pgd_attack(model, x, y, eps, step_size, steps, generator=generator)
        correct += _correct(model, x, y)
    return correct.item() / len(split)


def alignment(means: torch.Tensor, weights: torch.Tensor) -> float:
    """Mean over classes of cos(μ_c, W_c): 1 when every class mean points along its weight row."""
    return cosine(means, weights).mean().item()


def nc3(means: torch.Tensor, weights: torch.Tensor, global_mean: torch.Tensor) -> float:
    """Papyan et al.'s NC3: ||W/||W||_F − M/||M||_F||_F with M the class means centred on the global mean.

    0 when the weight rows are the centred class means up to one scale (self-duality); at most 2.
    """
    centred = means - global_mean
    return (weights / weights.norm() - centred / centred.norm()).norm().item()


def feature_geometry(features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    """Compactness, alignment and NC3 of one model's features of a split."""
    means = class_means(features, labels)
    return {"compactness": compactness(features, labels).item(), "alignment": alignment(means, weights),
            "nc3": nc3(means, weights, features.mean(0))}


def evaluate(model: SmallCNN, split: Split, robust_eps: tuple[float, ...], steps: int, step_size: float,
             seed: int = 0, name: str = "") -> dict[str, float]:
    """One row of the extension's table: clean and robust accuracy, feature geometry on `split`."""
    features = split_features(model, split).cpu()
    row = {"clean_acc": robust_accuracy(model, split, 0.0, steps, step_size),
           **feature_geometry(features, split.labels, model.class_weights.detach().cpu())}
    for eps in robust_eps:
        row[f"robust_acc@{eps:g}"] = robust_accuracy(model, split, eps, steps, step_size, seed,
                                                     desc=f"PGD ε={eps:g} {name}")
    return row
