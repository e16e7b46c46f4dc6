"""The protocol's defaults in one place (STUDY.md §2–§3); everything else reads them from here."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lib.errors import ConfigError
from lib.precision import PRECISIONS, resolve as resolve_precision

ROOT = Path(__file__).resolve().parent.parent
NUM_CLASSES = 10

# Where MNIST lives (torchvision layout: <DATA_DIR>/MNIST/raw/*-ubyte). A user who already has
# torchvision's MNIST points INVADV_DATA at its parent folder.
DATA_DIR = Path(os.environ.get("INVADV_DATA", ROOT / "data"))

# A: cross-entropy; B: + λ·center loss (Wen et al.'s centers); extension (STUDY.md §6): C: + λ·center loss
# whose centers are adversarial centers (EMA of inverse adversaries' features); D: + λ·pull of each feature
# towards its own inverse adversary's feature.
MODELS = ("A", "B", "C", "D")
INVERSE_MODELS = ("C", "D")  # the models that make inverse adversaries while training
SWEEP_MODELS = ("A", "B")  # the models of the feature-dimension sweep

# λ for model B. Chosen by experiment (README, "Choosing λ"; reports/lambda_sweep_*.csv): it makes the
# 200-d classes about 3x more compact at every training budget tried, at no cost in accuracy, while
# λ = 0.1 compacts more at convergence but costs 14 points of accuracy after one epoch.
DEFAULT_CENTER_WEIGHT = 0.01


def optional_count(name: str, n) -> tuple[bool, str]:
    """Check of a 'first N samples' parameter: None (all) or an integer >= 10."""
    ok = n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 10)
    return ok, f"{name} must be None (all) or an integer >= 10, got {n!r}"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; a checkpoint stores it whole."""

    model: str = "A"
    feature_dim: int = 200
    center_weight: float = DEFAULT_CENTER_WEIGHT  # λ; used by model B only (A tracks centers, λ=0)
    center_alpha: float = 0.5  # α of Wen et al.'s center update
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 25
    dropout: float = 0.5
    train_samples: int | None = None  # first N training images (None: all 60k)
    test_samples: int | None = None  # first N test images for evaluation (None: all 10k)
    seed: int = 0
    # models C and D only: the inverse adversaries made for every training batch, and C's EMA rate
    train_eps: float = 0.1
    # T = 2 inner PGD steps per batch: the adversarial centers of 2 and of 5 steps agree to cosine >= 0.9999, and
    # C trained with 2 steps matches 5 within 0.6 points of clean and PGD accuracy and 0.0004 of compactness on
    # both seeds tried, at 0.57x the arithmetic per batch (README, "Defaults of C and D"; reports/train_steps_sweep.csv).
    train_steps: int = 2
    train_step_size: float = 0.125  # 2.5·ε/T, Madry et al.'s rule, so the ball's boundary is reachable
    ema_rate: float = 0.1
    precision: str = "fp32"  # of the training steps (and C and D's inverse adversaries); lib/precision.py

    def __post_init__(self) -> None:
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}"),
            (isinstance(self.feature_dim, int) and self.feature_dim >= 1,
             f"feature_dim must be an integer >= 1, got {self.feature_dim!r}"),
            (self.center_weight >= 0, f"center_weight (λ) must be >= 0, got {self.center_weight!r}"),
            (0 < self.center_alpha <= 1, f"center_alpha must be in (0, 1], got {self.center_alpha!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr!r}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum!r}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay!r}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be an integer >= 1, got {self.batch_size!r}"),
            (isinstance(self.epochs, int) and self.epochs >= 1,
             f"epochs must be an integer >= 1, got {self.epochs!r}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout!r}"),
            optional_count("train_samples", self.train_samples),
            optional_count("test_samples", self.test_samples),
            (isinstance(self.seed, int) and not isinstance(self.seed, bool),
             f"seed must be an integer, got {self.seed!r}"),
            (0 <= self.train_eps <= 1, f"train_eps must be in [0, 1], got {self.train_eps!r}"),
            (isinstance(self.train_steps, int) and self.train_steps >= 1,
             f"train_steps must be an integer >= 1, got {self.train_steps!r}"),
            (self.train_step_size > 0, f"train_step_size must be > 0, got {self.train_step_size!r}"),
            (0 < self.ema_rate <= 1, f"ema_rate must be in (0, 1], got {self.ema_rate!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"TrainConfig: {message}")

    @property
    def loss_weight(self) -> float:
        """λ actually applied to the center loss: model A only tracks centers."""
        return 0.0 if self.model == "A" else self.center_weight

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"TrainConfig: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


REFERENCES = ("feature_mean", "weight", "center")  # what adversarial centers are compared with
SPLITS = ("train", "test")

# The three profiles. `paper` is the protocol of STUDY.md §2; `quick` previews the same pipeline in
# about 10 minutes on a 2-core CPU; `smoke` exercises every step in about a minute (tests).
PROFILES: dict[str, dict] = {
    "paper": {},
    "quick": {"epochs": 2, "train_samples": 30000, "test_samples": 2000, "attack_samples": 300,
              "extra_seeds": (), "robust_samples": 500},
    "smoke": {"epochs": 2, "train_samples": 4000, "test_samples": 500, "attack_samples": 100,
              "eps": (0.0, 0.1, 0.3), "steps": 10, "step_size": 0.03,
              "extra_seeds": (), "sweep_dims": (2, 200), "train_steps": 1, "train_step_size": 0.1,
              "robust_eps": (0.1, 0.3), "robust_steps": 10, "robust_step_size": 0.03, "robust_samples": 100,
              "precision": "fp32"},  # the regression check's references are fp32 (tests/regression.py)
}


@dataclass(frozen=True)
class Study:
    """All parameters of one run of the study: a profile's values plus any overrides."""

    profile: str = "paper"
    # training (STUDY.md §2)
    epochs: int = 25
    train_samples: int | None = None  # first N training images (None: all 60k)
    test_samples: int | None = None  # first N test images, everywhere the test split is used (None: all)
    center_weight: float = DEFAULT_CENTER_WEIGHT  # λ of model B at feature_dim 200
    center_weight_2d: float = 0.01  # λ of model B at feature_dim 2 (Wen et al.'s MNIST toy)
    seed: int = 0
    # inverse adversaries (STUDY.md §3): T·α' = 0.4 >= the largest ε
    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    steps: int = 40
    step_size: float = 0.01
    attack_samples: int | None = None  # first N images of attack_split (None: all)
    attack_split: str = "test"
    mean_split: str = "train"  # split the feature means are computed on
    # the extension (STUDY.md §6); extended=False leaves it out
    extended: bool = True
    extra_seeds: tuple[int, ...] = (1, 2)  # besides `seed`: A–D at 200-d again, for mean ± std
    sweep_dims: tuple[int, ...] = (2, 16, 64, 200)  # feature dimensions of A and B in the sweep
    train_eps: float = TrainConfig.train_eps  # models C and D: inverse adversaries while training
    train_steps: int = TrainConfig.train_steps
    train_step_size: float = TrainConfig.train_step_size
    ema_rate: float = TrainConfig.ema_rate  # model C: rate of the adversarial centers' running mean
    robust_eps: tuple[float, ...] = (0.1, 0.2, 0.3)  # the standard MNIST PGD evaluation (TRADES, Madry)
    robust_steps: int = 40
    robust_step_size: float = 0.01
    robust_samples: int | None = None  # first N test images under attack (None: all)
    # fp32, or bf16 autocast for training and PGD steps; 'auto' picks bf16 where the hardware has it
    # natively and is resolved here, so products are keyed by the precision that actually ran. bf16 moves
    # the paper protocol's numbers less than a change of seed does (README, reports/fidelity_paper.csv).
    precision: str = "auto"

    def __post_init__(self) -> None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        object.__setattr__(self, "precision", resolve_precision(self.precision, device_type))
        eps = tuple(float(e) for e in self.eps)
        object.__setattr__(self, "eps", eps)
        object.__setattr__(self, "robust_eps", tuple(float(e) for e in self.robust_eps))
        checks = [
            (self.profile in PROFILES, f"profile must be one of {sorted(PROFILES)}, got {self.profile!r}"),
            (len(eps) >= 1, "eps must list at least one value"),
            (all(0 <= e <= 1 for e in eps), f"every eps must lie in [0, 1], got {eps}"),
            (len(set(eps)) == len(eps), f"eps has duplicates: {eps}"),
            (isinstance(self.steps, int) and self.steps >= 1, f"steps must be an integer >= 1, got {self.steps!r}"),
            (self.step_size > 0, f"step_size must be > 0, got {self.step_size!r}"),
            optional_count("attack_samples", self.attack_samples),
            (self.attack_split in SPLITS, f"attack_split must be one of {SPLITS}, got {self.attack_split!r}"),
            (self.mean_split in SPLITS, f"mean_split must be one of {SPLITS}, got {self.mean_split!r}"),
            (self.center_weight_2d >= 0, f"center_weight_2d must be >= 0, got {self.center_weight_2d!r}"),
            (isinstance(self.extended, bool), f"extended must be true or false, got {self.extended!r}"),
            # The extra seeds only exist in the extension: `SET="seed=1 extended=0"` needs no other change.
            (all(isinstance(v, int) for v in self.extra_seeds) and len(set(self.extra_seeds)) == len(self.extra_seeds)
             and (self.seed not in self.extra_seeds or not self.extended),
             f"extra_seeds must be distinct integers other than seed={self.seed}, got {self.extra_seeds}; e.g. "
             f"extra_seeds={','.join(str(v) for v in range(self.seed + 1, self.seed + 1 + len(self.extra_seeds)))}"),
            (len(self.sweep_dims) >= 1 and all(isinstance(d, int) and d >= 1 for d in self.sweep_dims)
             and len(set(self.sweep_dims)) == len(self.sweep_dims),
             f"sweep_dims must be distinct integers >= 1, got {self.sweep_dims}"),
            (len(self.robust_eps) >= 1 and all(0 <= e <= 1 for e in self.robust_eps),
             f"robust_eps must list values in [0, 1], got {self.robust_eps}"),
            (isinstance(self.robust_steps, int) and self.robust_steps >= 1,
             f"robust_steps must be an integer >= 1, got {self.robust_steps!r}"),
            (self.robust_step_size > 0, f"robust_step_size must be > 0, got {self.robust_step_size!r}"),
            optional_count("robust_samples", self.robust_samples),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Study: {message}")
        self.train_config("B", 200)  # validates the training parameters too
        self.train_config("C", 200)

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed the study trains: the primary one first; the extra ones only when extended."""
        return (self.seed, *self.extra_seeds) if self.extended else (self.seed,)

    def models(self, seed: int | None = None) -> list[tuple[str, int]]:
        """(model, feature_dim) trained at `seed` (default: the primary seed), in task order."""
        seed = self.seed if seed is None else seed
        if seed not in self.seeds:
            raise ConfigError(f"seed {seed} is not one of the study's seeds {list(self.seeds)}")
        models = list(REPRODUCTION_MODELS) if seed == self.seed else []
        if self.extended:
            models += [md for md in COMPARED_MODELS if md not in models]
            if seed == self.seed:
                models += [md for md in self.sweep() if md not in models]
        return models

    def attacked(self, seed: int | None = None) -> list[tuple[str, int]]:
        """(model, feature_dim) whose inverse adversaries the ε runs of `seed` make."""
        seed = self.seed if seed is None else seed
        if not self.extended:
            return list(EPS_MODELS)
        return [(m, d) for m, d in self.models(seed) if d == 200 or (seed == self.seed and d in self.sweep_dims)]

    def sweep(self) -> list[tuple[str, int]]:
        """(model, feature_dim) of the feature-dimension sweep, by dimension."""
        return [(m, d) for d in self.sweep_dims for m in SWEEP_MODELS]

    def train_config(self, model: str, feature_dim: int, seed: int | None = None) -> TrainConfig:
        """The TrainConfig of one model of the study."""
        # Model A's loss never sees λ, and only C and D make inverse adversaries: storing the defaults
        # keeps a change of a parameter a model does not use from retraining it.
        weight = 0.0 if model == "A" else self.center_weight_2d if feature_dim == 2 else self.center_weight
        inverse = {"train_eps": self.train_eps, "train_steps": self.train_steps,
                   "train_step_size": self.train_step_size} if model in INVERSE_MODELS else {}
        if model == "C":
            inverse["ema_rate"] = self.ema_rate
        return TrainConfig(model=model, feature_dim=feature_dim, center_weight=weight, epochs=self.epochs,
                           train_samples=self.train_samples, test_samples=self.test_samples,
                           seed=self.seed if seed is None else seed, precision=self.precision, **inverse)

    def split(self, name: str) -> "Split":
        """A data split as this study uses it (the first train_samples / test_samples images)."""
        from lib.data import load_split

        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}")
        n = self.train_samples if name == "train" else self.test_samples
        return load_split(name == "train").subset(n)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def model_name(model: str, feature_dim: int) -> str:
    """'A-200d' style name, shared by tasks, tables and figures."""
    return f"{model}-{feature_dim}d"


# The reproduction's models: 200-d for figures 2–3 (and the ε runs), 2-d for figure 1.
REPRODUCTION_MODELS = (("A", 200), ("B", 200), ("A", 2), ("B", 2))
EPS_MODELS = (("A", 200), ("B", 200))
# The extension's comparison (evaluation over seeds, probe, seed bands): every model at 200-d.
COMPARED_MODELS = tuple((m, 200) for m in MODELS)


def parse_value(name: str, text: str):
    """Turn an override's text into the type of the Study field it sets."""
    kind = {f.name: f.type for f in dataclasses.fields(Study)}[name]
    if text.lower() in ("none", "all") and "None" in str(kind):
        return None
    if str(kind) == "bool":
        if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{name} must be 1 or 0 (true or false), got {text!r}")
        return text.lower() in ("1", "true", "yes")
    try:
        if "tuple[int" in str(kind):
            if not all(v.lstrip("-").isdigit() for v in text.replace(",", " ").split()):
                raise ValueError
            return tuple(int(v) for v in text.replace(",", " ").split())
        if "tuple" in str(kind):
            return tuple(float(v) for v in text.replace(",", " ").split())
        if "int" in str(kind):
            if not text.lstrip("-").isdigit():
                raise ValueError
            return int(text)
        if "float" in str(kind):
            return float(text)
    except ValueError:
        expected = "a comma-separated list of integers" if "tuple[int" in str(kind) else \
            "a comma-separated list of numbers" if "tuple" in str(kind) else \
            "an integer" if "int" in str(kind) else "a number"
        raise ConfigError(f"{name} must be {expected}, got {text!r}") from None
    return text


def study(profile: str = "paper", overrides: str | dict = "") -> Study:
    """The Study of a profile with overrides: a dict, or text like "epochs=3 eps=0,0.1,0.2"."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if isinstance(overrides, str):
        pairs = [item.split("=", 1) for item in overrides.split()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"overrides must look like 'name=value name=value', got {overrides!r}")
        overrides = dict(pairs)
    known = {f.name for f in dataclasses.fields(Study)} - {"profile"}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    values = {k: parse_value(k, v) if isinstance(v, str) else v for k, v in overrides.items()}
    return Study(profile=profile, **{**PROFILES[profile], **values})
