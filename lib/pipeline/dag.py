"""The report's DAG: which notebook runs make which product, where, keyed by what.

Every product lives in a folder named by a content key: a hash of the values it depends on (the step's
parameters), the code that computes it and the keys of its inputs. The code is the definitions the step's maker
reaches (and its notebook, where the notebook itself writes the product), found from the code (lib.pipeline.code),
so nothing can be forgotten; the planner (configuration, registry, this DAG, make, cost, render) is left out,
because it enters a product only through the values it passes. Code is hashed without comments, docstrings and
layout. A changed value or computation therefore lands in a new folder and recomputes exactly what depends on it;
an edit that computes nothing new recomputes nothing, and switching back finds the old products again.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lib import ROOT
from lib.core.errors import ConfigError
from lib.core.protocol import model_name
from lib.core.rules import RADIUS, passes
from lib.pipeline import code
from lib.pipeline.config import COMPARED_MODELS, Study
from lib.pipeline.registry import STEPS, Step, eps_label, seed_suffix
from lib.pipeline.runner import NOTEBOOKS


def runs_dir() -> Path:
    """Root of all products (INVADV_RUNS, default runs/)."""
    return Path(os.environ.get("INVADV_RUNS", ROOT / "runs"))


def reports_dir() -> Path:
    """Where the rendered HTML report goes (INVADV_REPORTS, default reports/)."""
    return Path(os.environ.get("INVADV_REPORTS", ROOT / "reports"))


def notebook_cells(notebook: str) -> list[dict]:
    return json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]


def notebook_code(notebook: str) -> str:
    """The Python of a notebook's code cells (IPython magics and shell lines left out)."""
    lines = ["".join(c["source"]) for c in notebook_cells(notebook) if c["cell_type"] == "code"]
    return "\n".join(line for line in "\n".join(lines).splitlines() if not line.lstrip().startswith(("%", "!")))


def step_code(step: Step, extra: tuple[str, str] | None = None) -> dict[tuple[str, str], str]:
    """{(module, name): code} of every definition a step's products depend on: what its maker reaches (and the
    task's own `extra` definition, Step.code_root), and what its notebook reaches where the notebook writes part of
    the product (its figures)."""
    module, function = step.make.split(":")
    roots = {(module, function)} | ({extra} if extra else set())
    own = frozenset({extra} if extra else ())  # a training's own model counts as its recipe (code.DECLARATION)
    if not step.figures:
        return code.reached(roots, root=ROOT, recipes=own)
    notebook = code.parse(f"notebooks/{step.notebook}", notebook_code(step.notebook), ROOT)
    nodes = [n for group in notebook.definitions.values() for n in group] + notebook.statements
    return code.reached(roots, nodes, notebook, root=ROOT, recipes=own)


def code_files(step: Step, extra: tuple[str, str] | None = None) -> list[Path]:
    """The `lib` files of the definitions a step's products depend on."""
    return sorted({code.module_file(module, ROOT) for module, _ in step_code(step, extra)} - {None})


def code_parts(step: Step, extra: tuple[str, str] | None = None) -> dict[str, str]:
    """{'module:name': short hash} of each definition `source_hash` covers (and the notebook's cells, where they
    count): what a manifest keeps so that a later plan can name the code that changed (lib.pipeline.manifest)."""
    short = lambda text: hashlib.sha256(text.encode()).hexdigest()[:12]
    parts = {f"{module}:{name}": short(text) for (module, name), text in step_code(step, extra).items()}
    if step.figures:
        cells = notebook_cells(step.notebook)
        parts[f"notebooks/{step.notebook}.ipynb:code"] = short(code.normalized_source(notebook_code(step.notebook)))
        parts[f"notebooks/{step.notebook}.ipynb:text"] = short(
            json.dumps(["".join(c["source"]) for c in cells if c["cell_type"] != "code"]))
    return parts


def source_hash(step: Step, extra: tuple[str, str] | None = None) -> str:
    """Hash of the code of a step's products: the definitions it reaches (lib.pipeline.code), and its notebook's
    cells (code as parsed, text as written) where the notebook writes part of the product."""
    digest = hashlib.sha256(code.code_hash(step_code(step, extra)).encode())
    if step.figures:
        cells = notebook_cells(step.notebook)
        digest.update(code.normalized_source(notebook_code(step.notebook)).encode())
        digest.update(json.dumps(["".join(c["source"]) for c in cells if c["cell_type"] != "code"]).encode())
    return digest.hexdigest()


@dataclass
class Task:
    """One run of a step: its notebook with parameters, writing the step's files into `folder`."""

    name: str
    step: Step
    params: dict  # injected into the notebook's parameters cell, besides profile and overrides
    key_params: dict  # what the products depend on (beyond code and inputs)
    deps: list["Task"] = field(default_factory=list)
    profile: str = "paper"
    code_hashes: dict[str, str] = field(default_factory=dict, repr=False)  # per step, shared by one plan's tasks

    @property
    def notebook(self) -> str:
        return self.step.notebook

    @property
    def code_root(self) -> tuple[str, str] | None:
        """The definition this task's code covers besides its step's maker (a training's recipe), if any."""
        return self.step.code_root(self.params) if self.step.code_root else None

    @property
    def code_id(self) -> str:
        """Which code this task runs: its step, and its own definition where it has one ('train:C')."""
        return f"{self.step.name}:{self.code_root[1]}" if self.code_root else self.step.name

    @property
    def code_hash(self) -> str:
        """The hash of the code its product depends on (`source_hash`), shared by the plan's tasks of one code."""
        cached = f"{self.step.name}:{self.code_root}"
        if cached not in self.code_hashes:  # the 27 trainings of a plan share seven recipes: hash each once
            self.code_hashes[cached] = source_hash(self.step, self.code_root)
        return self.code_hashes[cached]

    @cached_property  # plan() builds fresh Tasks, so an edit is seen by the next plan
    def key(self) -> str:
        payload = json.dumps({"code": self.code_hash, "params": self.key_params,
                              "deps": [d.key for d in self.deps]}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return runs_dir() / self.profile / f"{self.name}-{self.key}"

    def file(self, name: str) -> Path:
        """One of the step's product files, by name."""
        if name not in self.step.files:
            raise KeyError(f"{name!r} is not a product of step {self.step.name} (its files: {self.step.files})")
        return self.folder / name

    @property
    def output(self) -> Path:
        """The file that marks the product done (the step's last file)."""
        return self.folder / self.step.files[-1]

    @property
    def executed(self) -> Path:
        return self.folder / f"{self.notebook}.ipynb"


def plan(s: Study) -> dict[str, Task]:
    """All tasks of the study, by name, in the registry's order (every input before what reads it)."""
    tasks: dict[str, Task] = {}
    code_hashes: dict[str, str] = {}
    for step in STEPS.values():
        for params in step.runs(s):
            name = step.task_name(s, params)
            tasks[name] = Task(name, step, params, step.key(s, params), [tasks[d] for d in step.inputs(s, params)],
                               s.profile, code_hashes)
    return tasks


def task(s: Study, name: str) -> Task:
    """One task of the study's plan, by name."""
    tasks = plan(s)
    if name not in tasks:
        raise ConfigError(f"unknown task {name!r}; tasks of this study: {', '.join(tasks)}")
    return tasks[name]


def check_seed(s: Study, seed: int | None) -> int:
    """The seed a notebook asked for (None: the primary one), checked against the study's seeds."""
    if seed is None:
        return s.seed
    if seed not in s.seeds:
        raise ConfigError(f"seed={seed!r} is not one of the study's seeds {list(s.seeds)}; "
                          f"add it, e.g. overrides=\"extra_seeds={','.join(map(str, [*s.extra_seeds, seed]))}\"")
    return seed


def train_task(s: Study, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """The training task of one model (a notebook's parameters checked first)."""
    seed = check_seed(s, seed)
    check_model(s, model, feature_dim, seed, s.models(seed), "trains")
    return task(s, STEPS["train"].task_name(s, {"model": model, "feature_dim": feature_dim, "seed": seed}))


def check_model(s: Study, model: str, feature_dim: int, seed: int, models: list[tuple[str, int]], what: str) -> None:
    """ConfigError unless (model, feature_dim) is one of `models` (a notebook's parameters)."""
    s.train_config(model, feature_dim, seed)  # names a bad model or feature_dim
    if (model, feature_dim) not in models:
        raise ConfigError(f"model {model_name(model, feature_dim)} is not one the study {what} at seed {seed}; "
                          f"choose one of {[model_name(m, d) for m, d in models]}")


def eps_task(s: Study, eps: float, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """One model's ε run at one radius (a notebook's parameters checked first)."""
    if not passes(RADIUS, eps):
        raise ConfigError(f"eps must be {RADIUS[0]}, got {eps!r}")
    if float(eps) not in s.eps:
        raise ConfigError(f"eps={eps:g} is not in the study's grid {list(s.eps)}; add it to the grid, "
                          f"e.g. overrides=\"eps={','.join(eps_label(e) for e in sorted({*s.eps, float(eps)}))}\"")
    seed = check_seed(s, seed)
    check_model(s, model, feature_dim, seed, s.attacked(seed), "attacks")
    return task(s, STEPS["eps"].task_name(s, {"eps": float(eps), "model": model, "feature_dim": feature_dim,
                                             "seed": seed}))


def compared_task(s: Study, step: str, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """The task of a per-model step of the extension (evaluate, autoattack, authors) for one of a seed's compared
    models."""
    what = {"evaluate": "evaluation", "autoattack": "AutoAttack", "authors": "AutoAttack of its authors' code"}[step]
    if not s.extended:
        raise ConfigError(f"the {what} belongs to the extension, which this study leaves out (extended=0)")
    seed = check_seed(s, seed)
    check_model(s, model, feature_dim, seed, list(COMPARED_MODELS), "evaluates")
    return task(s, STEPS[step].task_name(s, {"model": model, "feature_dim": feature_dim, "seed": seed}))


def evaluate_task(s: Study, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """The evaluation of one of a seed's compared models (the extension)."""
    return compared_task(s, "evaluate", model, feature_dim, seed)


def autoattack_task(s: Study, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """The AutoAttack of one of a seed's compared models (the extension)."""
    return compared_task(s, "autoattack", model, feature_dim, seed)


def authors_task(s: Study, model: str, feature_dim: int, seed: int | None = None) -> Task:
    """The AutoAttack of its authors' code of one of a seed's compared models (the extension, with
    authors_autoattack=1)."""
    if not s.authors_autoattack:
        raise ConfigError("the AutoAttack of its authors' code runs only on request: set authors_autoattack=1")
    return compared_task(s, "authors", model, feature_dim, seed)


def check_task(s: Study, seed: int | None = None) -> Task:
    """The attack check of one seed's compared models (the extension)."""
    if not s.extended:
        raise ConfigError("the attack check belongs to the extension, which this study leaves out (extended=0)")
    seed = check_seed(s, seed)
    runs = STEPS["check"].runs(s)
    if {"seed": seed} not in runs:
        raise ConfigError(f"the study checks attacks at seed(s) {[r['seed'] for r in runs]}, not {seed}")
    return task(s, STEPS["check"].task_name(s, {"seed": seed}))


def product(s: Study, t: Task, device=None):
    """A task's product, made now (with its own inputs) unless it exists: its step's maker called with the
    task's parameters, as its notebook calls it."""
    module, function = t.step.make.split(":")
    return getattr(importlib.import_module(module), function)(s, **t.params, device=device)


def input_products(s: Study, t: Task, device=None) -> list[tuple[Task, object]]:
    """(input task, its product) for each of a task's inputs, in order: a maker reads what its key names, and
    nothing else."""
    return [(d, product(s, d, device)) for d in t.deps]


def inputs(s: Study, t: Task, device=None) -> dict[str, list]:
    """The products of a task's inputs, by step ({'train': [checkpoint, ...], 'eps': [...]}), in order."""
    found: dict[str, list] = {}
    for d, made in input_products(s, t, device):
        found.setdefault(d.step.name, []).append(made)
    return found
