"""Step `eps` (02_inverse_adversaries): inverse adversaries of the attack split at one radius ε, for every
model the ε runs attack."""
from __future__ import annotations

import torch

from lib.core import inverse, products
from lib.core.provenance import default_device, provenance
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.steps.train import checkpoints


def eps_run(s: Study, eps: float, device: torch.device | None = None, seed: int | None = None) -> dict:
    """The ε run: adversarial centers, per-sample statistics and example digits of each attacked model."""
    task = dag.eps_task(s, eps, seed)
    if task.output.exists():
        return products.load(task.output)
    device = device or default_device()
    models = {name: (restore(ck, device)[0], ck["references"])
              for name, ck in checkpoints(s, s.attacked(seed), device, seed).items()}
    split = s.split(s.attack_split).subset(s.attack_samples)
    result = inverse.run(models, split, eps, s.step_size, s.steps, s.precision)
    result["provenance"] = provenance(device, s.precision)
    result["compute_seconds"] = sum(m["seconds"] for m in result["models"].values())
    products.save(result, task.output)
    return result


def eps_runs(s: Study, device: torch.device | None = None, seed: int | None = None) -> list[dict]:
    """Every ε run of the grid at one seed, in order."""
    return [eps_run(s, e, device, seed) for e in s.eps]
