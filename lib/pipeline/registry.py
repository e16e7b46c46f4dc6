"""The study's steps, each declared once: what it runs over, what its product depends on, where it goes.

`dag.plan` turns these into tasks (one per run of a step), the Makefile and the Snakefile run them, content
keys hash them, `render` exports and renders from them, and the notebooks load products through them. Adding a
step is one entry here, its notebook, and the function that makes its product.

A step's `runs(s)` lists one parameter dict per task, injected into its notebook (papermill). `key(s, params)` is
every value its product depends on: the maker computes from these values and its inputs' products only, so that
whatever the planner decides (which images a count selects, which seed a model gets) is in the key; the key also
hashes the code the maker reaches and the inputs' keys. `inputs(s, params)` names the tasks whose products it
reads. The last of `files` marks the product done; `exports` go to reports/results/.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lib.core.protocol import model_name
from lib.core.recipes import key_params
from lib.pipeline.config import CHECK_SOURCE, COMPARED_MODELS, FIGURE_MODELS, REPRODUCTION_MODELS, Study


@dataclass(frozen=True)
class Step:
    """One step of the study."""

    name: str  # its tasks are named `name` or `name-<label>`
    notebook: str  # notebooks/<notebook>.ipynb makes the product
    make: str  # "module:function" that returns the product (loading it when made, making it otherwise)
    runs: Callable[[Study], list[dict]]  # the notebook parameters of each task, e.g. model × feature_dim × seed
    label: Callable[[Study, dict], str]  # a task's name after the step's ('' for a step that runs once)
    key: Callable[[Study, dict], dict]  # what its product depends on, besides code and inputs
    inputs: Callable[[Study, dict], list[str]]  # the task names whose products it reads
    files: tuple[str, ...]  # its product files in the task's folder; the last one marks it done
    exports: tuple[str, ...] = ()  # of its files, the tables copied to reports/results/<profile>/
    figures: bool = False  # whether its figures/ folder is copied to reports/figures/<profile>/
    noun: str = ""  # what a person calls its tasks in a count ('trainings'); default: the task name
    # a definition one task's code covers besides what the maker reaches, e.g. a training's own recipe (the recipes'
    # registry is opaque to the code hash: lib.pipeline.code.OPAQUE)
    code_root: Callable[[dict], tuple[str, str]] | None = None

    def task_name(self, s: Study, params: dict) -> str:
        label = self.label(s, params)
        return f"{self.name}-{label}" if label else self.name


def seed_suffix(s: Study, seed: int) -> str:
    """'' for the primary seed (the reproduction's task names), '-s<seed>' for the extension's others."""
    return "" if seed == s.seed else f"-s{seed}"


def eps_label(eps: float) -> str:
    """ε as a stable folder-name fragment, e.g. 0.05 -> '0.05'."""
    return f"{eps:g}"


def once(s: Study) -> list[dict]:
    """A step that runs once per study."""
    return [{}]


def no_label(s: Study, params: dict) -> str:
    return ""


def model_label(s: Study, p: dict) -> str:
    """'A-200d', or 'A-200d-s1' at an extra seed."""
    return f"{model_name(p['model'], p['feature_dim'])}{seed_suffix(s, p['seed'])}"


def names(s: Study, step: str, runs: list[dict] | None = None) -> list[str]:
    """The task names of a step (of the given runs; default: all of them)."""
    step_ = STEPS[step]
    return [step_.task_name(s, p) for p in (step_.runs(s) if runs is None else runs)]


def train_names(s: Study, seed: int, models=None) -> list[str]:
    """The trainings of `seed` (of the given (model, feature_dim); default: every model trained at it)."""
    models = s.models(seed) if models is None else models
    return names(s, "train", [{"model": m, "feature_dim": d, "seed": seed} for m, d in models])


def eps_params(s: Study, seed: int) -> list[dict]:
    """The parameters of the ε runs of `seed`: every model attacked at it, ε by ε."""
    return [{"eps": e, "model": m, "feature_dim": d, "seed": seed} for e in s.eps for m, d in s.attacked(seed)]


def eps_names(s: Study, seed: int) -> list[str]:
    """The ε runs of `seed`, ε by ε."""
    return names(s, "eps", eps_params(s, seed))


def evaluate_names(s: Study, seed: int, models=COMPARED_MODELS) -> list[str]:
    """The evaluations of `seed`'s compared models (of the given (model, feature_dim); default: all)."""
    return names(s, "evaluate", [{"model": m, "feature_dim": d, "seed": seed} for m, d in models])


def first_images(s: Study, split: str, n: int | None) -> int:
    """How many images 'the first n of a split as this study uses it' is: the value a product's key holds."""
    return s.split_size(split) if n is None else min(n, s.split_size(split))


def eps_key(s: Study, p: dict) -> dict:
    """What one model's ε run depends on (besides its training): the radius, the attack, the images."""
    return {"eps": p["eps"], "steps": s.steps, "step_size": s.step_size, "precision": s.precision,
            "split": s.attack_split, "images": first_images(s, s.attack_split, s.attack_samples)}


def robust_key(s: Study, p: dict) -> dict:
    """What a model's evaluation depends on (besides its training): PGD's radii, steps and seed, the images."""
    return {"eps": list(s.robust_eps), "steps": s.robust_steps, "step_size": s.robust_step_size,
            "precision": s.precision, "seed": p["seed"], "images": first_images(s, "test", s.robust_samples)}


def check_key(s: Study, p: dict) -> dict:
    """What the attack check depends on (besides the models and their evaluations)."""
    evaluation = robust_key(s, p)
    return {**evaluation, "images": min(evaluation["images"], s.check_samples), "source": CHECK_SOURCE}


def autoattack_key(s: Study, p: dict) -> dict:
    """What a model's AutoAttack depends on (besides its training and evaluation): the evaluation's PGD it starts
    from (and repeats on rescaled logits), its first images."""
    evaluation = robust_key(s, p)
    return {**evaluation, "images": min(evaluation["images"], s.autoattack_images(p["model"])),
            "iterations": s.autoattack_iterations, "queries": s.autoattack_queries}


def authors_key(s: Study, p: dict) -> dict:
    """What a model's AutoAttack of the authors' code depends on: `autoattack_key`'s values, with its first images at
    each ε ({ε: n}, as strings: JSON's keys), more where claim 5 hinges."""
    shared = autoattack_key(s, p)
    tested = robust_key(s, p)["images"]  # the images the evaluation attacked
    return {**shared, "images": {f"{e:g}": min(tested, s.authors_images(p["model"], e)) for e in s.robust_eps if e > 0}}


def per_model(s: Study, models: Callable[[Study, int], list]) -> list[dict]:
    return [{"model": m, "feature_dim": d, "seed": seed} for seed in s.seeds for m, d in models(s, seed)]


def names_of(models) -> list[str]:
    return [model_name(m, d) for m, d in models]


_STEPS = (
    Step("train", "01_train", "lib.pipeline.steps.train:checkpoint",
         runs=lambda s: per_model(s, Study.models), label=model_label,
         key=lambda s, p: key_params(s.train_config(p["model"], p["feature_dim"], p["seed"])),
         inputs=lambda s, p: [], files=("checkpoint.pt",), noun="trainings",
         code_root=lambda p: ("lib.core.recipes", p["model"])),
    Step("eps", "02_inverse_adversaries", "lib.pipeline.steps.eps:inverse_run",
         runs=lambda s: [p for seed in s.seeds for p in eps_params(s, seed)],
         label=lambda s, p: f"{eps_label(p['eps'])}-{model_label(s, p)}", key=eps_key,
         inputs=lambda s, p: train_names(s, p["seed"], [(p["model"], p["feature_dim"])]), files=("inverse.pt",),
         noun="ε runs"),
    Step("centers", "03_centers", "lib.pipeline.steps.centers:center_tables", runs=once, label=no_label,
         key=lambda s, p: {"mean_split": s.mean_split},
         inputs=lambda s, p: [*train_names(s, s.seed, s.attacked()), *eps_names(s, s.seed)],
         files=("samples.csv", "attacks.csv", "centers.csv"), exports=("centers.csv", "samples.csv", "attacks.csv")),
    Step("evaluate", "04_evaluate", "lib.pipeline.steps.evaluate:evaluation",
         runs=lambda s: per_model(s, lambda s, seed: COMPARED_MODELS) if s.extended else [], label=model_label,
         key=robust_key, inputs=lambda s, p: train_names(s, p["seed"], [(p["model"], p["feature_dim"])]),
         files=("outcomes.pt", "evaluation.csv"), noun="evaluations"),
    Step("check", "05_attack_check", "lib.pipeline.steps.check:attack_check_table",
         runs=lambda s: [{"seed": s.seed}] if s.extended else [], label=lambda s, p: seed_suffix(s, p["seed"]).lstrip("-"),
         key=check_key, inputs=lambda s, p: [*train_names(s, p["seed"], COMPARED_MODELS), *evaluate_names(s, p["seed"])],
         files=("attack_check.csv",), exports=("attack_check.csv",), noun="attack checks"),
    Step("autoattack", "06_autoattack", "lib.pipeline.steps.autoattack:autoattack_tables",
         runs=lambda s: per_model(s, lambda s, seed: COMPARED_MODELS) if s.extended else [], label=model_label,
         key=autoattack_key, inputs=lambda s, p: [*train_names(s, p["seed"], [(p["model"], p["feature_dim"])]),
                                                  *evaluate_names(s, p["seed"], [(p["model"], p["feature_dim"])])],
         files=("autoattack.pt", "masking.csv", "autoattack.csv"), noun="AutoAttacks"),
    Step("authors", "06_autoattack_authors", "lib.pipeline.steps.autoattack_authors:autoattack_tables",
         runs=lambda s: per_model(s, lambda s, seed: COMPARED_MODELS) if s.extended and s.authors_autoattack else [],
         label=model_label, key=authors_key,
         inputs=lambda s, p: [*train_names(s, p["seed"], [(p["model"], p["feature_dim"])]),
                              *evaluate_names(s, p["seed"], [(p["model"], p["feature_dim"])])],
         files=("autoattack.pt", "checks.csv", "autoattack.csv"), noun="AutoAttacks of its authors' code"),
    Step("extension", "07_extension", "lib.pipeline.steps.extension:extension_tables",
         runs=lambda s: [{}] if s.extended else [], label=no_label,
         key=lambda s, p: {"seeds": list(s.seeds), "mean_split": s.mean_split, "max_eps": max(s.eps),
                           "test_images": first_images(s, "test", None), "models": names_of(COMPARED_MODELS),
                           "sweep": names_of(s.sweep()), "figure_models": list(FIGURE_MODELS), "profile": s.profile,
                           "epochs": s.epochs, "extra_seeds": list(s.extra_seeds)},
         inputs=lambda s, p: ["centers", *names(s, "train"), *names(s, "eps"), *names(s, "evaluate"), *names(s, "check"),
                                   *names(s, "autoattack"), *names(s, "authors")],
         files=("comparison.csv", "probe.csv", "sweep.csv", "seed_centers.csv", "autoattack.csv", "masking.csv",
                "checks.csv", "heldout.csv", "contrasts.csv", "contrast_seeds.csv", "claim4.json"),
         exports=("comparison.csv", "probe.csv", "sweep.csv", "seed_centers.csv", "autoattack.csv", "masking.csv",
                  "checks.csv", "heldout.csv", "contrasts.csv", "contrast_seeds.csv"),
         figures=True),
    Step("figures", "08_figures", "lib.pipeline.steps.figures:model_tables", runs=once, label=no_label,
         key=lambda s, p: {"profile": s.profile, "extended": s.extended, "test_images": first_images(s, "test", None),
                           "models": names_of(REPRODUCTION_MODELS), "figure_models": list(FIGURE_MODELS),
                           "eps": list(s.eps)},
         inputs=lambda s, p: ["centers", *names(s, "train"), *eps_names(s, s.seed), *names(s, "extension")],
         files=("models.csv", "history.csv", "08_figures.ipynb"), exports=("models.csv", "history.csv"), figures=True),
)
STEPS: dict[str, Step] = {step.name: step for step in _STEPS}  # in the order they run
