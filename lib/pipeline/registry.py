"""The study's steps, each declared once: what it runs over, what its product depends on, where it goes.

`dag.plan` turns these into tasks (one per run of a step), the Makefile and the Snakefile run them, content
keys hash them, `render` exports and renders from them, and the notebooks load products through them. Adding a
step is one entry here, its notebook, and the function that makes its product.

A step's `runs(s)` lists one parameter dict per task, injected into its notebook (papermill); its key hashes
`key(s, params)` (what the product depends on), the code its notebook reaches and its inputs' keys;
`inputs(s, params)` names the tasks whose products it reads. The last of `files` marks the product done; `exports` go to reports/results/.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lib.pipeline.config import COMPARED_MODELS, Study

ATTACK = ("steps", "step_size", "attack_samples", "attack_split", "precision")  # what an ε run's product depends on
ROBUST = ("robust_eps", "robust_steps", "robust_step_size", "robust_samples", "precision")


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


def names(s: Study, step: str, runs: list[dict] | None = None) -> list[str]:
    """The task names of a step (of the given runs; default: all of them)."""
    step_ = STEPS[step]
    return [step_.task_name(s, p) for p in (step_.runs(s) if runs is None else runs)]


def train_names(s: Study, seed: int, models=None) -> list[str]:
    """The trainings of `seed` (of the given (model, feature_dim); default: every model trained at it)."""
    models = s.models(seed) if models is None else models
    return names(s, "train", [{"model": m, "feature_dim": d, "seed": seed} for m, d in models])


def primary_eps_names(s: Study) -> list[str]:
    """The ε runs of the primary seed: the ones the reproduction's figures read."""
    return names(s, "eps", [{"eps": e, "seed": s.seed} for e in s.eps])


_STEPS = (
    Step("train", "01_train", "lib.pipeline.steps.train:checkpoint",
         runs=lambda s: [{"model": m, "feature_dim": d, "seed": seed} for seed in s.seeds for m, d in s.models(seed)],
         label=lambda s, p: f"{p['model']}-{p['feature_dim']}d{seed_suffix(s, p['seed'])}",
         key=lambda s, p: s.train_config(p["model"], p["feature_dim"], p["seed"]).to_dict(),
         inputs=lambda s, p: [], files=("checkpoint.pt",), noun="trainings"),
    Step("eps", "02_inverse_adversaries", "lib.pipeline.steps.eps:eps_run",
         runs=lambda s: [{"eps": e, "seed": seed} for seed in s.seeds for e in s.eps],
         label=lambda s, p: f"{eps_label(p['eps'])}{seed_suffix(s, p['seed'])}",
         key=lambda s, p: {"eps": p["eps"], **{k: getattr(s, k) for k in ATTACK}},
         inputs=lambda s, p: train_names(s, p["seed"], s.attacked(p["seed"])), files=("inverse.pt",), noun="ε runs"),
    Step("centers", "03_centers", "lib.pipeline.steps.centers:center_tables", runs=once, label=no_label,
         key=lambda s, p: {"mean_split": s.mean_split},
         inputs=lambda s, p: [*train_names(s, s.seed, s.attacked()), *primary_eps_names(s)],
         files=("samples.csv", "attacks.csv", "centers.csv"), exports=("centers.csv", "samples.csv", "attacks.csv")),
    Step("evaluate", "04_evaluate", "lib.pipeline.steps.evaluate:evaluation",
         runs=lambda s: [{"seed": seed} for seed in s.seeds] if s.extended else [],
         label=lambda s, p: seed_suffix(s, p["seed"]).lstrip("-"),
         key=lambda s, p: {k: getattr(s, k) for k in ROBUST},
         inputs=lambda s, p: train_names(s, p["seed"], COMPARED_MODELS), files=("evaluation.csv",), noun="evaluations"),
    Step("extension", "05_extension", "lib.pipeline.steps.extension:extension_tables",
         runs=lambda s: [{}] if s.extended else [], label=no_label, key=lambda s, p: {"study": s.to_dict()},
         inputs=lambda s, p: ["centers", *names(s, "train"), *names(s, "eps"), *names(s, "evaluate")],
         files=("comparison.csv", "probe.csv", "sweep.csv", "seed_centers.csv", "attack_check.csv", "claim4.json"),
         exports=("comparison.csv", "probe.csv", "sweep.csv", "seed_centers.csv", "attack_check.csv"), figures=True),
    Step("figures", "06_figures", "lib.pipeline.steps.figures:model_tables", runs=once, label=no_label,
         key=lambda s, p: {"study": s.to_dict()},
         inputs=lambda s, p: ["centers", *names(s, "train"), *primary_eps_names(s), *names(s, "extension")],
         files=("models.csv", "history.csv", "06_figures.ipynb"), exports=("models.csv", "history.csv"), figures=True),
)
STEPS: dict[str, Step] = {step.name: step for step in _STEPS}  # in the order they run
