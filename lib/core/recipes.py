"""Each model of the study, declared once: its recipe (its class centers, the targets it makes for every batch, the
input it trains on and its loss terms; docs/study.md §2–§3, the extension's models §6), how the report words its
loss, the models it is contrasted with, and the hyperparameters it introduces.

The epoch loop (lib.core.train) reads a model's recipe and knows no model by name, and everything else that names
models (the study's parameters and models, the loss column, the contrasts, the figures) reads the declarations, so a
new model is one more `Model(...)` here and nothing else (docs/how-to/add-a-model.md). Its training's key covers the
loop and its own recipe (the planner hashes each recipe on its own, lib.pipeline.code.OPAQUE; of a declaration only
its recipe, lib.pipeline.code.DECLARATION), so adding one retrains no other model and rewording one retrains nothing.
A recipe's `params` name the TrainConfig fields it reads beyond the shared protocol; only those enter its training's
key and its checkpoint's check, so a parameter a model does not read never retrains it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn.functional import kl_div, log_softmax, softmax

from lib.core.attacks import fgsm_rs, inverse_adversary, n_fgsm, pgd_training
from lib.core.data import Split
from lib.core.errors import ConfigError
from lib.core.evaluation import robust_accuracy
from lib.core.losses import AdversarialCenters, CenterLoss, pull
from lib.core.models import SmallCNN
from lib.core.precision import autocast
from lib.core.protocol import NUM_CLASSES, TrainConfig, register
from lib.core.rules import Hyperparameter

# What every training reads, whatever its model: the network, the data, the optimizer, the schedule, the precision.
PROTOCOL_PARAMS = ("model", "feature_dim", "lr", "momentum", "weight_decay", "batch_size", "epochs", "dropout",
                   "train_samples", "test_samples", "seed", "precision")
INVERSE_PARAMS = ("train_eps", "train_steps", "train_step_size")  # the inverse adversaries made for every batch
AT_PARAMS = ("at_eps", "at_method", "at_steps")  # the adversarial examples E–G train on


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


@dataclass(frozen=True)
class Model:
    """One model of the study: how it trains (its recipe), how the report words its loss (a format string over its
    TrainConfig's values), the models it is contrasted with (those it builds on, by letter: each contrast is this
    model − that one), and the hyperparameters it introduces (each also named in its recipe's params, which puts
    its value in the training's key)."""

    recipe: Recipe
    loss: str
    baselines: tuple[str, ...] = ()
    hyperparameters: tuple[Hyperparameter, ...] = ()

    def __post_init__(self) -> None:
        unread = [h.name for h in self.hyperparameters if h.name not in self.recipe.params]
        if unread:  # its value would be missing from the training's key: a stale product after a change
            raise ConfigError(f"model {self.letter}: hyperparameter(s) {unread} must be named in its recipe's params")

    @property
    def letter(self) -> str:
        return self.recipe.model

    @property
    def adversarially_trained(self) -> bool:
        """Whether it trains on adversarial examples (its recipe makes its inputs)."""
        return self.recipe.inputs is not None


def wen_centers(config: TrainConfig) -> CenterLoss:
    """Wen et al.'s centers, moved by their own update rule (docs/study.md §3)."""
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
# towards its own inverse adversary's. C and D are contrasted with classic center loss and with cross-entropy alone.
INVERSE_TEXT = "(ε={train_eps:g}, T={train_steps})"  # the inverse adversaries a loss text names
A = Model(Recipe("A", ("center_alpha",), wen_centers, "features", (Term("center_loss", to_center, None),)),
          loss="CE")
B = Model(Recipe("B", ("center_alpha", "center_weight"), wen_centers, "features",
                 (Term("center_loss", to_center, "center_weight"),)),
          loss="CE + {center_weight:g}·L_C", baselines=("A",))
C = Model(Recipe("C", (*INVERSE_PARAMS, "ema_rate", "center_weight"), adversarial_centers, "targets",
                 (Term("center_loss", to_center, "center_weight"),), inverse_features),
          loss="CE + {center_weight:g}·L_C to adversarial centers " + INVERSE_TEXT, baselines=("B", "A"))
D = Model(Recipe("D", (*INVERSE_PARAMS, "center_alpha", "center_weight"), wen_centers, "features",
                 (Term("center_loss", to_target, "center_weight"),), inverse_features),
          loss="CE + {center_weight:g}·pull to own inverse adversary " + INVERSE_TEXT, baselines=("B", "A"))


# --- adversarial training (issue 32) ----------------------------------------------------------------------------

def adversarial_inputs(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The batch's adversarial examples at at_eps, made by at_method (lib.core.protocol.AT_METHODS)."""
    if config.at_method == "pgd":
        return pgd_training(model, x, y, config.at_eps, config.at_steps, config.precision)
    make = {"fgsm-rs": fgsm_rs, "n-fgsm": n_fgsm}[config.at_method]
    return make(model, x, y, config.at_eps, config.precision)


HELDOUT = 500  # test images of the held-out robustness monitor
HELDOUT_STEPS = 10  # its PGD: enough to show catastrophic overfitting, ≈ 4 % of a single-step epoch's arithmetic


def heldout_robustness(model: SmallCNN, split: Split, config: TrainConfig) -> float:
    """PGD-10 accuracy at at_eps on the first HELDOUT test images, after every epoch: a single-step training's
    catastrophic overfitting shows as its collapse while the training accuracy on its own examples rises."""
    return robust_accuracy(model, split.subset(HELDOUT), config.at_eps, HELDOUT_STEPS,
                           2.5 * config.at_eps / HELDOUT_STEPS, seed=config.seed, precision=config.precision)


def to_inverse_output(batch: Batch) -> torch.Tensor:
    """Dong et al.'s alignment: KL(p(x̌) ‖ p(x')) of each adversarial example's output with its inverse adversary's,
    averaged over the batch (TRADES' KL term with the natural example replaced by the inverse adversary). The inverse
    adversary's output is a target: made in eval mode, without gradient, as C's and D's targets are."""
    with torch.no_grad():
        inverse = softmax(batch.model.classify(batch.targets).float(), dim=1)
    return kl_div(log_softmax(batch.logits.float(), dim=1), inverse, reduction="batchmean")


ROBUST = Monitor("heldout_pgd", heldout_robustness)
# E: cross-entropy on adversarial examples, tracking Wen et al.'s centers as A does; F: + λ · C's center loss
# (the adversarial examples' features pulled towards the running mean of the clean images' inverse adversaries'
# features); G: + β · Dong et al.'s alignment with the inverse adversaries' outputs. F and G make the same inverse
# adversaries as C and D, so that F − G compares two uses of the same targets.
ADVERSARIAL_TEXT = "CE on adversarial examples ({at_method}, {at_steps} step(s), ε={at_eps:g})"  # E–G's examples
E = Model(Recipe("E", (*AT_PARAMS, "center_alpha"), wen_centers, "features", (Term("center_loss", to_center, None),),
                 inputs=adversarial_inputs, monitors=(ROBUST,)),
          loss=ADVERSARIAL_TEXT)
F = Model(Recipe("F", (*AT_PARAMS, *INVERSE_PARAMS, "ema_rate", "center_weight"), adversarial_centers, "targets",
                 (Term("center_loss", to_center, "center_weight"),), inverse_features, adversarial_inputs, (ROBUST,)),
          loss=ADVERSARIAL_TEXT + " + {center_weight:g}·L_C to adversarial centers " + INVERSE_TEXT,
          baselines=("E", "G"))
G = Model(Recipe("G", (*AT_PARAMS, *INVERSE_PARAMS, "center_alpha", "align_weight"), wen_centers, "features",
                 (Term("center_loss", to_center, None), Term("alignment", to_inverse_output, "align_weight")),
                 inverse_features, adversarial_inputs, (ROBUST,)),
          loss=ADVERSARIAL_TEXT + " + {align_weight:g}·KL to own inverse adversary's output " + INVERSE_TEXT,
          baselines=("E",))


# --- the declared models, as everything else reads them ---------------------------------------------------------

# Every Model above, in the order declared: declaring one is all it takes to add it.
DECLARATIONS: dict[str, Model] = {m.letter: m for m in list(globals().values()) if isinstance(m, Model)}
MODELS = register(list(DECLARATIONS), [h for m in DECLARATIONS.values() for h in m.hyperparameters])
ADVERSARIALLY_TRAINED = tuple(m.letter for m in DECLARATIONS.values() if m.adversarially_trained)
RECIPES = {letter: m.recipe for letter, m in DECLARATIONS.items()}


def recipe(model: str) -> Recipe:
    """The recipe of `model`."""
    if model not in RECIPES:
        raise KeyError(f"no recipe for model {model!r}; recipes: {', '.join(RECIPES)} (lib/core/recipes.py)")
    return RECIPES[model]


def declaration(model: str) -> Model:
    """The declaration of `model` (a letter)."""
    if model not in DECLARATIONS:
        raise ConfigError(f"no model {model!r} is declared; models: {', '.join(DECLARATIONS)} (lib/core/recipes.py)")
    return DECLARATIONS[model]


def contrasts() -> list[tuple[str, str]]:
    """(model, baseline) of every contrast the declarations ask for, by letter, in the order declared."""
    pairs = [(m.letter, b) for m in DECLARATIONS.values() for b in m.baselines]
    unknown = sorted({b for _, b in pairs} - set(DECLARATIONS))
    if unknown:
        raise ConfigError(f"baselines {unknown} are not declared models; models: {', '.join(DECLARATIONS)}")
    return pairs


def loss_text(config: dict) -> str:
    """How the report words a model's training loss, filled from its stored config: 'CE + 0.01·L_C' (B)."""
    return declaration(config["model"]).loss.format(**config)


def key_params(config: TrainConfig) -> dict:
    """The values a training of `config` depends on: the protocol and its recipe's own parameters."""
    values = config.to_dict()
    return {name: values[name] for name in (*PROTOCOL_PARAMS, *recipe(config.model).params)}
