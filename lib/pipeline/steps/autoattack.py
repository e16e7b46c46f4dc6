"""Step `autoattack` (06_autoattack): one model of the extension (A–D at every seed) under AutoAttack, stage by
stage, on the evaluation's first test images, starting from the images its PGD left robust; and the scale of the
model's logits, with the evaluation's PGD repeated on rescaled logits (lib.core.masking)."""
from __future__ import annotations

import time

import pandas as pd
import torch

from lib.analysis import tables
from lib.core import products
from lib.core.autoattack import cascade
from lib.core.data import first
from lib.core.masking import masking
from lib.core.provenance import default_device
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.steps.train import by_name


def pgd_label(steps: int) -> str:
    """The evaluation's attack among AutoAttack's stages, e.g. 'PGD-40'."""
    return f"PGD-{steps}"


def make(values: dict, checkpoint: dict, outcomes: dict, device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                       dict]:
    """(one row per ε > 0 × attack: the accuracy after the evaluation's PGD and after each AutoAttack stage, with
    the seconds each stage took; one row on the logits' scale; {ε: {attack: bool per image}}) of one model, from
    its key's values, its checkpoint and its evaluation's per-image outcomes."""
    [(name, ck)] = by_name([checkpoint]).items()
    if outcomes["model"] != name:
        raise ValueError(f"the evaluation's outcomes are {outcomes['model']}'s, not {name}'s")
    model = restore(ck, device)[0]
    split = first("test", values["images"])
    pgd = {e: outcomes["outcomes"][e][:len(split)] for e in values["eps"] if e > 0}
    rows, per_image = [], {}
    for eps, robust in pgd.items():
        label = pgd_label(values["steps"])
        per_image[eps] = {label: robust}
        rows.append({"eps": eps, "attack": label, "accuracy": robust.float().mean().item(), "seconds": float("nan")})
        start = time.perf_counter()  # the evaluation's attack was timed there; here each stage
        for stage, after in cascade(model, split, eps, robust, values["seed"], desc=f"ε={eps:g} {name}",
                                    iterations=values["iterations"], queries=values["queries"]):
            per_image[eps][stage] = after
            rows.append({"eps": eps, "attack": stage, "accuracy": after.float().mean().item(),
                         "seconds": time.perf_counter() - start})
            start = time.perf_counter()
    table = pd.DataFrame(rows).assign(model=name, seed=values["seed"], samples=len(split))
    scale = masking(model, split, tuple(values["eps"]), values["steps"], values["step_size"], pgd, values["seed"],
                    values["precision"], name)
    return (table[["model", "seed", "eps", "attack", "accuracy", "samples", "seconds"]],
            pd.DataFrame([{"model": name, "seed": values["seed"], "samples": len(split), **scale}]), per_image)


def autoattack_tables(s: Study, model: str, feature_dim: int, seed: int | None = None,
                      device: torch.device | None = None) -> dict[str, pd.DataFrame]:
    """One model's {'autoattack': stage table, 'masking': logit-scale row}, made now (with its training and
    evaluation) unless they exist."""
    task = dag.autoattack_task(s, model, feature_dim, seed)
    if not task.output.exists():
        device = device or default_device()
        found = dag.inputs(s, task, device)
        [checkpoint] = found["train"]
        [evaluated] = [products.load(d.file("outcomes.pt")) for d in task.deps if d.step.name == "evaluate"]
        table, scale, per_image = make(task.key_params, checkpoint, evaluated, device)
        products.save({"model": table.model.iloc[0], "outcomes": per_image}, task.file("autoattack.pt"))
        tables.save_csv(scale, task.file("masking.csv"))
        tables.save_csv(table, task.output)
    return {"autoattack": pd.read_csv(task.output), "masking": pd.read_csv(task.file("masking.csv"))}

