"""AutoAttack (Croce & Hein, ICML 2020), the field's standard L∞ robustness evaluation, at its standard settings.

Two implementations, each stage by stage: each stage attacks only the images every stage before it (here: the
evaluation's PGD first) left correctly classified, and an image counts as robust only if it survives them all.

* `run`: the authors' own implementation (pyautoattack, version 'standard': APGD-CE, APGD-T with 9 targets, FAB-T
  with 9 targets, 100 iterations each, and Square with 5,000 queries), with its reliability checks collected as
  flags. Where its Square check fires (the black-box stage lowered the accuracy the gradient stages left: their
  gradients may mislead), the authors' advice follows: Square again, with more queries and restarts (FOLLOWUP).
  Its state is saved after every batch, so an interrupted run resumes where it stopped.
* `cascade`: a composition of torchattacks' own attacks (its `AutoAttack` class builds APGD with 10 iterations
  instead of 100), which the earlier AutoAttack steps used; the suite cross-checks the two per image.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torchattacks
from pyautoattack import AutoAttack, checks
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted
from torch import nn
from tqdm import tqdm

from lib.core import products
from lib.core.attacks import BATCH
from lib.core.data import Split, to_input
from lib.core.protocol import (AUTOATTACK_ITERATIONS as ITERATIONS, AUTOATTACK_QUERIES as QUERIES, FOLLOWUP_QUERIES,
                               FOLLOWUP_RESTARTS, NUM_CLASSES)

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


# Our stage names -> pyautoattack's, in the order of its standard version; FOLLOWUP runs after them where Square's
# check fires.
AUTHORS = dict(zip(STAGES, ("apgd-ce", "apgd-t", "fab-t", "square")))
FOLLOWUP = "Square, follow-up"
ATTACK_OF = {**AUTHORS, FOLLOWUP: "square"}  # the pyautoattack attack each stage runs
# The attacks a step's products keep per image: the stages and the follow-up, equal to Square where its check did not
# fire (`reported`), so AutoAttack's accuracy is always read after the follow-up.
REPORTED = (*STAGES, FOLLOWUP)
FOLLOWUP_SEED = 1  # added to the run's seed: the follow-up's random squares are not the first Square's again
# The follow-up costs ~15 s per image on one CPU core (20,000 queries): in batches of 64 its progress is saved every
# ~16 minutes rather than every hour, so an interrupted run loses little.
FOLLOWUP_BATCH = 64
# pyautoattack's reliability checks, named by what their messages say (pyautoattack.checks); SQUARE_CHECK triggers
# the follow-up.
SQUARE_CHECK = "Square lowered the accuracy"
CHECKS = {"randomized defense": "randomized output", "probability distribution": "probabilities, not logits",
          "dynamic defense": "dynamic defense", "target classes": "too many target classes",
          "zero gradient": "zero gradients", "Square Attack has decreased": SQUARE_CHECK}
LOGGER = "auto-attack"  # the logger pyautoattack's checks warn through


def check_name(message: str) -> str:
    """The check a pyautoattack warning comes from (its message itself where none is known)."""
    return next((name for phrase, name in CHECKS.items() if phrase in message), message)


class Flags(logging.Handler):
    """Keeps what pyautoattack's checks warn ({check: its first message}) instead of printing it."""

    def __init__(self, found: dict[str, str]):
        super().__init__(logging.WARNING)
        self.found = found

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.found.setdefault(check_name(message), message)


@contextmanager
def flags_into(found: dict[str, str]) -> Iterator[logging.Logger]:
    """Within the block, the checks' warnings go into `found` (not to stderr: a notebook would show them raw)."""
    logger = logging.getLogger(LOGGER)
    handler, propagate = Flags(found), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def adversary(model: nn.Module, eps: float, seed: int, device: torch.device | str, iterations: int = ITERATIONS,
              queries: int = QUERIES, restarts: int = 1) -> AutoAttack:
    """pyautoattack's AutoAttack, version 'standard', at radius ε; Square with `queries` and `restarts` (the
    follow-up's), and fewer `iterations` only to test the plumbing (the smoke profile)."""
    attack = AutoAttack(model, eps=eps, norm="Linf", version="standard", seed=seed, device=device)
    if iterations != ITERATIONS:  # its constructor fixes 100, and APGD derives its step-size checkpoints from it
        common = {"n_iter": iterations, "eps": eps, "norm": "Linf", "n_restarts": 1, "eot_iter": 1, "rho": .75,
                  "seed": seed, "device": device, "logger": attack.logger}
        attack.apgd = APGDAttack(model, **common)
        attack.apgd_targeted = APGDAttack_targeted(model, n_target_classes=NUM_CLASSES - 1, **common)
        attack.fab.n_iter = iterations
    attack.square.n_queries, attack.square.n_restarts = queries, restarts
    return attack


def attack_batch(attack: AutoAttack, stage: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One stage of the authors' AutoAttack on one batch (their loop, checks included): the adversarial inputs."""
    attack.attacks_to_run = [ATTACK_OF[stage]]
    x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=len(x))
    return x_adv


@dataclass
class Outcome:
    """What the authors' AutoAttack found on one model at one radius."""

    stages: dict[str, torch.Tensor]  # stage -> whether each image is still correct after it and every one before
    seconds: dict[str, float]  # stage -> the seconds it took (summed over interrupted runs)
    flags: dict[str, str]  # check -> its message, for each of pyautoattack's checks that fired


def fresh_state(eps: float, seed: int, robust: torch.Tensor, iterations: int, queries: int) -> dict:
    """The state of a run that has attacked nothing yet."""
    return {"eps": eps, "seed": seed, "start": robust.clone().cpu(), "iterations": iterations, "queries": queries,
            "stages": {}, "seconds": {}, "flags": {}, "still": robust.clone().cpu(),
            "stage": None, "todo": None, "done": 0}  # the stage under way, its images, how many of them are done


def resumed(path: Path | None, fresh: dict) -> dict:
    """The state saved at `path` when it is of the same run (radius, seed, starting images, settings), else `fresh`."""
    if path is None or not Path(path).exists():
        return fresh
    saved = products.load(path)
    same = all(saved.get(k) == fresh[k] for k in ("eps", "seed", "iterations", "queries")) \
        and torch.equal(saved.get("start", torch.empty(0)), fresh["start"])
    return saved if same else fresh


def run(model: nn.Module, split: Split, eps: float, robust: torch.Tensor, seed: int = 0, batch_size: int = BATCH,
        desc: str = "", iterations: int = ITERATIONS, queries: int = QUERIES, state: Path | None = None) -> Outcome:
    """The authors' AutoAttack, stage by stage from `robust` (bool per image: e.g. the outcome under the evaluation's
    PGD), with its checks, and the follow-up where Square's check fires. With `state`, progress is saved there after
    every batch and a run of the same values resumes from it."""
    if robust.shape != (len(split),):
        raise ValueError(f"robust must hold one outcome per image ({len(split)}), got shape {tuple(robust.shape)}")
    model.eval()
    device = next(model.parameters()).device
    now = resumed(state, fresh_state(eps, seed, robust, iterations, queries))
    with flags_into(now["flags"]) as logger:
        for stage in [*AUTHORS, FOLLOWUP]:
            if stage == FOLLOWUP and SQUARE_CHECK not in now["flags"]:
                break
            if stage not in now["stages"]:
                attack = adversary(model, eps, seed, device, iterations, queries) if stage != FOLLOWUP else adversary(
                    model, eps, seed + FOLLOWUP_SEED, device, iterations, FOLLOWUP_QUERIES, FOLLOWUP_RESTARTS)
                size = min(batch_size, FOLLOWUP_BATCH) if stage == FOLLOWUP else batch_size
                attack_stage(model, attack, stage, split, eps, now, size, desc, state)
            if stage == "Square":  # the authors' check on the accuracy after each stage, as their loop makes it
                checks.check_square_sr({"clean": robust.float().mean().item(), **{
                    AUTHORS[k]: v.float().mean().item() for k, v in now["stages"].items() if k in AUTHORS}},
                    logger=logger)
    return Outcome(dict(now["stages"]), dict(now["seconds"]), dict(now["flags"]))


def attack_stage(model: nn.Module, attack: AutoAttack, stage: str, split: Split, eps: float, now: dict,
                 batch_size: int, desc: str, state: Path | None) -> None:
    """Attack the images still robust with one stage, batch by batch from where `now` stopped, saving `now` to
    `state` after each batch; the stage's outcome goes into now['stages']."""
    if now.get("stage") != stage:  # the images it attacks are fixed when it starts, so a resumed stage takes the same
        now.update(stage=stage, todo=now["still"].nonzero().flatten(), done=0)
    device, todo = next(model.parameters()).device, now["todo"]
    bar = tqdm(total=len(todo), initial=now["done"], desc=f"{desc} {stage}".strip(), unit="image", leave=False,
               mininterval=2)
    for start in range(now["done"], len(todo), batch_size):
        began, index = time.perf_counter(), todo[start:start + batch_size]
        x, y = to_input(split.images[index]).to(device), split.labels[index].to(device)
        x_adv = attack_batch(attack, stage, x, y)
        if ((x_adv - x).abs().amax() > eps + 1e-6) or x_adv.min() < 0 or x_adv.max() > 1:
            raise RuntimeError(f"{stage} left the L∞ ball of radius {eps} or the pixel range")
        with torch.no_grad():
            now["still"][index] &= (model(x_adv).argmax(1) == y).cpu()
        now["done"] = start + len(index)
        now["seconds"][stage] = now["seconds"].get(stage, 0.0) + time.perf_counter() - began
        if state is not None:
            products.save(now, state)
        bar.update(len(index))
    bar.close()
    now["stages"][stage] = now["still"].clone()
    now["seconds"].setdefault(stage, 0.0)
    if state is not None:
        products.save(now, state)


def reported(found: Outcome) -> dict[str, torch.Tensor]:
    """The outcome per stage as the products keep it: every stage of REPORTED, the follow-up equal to Square where
    its check did not fire (nothing more was attempted, nothing more was found)."""
    return {**found.stages, FOLLOWUP: found.stages.get(FOLLOWUP, found.stages["Square"])}
