"""The report's DAG: which notebook runs make which product, where, keyed by what.

Every product lives in a folder named by a content key: a hash of the step's parameters, the
source of the notebook and `lib` modules that make it, and the keys of its inputs. A changed
parameter or code therefore lands in a new folder and recomputes exactly what depends on it;
switching back finds the old products again. `makefile` writes these tasks as a Makefile so
`make -j` runs independent ones in parallel; `execute` runs one notebook with papermill.

    python -m lib.pipeline --profile quick --set "epochs=3" makefile   # writes runs/quick/pipeline.mk
    python -m lib.pipeline --profile quick execute train-A-200d         # one step
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from lib import cost
from lib.config import COMPARED_MODELS, ROOT, Study, model_name, study
from lib.errors import ConfigError, MissingInput, ProductError, UserFacing

NOTEBOOKS = ROOT / "notebooks"
KERNEL = "invadv-centers"
# The lib modules whose code each step runs (its inputs' code is covered by their keys).
CODE = {
    "01_train": ("data", "models", "losses", "attacks", "precision", "train", "centers", "steps"),
    "02_inverse_adversaries": ("data", "models", "attacks", "precision", "centers", "inverse", "steps"),
    "03_centers": ("centers", "tables", "steps"),
    "04_figures": ("plots", "claims", "report", "tables", "steps"),
    "05_evaluate": ("data", "models", "attacks", "precision", "centers", "evaluation", "steps"),
    "06_extension": ("centers", "claims", "plots", "probe", "report", "tables", "steps"),
}


def runs_dir() -> Path:
    """Root of all products (INVADV_RUNS, default runs/)."""
    return Path(os.environ.get("INVADV_RUNS", ROOT / "runs"))


def reports_dir() -> Path:
    """Where the rendered HTML report goes (INVADV_REPORTS, default reports/)."""
    return Path(os.environ.get("INVADV_REPORTS", ROOT / "reports"))


def source_hash(notebook: str) -> str:
    """Hash of a notebook and the lib modules it runs."""
    digest = hashlib.sha256((NOTEBOOKS / f"{notebook}.ipynb").read_bytes())
    for module in CODE[notebook]:
        digest.update((ROOT / "lib" / f"{module}.py").read_bytes())
    return digest.hexdigest()


@dataclass
class Task:
    """One papermill run: a notebook with parameters, writing `product` into `folder`."""

    name: str
    notebook: str
    params: dict  # injected into the notebook's parameters cell, besides profile and overrides
    key_params: dict  # what the products depend on (beyond code and inputs)
    product: str  # file name inside the folder that marks the step done
    deps: list["Task"] = field(default_factory=list)
    profile: str = "paper"

    @cached_property  # plan() builds fresh Tasks, so an edit is seen by the next plan
    def key(self) -> str:
        payload = json.dumps({"code": source_hash(self.notebook), "params": self.key_params,
                              "deps": [d.key for d in self.deps]}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return runs_dir() / self.profile / f"{self.name}-{self.key}"

    @property
    def output(self) -> Path:
        return self.folder / self.product

    @property
    def executed(self) -> Path:
        return self.folder / f"{self.notebook}.ipynb"


def eps_label(eps: float) -> str:
    """ε as a stable folder-name fragment, e.g. 0.05 -> '0.05'."""
    return f"{eps:g}"


def seed_suffix(s: Study, seed: int) -> str:
    """'' for the primary seed (the reproduction's task names), '-s<seed>' for the extension's others."""
    return "" if seed == s.seed else f"-s{seed}"


def train_name(s: Study, model: str, feature_dim: int, seed: int) -> str:
    """'train-A-200d', 'train-C-200d-s1', ...: the task name of one training."""
    return f"train-{model_name(model, feature_dim)}{seed_suffix(s, seed)}"


def eps_name(s: Study, eps: float, seed: int) -> str:
    """'eps-0.1', 'eps-0.1-s2', ...: the task name of one ε run."""
    return f"eps-{eps_label(eps)}{seed_suffix(s, seed)}"


def evaluate_name(s: Study, seed: int) -> str:
    """'evaluate', 'evaluate-s1', ...: the task name of one seed's evaluation."""
    return f"evaluate{seed_suffix(s, seed)}"


def plan(s: Study) -> dict[str, Task]:
    """All tasks of the study, by name, in an order that respects dependencies."""
    tasks: dict[str, Task] = {}
    attack = {k: getattr(s, k) for k in ("steps", "step_size", "attack_samples", "attack_split", "precision")}
    for seed in s.seeds:
        for model, dim in s.models(seed):
            name = train_name(s, model, dim, seed)
            tasks[name] = Task(name, "01_train", {"model": model, "feature_dim": dim, "seed": seed},
                               s.train_config(model, dim, seed).to_dict(), "checkpoint.pt", profile=s.profile)
    for seed in s.seeds:
        attacked = [tasks[train_name(s, m, d, seed)] for m, d in s.attacked(seed)]
        for eps in s.eps:
            name = eps_name(s, eps, seed)
            tasks[name] = Task(name, "02_inverse_adversaries", {"eps": eps, "seed": seed}, {"eps": eps, **attack},
                               "inverse.pt", deps=attacked, profile=s.profile)
    primary_eps = [tasks[eps_name(s, e, s.seed)] for e in s.eps]
    trained = [tasks[train_name(s, m, d, s.seed)] for m, d in s.attacked()]
    tasks["centers"] = Task("centers", "03_centers", {}, {"mean_split": s.mean_split},
                            "centers.csv", deps=trained + primary_eps, profile=s.profile)
    train_tasks = [t for t in tasks.values() if t.notebook == "01_train"]
    eps_tasks = [t for t in tasks.values() if t.notebook == "02_inverse_adversaries"]
    extension = []
    if s.extended:
        robust = {k: getattr(s, k) for k in ("robust_eps", "robust_steps", "robust_step_size", "robust_samples",
                                             "precision")}
        for seed in s.seeds:
            name = evaluate_name(s, seed)
            tasks[name] = Task(name, "05_evaluate", {"seed": seed}, robust, "evaluation.csv",
                               deps=[tasks[train_name(s, m, d, seed)] for m, d in COMPARED_MODELS], profile=s.profile)
        evaluations = [t for t in tasks.values() if t.notebook == "05_evaluate"]
        tasks["extension"] = Task("extension", "06_extension", {}, {"study": s.to_dict()}, "claim4.json",
                                  deps=[tasks["centers"], *train_tasks, *eps_tasks, *evaluations], profile=s.profile)
        extension = [tasks["extension"]]
    tasks["figures"] = Task("figures", "04_figures", {}, {"study": s.to_dict()}, "04_figures.ipynb",
                            deps=[tasks["centers"], *train_tasks, *primary_eps, *extension], profile=s.profile)
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
    return task(s, train_name(s, model, feature_dim, seed))


def eps_task(s: Study, eps: float, seed: int | None = None) -> Task:
    """The ε run of one radius (a notebook's parameter checked first)."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ConfigError(f"eps must be a number in [0, 1] (pixels are in [0, 1]), got {eps!r}")
    if float(eps) not in s.eps:
        raise ConfigError(f"eps={eps:g} is not in the study's grid {list(s.eps)}; add it to the grid, "
                          f"e.g. overrides=\"eps={','.join(eps_label(e) for e in sorted({*s.eps, float(eps)}))}\"")
    return task(s, eps_name(s, eps, check_seed(s, seed)))


def evaluate_task(s: Study, seed: int | None = None) -> Task:
    """The evaluation of one seed's 200-d models (the extension)."""
    if not s.extended:
        raise ConfigError("the evaluation belongs to the extension, which this study leaves out (extended=0)")
    return task(s, evaluate_name(s, check_seed(s, seed)))


def product_problem(t: Task) -> str | None:
    """Why a finished task's product cannot be used (missing, unreadable, other config), or None."""
    from lib import products
    from lib.config import TrainConfig
    from lib.train import load_checkpoint

    if not t.output.exists():
        return f"its product {t.output} is missing"
    try:
        if t.notebook == "01_train":
            load_checkpoint(t.output, TrainConfig.from_dict(t.key_params))
        elif t.output.suffix == ".pt":
            products.load(t.output)
    except ProductError as exc:
        return str(exc)
    return None


def set_aside_broken(s: Study) -> list[str]:
    """Move finished tasks with an unusable product aside (kept, renamed) so make recomputes them."""
    notes = []
    for t in plan(s).values():
        if t.executed.exists() and (problem := product_problem(t)):
            suffix = time.strftime(".broken-%Y%m%d-%H%M%S")
            for path in {t.executed, t.output}:
                if path.exists():
                    os.replace(path, path.with_name(path.name + suffix))
            notes.append(f"warning: step {t.name}: {problem}\n  moved aside as *{suffix}; it will be recomputed")
    return notes


def report_path(s: Study) -> Path:
    """reports/report.html for the paper profile, reports/report-<profile>.html otherwise."""
    return reports_dir() / ("report.html" if s.profile == "paper" else f"report-{s.profile}.html")


def notebooks_folder_name(s: Study) -> str:
    """Folder beside the report holding the executed notebooks (linked from the report)."""
    return f"{report_path(s).stem}_notebooks"


def overrides_text(overrides: str) -> str:
    """Normalise override text (one space between items)."""
    return " ".join(overrides.split())


def makefile(s: Study, overrides: str) -> str:
    """A Makefile with one rule per task; `make -f it report` builds the whole report."""
    pipe = f"$(PY) -m lib.pipeline --profile {s.profile} --set {shlex.quote(overrides_text(overrides))}"
    lines = ["# Generated by lib.pipeline: do not edit.", f"PY ?= {shlex.quote(sys.executable)}",
             f"PIPE := {pipe}", ".PHONY: report", ""]
    tasks = plan(s)
    # Targets are the executed notebooks: papermill's output appears (atomically) only after the
    # notebook ran to the end and wrote its product.
    for task in tasks.values():
        deps = " ".join(str(d.executed) for d in task.deps)
        lines += [f"{task.executed}: {deps}", f"\t@$(PIPE) execute {task.name} --key {task.key}", ""]
    lines += [f"report: {tasks['figures'].executed}", "\t@$(PIPE) render", ""]
    return "\n".join(lines)


def make_jobs() -> int:
    """N of the `make -jN` running this process (1 outside make or without -j)."""
    match = re.search(r"(?:^|\s)-j\s*(\d+)", os.environ.get("MAKEFLAGS", ""))
    return int(match.group(1)) if match else 1


def make_dry_run() -> bool:
    """Whether this process runs under `make -n` (its single-letter flags come first in MAKEFLAGS)."""
    flags = os.environ.get("MAKEFLAGS", "").split()
    return bool(flags) and not flags[0].startswith("-") and "n" in flags[0]


def jobs_threads(jobs: int | None = None) -> int | None:
    """Torch threads per notebook under `make -jN` (N: `jobs`, else read from make): the cores shared out, so N
    runs don't thrash; None with one job (torch's default)."""
    jobs = make_jobs() if jobs is None else jobs
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


# --- what a run will cost, and how far it got ----------------------------------------------------------------

def estimate_path(s: Study) -> Path:
    """Where `makefile` leaves each pending step's estimated seconds, for `watch` to read."""
    return runs_dir() / s.profile / "estimate.json"


def minutes(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h'."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cost_note(s: Study, jobs: int) -> tuple[str, dict[str, float]]:
    """What `make report` is about to run and cost on this machine (printed before it starts), and the
    estimated seconds of each pending step."""
    from lib.provenance import default_device

    tasks = list(plan(s).values())
    pending = [t for t in tasks if not t.executed.exists()]
    if not pending:
        return f"make report ({s.profile}): all {len(tasks)} steps are made; rendering the report", {}
    rates = cost.calibrate(s.precision, default_device(), jobs_threads(jobs))
    seconds = cost.estimate(s, pending, rates)
    kinds = " · ".join(f"{n} {kind}" for kind, n in _counts(pending).items())
    total = sum(seconds.values())
    wall = f", ≈ {minutes(total / jobs)} wall with make -j{jobs}" if jobs > 1 else \
        " (make -j2 report runs two steps at a time)" if (os.cpu_count() or 1) > 1 else ""
    lines = [f"make report ({s.profile}, {s.precision}): {len(pending)} of {len(tasks)} steps to run — {kinds}",
             f"  estimated compute {minutes(total)}{wall}; timed just now on this machine: "
             f"{1e3 * rates['train']:.2f} ms per image per training step, {1e3 * rates['pgd']:.2f} ms per PGD step"]
    if s.profile == "paper":
        quick = study("quick", {"precision": s.precision})
        preview = sum(cost.estimate(quick, plan(quick).values(), rates).values())
        lines.append(f"  a preview of the whole report: make report PROFILE=quick (≈ {minutes(preview / jobs)})")
    return "\n".join(lines), seconds


def _counts(tasks: list[Task]) -> dict[str, int]:
    """How many tasks run each notebook, named for a person ('trainings', 'ε runs', ...)."""
    names = {"01_train": "trainings", "02_inverse_adversaries": "ε runs", "05_evaluate": "evaluations"}
    return Counter(names.get(t.notebook, t.name) for t in tasks)


def duration(t: Task) -> float:
    """Seconds a finished task's notebook ran (papermill records it in the executed notebook)."""
    try:
        return float(json.loads(t.executed.read_text())["metadata"]["papermill"]["duration"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def eta(estimated: dict[str, float], finished: dict[str, float], running: dict[str, float], jobs: int) -> float:
    """Seconds left: the unfinished steps' estimates, rescaled by how the finished ones compared with theirs
    (actual / estimated), less what the running ones have already done, shared over `jobs` at a time."""
    done_estimate = sum(estimated[name] for name in finished)
    speed = sum(finished.values()) / done_estimate if finished and done_estimate else 1.0
    left = sum(seconds for name, seconds in estimated.items() if name not in finished) * speed
    return max(0.0, left - sum(running.values())) / jobs


def watch(s: Study, poll: float = 2.0) -> None:
    """One progress line for `make -jN report` (N > 1): steps done / to run, the running ones, and an ETA.
    On a terminal the line updates in place; in a log, a line per finished step. Exits when all are made."""
    from tqdm import tqdm

    jobs = make_jobs()
    if jobs <= 1 or make_dry_run():  # with -j1 each step shows its own progress bars
        return
    stored = json.loads(estimate_path(s).read_text()) if estimate_path(s).exists() else {}
    todo = [t for t in plan(s).values() if not t.executed.exists()]
    estimated = {t.name: stored.get(t.name, cost.STEP_OVERHEAD) for t in todo}
    start, finished, started = time.time(), {}, {}
    live = sys.stderr.isatty()
    bar = tqdm(total=len(todo), bar_format="steps {n_fmt}/{total_fmt} |{bar}| {desc}", dynamic_ncols=True,
               disable=not live)
    try:
        while len(finished) < len(todo):
            now = time.time()
            for t in todo:
                if t.name in finished:
                    continue
                if t.executed.exists():
                    finished[t.name] = duration(t) or now - started.get(t.name, start)
                    bar.update(1)
                    if not live:
                        print(f"[{len(finished)}/{len(todo)}] {t.name} done in {minutes(finished[t.name])}; "
                              f"{minutes(now - start)} elapsed, ETA ≈ "
                              f"{minutes(eta(estimated, finished, {}, jobs))}", file=sys.stderr, flush=True)
                elif (t.folder / f".{t.notebook}.partial.ipynb").exists():
                    started.setdefault(t.name, now)
            running = {name: now - since for name, since in started.items() if name not in finished}
            bar.set_description_str(f"{minutes(now - start)} elapsed, ETA ≈ "
                                    f"{minutes(eta(estimated, finished, running, jobs))} · running: "
                                    f"{', '.join(running) or '-'}")
            time.sleep(poll)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()


def execute(task: Task, overrides: str, expected_key: str | None = None) -> None:
    """Run the task's notebook with papermill; the executed notebook appears only on success."""
    import papermill

    if expected_key and expected_key != task.key:
        raise SystemExit(f"error: the code or parameters of {task.name} changed while the pipeline ran "
                         f"(key {expected_key} -> {task.key}); run `make report` again")
    missing = [d for d in task.deps if not d.output.exists()]
    if missing:
        raise MissingInput(f"{task.name} needs {', '.join(d.name for d in missing)} first: "
                           f"run `make report PROFILE={task.profile}` (with the same SET=...)")
    task.folder.mkdir(parents=True, exist_ok=True)
    partial = task.folder / f".{task.notebook}.partial.ipynb"
    env_threads = jobs_threads()
    if env_threads and "INVADV_THREADS" not in os.environ:
        os.environ["INVADV_THREADS"] = str(env_threads)  # read by lib.provenance.default_device
    params = {"profile": task.profile, "overrides": overrides_text(overrides), **task.params}
    started = runs_dir() / task.profile / ".started"
    if task.name == "figures" and started.exists():
        params["wall_seconds"] = time.time() - started.stat().st_mtime
    # With -jN (N > 1) the steps keep their output to their notebooks, and `watch` shows one progress line.
    alone = make_jobs() == 1
    if alone:
        print(f"[{task.name}] {task.notebook} -> {task.folder}", flush=True)
    try:
        papermill.execute_notebook(
            NOTEBOOKS / f"{task.notebook}.ipynb", partial, cwd=str(NOTEBOOKS), kernel_name=KERNEL,
            parameters=params, log_output=alone, progress_bar=False)
    except papermill.PapermillExecutionError as exc:
        # The notebook's own error first, not papermill's traceback.
        raise SystemExit(f"error in {task.name} ({task.notebook}): {exc.ename}: {exc.evalue}\n"
                         f"  executed notebook kept for inspection: {partial}") from None
    os.replace(partial, task.executed)
    if not task.output.exists():
        raise SystemExit(f"error: {task.notebook} ran but did not write {task.output}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--set", default="", dest="overrides", help='overrides, e.g. "epochs=3 eps=0,0.1"')
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("makefile", help="write runs/<profile>/pipeline.mk and print its path")
    run = sub.add_parser("execute", help="run one task's notebook")
    run.add_argument("task")
    run.add_argument("--key", help="the key the generated Makefile expects (guards against mid-run edits)")
    sub.add_parser("render", help="render the HTML report from the executed notebooks")
    sub.add_parser("watch", help="under make -jN: one progress line until every step is made")
    args = parser.parse_args(argv)
    try:
        run_command(args)
    except UserFacing as exc:  # a fixable problem: its message, first, without a traceback
        raise SystemExit(f"error: {exc}") from None


def run_command(args: argparse.Namespace) -> None:
    """Dispatch one command of main()."""
    from lib import products

    s = study(args.profile, args.overrides)
    if args.command == "makefile":
        # Checked before anything runs, so a problem is the first thing `make report` prints.
        products.check_writable(runs_dir() / s.profile)
        products.check_writable(reports_dir())
        for note in set_aside_broken(s):
            print(note, file=sys.stderr)
        path = runs_dir() / s.profile / "pipeline.mk"
        products.write_text(makefile(s, args.overrides), path)
        note, seconds = cost_note(s, make_jobs())
        products.write_text(json.dumps(seconds), estimate_path(s))
        print(note, file=sys.stderr)
        print(path)
    elif args.command == "execute":
        execute(task(s, args.task), args.overrides, args.key)
    elif args.command == "render":
        from lib.render import render

        render(s, plan(s))
    elif args.command == "watch":
        watch(s)


if __name__ == "__main__":
    main()
