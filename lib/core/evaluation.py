"""How good a trained model is beyond clean accuracy (docs/study.md §6): robustness to the standard MNIST
PGD attack, intra-class compactness, and how its class means line up with its weight vectors."""
from __future__ import annotations

import torch
from tqdm import tqdm

from lib.core.attacks import BATCH, pgd_attack
from lib.core.centers import class_means, compactness, cosine, split_features
from lib.core.data import Split, batches
from lib.core.finite import NON_FINITE_MODEL, check_finite
from lib.core.models import SmallCNN


def robust_correct(model: SmallCNN, split: Split, eps: float, steps: int, step_size: float, seed: int = 0,
                   batch_size: int = BATCH, desc: str = "", precision: str = "fp32") -> torch.Tensor:
    """Per image (bool, on the CPU), whether PGD (ascending CE, random uniform start, seeded) leaves it correctly
    classified, in eval mode; ε = 0: the clean prediction. `precision` is that of the attack's steps; the final
    prediction is made in fp32."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []
    n_batches = -(-len(split) // batch_size)
    for x, y in tqdm(batches(split, batch_size), total=n_batches, desc=desc, leave=False, mininterval=2,
                     disable=eps == 0):
        x, y = x.to(device), y.to(device)
        if eps > 0:
            x = pgd_attack(model, x, y, eps, step_size, steps, generator=generator, precision=precision)
        with torch.no_grad():
            parts.append(model(x).argmax(1) == y)
    return torch.cat(parts).cpu()


def robust_accuracy(model: SmallCNN, split: Split, eps: float, steps: int, step_size: float, seed: int = 0,
                    batch_size: int = BATCH, desc: str = "", precision: str = "fp32") -> float:
    """Accuracy under PGD (robust_correct's share of correct images); ε = 0 is clean accuracy."""
    correct = robust_correct(model, split, eps, steps, step_size, seed, batch_size, desc, precision)
    return correct.sum().item() / len(split)


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


def evaluate_outcomes(model: SmallCNN, split: Split, robust_eps: tuple[float, ...], steps: int, step_size: float,
                      seed: int = 0, name: str = "", precision: str = "fp32") -> tuple[dict[str, float], dict]:
    """One row of the extension's table (clean and robust accuracy, feature geometry on `split`) and each image's
    outcome under the attack ({ε: bool per image}), which stronger attacks start from (lib.core.robustness)."""
    features = split_features(model, split)
    check_finite(f"evaluation of {name or 'the model'}", NON_FINITE_MODEL, features=features)
    with torch.no_grad():  # the clean prediction is read off the features the geometry needs anyway
        clean = (model.classify(features).argmax(1).cpu() == split.labels.cpu()).sum().item() / len(split)
    features = features.cpu()
    row = {"clean_acc": clean, **feature_geometry(features, split.labels, model.class_weights.detach().cpu())}
    outcomes = {}
    for eps in robust_eps:
        outcomes[eps] = robust_correct(model, split, eps, steps, step_size, seed, desc=f"PGD ε={eps:g} {name}",
                                       precision=precision)
        row[f"robust_acc@{eps:g}"] = outcomes[eps].sum().item() / len(split)
    return row, outcomes


def evaluate(model: SmallCNN, split: Split, robust_eps: tuple[float, ...], steps: int, step_size: float,
             seed: int = 0, name: str = "", precision: str = "fp32") -> dict[str, float]:
    """One row of the extension's table: clean and robust accuracy, feature geometry on `split`."""
    return evaluate_outcomes(model, split, robust_eps, steps, step_size, seed, name, precision)[0]
