"""Step `extension` (05_extension): the extension's tables (A–D over seeds, probe, dimension sweep, seed-wise
centers) and the verdict on claim 4 with the attack check behind it, as files in the step's folder."""
from __future__ import annotations

import json

import pandas as pd
import torch

from lib.analysis import claims, tables
from lib.core import products
from lib.core.centers import split_features
from lib.core.probe import probe
from lib.core.protocol import model_name
from lib.core.provenance import default_device
from lib.core.robustness import CHECK_SAMPLES, attack_check
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import COMPARED_MODELS, Study
from lib.pipeline.registry import STEPS
from lib.pipeline.steps.centers import center_tables, make_center_tables
from lib.pipeline.steps.eps import eps_runs
from lib.pipeline.steps.evaluate import evaluation
from lib.pipeline.steps.train import checkpoints

TABLES = tuple(f.removesuffix(".csv") for f in STEPS["extension"].files if f.endswith(".csv"))
SOURCE = "B-200d"  # the transfer attack's source: classic center loss, the baseline claim 4 compares with


def extension_tables(s: Study, device: torch.device | None = None) -> dict:
    """{'comparison', 'probe', 'sweep', 'seed_centers', 'attack_check': tables, 'claim4': (verdict, evidence)},
    made now unless they exist."""
    task = dag.task(s, "extension")
    if not task.output.exists():
        device = device or default_device()
        comparison = pd.concat([evaluation(s, seed, device) for seed in s.seeds], ignore_index=True)
        test_split = s.split("test")
        runs = eps_runs(s, device)
        primary = checkpoints(s, device=device)  # every model of the primary seed, loaded once
        compared = {name: restore(primary[name], device)[0] for name in (model_name(*md) for md in COMPARED_MODELS)}
        probes = []
        for name, model in compared.items():
            adv = {r["eps"]: r["models"][name]["adv_centers"] for r in runs}
            probes.append(probe(model, name, primary[name]["references"], adv,
                                split_features(model, test_split).cpu(), test_split.labels, s.mean_split))
        seed_centers = []
        for seed in s.seeds:
            cks = primary if seed == s.seed else checkpoints(s, s.attacked(seed), device, seed)
            refs = {name: cks[name]["references"] for name in (model_name(*md) for md in s.attacked(seed))}
            centers = make_center_tables(s, eps_runs(s, device, seed), refs)["centers"]
            seed_centers.append(centers[centers.model.isin(list(compared))].assign(seed=seed))
        sweep_refs = {name: primary[name]["references"] for name in (model_name(*md) for md in s.sweep())}
        result = {"comparison": comparison, "probe": pd.concat(probes, ignore_index=True),
                  "sweep": tables.sweep_table(center_tables(s, device)["centers"], sweep_refs, s.mean_split),
                  "seed_centers": pd.concat(seed_centers, ignore_index=True),
                  "attack_check": attack_check(compared, test_split.subset(s.robust_samples).subset(CHECK_SAMPLES),
                                               s.robust_eps, s.robust_steps, s.robust_step_size, SOURCE, s.seed,
                                               s.precision)}
        for name in TABLES:
            tables.save_csv(result[name], task.file(f"{name}.csv"))
        verdict, evidence = claims.claim4(comparison, int(comparison.samples.iloc[0]), check=result["attack_check"])
        products.write_text(json.dumps({"verdict": verdict, "evidence": evidence}, ensure_ascii=False), task.output)
    claim = json.loads(task.output.read_text())
    return {**{name: pd.read_csv(task.file(f"{name}.csv")) for name in TABLES},
            "claim4": (claim["verdict"], claim["evidence"])}
