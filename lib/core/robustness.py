"""Does a model's accuracy under the evaluation's PGD survive stronger attacks?

A defence can look robust because its gradients mislead PGD (gradient masking, e.g. a saturated softmax) rather
than because nearby adversarial inputs do not exist. The standard checks (Carlini et al. 2019, "On Evaluating
Adversarial Robustness"; Athalye et al. 2018) are run here on the same test images as the evaluation's attack:
many more steps, another loss (the logit margin of Carlini & Wagner, which does not saturate where cross-entropy
does), and a transfer attack from another model (black-box: if it beats the white-box attack, the gradients are
masked). An image counts as robust only if it survives every attack ("all attacks").
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lib.core.attacks import ASCEND, BATCH, pgd, pgd_attack
from lib.core.data import Split, batches
from lib.core.evaluation import robust_correct

LONGER = 5  # the long attack makes this many times the evaluation's steps (40 → 200 at the paper protocol)
ALL = "all attacks"
EVALUATIONS = "(the evaluation's)"  # marks the evaluation's own attack among the check's rows


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, the best other logit minus the true one: positive exactly when the image is misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def margin_objective(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The margin summed over the batch, in fp32 (under bf16 autocast the logits arrive in bf16)."""
    return margin_loss(logits.float(), y).sum()


def margin_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float, steps: int,
               generator: torch.Generator | None = None, precision: str = "fp32") -> torch.Tensor:
    """PGD ascending the logit margin (random start, signed steps, projection onto B∞(x, ε) ∩ [0, 1]), eval mode."""
    return pgd(model, x, y, eps, step_size, steps, direction=ASCEND, random_start=True, generator=generator,
               precision=precision, loss=margin_objective)


def attack_check(models: dict[str, nn.Module], split: Split, eps: tuple[float, ...], steps: int, step_size: float,
                 source: str, seed: int = 0, precision: str = "fp32", batch_size: int = BATCH,
                 evaluated: dict[str, dict[float, torch.Tensor]] | None = None) -> pd.DataFrame:
    """Accuracy of each model under each attack at each ε > 0 (one row per model × ε × attack): the evaluation's
    PGD, the same with LONGER times the steps, PGD on the margin, the evaluation's PGD made on `source` and
    transferred, and the per-image worst of them (ALL). Every attack is seeded; predictions are fp32.

    `evaluated` holds the evaluation's own outcome per image ({model: {ε: bool per image of `split`}}), kept by
    the evaluation step so that its attack is not made again here; without it, it is made here as the evaluation
    makes it (lib.core.evaluation.robust_correct)."""
    if source not in models:
        raise ValueError(f"source must be one of the models {sorted(models)}, got {source!r}")
    for model in models.values():
        model.eval()
    device = next(next(iter(models.values())).parameters()).device
    names = {"pgd": f"PGD, {steps} steps {EVALUATIONS}", "long": f"PGD, {LONGER * steps} steps",
             "margin": f"PGD on the margin, {steps} steps", "transfer": f"transferred from {source}"}
    rows = []
    for e in (e for e in eps if e > 0):
        own = {m: evaluated[m][e][:len(split)] if evaluated else
               robust_correct(model, split, e, steps, step_size, seed, batch_size, precision=precision)
               for m, model in models.items()}
        if any(len(c) != len(split) for c in own.values()):
            raise ValueError(f"evaluated must hold an outcome for each of the {len(split)} images at ε={e:g}")
        survived = {m: {k: [] for k in names if k != "pgd"} for m in models}
        n_batches = -(-len(split) // batch_size)
        for x, y in tqdm(batches(split, batch_size), total=n_batches, desc=f"attack check ε={e:g}", leave=False,
                         mininterval=2):
            x, y = x.to(device), y.to(device)
            make = lambda fn, m, s, n=steps: fn(models[m], x, y, e, step_size, n, generator=torch.Generator(
                device=x.device).manual_seed(s), precision=precision)
            transferred = make(pgd_attack, source, seed)
            for m, model in models.items():
                adversaries = {"long": make(pgd_attack, m, seed + 1, LONGER * steps),
                               "margin": make(margin_pgd, m, seed + 2), "transfer": transferred}
                with torch.no_grad():
                    for k, x_adv in adversaries.items():
                        survived[m][k].append((model(x_adv).argmax(1) == y).cpu())
        for m in models:
            correct = {"pgd": own[m].cpu(), **{k: torch.cat(v) for k, v in survived[m].items()}}
            worst = torch.stack(list(correct.values())).all(0)
            rows += [{"model": m, "eps": e, "attack": names[k], "accuracy": c.float().mean().item()}
                     for k, c in correct.items()]
            rows.append({"model": m, "eps": e, "attack": ALL, "accuracy": worst.float().mean().item()})
    return pd.DataFrame(rows).assign(samples=len(split))
