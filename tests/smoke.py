"""Run `make report PROFILE=smoke` from the tests: offline, one thread, products in the scratch folder."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch

from lib import ROOT
from lib.core.precision import cpu_flags
from lib.core.provenance import cpu_kernels
from lib.pipeline import dag, registry, render
from lib.pipeline.config import study

OFFLINE = ROOT / "tests" / "offline"  # a sitecustomize that refuses non-loopback connections
# The suite computes the smoke study once, with `make report` in the background, into its own runs folder (apart from
# the one the in-process tests fill, INVADV_RUNS); nbval's notebooks display its products and the regression check
# compares them with the stored references. INVADV_PIPELINE_RUNS points it at a finished run (`make nbval-refresh`
# regenerates the references from one); INVADV_KEEP_SMOKE_RUNS makes the suite's own run there, kept after the
# session, so that `.ci/run` hands it to the cluster test as make's products to compare with instead of computing
# them a second time.
PIPELINE_RUNS = Path(os.environ.get("INVADV_PIPELINE_RUNS") or os.environ.get("INVADV_KEEP_SMOKE_RUNS")
                     or Path(os.environ["INVADV_RUNS"]).with_name("pipeline-runs"))


@contextmanager
def environment(**changes: str) -> Iterator[None]:
    """Set environment variables for the block, then restore them (or remove the ones that were unset)."""
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


AVX2_SET = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
SSE41_SET = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
# An AVX2 CPU's other set: oneDNN and MKL at AVX, which has no FMA, so every convolution and matrix product rounds
# otherwise (a training's weights differ after one epoch), while ATen keeps its AVX2 kernels. On a 2-core AVX2 CPU
# it costs 1.25× the native time where SSE41_SET costs 3.2× (one epoch of E: 8.2 s native, 10.3 s, 26.2 s), which
# had made nbval's notebooks half of a 41-minute suite.
AVX_ATEN_AVX2_SET = {"ONEDNN_MAX_CPU_ISA": "AVX", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX"}


def other_kernels() -> dict[str, str]:
    """Environment that makes a new process compute with another CPU kernel set than this one's: AVX2 kernels
    (oneDNN, ATen, MKL) where this process computes with AVX-512, oneDNN and MKL at AVX where it computes with AVX2,
    and AVX2 ones again where this process is held below AVX2 (`ONEDNN_MAX_CPU_ISA=AVX make test`) on a CPU that
    has it."""
    held = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ("AVX", "SSE41")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512" and not held:
        return AVX2_SET
    if capability == "AVX2" and not held:
        return AVX_ATEN_AVX2_SET
    return AVX2_SET if "avx2" in cpu_flags() else SSE41_SET


# The kernel set the references were computed with (cpu_kernels() of their run; tools/refresh_nbval.py writes it).
REFERENCE_KERNELS_FILE = ROOT / "tests" / "test_regression" / "kernels.txt"
REFERENCE_KERNELS = REFERENCE_KERNELS_FILE.read_text().strip()


def smoke_kernels() -> dict[str, str]:
    """Environment of the suite's computation of the smoke study: this CPU's own kernels, unless the references were
    computed with the same set (then comparing the two would prove nothing about another CPU), then another set
    (other_kernels). So the regression check always compares numbers from two kernel sets, on any CPU."""
    return other_kernels() if cpu_kernels() == REFERENCE_KERNELS else {}


def offline_env(**changes: str) -> dict[str, str]:
    """The test environment with network access refused in every Python process started from it."""
    return _offline(os.environ, changes)


def _offline(base: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """`base` with `changes` and the network-refusing sitecustomize first on PYTHONPATH (a snapshot of os.environ
    for the follow-up thread, or os.environ itself)."""
    path = os.pathsep.join(p for p in (str(OFFLINE), base.get("PYTHONPATH", "")) if p)
    return {**base, "PYTHONPATH": path, **changes}


def make_command(*args: str, jobs: int = 2) -> list[str]:
    """`make -jN report PROFILE=smoke ARGS...` with this interpreter's environment (one thread per step)."""
    return ["make", "-s", f"-j{jobs}", "report", "PROFILE=smoke", f"VENV={sys.prefix}", *args]


def pipeline_env() -> dict[str, str]:
    """The offline environment with the smoke pipeline's own runs folder and kernel set."""
    return offline_env(INVADV_RUNS=str(PIPELINE_RUNS), **smoke_kernels())


# The suite's smoke run starts in the background when tests that need it are collected (conftest.py); the unit tests
# run meanwhile, and the tests that read the run come last: first those that read only some of its steps
# (`pytest.mark.pipeline("train", "eps")`, wait_for_steps) and nbval's notebooks (each once its step is made,
# nbval_step), while it computes the others, then those that read all of it. A twin run starts with it
# on the same runs folder, reporting elsewhere: it must wait for every product another run is making instead of
# computing it again (tests/test_fail_fast.py), and costs only its waiting.
_background: dict = {}
TWIN_REPORTS = PIPELINE_RUNS.with_name("twin-reports")
# The background run is `make -j1`, on about one core (its two makes take turns at each step), while the tests use
# the other. The suite's own process computes with the other cores' threads only: a thread more than the free cores
# leaves OpenMP waiting on a descheduled thread at every operation (on the 2-core machine, with one core busy, three
# attack tests took 77 s on two threads and 36 s on one).
_threads_before_background: list[int] = []
_smoke_failed: list[str] = []  # the smoke runs that failed (no follow-up starts after them)


def background_log(name: str) -> Path:
    """The log of the background run `name` ('main' or 'twin')."""
    return PIPELINE_RUNS.with_name(f"pipeline-{name}.log")


# A test module may register a follow-up: a job that starts in the background as soon as the smoke run has made
# the steps it reads (or has finished), instead of inside its fixture among the last tests. The model-adding test's
# `make report` (4 min at -j1 on the 2-core machine) so starts once A–G are trained and attacked, while the suite's
# run computes its aggregates and the tests read the run on the other core. It runs two steps at a time
# (FOLLOW_UP_JOBS): it ends the suite, and at one step at a time one core idled for its last 113 s (measured on the
# 2-core machine: the other tests had finished). Measured after the change, the suite took 22:50 against 22:34, within
# the runs' noise: it keeps no core idle, but gained nothing measurable.
FOLLOW_UP_JOBS = 2
# A follow-up is a function that prepares its job and starts it, given make's -j and the log file, returning the
# process and what the test needs to know of the preparation.
Start = Callable[[int, Path], "tuple[subprocess.Popen, Any]"]
_registered: dict[str, Start] = {}  # by the test modules imported
_needs: dict[str, tuple[str, ...]] = {}  # the steps of the smoke run each follow-up reads (none: all of it)
_follow_ups: dict[str, Start] = {}  # those of the modules collected, to start after the suite's smoke run
_started: dict[str, Any] = {}  # started: what each one's preparation returned
# A thread starts each follow-up as soon as the smoke run has made what it needs: checked only before each test, the
# start waited for whichever test ran then (the explorer's take a minute; measured: H started 79 s late, the suite
# idled meanwhile). The suite's process and the thread start follow-ups under one lock.
_lock = threading.RLock()
_poller: dict[str, Any] = {}  # 'thread', 'stop'
_session_environ: dict[str, str] = {}  # os.environ as the background work started: what a follow-up inherits


def after_smoke_run(name: str, start: Start, needs: tuple[str, ...] = ()) -> None:
    """Register a follow-up (at the import of the test module that needs it); it starts only where a test of that
    module was collected, see start_in_background, as soon as the smoke run has made the steps it `needs` (all of
    them if none are named)."""
    _registered[name], _needs[name] = start, needs


def follow_up_modules() -> set[str]:
    """The test modules that registered a follow-up."""
    return {start.__module__ for start in _registered.values()}


def follow_up_log(name: str) -> Path:
    """The log of the follow-up `name`."""
    return PIPELINE_RUNS.with_name(f"{name}.log")


def smoke_processes() -> list[subprocess.Popen]:
    """The suite's smoke run and its twin, where they were started and nobody has waited for them yet."""
    return [p for p in (_background.get(name) for name in ("main", "twin")) if p is not None]


def follow_up_env(**changes: str) -> dict[str, str]:
    """A follow-up's offline environment: the session's as the background work started, not whatever the test
    running meanwhile set for itself (monkeypatch.setenv: a MAKEFLAGS of 'n' would make its `make` a dry run)."""
    return _offline(_session_environ or dict(os.environ), changes)


@contextmanager
def follow_ups_held() -> Iterator[None]:
    """No follow-up starts in the block (the thread waits): for a test that sets the background state aside."""
    with _lock:
        yield


def start_ready_follow_ups() -> None:
    """Start each follow-up once the smoke run has made what it needs, or has finished and succeeded."""
    with _lock:
        finished = all(p.poll() == 0 for p in smoke_processes())
        for name in [n for n in _follow_ups if n not in _started]:
            if not _smoke_failed and (finished or (_needs[name] and made(_needs[name]))):
                try:
                    _background[name], _started[name] = _follow_ups[name](FOLLOW_UP_JOBS, follow_up_log(name))
                except Exception as error:  # e.g. a full disk while copying: its own test says so, not the next one
                    _started[name] = error


def _poll(stop: threading.Event) -> None:
    """The thread: every second, until each follow-up has started or the session ends."""
    while not stop.wait(1.0) and any(name not in _started for name in _follow_ups):
        start_ready_follow_ups()


def advance() -> None:
    """Called before each test: start the follow-ups that are ready (where the thread has not yet); once nothing runs
    in the background, give the suite's process every core's thread again."""
    start_ready_follow_ups()
    release_threads()


def follow_up(name: str, start: Start) -> tuple[Any, str]:
    """The follow-up `name`, finished: (what its preparation returned, its log), asserting that it succeeded. Where
    it did not start in the background (run alone, or the smoke run failed) it runs now, after the smoke run, as it
    would have in the background."""
    smoke_report()
    with _lock:
        if name not in _started:
            _background[name], _started[name] = start(FOLLOW_UP_JOBS, follow_up_log(name))
    if isinstance(_started[name], Exception):
        raise AssertionError(f"the follow-up {name} could not start: {_started[name]!r}") from _started[name]
    returncode = _background[name].wait()
    del _background[name]
    release_threads()
    log = follow_up_log(name).read_text()
    assert returncode == 0, log[-4000:]
    return _started[name], log


def start_in_background(modules: set[str] = frozenset()) -> None:
    """Start the suite's smoke run (`make -j1 report`) and its twin, their logs in the scratch folder, and keep the
    follow-ups registered by `modules` (the test modules collected) for after it."""
    _follow_ups.update({name: start for name, start in _registered.items() if start.__module__ in modules})
    PIPELINE_RUNS.parent.mkdir(parents=True, exist_ok=True)
    for name, env in (("main", pipeline_env()), ("twin", {**pipeline_env(), "INVADV_REPORTS": str(TWIN_REPORTS)})):
        with open(background_log(name), "w") as out:  # the child keeps its own handle
            _background[name] = subprocess.Popen(make_command(jobs=1), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                                  env=env, start_new_session=True)
    _threads_before_background.append(torch.get_num_threads())
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    if _follow_ups:
        _session_environ.update(os.environ)
        _smoke_tasks()  # planned here: planning sets INVADV_RUNS for a moment, which the thread must not do
        _poller["stop"] = threading.Event()
        _poller["thread"] = threading.Thread(target=_poll, args=(_poller["stop"],), name="follow-ups", daemon=True)
        _poller["thread"].start()
    # A SIGTERM to pytest (CI timeouts, `kill`) would otherwise skip pytest_sessionfinish and orphan the run:
    # as an interrupt, pytest ends the session normally and stop_background() runs.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def wait_for_background() -> None:
    """Wait for the background smoke runs (if they were started) and fail with the log of one that failed."""
    for name in ("main", "twin"):
        process = _background.get(name)
        if process is None:
            continue
        returncode = process.wait()  # interrupted here, the run stays for stop_background() to end
        del _background[name]
        if returncode != 0:
            _smoke_failed.append(name)
            raise AssertionError(f"the background smoke run ({name}) failed:\n" + background_log(name).read_text()[-3000:])
    release_threads()


def release_threads() -> None:
    """Give the suite's process every core's thread again once no background run computes (called before each
    test, and after waiting for the runs)."""
    if _threads_before_background and all(p.poll() is not None for p in list(_background.values())):
        torch.set_num_threads(_threads_before_background.pop())


def stop_background() -> None:
    """At the end of the session: stop a background run or follow-up nobody waited for (e.g. after `pytest -x`)."""
    if _poller:
        _poller["stop"].set()
        _poller["thread"].join()
    for name in list(_background):
        process = _background.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()


def run_make_report(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make -j2 report PROFILE=smoke ARGS...` (two steps at a time), after the background run if there is one."""
    wait_for_background()  # never two makes in one runs folder
    return subprocess.run(make_command(*args), cwd=ROOT, capture_output=True, text=True, env=env or pipeline_env())


def make_report(*args: str, env: dict[str, str] | None = None) -> str:
    """Like run_make_report, asserting success; returns the log."""
    result = run_make_report(*args, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def smoke_report() -> None:
    """The suite's smoke products and report, made: after the background run, `make report` runs again only when
    one of them is missing or stale (a `make report` with nothing to do still costs ≈ 6 s of start-up)."""
    wait_for_background()
    s = study("smoke")
    with environment(INVADV_RUNS=str(PIPELINE_RUNS)):
        tasks = dag.plan(s)
        made = all(t.executed.exists() for t in tasks.values()) and render.up_to_date(s, tasks)
    if not made:
        make_report()


@cache
def _smoke_tasks() -> tuple[tuple[str, str, Path, Path], ...]:
    """(task, step, folder, executed notebook) of every task of the suite's smoke run. Planned once: the code and the
    smoke study stay as they are for the session, and advance() asks before every test (a plan costs ≈ 70 ms)."""
    with environment(INVADV_RUNS=str(PIPELINE_RUNS)):  # a task's paths follow INVADV_RUNS where they are read
        return tuple((name, t.step.name, t.folder, t.executed) for name, t in dag.plan(study("smoke")).items())


def smoke_folders(steps: Iterable[str]) -> list[tuple[Path, Path]]:
    """(folder, executed notebook) of every task of these steps ('train', 'eps', ...) in the suite's runs folder."""
    return [(folder, executed) for _, step, folder, executed in _smoke_tasks() if step in steps]


def nbval_step(notebook: Path) -> str:
    """The step of the smoke task whose executed notebook tests/nbval/NN-<task>.ipynb is (tools/refresh_nbval.py
    names them so)."""
    task = notebook.stem.split("-", 1)[-1]
    steps = [step for name, step, _, _ in _smoke_tasks() if name == task]
    if not steps:
        raise AssertionError(f"{notebook.name}: the smoke study has no task {task!r}; make nbval-refresh renews "
                             "tests/nbval/")
    return steps[0]


def ready_rank(steps: Iterable[str]) -> int:
    """When the suite's smoke run will have made these steps, as a rank: `make -j1 report` makes them in the order
    the registry declares them (every training, then every ε run, ..., the figures)."""
    order = list(registry.STEPS)
    unknown = sorted(set(steps) - set(order))
    if unknown:
        raise AssertionError(f"pytest.mark.pipeline names no step {unknown}; the steps are {order}")
    return max(order.index(step) for step in steps)


def made(steps: Iterable[str]) -> bool:
    """Whether the suite's smoke run has finished every task of these steps."""
    return all(executed.exists() for _, executed in smoke_folders(steps))


def wait_for_steps(*steps: str) -> None:
    """Wait until the suite's smoke run has made every task of `steps`, not for the whole run: a test that reads
    only the trainings starts while the attacks compute. Where the run ended without them, as smoke_report."""
    while not made(steps):
        if all(p.poll() is not None for p in smoke_processes()):
            smoke_report()  # the run ended (or never started here): its failure, or a `make report` that makes them
            return
        time.sleep(1)


def copy_of_smoke_runs(dest: Path, steps: tuple[str, ...] = ()) -> Path:
    """A copy of the suite's smoke products at `dest`, for a test that adds to them: the whole run once it has
    finished, or, given `steps`, the folders of those steps' tasks once they are made (while the run goes on)."""
    if not steps:
        smoke_report()
        shutil.copytree(PIPELINE_RUNS, dest, ignore=shutil.ignore_patterns("*.lock"))
        return dest
    wait_for_steps(*steps)
    for folder, _ in smoke_folders(steps):
        shutil.copytree(folder, dest / folder.relative_to(PIPELINE_RUNS), ignore=shutil.ignore_patterns("*.lock"))
    return dest


def executed_steps(log: str) -> set[str]:
    """The steps whose notebook ran, from make's log."""
    return set(re.findall(r"^\[([\w.-]+)\] \d\d_", log, flags=re.M))


def planned_steps(log: str) -> set[str]:
    """The steps `make -n report` would run, from its log."""
    return set(re.findall(r" execute ([\w.-]+) --key ", log))
