"""Step `evaluate` (04_evaluate): clean and robust accuracy and feature geometry of one seed's 200-d models A–D."""
from __future__ import annotations

import pandas as pd
import torch

from lib.analysis import tables
from lib.core.evaluation import evaluate
from lib.core.provenance import default_device
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import COMPARED_MODELS, Study
from lib.pipeline.steps.train import checkpoints


def evaluation(s: Study, seed: int | None = None, device: torch.device | None = None) -> pd.DataFrame:
    """One row per model: clean and PGD accuracy per ε, compactness, alignment, NC3, seconds per epoch."""
    task = dag.evaluate_task(s, seed)
    if not task.output.exists():
        device = device or default_device()
        seed = s.seed if seed is None else seed
        split = s.split("test").subset(s.robust_samples)
        rows = []
        for name, ck in checkpoints(s, COMPARED_MODELS, device, seed).items():
            model = restore(ck, device)[0]
            row = evaluate(model, split, s.robust_eps, s.robust_steps, s.robust_step_size, seed, name, s.precision)
            epochs = ck["history"]
            rows.append({"model": name, "seed": seed, "samples": len(split), **row,
                         "epoch_seconds": sum(e["seconds"] for e in epochs) / len(epochs),
                         "device": ck["provenance"]["device"]})
        tables.save_csv(pd.DataFrame(rows), task.output)
    return pd.read_csv(task.output)
