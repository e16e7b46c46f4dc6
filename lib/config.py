"""The protocol's defaults in one place (STUDY.md §2–§3); everything else reads them from here."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUM_CLASSES = 10

# Where MNIST lives (torchvision layout: <DATA_DIR>/MNIST/raw/*-ubyte). A user who already has
# torchvision's MNIST points INVADV_DATA at its parent folder.
DATA_DIR = Path(os.environ.get("INVADV_DATA", ROOT / "data"))

MODELS = ("A", "B")  # A: cross-entropy; B: cross-entropy + λ·center loss

# λ for model B. Chosen by experiment (see README, "Choosing λ"): it compacts the classes of the
# 200-d model several-fold without costing accuracy.
DEFAULT_CENTER_WEIGHT = 0.1


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
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}"),
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
            (isinstance(self.seed, int) and not isinstance(self.seed, bool),
             f"seed must be an integer, got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}")

    @property
    def loss_weight(self) -> float:
        """λ actually applied to the center loss: model A only tracks centers."""
        return self.center_weight if self.model == "B" else 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"TrainConfig: unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class AttackConfig:
    """Inverse adversaries (STUDY.md §3): PGD that descends cross-entropy, no random start."""

    step_size: float = 0.01
    steps: int = 40
    eps_grid: tuple[float, ...] = field(default=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3))
