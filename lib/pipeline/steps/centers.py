"""Step `centers` (03_centers): the tidy tables of the primary seed's ε runs (centers: model × ε × reference
× class; samples; attacks), as CSV in the step's folder."""
from __future__ import annotations

import pandas as pd
import torch

from lib.analysis import tables
from lib.core import inverse
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.registry import STEPS
from lib.pipeline.steps.eps import merged
from lib.pipeline.steps.train import by_name

TABLES = tuple(f.removesuffix(".csv") for f in STEPS["centers"].files)  # centers.csv last: it marks the step done


def make_center_tables(runs: list[dict], refs: dict[str, dict], mean_split: str) -> dict[str, pd.DataFrame]:
    """The tidy tables of a set of ε runs (merged by ε), against each model's references."""
    return {"centers": tables.centers_table(runs, refs, mean_split),
            "samples": tables.sample_table(runs, mean_split), "attacks": inverse.attack_table(runs)}


def center_tables(s: Study, device: torch.device | None = None) -> dict[str, pd.DataFrame]:
    """{'centers': ..., 'samples': ..., 'attacks': ...}, made now unless they exist."""
    task = dag.task(s, "centers")
    if not task.output.exists():
        found = dag.inputs(s, task, device)
        refs = {name: ck["references"] for name, ck in by_name(found["train"]).items()}
        result = make_center_tables(merged(found["eps"]), refs, task.key_params["mean_split"])
        for name in TABLES:
            tables.save_csv(result[name], task.file(f"{name}.csv"))
    # Always read back, so a fresh result and a loaded one are the same frames (dtypes, float text).
    return {name: pd.read_csv(task.file(f"{name}.csv")) for name in ("centers", "samples", "attacks")}
