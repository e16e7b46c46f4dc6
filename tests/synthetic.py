"""Small synthetic products (ε runs, references, class averages) for fast tests."""
import pandas as pd
import torch

from lib.core.centers import REFERENCES


def references(seed: int, dim: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"feature_mean_train": torch.rand(10, dim, generator=g), "feature_mean_test": torch.rand(10, dim, generator=g),
            "weight": torch.randn(10, dim, generator=g), "center": torch.rand(10, dim, generator=g)}


def eps_run(eps: float, models=("A-200d", "B-200d"), n: int = 40, dim: int = 6, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    run = {"eps": eps, "labels": labels, "models": {}}
    for name in models:
        run["models"][name] = {
            "adv_centers": torch.rand(10, dim, generator=g), "clean_centers": torch.rand(10, dim, generator=g),
            "sample_cosine": {k: torch.rand(n, generator=g) for k in ("feature_mean_train", "feature_mean_test", "weight", "center")},
            "loss_before": torch.rand(n, generator=g), "loss_after": torch.rand(n, generator=g) * 0.1,
            "confidence_before": torch.rand(n, generator=g), "confidence_after": torch.rand(n, generator=g),
            "changed": torch.rand(n, generator=g) > 0.9, "correct_after": torch.rand(n, generator=g) > 0.1,
            "linf": torch.full((n,), eps), "seconds": 1.0,
            "examples": {"clean": torch.rand(8, 1, 28, 28, generator=g), "adversarial": torch.rand(8, 1, 28, 28, generator=g),
                         "labels": labels[:8]},
        }
    return run


def averages(cosine_of_eps, models=("A-200d", "B-200d"), eps=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
             relative_mse=0.05) -> pd.DataFrame:
    """Class averages where cosine = cosine_of_eps(model, reference, eps)."""
    return pd.DataFrame([{"model": m, "reference": r, "eps": e, "cosine": cosine_of_eps(m, r, e),
                          "mse": 0.01, "relative_mse": relative_mse, "cosine_std": 0.01, "mse_std": 0.001}
                         for m in models for r in REFERENCES for e in eps])


def outcomes(evaluation: pd.DataFrame, images: int = 10000) -> dict:
    """Per-image outcomes that reproduce each row's accuracies exactly ({(model, seed): {metric: bool per image}}):
    image i is kept while i < accuracy · n, so a more accurate model keeps every image a less accurate one keeps (the
    strongest pairing). AutoAttack's columns have the row's `autoattack_samples` images, the others `images`."""
    import numpy as np

    found = {}
    for _, row in evaluation.iterrows():
        per = {}
        for column in [c for c in evaluation.columns if c == "clean_acc" or c.startswith(("robust_acc@", "autoattack_acc@"))]:
            if pd.isna(row[column]):
                continue
            n = int(row["autoattack_samples"]) if column.startswith("autoattack_acc@") else images
            per[column] = np.arange(n) < round(row[column] * n)
        found[(row["model"], int(row["seed"]))] = per
    return found


def contrast(evaluation: pd.DataFrame, images: int = 10000, **options) -> pd.DataFrame:
    """claims.contrasts of an evaluation table over `outcomes` (the pooled table)."""
    from lib.analysis import claims

    return claims.contrasts(evaluation, outcomes(evaluation, images), **options)[0]
