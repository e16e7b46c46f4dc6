"""AutoAttack (Croce & Hein, ICML 2020), the field's standard L∞ robustness evaluation, at its standard settings.

Composed from torchattacks' own attacks rather than its `AutoAttack` class, which builds APGD with 10 iterations
instead of the original 100: APGD on the cross-entropy and the targeted APGD on the DLR loss (100 iterations, their
own adaptive step size; 9 target classes), FAB-T (9 targets) and Square (5,000 queries). As in the original, each
stage attacks only the images every stage before it (here: the evaluation's PGD first) left correctly classified,
and an image counts as robust only if it survives them all.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torchattacks
from torch import nn
from tqdm import tqdm

from lib.core.attacks import BATCH
from lib.core.data import Split, to_input
from lib.core.protocol import AUTOATTACK_ITERATIONS as ITERATIONS, AUTOATTACK_QUERIES as QUERIES, NUM_CLASSES

STAGES = ("APGD-CE", "APGD-T", "FAB-T", "Square")


def stages(model: nn.Module, eps: float, seed: int = 0, iterations: int = ITERATIONS,
           queries: int = QUERIES) -> dict[str, torchattacks.Attack]:
    """The four attacks of AutoAttack's standard version, in order, at radius ε (fewer `iterations` and `queries`
    only to test the plumbing: the smoke profile)."""
    common = {"norm": "Linf", "eps": eps, "seed": seed}
    return {
        "APGD-CE": torchattacks.APGD(model, steps=iterations, n_restarts=1, loss="ce", **common),
        "APGD-T": torchattacks.APGDT(model, steps=iterations, n_restarts=1, n_classes=NUM_CLASSES, **common),
        "FAB-T": torchattacks.FAB(model, steps=iterations, n_restarts=1, multi_targeted=True, n_classes=NUM_CLASSES,
                                  **common),
        "Square": torchattacks.Square(model, n_queries=queries, n_restarts=1, **common),
    }


def cascade(model: nn.Module, split: Split, eps: float, robust: torch.Tensor, seed: int = 0,
            batch_size: int = BATCH, desc: str = "", iterations: int = ITERATIONS,
            queries: int = QUERIES) -> Iterator[tuple[str, torch.Tensor]]:
    """Stage by stage, (stage, whether each image is still correctly classified after it and every stage before
    it), starting from `robust` (bool per image: e.g. the outcome under the evaluation's PGD). Images already fooled
    are not attacked again; each stage is yielded as soon as it is done (a caller may time it)."""
    if robust.shape != (len(split),):
        raise ValueError(f"robust must hold one outcome per image ({len(split)}), got shape {tuple(robust.shape)}")
    model.eval()
    device = next(model.parameters()).device
    still = robust.clone().cpu()
    for name, attack in stages(model, eps, seed, iterations, queries).items():
        todo = still.nonzero().flatten()
        for start in tqdm(range(0, len(todo), batch_size), desc=f"{desc} {name}".strip(), leave=False, mininterval=2):
            index = todo[start:start + batch_size]
            x, y = to_input(split.images[index]).to(device), split.labels[index].to(device)
            x_adv = attack(x, y)
            if ((x_adv - x).abs().amax() > eps + 1e-6) or x_adv.min() < 0 or x_adv.max() > 1:
                raise RuntimeError(f"{name} left the L∞ ball of radius {eps} or the pixel range")
            with torch.no_grad():
                still[index] &= (model(x_adv).argmax(1) == y).cpu()
        yield name, still.clone()


def autoattack(model: nn.Module, split: Split, eps: float, robust: torch.Tensor, seed: int = 0,
               batch_size: int = BATCH, desc: str = "", iterations: int = ITERATIONS,
               queries: int = QUERIES) -> dict[str, torch.Tensor]:
    """Per stage, whether each image is still correctly classified after it and every stage before it ({stage: bool
    per image}), starting from `robust` (see `cascade`)."""
    return dict(cascade(model, split, eps, robust, seed, batch_size, desc, iterations, queries))
