"""Step `authors` (06_autoattack_authors): one model of the extension (A–G at every seed) under AutoAttack from its
authors' code (lib.core.autoattack.run), stage by stage, on the evaluation's first test images (more where claim 5
hinges: Study.hinge_*), starting from the images its PGD left robust, with the checks that fired and the follow-up
where Square's check fires.

Step `autoattack` (the torchattacks composition, with the logits' scale) stays beside it as its cross-check at full
scale: both start from the same PGD outcome on the same first images. Until this step's runs of the paper study are
made and carried (issue 53), it runs only with authors_autoattack=1 and the report reads the composition's.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lib.analysis import tables
from lib.core import products
from lib.core.autoattack import reported, run
from lib.core.data import first
from lib.core.provenance import default_device
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.steps.train import by_name


CHECK_COLUMNS = ["model", "seed", "eps", "check", "message"]  # checks.csv: one row per check that fired


def pgd_label(steps: int) -> str:
    """The evaluation's attack among AutoAttack's stages, e.g. 'PGD-40'."""
    return f"PGD-{steps}"


def resume_state(folder: Path, eps: float) -> Path:
    """Where the AutoAttack at ε saves its progress, beside the product (a dot-file: carried as progress, never taken
    for the product; lib.pipeline.carry)."""
    return folder / f".autoattack-{eps:g}.resume.pt"


def make(values: dict, checkpoint: dict, outcomes: dict, device: torch.device, folder: Path) -> tuple[
        pd.DataFrame, pd.DataFrame, dict]:
    """(one row per ε > 0 × attack: the accuracy after the evaluation's PGD and after each AutoAttack stage, the
    follow-up's included, with the images and the seconds each took; one row per ε × check that fired; {ε: {attack:
    bool per image}}) of one model, from its key's values, its checkpoint and its evaluation's per-image outcomes,
    resuming what an interrupted run saved in `folder`."""
    [(name, ck)] = by_name([checkpoint]).items()
    if outcomes["model"] != name:
        raise ValueError(f"the evaluation's outcomes are {outcomes['model']}'s, not {name}'s")
    model = restore(ck, device)[0]
    label = pgd_label(values["steps"])
    rows, flags, per_image = [], [], {}
    for key, n in values["images"].items():
        eps, split = float(key), first("test", n)
        robust = outcomes["outcomes"][eps][:n]
        found = run(model, split, eps, robust, values["seed"], desc=f"ε={eps:g} {name}",
                    iterations=values["iterations"], queries=values["queries"], state=resume_state(folder, eps))
        per_image[eps] = {label: robust, **reported(found)}
        rows += [{"eps": eps, "attack": attack, "accuracy": after.float().mean().item(), "samples": n,
                  "seconds": found.seconds.get(attack, float("nan"))} for attack, after in per_image[eps].items()]
        flags += [{"eps": eps, "check": check, "message": message} for check, message in found.flags.items()]
    table = pd.DataFrame(rows).assign(model=name, seed=values["seed"])
    checks = pd.DataFrame(flags, columns=["eps", "check", "message"]).assign(model=name, seed=values["seed"])
    return table[["model", "seed", "eps", "attack", "accuracy", "samples", "seconds"]], checks[CHECK_COLUMNS], per_image


def autoattack_tables(s: Study, model: str, feature_dim: int, seed: int | None = None,
                      device: torch.device | None = None) -> dict[str, pd.DataFrame]:
    """One model's {'autoattack': stage table, 'checks': the checks that fired}, made now (with its training and
    evaluation) unless they exist."""
    task = dag.authors_task(s, model, feature_dim, seed)
    if not task.output.exists():
        device = device or default_device()
        found = dag.inputs(s, task, device)
        [checkpoint] = found["train"]
        [evaluated] = [products.load(d.file("outcomes.pt")) for d in task.deps if d.step.name == "evaluate"]
        table, checks, per_image = make(task.key_params, checkpoint, evaluated, device, task.folder)
        products.save({"model": table.model.iloc[0], "outcomes": per_image}, task.file("autoattack.pt"))
        tables.save_csv(checks, task.file("checks.csv"))
        tables.save_csv(table, task.output)
        for eps in per_image:  # the product supersedes its progress
            resume_state(task.folder, eps).unlink(missing_ok=True)
    return {"autoattack": pd.read_csv(task.output), "checks": pd.read_csv(task.file("checks.csv"))}

