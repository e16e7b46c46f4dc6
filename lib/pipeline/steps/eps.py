"""Step `eps` (02_inverse_adversaries): one model's inverse adversaries of the attack split at one radius ε."""
from __future__ import annotations

import torch

from lib.core import inverse, products
from lib.core.data import first
from lib.core.provenance import default_device, provenance
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.steps.train import by_name


def make(values: dict, checkpoint: dict, device: torch.device) -> dict:
    """The ε run of one model from its key's values (radius, attack, images) and its checkpoint."""
    [(name, ck)] = by_name([checkpoint]).items()
    split = first(values["split"], values["images"])
    result = inverse.run({name: (restore(ck, device)[0], ck["references"])}, split, values["eps"],
                         values["step_size"], values["steps"], values["precision"])
    result["provenance"] = provenance(device, values["precision"])
    result["compute_seconds"] = result["models"][name]["seconds"]
    return result


def inverse_run(s: Study, eps: float, model: str, feature_dim: int, seed: int | None = None,
                device: torch.device | None = None) -> dict:
    """One model's ε run: adversarial centers, per-sample statistics and example digits; made now unless it exists."""
    task = dag.eps_task(s, eps, model, feature_dim, seed)
    if task.output.exists():
        return products.load(task.output)
    device = device or default_device()
    [checkpoint] = dag.inputs(s, task, device)["train"]
    result = make(task.key_params, checkpoint, device)
    products.save(result, task.output)
    return result


def merged(runs: list[dict]) -> list[dict]:
    """Per-model ε runs grouped by ε (in the order they come): one run per ε whose `models` holds every model's."""
    by_eps: dict[float, dict] = {}
    for run in runs:
        into = by_eps.setdefault(run["eps"], {"eps": run["eps"], "labels": run["labels"], "models": {},
                                              "provenance": run["provenance"], "compute_seconds": 0.0})
        into["models"].update(run["models"])
        into["compute_seconds"] += run["compute_seconds"]
    return list(by_eps.values())


def inverse_runs(s: Study, device: torch.device | None = None, seed: int | None = None) -> list[dict]:
    """Every attacked model's ε run at every ε of the grid at one seed (one product each), ε by ε."""
    return [inverse_run(s, e, m, d, seed, device) for e in s.eps for m, d in s.attacked(seed)]


def eps_run(s: Study, eps: float, device: torch.device | None = None, seed: int | None = None) -> dict:
    """The ε run of every model the study attacks at `seed`, as one."""
    [run] = merged([inverse_run(s, eps, m, d, seed, device) for m, d in s.attacked(seed)])
    return run


def eps_runs(s: Study, device: torch.device | None = None, seed: int | None = None) -> list[dict]:
    """Every ε run of the grid at one seed (every attacked model in each), in order."""
    return merged(inverse_runs(s, device, seed))
