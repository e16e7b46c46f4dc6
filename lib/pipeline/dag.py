"""The report's DAG: which notebook runs make which product, where, keyed by what.

Every product lives in a folder named by a content key: a hash of the step's parameters, the
source of the notebook and of every `lib` module it reaches, and the keys of its inputs. A changed
parameter or code therefore lands in a new folder and recomputes exactly what depends on it;
switching back finds the old products again.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from lib import ROOT
from lib.core.errors import ConfigError
from lib.core.protocol import model_name
from lib.core.rules import RADIUS, passes
from lib.pipeline.config import Study
from lib.pipeline.registry import STEPS, Step, eps_label

NOTEBOOKS = ROOT / "notebooks"


def runs_dir() -> Path:
    """Root of all products (INVADV_RUNS, default runs/)."""
    return Path(os.environ.get("INVADV_RUNS", ROOT / "runs"))


def reports_dir() -> Path:
    """Where the rendered HTML report goes (INVADV_REPORTS, default reports/)."""
    return Path(os.environ.get("INVADV_REPORTS", ROOT / "reports"))


@lru_cache(maxsize=512)  # by content, so an edited file is parsed again
def imported_modules(source: str) -> frozenset[str]:
    """Dotted names of what `source` imports from `lib`, at any depth of the code ('lib.core.train',
    'lib.core.train.restore', ...: a name that is no module is dropped by `module_file`)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return frozenset(name for name in names if name == "lib" or name.startswith("lib."))


def module_file(name: str) -> Path | None:
    """The file of module `name` ('lib.core' -> lib/core/__init__.py), or None when it names no module."""
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def notebook_code(notebook: str) -> str:
    """The Python of a notebook's code cells (IPython magics and shell lines left out)."""
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]
    lines = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return "\n".join(line for line in "\n".join(lines).splitlines() if not line.lstrip().startswith(("%", "!")))


def code_files(notebook: str) -> list[Path]:
    """Every `lib` file a notebook reaches through imports, transitively, with the packages' __init__ files:
    the code its products depend on, found rather than listed, so no module can be forgotten."""
    found: set[Path] = set()
    todo = set(imported_modules(notebook_code(notebook)))
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing lib.core.train runs lib/__init__, lib/core/__init__
            path = module_file(".".join(parts[:depth]))
            if path and path not in found:
                found.add(path)
                todo |= imported_modules(path.read_text())
    return sorted(found)


def source_hash(notebook: str) -> str:
    """Hash of a notebook and of every `lib` file it reaches (names and contents)."""
    digest = hashlib.sha256((NOTEBOOKS / f"{notebook}.ipynb").read_bytes())
    for path in code_files(notebook):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
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
    code_hashes: dict[str, str] = field(default_factory=dict, repr=False)  # per notebook, shared by one plan's tasks

    @property
    def notebook(self) -> str:
        return self.step.notebook

    @cached_property  # plan() builds fresh Tasks, so an edit is seen by the next plan
    def key(self) -> str:
        if self.notebook not in self.code_hashes:  # the 18 trainings of a plan run one notebook: hash it once
            self.code_hashes[self.notebook] = source_hash(self.notebook)
        payload = json.dumps({"code": self.code_hashes[self.notebook], "params": self.key_params,
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
    s.train_config(model, feature_dim, seed)  # names a bad model or feature_dim
    if (model, feature_dim) not in s.models(seed):
        raise ConfigError(f"model {model_name(model, feature_dim)} is not one the study trains at seed {seed}; "
                          f"choose one of {[model_name(m, d) for m, d in s.models(seed)]}")
    return task(s, STEPS["train"].task_name(s, {"model": model, "feature_dim": feature_dim, "seed": seed}))


def eps_task(s: Study, eps: float, seed: int | None = None) -> Task:
    """The ε run of one radius (a notebook's parameter checked first)."""
    if not passes(RADIUS, eps):
        raise ConfigError(f"eps must be {RADIUS[0]}, got {eps!r}")
    if float(eps) not in s.eps:
        raise ConfigError(f"eps={eps:g} is not in the study's grid {list(s.eps)}; add it to the grid, "
                          f"e.g. overrides=\"eps={','.join(eps_label(e) for e in sorted({*s.eps, float(eps)}))}\"")
    return task(s, STEPS["eps"].task_name(s, {"eps": float(eps), "seed": check_seed(s, seed)}))


def evaluate_task(s: Study, seed: int | None = None) -> Task:
    """The evaluation of one seed's 200-d models (the extension)."""
    if not s.extended:
        raise ConfigError("the evaluation belongs to the extension, which this study leaves out (extended=0)")
    return task(s, STEPS["evaluate"].task_name(s, {"seed": check_seed(s, seed)}))

