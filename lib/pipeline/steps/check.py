"""Step `check` (05_attack_check): does the evaluation's robustness survive stronger attacks? One seed's compared
models under longer PGD, PGD on the margin and transfer from B, on the evaluation's first images; the evaluation's
own attack is read from its per-image outcomes, not made again (lib.core.robustness)."""
from __future__ import annotations

import pandas as pd
import torch

from lib.analysis import tables
from lib.core import products
from lib.core.data import first
from lib.core.provenance import default_device
from lib.core.robustness import attack_check
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.steps.train import by_name


def make(values: dict, checkpoints: list[dict], outcomes: list[dict], device: torch.device) -> pd.DataFrame:
    """The check's table from its key's values, the models' checkpoints and their evaluations' outcomes."""
    models = {name: restore(ck, device)[0] for name, ck in by_name(checkpoints).items()}
    evaluated = {o["model"]: o["outcomes"] for o in outcomes}
    return attack_check(models, first("test", values["images"]), tuple(values["eps"]), values["steps"],
                        values["step_size"], values["source"], values["seed"], values["precision"],
                        evaluated=evaluated)


def attack_check_table(s: Study, seed: int | None = None, device: torch.device | None = None) -> pd.DataFrame:
    """The attack check of one seed (one row per model × ε × attack), made now unless it exists."""
    task = dag.check_task(s, seed)
    if not task.output.exists():
        device = device or default_device()
        checkpoints = dag.inputs(s, task, device)["train"]  # the evaluations are made too, if missing
        outcomes = [products.load(d.file("outcomes.pt")) for d in task.deps if d.step.name == "evaluate"]
        tables.save_csv(make(task.key_params, checkpoints, outcomes, device), task.output)
    return pd.read_csv(task.output)
