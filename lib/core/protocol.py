"""The training protocol's constants and TrainConfig, everything that determines a trained model (docs/study.md §2–§3).

The models themselves are declared in lib.core.recipes, each once; importing it registers their letters and the
hyperparameters they introduce here (`register`): TrainConfig checks a model's letter against them, and gains a field
for each declared hyperparameter, with its default and rule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lib.core.errors import ConfigError
from lib.core.precision import PRECISIONS
from lib.core.rules import (AT_LEAST_1, FIRST_N, FRACTION, NON_NEGATIVE, PIXEL_STEP, POSITIVE, RADIUS, RATE, SEED,
                             Hyperparameter, check_fields, check_reach, one_of, param)

NUM_CLASSES = 10
# AutoAttack's standard version (Croce & Hein 2020): APGD-CE, APGD-T and FAB-T iterations, Square's queries. Here
# rather than in lib.core.autoattack so that the planner reads them without importing torchattacks (≈ 1.5 s).
AUTOATTACK_ITERATIONS, AUTOATTACK_QUERIES = 100, 5000
# The authors' advice where AutoAttack's Square check fires ("consider running Square Attack with more iterations
# and restarts", pyautoattack's checks): Square again on the images still robust, with twice the queries and two
# restarts, from another seed: four times the standard Square's queries per image it cannot fool.
FOLLOWUP_QUERIES, FOLLOWUP_RESTARTS = 10_000, 2

# What the model declarations of lib.core.recipes register on import: each model's letter, in the order declared,
# and the hyperparameters they introduce beyond TrainConfig's fields (the ones several models share), by name.
DECLARED_MODELS: list[str] = []
DECLARED_PARAMETERS: dict[str, Hyperparameter] = {}
# How E–G make their training examples (lib.core.attacks): PGD with at_steps steps, FGSM with a random start, N-FGSM.
AT_METHODS = ("pgd", "fgsm-rs", "n-fgsm")

# λ for model B. Chosen by experiment (docs/log.md, "λ of model B"; reports/sweeps/lambda_sweep_*.csv): it makes the
# 200-d classes about 3x more compact at every training budget tried, at no cost in accuracy, while
# λ = 0.1 compacts more at convergence but costs 14 points of accuracy after one epoch.
DEFAULT_CENTER_WEIGHT = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; a checkpoint stores it whole. Values and their checks only: what a
    model computes from them is its recipe's (lib.core.recipes), which is why the planner keys a training by these
    values and its recipe's code, not by this class's code (lib.pipeline.code.OPAQUE)."""

    model: str = param("A")  # a letter of DECLARED_MODELS (checked in __post_init__: they are registered later)
    feature_dim: int = param(200, AT_LEAST_1)
    center_weight: float = param(DEFAULT_CENTER_WEIGHT, NON_NEGATIVE)  # λ of B, C and D (A tracks centers only)
    center_alpha: float = param(0.5, RATE, doc="α of Wen et al.'s center update")
    lr: float = param(0.01, POSITIVE, doc="SGD's learning rate, constant")
    momentum: float = param(0.9, FRACTION, doc="SGD's momentum")
    weight_decay: float = param(0.0, NON_NEGATIVE, doc="SGD's weight decay")
    batch_size: int = param(128, AT_LEAST_1, doc="images per training batch")
    epochs: int = param(25, AT_LEAST_1)
    dropout: float = param(0.5, FRACTION, doc="dropout in SmallCNN's classifier head (training only)")
    train_samples: int | None = param(None, FIRST_N)  # first N training images (None: all 60k)
    test_samples: int | None = param(None, FIRST_N)  # first N test images for evaluation (None: all 10k)
    seed: int = param(0, SEED)
    # models C and D only: the inverse adversaries made for every training batch, and C's EMA rate
    train_eps: float = param(0.1, RADIUS)
    # T = 2 inner PGD steps per batch: the adversarial centers of 2 and of 5 steps agree to cosine >= 0.9999, and
    # C trained with 2 steps matches 5 within 0.6 points of clean and PGD accuracy and 0.0004 of compactness on
    # both seeds tried, at 0.57x the arithmetic per batch (docs/log.md, "C and D's inner steps"; reports/sweeps/train_steps_sweep.csv).
    train_steps: int = param(2, AT_LEAST_1)
    train_step_size: float = param(0.125, PIXEL_STEP)  # 2.5·ε/T, Madry et al.'s rule, so the ball's boundary is reachable
    ema_rate: float = param(0.1, RATE)
    # models E–G only: the adversarial examples each batch trains on (MNIST's standard radius 0.3), and G's weight β
    at_eps: float = param(0.3, RADIUS)
    # PGD with five steps of 2.5·ε/5: at the paper protocol FGSM with a random start overfits catastrophically,
    # N-FGSM hardly starts learning and two steps fall short of the published robustness on one seed of two (84.6 %
    # under PGD-40 at ε 0.3), where five pass it (docs/log.md, "E's method"; reports/sweeps/adversarial_methods_*.csv)
    at_method: str = param("pgd", one_of(AT_METHODS))
    at_steps: int = param(5, AT_LEAST_1)  # PGD's steps (at_method "pgd"); the single-step methods take one
    align_weight: float = param(1.0, NON_NEGATIVE)
    precision: str = param("fp32", one_of(PRECISIONS))  # of the training steps (and C and D's inverse adversaries); lib/precision.py
    # ... and one field per hyperparameter a model declaration introduces (`register`)

    def __post_init__(self) -> None:
        if self.model not in DECLARED_MODELS:
            raise ConfigError(f"TrainConfig: model must be one of the declared models {tuple(DECLARED_MODELS)} "
                              f"(lib/core/recipes.py declares them), got {self.model!r}")
        check_fields(self)
        check_reach("TrainConfig", "train_steps", self.train_steps, "train_step_size", self.train_step_size,
                    "train_eps", self.train_eps)
        if self.at_method != "pgd" and self.at_steps != 1:  # it would be ignored: say so rather than key by it
            raise ConfigError(f"TrainConfig: at_steps={self.at_steps} applies to at_method='pgd' only; "
                              f"{self.at_method!r} takes one step: set at_steps=1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"TrainConfig: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


# What dataclasses generates for a frozen dataclass: removed before TrainConfig is made again with more fields.
GENERATED = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__match_args__",
             "__dataclass_fields__", "__dataclass_params__")


def register(models: list[str], hyperparameters: list[Hyperparameter]) -> tuple[str, ...]:
    """Register the declared models' letters and give TrainConfig a field for each hyperparameter they introduce
    (lib.core.recipes calls this once, on import); returns the letters. TrainConfig is made again in place, so that
    every module that imported it sees the new fields."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    new = []
    for h in hyperparameters:
        if h.name in fields and h.name not in DECLARED_PARAMETERS:
            raise ConfigError(f"hyperparameter {h.name!r} is a TrainConfig field already: name it in the recipe's "
                              "params instead of declaring it")
        if DECLARED_PARAMETERS.setdefault(h.name, h) != h:
            raise ConfigError(f"hyperparameter {h.name!r} is declared twice with different defaults or rules")
        if h.name not in fields:
            new.append(h)
    if new:
        for name in GENERATED:
            if name in vars(TrainConfig):
                delattr(TrainConfig, name)
        for name, f in fields.items():  # its fields as declared (defaults and rules), to be read again
            setattr(TrainConfig, name, f)
        for h in new:
            TrainConfig.__annotations__[h.name] = h.kind.__name__
            setattr(TrainConfig, h.name, param(h.default, h.rule))
        dataclass(frozen=True)(TrainConfig)
    DECLARED_MODELS[:] = models
    return tuple(models)



def model_name(model: str, feature_dim: int) -> str:
    """'A-200d' style name, shared by tasks, tables and figures."""
    return f"{model}-{feature_dim}d"
