"""One ε run: inverse adversaries of a split for each model, and what they do (docs/study.md §3)."""
from __future__ import annotations

import time

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from lib.core.attacks import BATCH, inverse_adversary
from lib.core.centers import class_means, cosine
from lib.core.data import Split, to_input
from lib.core.finite import NON_FINITE_MODEL, check_finite
from lib.core.models import SmallCNN

N_EXAMPLES = 8  # digits kept for the example grid


@torch.no_grad()
def describe(model: SmallCNN, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample features, loss, confidence in the true class and prediction, in eval mode."""
    features = model.features(x)
    logits = model.classify(features)
    return {"features": features, "loss": F.cross_entropy(logits, y, reduction="none"),
            "confidence": logits.softmax(1).gather(1, y[:, None]).squeeze(1), "prediction": logits.argmax(1)}


def run_model(model: SmallCNN, split: Split, eps: float, step_size: float, steps: int,
              batch_size: int = BATCH, desc: str = "", precision: str = "fp32") -> dict[str, torch.Tensor]:
    """Inverse adversaries of every sample of `split` (batched), with per-sample statistics: the PGD steps
    in `precision`, the features and statistics in fp32."""
    model.eval()
    device = next(model.parameters()).device
    parts = []
    for start in tqdm(range(0, len(split), batch_size), desc=desc, leave=False, mininterval=2):
        x = to_input(split.images[start:start + batch_size]).to(device)
        y = split.labels[start:start + batch_size].to(device)
        x_adv = inverse_adversary(model, x, y, eps, step_size, steps, precision)
        clean, adv = describe(model, x, y), describe(model, x_adv, y)
        parts.append({
            "clean_features": clean["features"], "adv_features": adv["features"],
            "loss_before": clean["loss"], "loss_after": adv["loss"],
            "confidence_before": clean["confidence"], "confidence_after": adv["confidence"],
            "changed": clean["prediction"] != adv["prediction"],
            "correct_after": adv["prediction"] == y,
            "linf": (x_adv - x).abs().flatten(1).amax(1),
        })
        if start == 0:
            examples = {"clean": x[:N_EXAMPLES].cpu(), "adversarial": x_adv[:N_EXAMPLES].cpu(),
                        "labels": y[:N_EXAMPLES].cpu()}
    merged = {k: torch.cat([p[k] for p in parts]).cpu() for k in parts[0]}
    return {**merged, "examples": examples}


def summarise(per_sample: dict, labels: torch.Tensor, references: dict) -> dict:
    """What the ε run keeps: adversarial and clean class centers, sample-level cosines (against every
    reference, feature means of both splits included), per-sample statistics."""
    adv = per_sample["adv_features"]
    return {
        "adv_centers": class_means(adv, labels),
        "clean_centers": class_means(per_sample["clean_features"], labels),
        "sample_cosine": {name: cosine(adv, reference[labels]) for name, reference in references.items()},
        **{k: v for k, v in per_sample.items() if k not in ("adv_features", "clean_features")},
    }


def run(models: dict[str, tuple[SmallCNN, dict]], split: Split, eps: float, step_size: float,
        steps: int, precision: str = "fp32") -> dict:
    """The ε run for every model: {model name: summary} plus the labels and the timing."""
    result = {"eps": eps, "labels": split.labels.clone(), "models": {}}
    for name, (model, refs) in models.items():
        start = time.perf_counter()
        per_sample = run_model(model, split, eps, step_size, steps, desc=f"ε={eps:g} {name}", precision=precision)
        check_finite(f"ε run ε={eps:g} of {name}", NON_FINITE_MODEL, features=per_sample["clean_features"],
                     **{"inverse adversaries' features": per_sample["adv_features"]}, loss=per_sample["loss_after"])
        summary = summarise(per_sample, split.labels, refs)
        summary["seconds"] = time.perf_counter() - start
        result["models"][name] = summary
    return result


def attack_table(eps_runs: list[dict]) -> pd.DataFrame:
    """What the inverse adversaries did, per model × ε (means over samples)."""
    rows = []
    for run in eps_runs:
        for model, s in run["models"].items():
            rows.append({
                "model": model, "eps": run["eps"], "samples": len(s["loss_before"]),
                "loss_before": s["loss_before"].mean().item(), "loss_after": s["loss_after"].mean().item(),
                "confidence_before": s["confidence_before"].mean().item(),
                "confidence_after": s["confidence_after"].mean().item(),
                "prediction_changed": s["changed"].float().mean().item(),
                "accuracy_after": s["correct_after"].float().mean().item(),
                "linf_mean": s["linf"].mean().item(), "linf_max": s["linf"].max().item(),
                "seconds": s["seconds"],
            })
    return pd.DataFrame(rows).sort_values(["model", "eps"], ignore_index=True)
