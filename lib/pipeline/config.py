"""A run of the study: the profiles, every parameter's default and check, which models run at which seed,
and the parsing of `make report SET="k=v ..."` (docs/study.md §2–§3)."""
from __future__ import annotations

import dataclasses
import typing
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

import torch
from pydantic import TypeAdapter, ValidationError

from lib.core.data import Split, load_split, read_labels
from lib.core.errors import ConfigError
from lib.core.precision import CHOICES as PRECISION_CHOICES
from lib.core.precision import resolve as resolve_precision
from lib.core.protocol import (AT_METHODS, AUTOATTACK_ITERATIONS, AUTOATTACK_QUERIES, DECLARED_PARAMETERS,
                                DEFAULT_CENTER_WEIGHT, NUM_CLASSES, TrainConfig, model_name)
from lib.core.recipes import ADVERSARIALLY_TRAINED, MODELS
from lib.core.rules import (AT_LEAST_1, BOOLEAN, FIRST_N, NON_NEGATIVE, PIXEL_STEP, RADIUS, RATE, SEED, check_fields,
                             check_reach, distinct, one_of, param, seeds_rule)

SWEEP_MODELS = ("A", "B")  # the models of the feature-dimension sweep
SPLITS = ("train", "test")
SPLIT_SIZES = {"train": 60000, "test": 10000}  # MNIST's images per split
DEVICE_TYPE = "cuda" if torch.cuda.is_available() else "cpu"  # where 'auto' precision resolves

# The three profiles. `paper` is the protocol of docs/study.md §2; `quick` previews the same pipeline in
# about an hour on a 2-core CPU (67 min measured); `smoke` exercises every step in about 5 minutes (tests).
PROFILES: dict[str, dict] = {
    # The committed study's precision is part of its protocol: its products (products/paper/) are bf16, so that a
    # machine without native bf16 finds them under the same keys instead of planning an fp32 study of its own;
    # SET="precision=fp32" chooses that explicitly (docs/explanation/performance.md, "Precision").
    "paper": {"precision": "bf16"},
    # E–G's PGD examples take two steps in the short profiles: in 2 epochs two learn faster than five (47 % against
    # 41 % under PGD-40 at ε 0.3), over 25 five end higher (docs/log.md, "E's method")
    "quick": {"epochs": 2, "train_samples": 30000, "test_samples": 2000, "attack_samples": 300,
              "extra_seeds": (), "robust_samples": 500, "autoattack_samples": 200, "robust_autoattack_samples": 100,
              "at_steps": 2},
    "smoke": {"epochs": 2, "train_samples": 4000, "test_samples": 500, "attack_samples": 100,
              "eps": (0.0, 0.1, 0.3), "steps": 10, "step_size": 0.03,
              "extra_seeds": (), "sweep_dims": (2, 200), "train_steps": 1, "train_step_size": 0.1, "at_steps": 2,
              "robust_eps": (0.1, 0.3), "robust_steps": 10, "robust_step_size": 0.03, "robust_samples": 100,
              "check_samples": 50,
              # AutoAttack's plumbing, not its strength: the standard settings take minutes even on 20 images
              "autoattack_samples": 20, "robust_autoattack_samples": 20, "autoattack_iterations": 10,
              "autoattack_queries": 200, "hinge_eps": (0.3,), "hinge_autoattack_samples": 40,
              "precision": "fp32"},  # the regression check's references are fp32 (tests/regression.py)
}


A_SPLIT = one_of(SPLITS)
RADII = distinct(RADIUS)
DIMENSIONS = distinct(AT_LEAST_1, "integers")


@dataclass(frozen=True)
class StudyFields:
    """The parameters of a run every model shares; `Study` adds those the model declarations introduce."""

    profile: str = param("paper", one_of(PROFILES), doc="the profile whose values these start from")
    # training (docs/study.md §2)
    epochs: int = param(25, AT_LEAST_1, doc="epochs of every training (SGD, lr 0.01, momentum 0.9, batch 128)")
    train_samples: int | None = param(None, FIRST_N, doc="first N training images (None: all 60k)")
    test_samples: int | None = param(None, FIRST_N,
                                     doc="first N test images, everywhere the test split is used (None: all)")
    center_weight: float = param(DEFAULT_CENTER_WEIGHT, NON_NEGATIVE,
                                 doc="λ of center loss at feature_dim 200 (B; C and F: towards adversarial centers)")
    center_weight_2d: float = param(0.01, NON_NEGATIVE, doc="λ of model B at feature_dim 2 (Wen et al.'s MNIST toy)")
    seed: int = param(0, SEED, doc="the primary seed: every model is trained, and attacked at every ε, with it")
    # inverse adversaries (docs/study.md §3): T·α' = 0.4 >= the largest ε
    eps: tuple[float, ...] = param((0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), RADII,
                                   doc="the radii of the inverse adversaries (figures 2–3)")
    steps: int = param(40, AT_LEAST_1, doc="PGD steps T of an inverse adversary")
    step_size: float = param(0.01, PIXEL_STEP, doc="PGD step α' of an inverse adversary, in pixels")
    attack_samples: int | None = param(None, FIRST_N, doc="first N images of attack_split (None: all)")
    attack_split: str = param("test", A_SPLIT, doc="the split whose images are moved to inverse adversaries")
    mean_split: str = param("train", A_SPLIT, doc="the split the feature means are computed on")
    # the extension (docs/study.md §6); extended=False leaves it out
    extended: bool = param(True, BOOLEAN, doc="run the extension (models C–G, robustness); 0 runs the reproduction")
    extra_seeds: tuple[int, ...] = param((1, 2), seeds_rule(),
                                         doc="seeds besides `seed` at which every compared model is trained again")
    sweep_dims: tuple[int, ...] = param((2, 16, 64, 200), DIMENSIONS, doc="feature dimensions of A and B in the sweep")
    train_eps: float = param(TrainConfig.train_eps, RADIUS,
                             doc="radius of the inverse adversaries C, D, F and G make while training")
    train_steps: int = param(TrainConfig.train_steps, AT_LEAST_1, doc="their PGD steps per batch")
    train_step_size: float = param(TrainConfig.train_step_size, PIXEL_STEP, doc="their PGD step (2.5·ε/T)")
    ema_rate: float = param(TrainConfig.ema_rate, RATE, doc="C and F: rate of the adversarial centers' running mean")
    # the adversarially trained models E–G: their examples' radius and method (PGD's steps), G's weight β
    at_eps: float = param(TrainConfig.at_eps, RADIUS, doc="E–G: radius of their adversarial training examples")
    at_method: str = param(TrainConfig.at_method, one_of(AT_METHODS), doc="E–G: how those examples are made")
    at_steps: int = param(TrainConfig.at_steps, AT_LEAST_1, doc="E–G: PGD's steps (at_method pgd)")
    align_weight: float = param(TrainConfig.align_weight, NON_NEGATIVE,
                                doc="G: β of the KL between an adversarial example's output and its inverse's")
    robust_eps: tuple[float, ...] = param((0.1, 0.2, 0.3), RADII,
                                          doc="radii of the robustness evaluation (the standard MNIST PGD)")
    robust_steps: int = param(40, AT_LEAST_1, doc="the evaluation's PGD steps (random start)")
    robust_step_size: float = param(0.01, PIXEL_STEP, doc="the evaluation's PGD step")
    robust_samples: int | None = param(None, FIRST_N, doc="first N test images under attack (None: all)")
    # the attack check (stronger attacks on the evaluation's first images): ±3 points at 95 % on an accuracy near
    # 50 %, at 1/10 of the evaluation's cost per attack
    check_samples: int = param(1000, AT_LEAST_1, doc="images of the attack check (the primary seed's models)")
    # AutoAttack (lib.core.autoattack) after the evaluation's PGD, on its first images: every model of every seed at
    # every robust ε, ≈ 4.9 h for the paper study on the 2-core CPU; ±3.6 points at 95 % near 50 %
    autoattack_samples: int = param(750, AT_LEAST_1, doc="images AutoAttack attacks per model and seed (A–D)")
    # the same for the adversarially trained E–G, which PGD leaves mostly robust, so that nearly every image goes
    # through all four stages (≈ 3 s per image and ε on one core): ≈ 5.4 h for their nine models; ±3.7 points at
    # 95 % near 90 % within one seed
    robust_autoattack_samples: int = param(250, AT_LEAST_1, doc="the same for the adversarially trained E–G")
    # The AutoAttack of its authors' code, with its checks and follow-up (step `authors`, issue 53), planned beside the
    # composition's until its 21 runs of the paper study are made: about 110 core-hours on the 2-core CPU (Square and
    # its follow-up on the ~90 % of E's and G's 1,000 images that stay robust: docs/log.md), carried in
    # products/paper/ as progress meanwhile, so `make report` does not plan them unless asked.
    authors_autoattack: bool = param(
        False, BOOLEAN, doc="also run AutoAttack from its authors' code (step authors); the report reads it")
    # where claim 5 hinges (G − E within a point or two at ε 0.2 and 0.3), more images, so that each seed's image noise
    # is ≤ 0.9 points near 92 %; the first robust_autoattack_samples of them are the images the evaluation shares
    hinge_models: tuple[str, ...] = param(("E", "G"), distinct(one_of(MODELS)),
                                          doc="step authors: models attacked on hinge_autoattack_samples images")
    hinge_eps: tuple[float, ...] = param((0.2, 0.3), RADII, doc="step authors: the radii of those images (robust_eps)")
    hinge_autoattack_samples: int = param(1000, AT_LEAST_1, doc="step authors: images of hinge_models at hinge_eps")
    autoattack_iterations: int = param(AUTOATTACK_ITERATIONS, AT_LEAST_1,
                                       doc="APGD-CE, APGD-T and FAB-T iterations; the original's 100")
    autoattack_queries: int = param(AUTOATTACK_QUERIES, AT_LEAST_1, doc="Square's queries; the original's 5,000")
    # 'auto' is resolved here, so products are keyed by the precision that actually ran. bf16 moves the paper
    # protocol's numbers less than a change of seed does (docs/explanation/performance.md, "Precision").
    precision: str = param("auto", one_of(PRECISION_CHOICES),
                           doc="fp32, or bf16 autocast for training and PGD steps; auto: bf16 where it is native")

    def __post_init__(self) -> None:
        for name in ("eps", "robust_eps", "hinge_eps"):  # 0 and 0.0 are one radius, and task names print floats
            value = getattr(self, name)
            if isinstance(value, tuple) and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in value):
                object.__setattr__(self, name, tuple(float(e) for e in value))
        check_fields(self)
        object.__setattr__(self, "precision", resolve_precision(self.precision, DEVICE_TYPE))
        # The extra seeds only exist in the extension: `SET="seed=1 extended=0"` needs no other change.
        if self.extended and self.seed in self.extra_seeds:
            free = ",".join(str(v) for v in range(self.seed + 1, self.seed + 1 + len(self.extra_seeds)))
            raise ConfigError(f"Study: extra_seeds must be distinct integers other than seed={self.seed}, got "
                              f"{self.extra_seeds}; e.g. extra_seeds={free}")
        if self.authors_autoattack and (stray := [e for e in self.hinge_eps if e not in self.robust_eps]):
            raise ConfigError(f"Study: hinge_eps must be among robust_eps {list(self.robust_eps)}, got "
                              f"{list(self.hinge_eps)}; drop {stray} or add it to robust_eps")
        check_reach("Study", "steps", self.steps, "step_size", self.step_size, "the largest eps", max(self.eps))
        check_reach("Study", "robust_steps", self.robust_steps, "robust_step_size", self.robust_step_size,
                    "the largest robust_eps", max(self.robust_eps))
        # A count beyond what the split holds would silently run on fewer images than it says.
        for name, split in (("train_samples", "train"), ("test_samples", "test"), ("attack_samples", self.attack_split),
                            ("robust_samples", "test")):
            n, available = getattr(self, name), self.split_size(split)
            if n is not None and n > available:
                raise ConfigError(f"Study: {name} must be at most the {available} {split} images this study uses, "
                                  f"got {n}; use {name}=none for all of them")
        self.train_config("B", 200)  # the training parameters as TrainConfig sees them (e.g. its own reach rule)
        self.train_config("C", 200)
        self.train_config("E", 200)

    def split_size(self, name: str) -> int:
        """How many images of split `name` the study uses (the first train_samples / test_samples, else all)."""
        n = self.train_samples if name == "train" else self.test_samples
        return SPLIT_SIZES[name] if n is None else min(n, SPLIT_SIZES[name])

    def check_classes(self) -> None:
        """ConfigError when the first N images of a split the study uses miss a class (class centers and means
        need every class). It reads the labels, so it runs once before any step (lib.pipeline.make.prepare)."""
        uses = [("train_samples", "train", self.train_samples), ("test_samples", "test", self.test_samples),
                ("attack_samples", self.attack_split, self.attack_samples),
                ("robust_samples", "test", self.robust_samples)]
        labels_of: dict[str, list[int]] = {}  # each split's labels read once, however many counts use it
        for name, split, n in uses:
            if n is None:  # the whole split holds every class
                continue
            if split not in labels_of:
                labels_of[split] = read_labels(split == "train").tolist()
            labels = labels_of[split]
            missing = sorted(set(range(NUM_CLASSES)) - set(labels[:n]))
            if missing:
                seen: set[int] = set()
                enough = next(i for i, label in enumerate(labels, 1) if seen.add(label) or len(seen) == NUM_CLASSES)
                raise ConfigError(f"Study: {name}={n}: the first {n} {split} images hold no digit "
                                  f"{', '.join(map(str, missing))}, and every class needs one; use at least "
                                  f"{name}={enough}")

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
        primary = seed == self.seed
        # the adversarially trained models' ε runs only where figures 2–3 show them: E and F at the first seed
        return [(m, d) for m, d in self.models(seed) if ((m, d) in ROBUST_FIGURE_MODELS and primary) or
                (m not in ADVERSARIALLY_TRAINED and (d == 200 or (primary and d in self.sweep_dims)))]

    def autoattack_images(self, model: str) -> int:
        """AutoAttack's image count for `model`: E–G's own (their images go through all four stages), else A–D's."""
        return self.robust_autoattack_samples if model in ADVERSARIALLY_TRAINED else self.autoattack_samples

    def authors_images(self, model: str, eps: float) -> int:
        """Step authors' image count for `model` at radius ε: the hinge's where claim 5 hinges, else AutoAttack's."""
        if model in self.hinge_models and eps in self.hinge_eps:
            return max(self.hinge_autoattack_samples, self.autoattack_images(model))
        return self.autoattack_images(model)

    def sweep(self) -> list[tuple[str, int]]:
        """(model, feature_dim) of the feature-dimension sweep, by dimension."""
        return [(m, d) for d in self.sweep_dims for m in SWEEP_MODELS]

    def train_config(self, model: str, feature_dim: int, seed: int | None = None) -> TrainConfig:
        """The TrainConfig of one model of the study."""
        # Every model gets the study's values of every training parameter the study sets (the rest keep TrainConfig's
        # defaults); its training reads, and is keyed by, only its recipe's (lib.core.recipes.key_params), so a
        # parameter a model does not read never retrains it.
        fields = {f.name for f in dataclasses.fields(self)}
        values = {name: getattr(self, name) for name in TRAINING_PARAMETERS if name in fields}
        values["center_weight"] = self.center_weight_2d if feature_dim == 2 else self.center_weight
        return TrainConfig.from_dict({**values, "model": model, "feature_dim": feature_dim,
                                      "seed": self.seed if seed is None else seed})

    def split(self, name: str) -> Split:
        """A data split as this study uses it (the first train_samples / test_samples images)."""
        if name not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {name!r}")
        n = self.train_samples if name == "train" else self.test_samples
        return load_split(name == "train").subset(n)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The training parameters a Study may set: TrainConfig's fields, the hyperparameters models declare among them.
TRAINING_PARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# All parameters of one run of the study: a profile's values plus any overrides; the shared ones above, and one field
# per hyperparameter a model declares (lib.core.recipes), with its default and rule.
Study = dataclasses.make_dataclass(
    "Study", [(name, h.kind, param(h.default, h.rule, h.doc)) for name, h in DECLARED_PARAMETERS.items()],
    bases=(StudyFields,), frozen=True, namespace={"__doc__": "All parameters of one run of the study.",
                                                  "__module__": __name__})

# The reproduction's models: 200-d for figures 2–3 (and the ε runs), 2-d for figure 1.
REPRODUCTION_MODELS = (("A", 200), ("B", 200), ("A", 2), ("B", 2))
EPS_MODELS = (("A", 200), ("B", 200))
FIGURE_MODELS = tuple(model_name(m, d) for m, d in EPS_MODELS)  # the models of figures 2–3 and the claims
# The extension's comparison (evaluation over seeds, probe, seed bands): every model at 200-d.
COMPARED_MODELS = tuple((m, 200) for m in MODELS)
# The adversarially trained models whose inverse adversaries figures 2–3 show, at the first seed, beside A and B.
ROBUST_FIGURE_MODELS = (("E", 200), ("F", 200))
CHECK_SOURCE = "B-200d"  # the attack check's transfer source: classic center loss, the baseline claim 4 compares with


@cache
def field_types() -> dict[str, object]:
    """Each Study parameter's type, resolved from its annotation (e.g. tuple[float, ...], int | None)."""
    return typing.get_type_hints(Study)


def parse_value(name: str, text: str):
    """An override's text as the type of the Study field it sets, converted and type-checked by pydantic (lax
    mode: '3' is an int, '1'/'true'/'yes' a bool); lists are comma-separated and 'none' or 'all' mean None where
    a field allows it."""
    kind = field_types()[name]
    args = typing.get_args(kind)
    value: object = text
    if text.lower() in ("none", "all") and type(None) in args:
        value = None
    elif typing.get_origin(kind) is tuple:
        value = text.replace(",", " ").split()
    try:
        return TypeAdapter(kind).validate_python(value)
    except ValidationError:
        element = args[0] if typing.get_origin(kind) is tuple else next((a for a in args if a is not type(None)), kind)
        expected = {int: "an integer", float: "a number", bool: "1 or 0 (true or false)", str: "text"}[element]
        if typing.get_origin(kind) is tuple:
            expected = f"a comma-separated list of {'integers' if element is int else 'numbers'}"
        elif type(None) in args:
            expected += " or none"
        raise ConfigError(f"{name} must be {expected}, got {text!r}") from None


def study(profile: str = "paper", overrides: str | dict = "") -> Study:
    """The Study of a profile with overrides: a dict, or text like "epochs=3 eps=0,0.1,0.2"."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    if isinstance(overrides, str):
        pairs = [item.split("=", 1) for item in overrides.split()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"overrides must look like 'name=value name=value', got {overrides!r}")
        twice = sorted(name for name, n in Counter(name for name, _ in pairs).items() if n > 1)
        if twice:  # the last one would win unseen
            raise ConfigError(f"overrides set {', '.join(twice)} more than once: {overrides!r}; give each once")
        overrides = dict(pairs)
    known = {f.name for f in dataclasses.fields(Study)} - {"profile"}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
    values = {k: parse_value(k, v) if isinstance(v, str) else v for k, v in overrides.items()}
    return Study(profile=profile, **{**PROFILES[profile], **values})
