"""The pipeline's steps as functions: each returns its product, loading it when it was made before
and making it now otherwise (inputs included, with progress bars).

The notebooks call these, so one opened in JupyterLab runs top to bottom without `make report`
having run first; under `make report` every input already exists and is only loaded.
"""
from __future__ import annotations

import json

import pandas as pd
import torch

from lib import pipeline, products, tables
from lib.config import COMPARED_MODELS, EPS_MODELS, Study, model_name
from lib.data import load_split
from lib.provenance import default_device, provenance

TABLES = ("centers", "samples", "attacks")  # step 03's CSVs; centers.csv is written last (the marker)
EXTENSION_TABLES = ("comparison", "probe", "sweep", "seed_centers")  # step 06's CSVs; claim4.json marks it done
REPRODUCTION = [model_name(m, d) for m, d in EPS_MODELS]  # the models of figures 2–3 and the claims


def checkpoint(s: Study, model: str, feature_dim: int, device: torch.device | None = None,
               seed: int | None = None) -> dict:
    """Step 01: the trained model's checkpoint (weights, centers, history, references)."""
    from lib.train import train_or_load

    task = pipeline.train_task(s, model, feature_dim, seed)
    return train_or_load(s.train_config(model, feature_dim, seed), task.output, load_split(True),
                         load_split(False), device or default_device())


def checkpoints(s: Study, models=None, device: torch.device | None = None, seed: int | None = None) -> dict[str, dict]:
    """{'A-200d': checkpoint, ...} of the given models (default: every model trained at `seed`)."""
    models = s.models(seed) if models is None else models
    return {model_name(m, d): checkpoint(s, m, d, device, seed) for m, d in models}


def eps_run(s: Study, eps: float, device: torch.device | None = None, seed: int | None = None) -> dict:
    """Step 02: inverse adversaries of the attack split at radius ε, for every model the ε runs attack."""
    from lib import inverse
    from lib.train import restore

    task = pipeline.eps_task(s, eps, seed)
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


def make_center_tables(s: Study, runs: list[dict], refs: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """The tidy tables of a set of ε runs (centers: model × ε × reference × class; samples; attacks)."""
    return {"centers": tables.centers_table(runs, refs, s.mean_split),
            "samples": tables.sample_table(runs, s.mean_split), "attacks": tables.attack_table(runs)}


def center_tables(s: Study, device: torch.device | None = None) -> dict[str, pd.DataFrame]:
    """Step 03: the tidy tables of the primary seed's ε runs, as CSV in the step's folder."""
    task = pipeline.task(s, "centers")
    if not task.output.exists():
        refs = {name: ck["references"] for name, ck in checkpoints(s, s.attacked(), device).items()}
        result = make_center_tables(s, eps_runs(s, device), refs)
        for name in reversed(TABLES):  # centers.csv, the step's product, last: it marks the step done
            tables.save_csv(result[name], task.folder / f"{name}.csv")
    # Always read back, so a fresh result and a loaded one are the same frames (dtypes, float text).
    return {name: pd.read_csv(task.folder / f"{name}.csv") for name in TABLES}


def evaluation(s: Study, seed: int | None = None, device: torch.device | None = None) -> pd.DataFrame:
    """Step 05: clean and robust accuracy and feature geometry of one seed's 200-d models A–D."""
    from lib.evaluation import evaluate
    from lib.train import restore

    task = pipeline.evaluate_task(s, seed)
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


def extension_tables(s: Study, device: torch.device | None = None) -> dict:
    """Step 06: the extension's tables (A–D over seeds, probe, dimension sweep, seed-wise centers) and
    the verdict on claim 4, as files in the step's folder."""
    from lib import claims
    from lib.centers import split_features
    from lib.probe import probe
    from lib.train import restore

    task = pipeline.task(s, "extension")
    if not task.output.exists():
        device = device or default_device()
        comparison = pd.concat([evaluation(s, seed, device) for seed in s.seeds], ignore_index=True)
        test_split = s.split("test")
        runs = eps_runs(s, device)
        primary = checkpoints(s, device=device)  # every model of the primary seed, loaded once
        compared = [model_name(*md) for md in COMPARED_MODELS]
        probes = []
        for name in compared:
            model = restore(primary[name], device)[0]
            adv = {r["eps"]: r["models"][name]["adv_centers"] for r in runs}
            probes.append(probe(model, name, primary[name]["references"], adv,
                                split_features(model, test_split).cpu(), test_split.labels, s.mean_split))
        seed_centers = []
        for seed in s.seeds:
            cks = primary if seed == s.seed else checkpoints(s, s.attacked(seed), device, seed)
            refs = {name: cks[name]["references"] for name in (model_name(*md) for md in s.attacked(seed))}
            centers = make_center_tables(s, eps_runs(s, device, seed), refs)["centers"]
            seed_centers.append(centers[centers.model.isin(compared)].assign(seed=seed))
        sweep_refs = {name: primary[name]["references"] for name in (model_name(*md) for md in s.sweep())}
        result = {"comparison": comparison, "probe": pd.concat(probes, ignore_index=True),
                  "sweep": tables.sweep_table(center_tables(s, device)["centers"], sweep_refs, s.mean_split),
                  "seed_centers": pd.concat(seed_centers, ignore_index=True)}
        for name in EXTENSION_TABLES:
            tables.save_csv(result[name], task.folder / f"{name}.csv")
        verdict, evidence = claims.claim4(comparison, int(comparison.samples.iloc[0]))
        products.write_text(json.dumps({"verdict": verdict, "evidence": evidence}, ensure_ascii=False), task.output)
    loaded = {name: pd.read_csv(task.folder / f"{name}.csv") for name in EXTENSION_TABLES}
    claim = json.loads(task.output.read_text())
    return {**loaded, "claim4": (claim["verdict"], claim["evidence"])}
