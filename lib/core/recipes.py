"""Each model as a recipe: its class centers, the targets it makes for every batch, the input it trains on and its
loss terms (STUDY.md §2–§3; the extension's C and D, §6).

The epoch loop (lib.core.train) reads a model's recipe and knows no model by name, so a new model is one more
declaration here and nothing else: its training's key covers the loop and its own recipe (the planner hashes each
recipe on its own, lib.pipeline.code.OPAQUE), so adding one retrains no other model. A recipe's `params` name the
TrainConfig fields it reads beyond the shared protocol; only those enter its training's key and its checkpoint's
check, so a parameter a model does not read never retrains it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from lib.core.attacks import inverse_adversary
from lib.core.data import Split
from lib.core.losses import AdversarialCenters, CenterLoss, pull
from lib.core.models import SmallCNN
from lib.core.precision import autocast
from lib.core.protocol import NUM_CLASSES, TrainConfig

# What every training reads, whatever its model: the network, the data, the optimizer, the schedule, the precision.
PROTOCOL_PARAMS = ("model", "feature_dim", "lr", "momentum", "weight_decay", "batch_size", "epochs", "dropout",
                   "train_samples", "test_samples", "seed", "precision")
INVERSE_PARAMS = ("train_eps", "train_steps", "train_step_size")  # the inverse adversaries made for every batch


@dataclass(frozen=True)
class Batch:
    """What a loss term may read: the network's outputs on the batch it trains on, the labels, the centers and the
    batch's targets (None where the recipe makes none)."""

    features: torch.Tensor  # fp32
    logits: torch.Tensor
    labels: torch.Tensor
    centers: CenterLoss
    targets: torch.Tensor | None
    model: SmallCNN  # in train mode: a term may run more of it, with gradient
    clean: torch.Tensor  # the clean batch (the trained one unless the recipe makes its `inputs`)


@dataclass(frozen=True)
class Term:
    """A loss term beside the cross-entropy: its value on a batch, weighted by the TrainConfig field `weight` (None:
    recorded every epoch, never trained on)."""

    name: str
    value: Callable[[Batch], torch.Tensor]
    weight: str | None


@dataclass(frozen=True)
class Monitor:
    """A measurement taken after every epoch beside the test accuracy, recorded in the history under `name`."""

    name: str
    value: Callable[[SmallCNN, Split, TrainConfig], float]  # (model in eval mode, the test split, config)


Maker = Callable[[SmallCNN, torch.Tensor, torch.Tensor, TrainConfig], torch.Tensor]  # (model, x, y, config) -> tensor


@dataclass(frozen=True)
class Recipe:
    """How one model trains: the epoch loop's only source of what differs between models."""

    model: str
    params: tuple[str, ...]  # TrainConfig fields it reads beyond PROTOCOL_PARAMS
    centers: Callable[[TrainConfig], CenterLoss]  # its class centers, fresh
    # "features": Wen et al.'s update from the trained batch's features after the step; "targets": from the batch's
    # targets before the step (the targets already count towards the centers they are pulled to)
    centers_from: str
    terms: tuple[Term, ...] = ()
    targets: Maker | None = None  # per-batch targets, made before the step without gradient (None: none)
    inputs: Maker | None = None  # the batch the network trains on, made from the clean one (None: the clean one)
    monitors: tuple[Monitor, ...] = ()

    def weight(self, term: Term, config: TrainConfig) -> float:
        """The weight `term` enters the loss with (0: recorded only)."""
        return 0.0 if term.weight is None else getattr(config, term.weight)


def wen_centers(config: TrainConfig) -> CenterLoss:
    """Wen et al.'s centers, moved by their own update rule (STUDY.md §3)."""
    return CenterLoss(NUM_CLASSES, config.feature_dim, config.center_alpha)


def adversarial_centers(config: TrainConfig) -> CenterLoss:
    """Model C's centers: the running mean of its inverse adversaries' features, per class."""
    return AdversarialCenters(NUM_CLASSES, config.feature_dim, config.ema_rate)


def inverse_features(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Features of the batch's inverse adversaries, in eval mode and without gradient: they are targets, as centers
    are, not a path for the loss to reach the network through."""
    x_inv = inverse_adversary(model, x, y, config.train_eps, config.train_step_size, config.train_steps,
                              config.precision)
    model.eval()
    with torch.no_grad(), autocast(config.precision, x.device):
        features = model.features(x_inv).float()
    model.train()
    return features


def to_center(batch: Batch) -> torch.Tensor:
    """The center loss: each feature pulled towards its class's center."""
    return batch.centers(batch.features, batch.labels)


def to_target(batch: Batch) -> torch.Tensor:
    """Each feature pulled towards its own sample's target (its inverse adversary's feature)."""
    return pull(batch.features, batch.targets)


# A: cross-entropy, tracking Wen et al.'s centers without training on them; B: + λ · center loss; C: + λ · center loss
# towards adversarial centers (the running mean of inverse adversaries' features); D: + λ · pull of each feature
# towards its own inverse adversary's. (How the report words each loss: lib.analysis.tables.LOSSES.)
A = Recipe("A", ("center_alpha",), wen_centers, "features", (Term("center_loss", to_center, None),))
B = Recipe("B", ("center_alpha", "center_weight"), wen_centers, "features",
           (Term("center_loss", to_center, "center_weight"),))
C = Recipe("C", (*INVERSE_PARAMS, "ema_rate", "center_weight"), adversarial_centers, "targets",
           (Term("center_loss", to_center, "center_weight"),), inverse_features)
D = Recipe("D", (*INVERSE_PARAMS, "center_alpha", "center_weight"), wen_centers, "features",
           (Term("center_loss", to_target, "center_weight"),), inverse_features)

RECIPES = {r.model: r for r in (A, B, C, D)}


def recipe(model: str) -> Recipe:
    """The recipe of `model`."""
    if model not in RECIPES:
        raise KeyError(f"no recipe for model {model!r}; recipes: {', '.join(RECIPES)} (lib/core/recipes.py)")
    return RECIPES[model]


def key_params(config: TrainConfig) -> dict:
    """The values a training of `config` depends on: the protocol and its recipe's own parameters."""
    values = config.to_dict()
    return {name: values[name] for name in (*PROTOCOL_PARAMS, *recipe(config.model).params)}
