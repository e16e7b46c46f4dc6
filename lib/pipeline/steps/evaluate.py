"""Step `evaluate` (04_evaluate): clean and robust accuracy and feature geometry of one 200-d model of the
extension (A–D at every seed), and each test image's outcome under the attack (for the attack check)."""
from __future__ import annotations

import pandas as pd
import torch

from lib.analysis import tables
from lib.core import products
from lib.core.data import first
from lib.core.evaluation import evaluate_outcomes
from lib.core.provenance import default_device
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import COMPARED_MODELS, Study
from lib.pipeline.steps.train import by_name


def make(values: dict, checkpoint: dict, device: torch.device) -> tuple[pd.DataFrame, dict]:
    """(one row: clean and PGD accuracy per ε, compactness, alignment, NC3, seconds per epoch; {ε: bool per image})
    of one model, from its key's values and its checkpoint."""
    [(name, ck)] = by_name([checkpoint]).items()
    split = first("test", values["images"])
    row, outcomes = evaluate_outcomes(restore(ck, device)[0], split, tuple(values["eps"]), values["steps"],
                                      values["step_size"], values["seed"], name, values["precision"])
    epochs = ck["history"]
    table = pd.DataFrame([{"model": name, "seed": values["seed"], "samples": len(split), **row,
                           "epoch_seconds": sum(e["seconds"] for e in epochs) / len(epochs),
                           "device": ck["provenance"]["device"]}])
    return table, outcomes


def evaluation(s: Study, model: str, feature_dim: int, seed: int | None = None,
               device: torch.device | None = None) -> pd.DataFrame:
    """One model's row of the extension's table, made now (with its training) unless it exists."""
    task = dag.evaluate_task(s, model, feature_dim, seed)
    if not task.output.exists():
        device = device or default_device()
        [checkpoint] = dag.inputs(s, task, device)["train"]
        table, outcomes = make(task.key_params, checkpoint, device)
        products.save({"model": table.model.iloc[0], "outcomes": outcomes}, task.file("outcomes.pt"))
        tables.save_csv(table, task.output)
    return pd.read_csv(task.output)


def evaluations(s: Study, seed: int | None = None, device: torch.device | None = None) -> pd.DataFrame:
    """One row per compared model (A–D at 200-d) of one seed."""
    return pd.concat([evaluation(s, m, d, seed, device) for m, d in COMPARED_MODELS], ignore_index=True)
