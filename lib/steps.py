"""The pipeline's steps as functions: each returns its product, loading it when it was made before
and making it now otherwise (inputs included, with progress bars).

The notebooks call these, so one opened in JupyterLab runs top to bottom without `make report`
having run first; under `make report` every input already exists and is only loaded.
"""
from __future__ import annotations

import pandas as pd
import torch

from lib import pipeline, products, tables
from lib.config import EPS_MODELS, STUDY_MODELS, Study, model_name
from lib.data import load_split
from lib.provenance import default_device, provenance

TABLES = ("centers", "samples", "attacks")  # step 03's CSVs; centers.csv is written last (the marker)


def checkpoint(s: Study, model: str, feature_dim: int, device: torch.device | None = None) -> dict:
    """Step 01: the trained model's checkpoint (weights, centers, history, references)."""
    from lib.train import train_or_load

    task = pipeline.train_task(s, model, feature_dim)
    return train_or_load(s.train_config(model, feature_dim), task.output, load_split(True), load_split(False),
                         device or default_device())


def checkpoints(s: Study, models=STUDY_MODELS, device: torch.device | None = None) -> dict[str, dict]:
    """{'A-200d': checkpoint, ...} of the given models."""
    return {model_name(m, d): checkpoint(s, m, d, device) for m, d in models}


def eps_run(s: Study, eps: float, device: torch.device | None = None) -> dict:
    """Step 02: inverse adversaries of the attack split at radius ε, for every model of the ε runs."""
    from lib import inverse
    from lib.train import restore

    task = pipeline.eps_task(s, eps)
    if task.output.exists():
        return products.load(task.output)
    device = device or default_device()
    models = {name: (restore(ck, device)[0], ck["references"])
              for name, ck in checkpoints(s, EPS_MODELS, device).items()}
    split = s.split(s.attack_split).subset(s.attack_samples)
    result = inverse.run(models, split, eps, s.step_size, s.steps)
    result["provenance"] = provenance(device)
    result["compute_seconds"] = sum(m["seconds"] for m in result["models"].values())
    products.save(result, task.output)
    return result


def eps_runs(s: Study, device: torch.device | None = None) -> list[dict]:
    """Every ε run of the grid, in order."""
    return [eps_run(s, e, device) for e in s.eps]


def center_tables(s: Study, device: torch.device | None = None) -> dict[str, pd.DataFrame]:
    """Step 03: the tidy tables (centers: model × ε × reference × class; samples; attacks)."""
    task = pipeline.task(s, "centers")
    if task.output.exists():
        return {name: pd.read_csv(task.folder / f"{name}.csv") for name in TABLES}
    runs = eps_runs(s, device)
    refs = {name: ck["references"] for name, ck in checkpoints(s, EPS_MODELS, device).items()}
    result = {"centers": tables.centers_table(runs, refs, s.mean_split),
              "samples": tables.sample_table(runs, s.mean_split), "attacks": tables.attack_table(runs)}
    for name in reversed(TABLES):  # centers.csv, the step's product, last: it marks the step done
        tables.save_csv(result[name], task.folder / f"{name}.csv")
    # Read back, so a fresh result and a loaded one are the same frames (dtypes, float text).
    return {name: pd.read_csv(task.folder / f"{name}.csv") for name in TABLES}
