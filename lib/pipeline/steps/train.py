"""Step `train` (01_train): one model's checkpoint: weights, centers, per-epoch history, references."""
from __future__ import annotations

import torch

from lib.core.data import load_split
from lib.core.protocol import TrainConfig, model_name
from lib.core.provenance import default_device
from lib.core.train import train_or_load
from lib.pipeline import dag
from lib.pipeline.config import Study


def checkpoint(s: Study, model: str, feature_dim: int, device: torch.device | None = None,
               seed: int | None = None) -> dict:
    """The trained model's checkpoint, trained with the TrainConfig its key holds."""
    task = dag.train_task(s, model, feature_dim, seed)
    return train_or_load(TrainConfig.from_dict(task.key_params), task.output, load_split(True), load_split(False),
                         device or default_device())


def checkpoints(s: Study, models=None, device: torch.device | None = None, seed: int | None = None) -> dict[str, dict]:
    """{'A-200d': checkpoint, ...} of the given models (default: every model trained at `seed`)."""
    models = s.models(seed) if models is None else models
    return {model_name(m, d): checkpoint(s, m, d, device, seed) for m, d in models}


def by_name(checkpoints: list[dict]) -> dict[str, dict]:
    """{'A-200d': checkpoint, ...} of a list of checkpoints (a maker's inputs)."""
    return {model_name(ck["config"]["model"], ck["config"]["feature_dim"]): ck for ck in checkpoints}
