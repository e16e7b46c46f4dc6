"""The training protocol's constants and TrainConfig, everything that determines a trained model (STUDY.md §2–§3)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lib.core.errors import ConfigError
from lib.core.precision import PRECISIONS

NUM_CLASSES = 10

# A: cross-entropy; B: + λ·center loss (Wen et al.'s centers); extension (STUDY.md §6): C: + λ·center loss
# whose centers are adversarial centers (EMA of inverse adversaries' features); D: + λ·pull of each feature
# towards its own inverse adversary's feature.
MODELS = ("A", "B", "C", "D")
INVERSE_MODELS = ("C", "D")  # the models that make inverse adversaries while training

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



def model_name(model: str, feature_dim: int) -> str:
    """'A-200d' style name, shared by tasks, tables and figures."""
    return f"{model}-{feature_dim}d"
