"""Tidy tables (one row per observation) built from the pipeline's products."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from lib.core.centers import REFERENCES, compare, cosine
from lib.core.products import atomic_path, write_bytes, write_text
from lib.core.protocol import model_name
from lib.core.recipes import loss_text


def reference_key(name: str, mean_split: str) -> str:
    """Where reference `name` (feature_mean / weight / center) is stored: feature means per split."""
    if name not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {name!r}")
    return f"feature_mean_{mean_split}" if name == "feature_mean" else name


def reference(refs: dict[str, torch.Tensor], name: str, mean_split: str) -> torch.Tensor:
    """The [C, D] reference `name` of one model."""
    return refs[reference_key(name, mean_split)]


def centers_table(eps_runs: list[dict], refs: dict[str, dict], mean_split: str) -> pd.DataFrame:
    """Cosine and MSE of adversarial centers vs each reference: model × ε × reference × class."""
    rows = []
    for run in eps_runs:
        for model, summary in run["models"].items():
            for name in REFERENCES:
                ref = reference(refs[model], name, mean_split)
                metrics = compare(summary["adv_centers"], ref)
                scale = ref.pow(2).mean(dim=1)  # so an MSE can be read relative to the reference's size
                for c, (cos, err, sq) in enumerate(zip(metrics["cosine"].tolist(), metrics["mse"].tolist(),
                                                       scale.tolist())):
                    rows.append({"model": model, "eps": run["eps"], "reference": name, "class": c,
                                 "cosine": cos, "mse": err, "relative_mse": err / sq if sq > 0 else float("nan")})
    return pd.DataFrame(rows).sort_values(["model", "reference", "eps", "class"], ignore_index=True)


def class_average(centers: pd.DataFrame) -> pd.DataFrame:
    """Mean (and std over classes) of cosine and (relative) MSE per model × reference × ε."""
    grouped = centers.groupby(["model", "reference", "eps"])[["cosine", "mse", "relative_mse"]]
    out = grouped.mean().join(grouped.std().add_suffix("_std"))
    return out.reset_index()


def sweep_table(centers: pd.DataFrame, refs: dict[str, dict], mean_split: str) -> pd.DataFrame:
    """The dimension sweep: class-averaged cosine of adversarial centers to each reference per model × ε,
    plus the clean alignment of feature means with weight vectors (reference 'mean_vs_weight', no ε)."""

    averages = class_average(centers[centers.model.isin(refs)])[["model", "reference", "eps", "cosine"]]
    clean = pd.DataFrame([{"model": name, "reference": "mean_vs_weight", "eps": float("nan"),
                           "cosine": cosine(reference(r, "feature_mean", mean_split), r["weight"]).mean().item()}
                          for name, r in refs.items()])
    table = pd.concat([averages, clean], ignore_index=True)
    table.insert(1, "loss", table.model.str[0])
    table.insert(2, "feature_dim", table.model.str.extract(r"-(\d+)d$", expand=False).astype(int))
    return table.sort_values(["loss", "feature_dim", "reference", "eps"], ignore_index=True)


def across_seeds(table: pd.DataFrame, by: list[str], values: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds (std is NaN with one seed), with the number of seeds."""
    grouped = table.groupby(by)[values]
    out = grouped.mean().join(grouped.std().add_suffix("_std")).join(table.groupby(by).seed.nunique().rename("seeds"))
    return out.reset_index()


def class_average_per_seed(centers: pd.DataFrame) -> pd.DataFrame:
    """Class averages of a centers table with a seed column, one set per seed (with its seed)."""
    return pd.concat([class_average(group).assign(seed=seed) for seed, group in centers.groupby("seed")])


def seed_class_average(centers: pd.DataFrame) -> pd.DataFrame:
    """Class averages of a centers table with a seed column, then their mean ± std over seeds."""
    return across_seeds(class_average_per_seed(centers), ["model", "reference", "eps"], ["cosine", "mse", "relative_mse"])


def mean_std_text(summary: pd.DataFrame, values: list[str], scale: float = 1.0, digits: int = 2) -> pd.DataFrame:
    """'mean ± std' text per value column of an across_seeds table ('mean' alone with one seed)."""
    out = summary.drop(columns=[c for v in values for c in (v, f"{v}_std")]).copy()
    for v in values:
        mean, std = summary[v] * scale, summary[f"{v}_std"] * scale
        out[v] = [f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}") for m, s in zip(mean, std)]
    return out


GEOMETRY = ("compactness", "alignment", "nc3")  # the evaluation's feature-geometry columns


def without(table: pd.DataFrame, skipped: dict[str, list[int]]) -> pd.DataFrame:
    """A table of rows per model and seed without the seeds `skipped` per model (collapsed trainings)."""
    keep = [seed not in skipped.get(model, []) for model, seed in zip(table.model, table.seed)]
    return table[keep].reset_index(drop=True)


def comparison_text(comparison: pd.DataFrame, skipped: dict[str, list[int]] | None = None) -> dict[str, pd.DataFrame]:
    """The A–G table as 'mean ± std over seeds' text: accuracies (%; under PGD and, where present, AutoAttack),
    feature geometry, seconds per epoch. A seed in `skipped` (a collapsed training: an outcome of its own, not a
    draw of the same distribution) is left out of its model's mean and std and shown beside them."""
    skipped = skipped or {}
    accuracies = [c for c in comparison.columns if c == "clean_acc" or c.startswith(("robust_acc@", "autoattack_acc@"))]
    summary = across_seeds(without(comparison, skipped), ["model"], [*accuracies, *GEOMETRY, "epoch_seconds"])
    columns = lambda values: [f"{v}{suffix}" for v in values for suffix in ("", "_std")]
    accuracy = mean_std_text(summary[["model", "seeds", *columns(accuracies)]], accuracies, scale=100)
    if any(skipped.values()):
        left = lambda model: comparison[(comparison.model == model) & comparison.seed.isin(skipped.get(model, []))]
        accuracy["collapsed, left out"] = [
            "; ".join(f"seed {int(r['seed'])}: " + ", ".join(f"{100 * r[c]:.1f} %" for c in accuracies)
                      for _, r in left(model).iterrows()) for model in accuracy.model]
    return {"accuracy": accuracy,
            "geometry": mean_std_text(summary[["model", *columns(GEOMETRY)]], list(GEOMETRY), digits=3),
            "time": mean_std_text(summary[["model", *columns(["epoch_seconds"])]], ["epoch_seconds"], digits=1)}


def sample_table(eps_runs: list[dict], mean_split: str) -> pd.DataFrame:
    """Sample-level variant: mean over samples of cos(f(x̌_i), reference_{y_i})."""
    rows = []
    for run in eps_runs:
        for model, summary in run["models"].items():
            for name in REFERENCES:
                rows.append({"model": model, "eps": run["eps"], "reference": name,
                             "sample_cosine": summary["sample_cosine"][reference_key(name, mean_split)].mean().item()})
    return pd.DataFrame(rows).sort_values(["model", "reference", "eps"], ignore_index=True)


def accuracy_table(checkpoints: list[dict]) -> pd.DataFrame:
    """Final test accuracy and training cost per model."""
    rows = []
    for ck in checkpoints:
        c, last = ck["config"], ck["history"][-1]
        loss = loss_text(c)
        rows.append({"model": model_name(c["model"], c["feature_dim"]), "loss": loss,
                     "epochs": c["epochs"], "test_acc": last["test_acc"],
                     "train_acc_running": last["train_acc_running"],
                     "train_seconds": sum(e["seconds"] for e in ck["history"]),
                     "device": ck["provenance"]["device"]})
    return pd.DataFrame(rows)


def history_table(checkpoints: list[dict]) -> pd.DataFrame:
    """Per-epoch metrics of every model, long format."""
    return pd.DataFrame([{"model": model_name(ck["config"]["model"], ck["config"]["feature_dim"]), **epoch}
                         for ck in checkpoints for epoch in ck["history"]])


def save_csv(table: pd.DataFrame, path) -> None:
    """A table as CSV, written atomically."""
    write_text(table.to_csv(index=False), path)


def export(csv_files: list, folder) -> list:
    """Copy tidy CSV tables into `folder`, each also as Parquet when pyarrow is installed."""
    try:
        import pyarrow  # noqa: F401  (optional: Parquet is a convenience, CSV is the reference)
    except ImportError:
        pyarrow = None
    written = []
    for csv in map(Path, csv_files):
        write_bytes(csv.read_bytes(), Path(folder) / csv.name)
        written.append(Path(folder) / csv.name)
        if pyarrow is not None:
            with atomic_path(Path(folder) / f"{csv.stem}.parquet") as tmp:
                pd.read_csv(csv).to_parquet(tmp, index=False)
            written.append(Path(folder) / f"{csv.stem}.parquet")
    return written
