"""Run one task's notebook with papermill, from the task's card: its folder, parameters and inputs, written when
the study is planned (`lib.pipeline.make.prepare`, for make and Snakemake alike).

Every step of `make report` is a process of its own. Planning the study imports torch (the registry reaches
lib.core), ≈ 2–4 s of each step's start-up on a 2-core CPU, for 51 steps in the suite's smoke run and 213 in the
paper study. A card written from this working tree (its fingerprint of lib/ and notebooks/ still matches) stands
in for the plan, so this module imports nothing heavy; where it does not match (code edited while the pipeline
ran), `lib.pipeline.make` plans the task again and checks its key, as it always did.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Iterable, Iterator

from traitlets.config import Config

from lib import ROOT
from lib.core.errors import MissingInput, UserFacing
from lib.pipeline import locks

NOTEBOOKS = ROOT / "notebooks"

KERNEL = "invadv-centers"
CARDS = ".cards"  # the cards' folder in runs/<profile>/ (a dot-folder: make, the orphans listing and the renderer skip it)
COMPUTE = "application/vnd.invadv.compute+json"  # a step's compute, as its notebook records it (record_compute)
TIMED = ("extension", "figures")  # the steps that report the compute of the others (the cost of a seed, the header)


@dataclass(frozen=True)
class Card:
    """What running one task needs, taken from the plan."""

    name: str
    key: str
    profile: str
    notebook: str  # notebooks/<notebook>.ipynb
    folder: Path
    executed: Path  # the notebook papermill writes, once it ran to the end: the task's mark of done
    output: Path  # the product its notebook must write
    params: dict  # injected into the notebook
    inputs: dict[str, Path]  # each input task's name -> its product
    timed: dict[str, Path] = field(default_factory=dict)  # TIMED steps: every other task -> its executed notebook
    source: str = ""  # fingerprint() of the tree the plan was made from
    commit: str = ""  # the code's commit (lib.core.provenance.git_commit), recorded in the executed notebook

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Card:
        data = json.loads(text)
        if set(data) != {f.name for f in fields(cls)}:
            raise ValueError("not a card of this version")
        paths = {k: Path(data[k]) for k in ("folder", "executed", "output")}
        return cls(**{**data, **paths, "inputs": {k: Path(v) for k, v in data["inputs"].items()},
                      "timed": {k: Path(v) for k, v in data["timed"].items()}})


@cache
def fingerprint() -> str:
    """A hash of every file a key can depend on (lib/**/*.py, notebooks/*.ipynb): where it is equal, planning
    the study now gives the plan a card was written from."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "lib").rglob("*.py"), *NOTEBOOKS.glob("*.ipynb")]):
        digest.update(f"{path.relative_to(ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def card_path(executed: Path) -> Path:
    """A task's card, beside the product folders: runs/<profile>/.cards/<task>-<key>.json."""
    return executed.parent.parent / CARDS / f"{executed.parent.name}.json"


def read_card(name: str, key: str, executed: Path) -> Card | None:
    """The task's card where it was written from this tree for this key, else None (the task is then planned)."""
    try:
        card = Card.from_json(card_path(executed).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return card if (card.name, card.key, card.executed, card.source) == (name, key, executed, fingerprint()) else None


def from_command_line(args: list[str]) -> bool:
    """`python -m lib.pipeline ... execute TASK --key KEY --executed PATH` (the generated Makefile's command): wait
    while another run makes the task, else run it from its card. False where it needs the plan (no card of this
    tree): lib.pipeline.make plans it then."""
    parser = argparse.ArgumentParser(add_help=False)
    for option in ("--profile", "--key"):
        parser.add_argument(option)
    parser.add_argument("--set", default="", dest="overrides")
    parser.add_argument("--executed", type=Path, required=True)
    parser.add_argument("command", choices=["execute"])
    parser.add_argument("task")
    a = parser.parse_args(args)
    if locks.wait_for_another_run(a.task, a.executed):
        return True
    card = read_card(a.task, a.key, a.executed) if a.key else None
    if card is None:
        return False
    try:
        run(card, a.overrides)
    except UserFacing as exc:  # a fixable problem: its message, without a traceback
        raise SystemExit(f"error: {exc}") from None
    return True


def run(card: Card, overrides: str) -> None:
    """Run the task's notebook, unless another run made it meanwhile; the executed notebook appears only on
    success."""
    missing = [name for name, product in card.inputs.items() if not product.exists()]
    if missing:
        raise MissingInput(f"{card.name} needs {', '.join(missing)} first: "
                           f"run `make report PROFILE={card.profile}` (with the same SET=...)")
    held = locks.lock(card.folder)
    locks.acquire(held, card.name)
    try:
        if locks.made_by_another_run(card.name, card.executed):
            return
        run_notebook(card, overrides)
    finally:
        held.release()


def overrides_text(overrides: str) -> str:
    """Normalise override text (one space between items)."""
    return " ".join(overrides.split())


def make_jobs() -> int:
    """N of the `make -jN` running this process (1 outside make or without -j)."""
    match = re.search(r"(?:^|\s)-j\s*(\d+)", os.environ.get("MAKEFLAGS", ""))
    return int(match.group(1)) if match else 1


def make_dry_run() -> bool:
    """Whether this process runs under `make -n` (its single-letter flags come first in MAKEFLAGS)."""
    flags = os.environ.get("MAKEFLAGS", "").split()
    return bool(flags) and not flags[0].startswith("-") and "n" in flags[0]


def watched() -> bool:
    """Whether `make report`'s progress line (lib.pipeline.make.watch) has anything to show: under make -jN with N > 1
    and steps that run (under -j1 each step shows its own progress bars; `make -n` runs none)."""
    return make_jobs() > 1 and not make_dry_run()


def jobs_threads(jobs: int | None = None) -> int | None:
    """Torch threads per notebook under `make -jN` (N: `jobs`, else read from make): the cores shared out, so N
    runs don't thrash; None with one job (torch's default)."""
    jobs = make_jobs() if jobs is None else jobs
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


@contextmanager
def kernel_sockets() -> Iterator[Config]:
    """Kernel configuration for one notebook run: papermill and the kernel talk over Unix sockets in a folder of
    this run's own. Both run on this machine, and over TCP ipykernel warns (rightly) about unencrypted traffic in
    every step's output; a folder per run keeps parallel steps' sockets apart (a short path: sockets allow ~100
    characters)."""
    with tempfile.TemporaryDirectory(prefix="invadv-kernel-") as folder:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})


def run_notebook(card: Card, overrides: str) -> None:
    """Execute the task's notebook into a partial file, renamed to the executed notebook once it ran to the end."""
    import papermill

    partial = card.folder / f".{card.notebook}.partial.ipynb"
    env_threads = jobs_threads()
    if env_threads and "INVADV_THREADS" not in os.environ:
        os.environ["INVADV_THREADS"] = str(env_threads)  # read by lib.provenance.default_device
    params = {"profile": card.profile, "overrides": overrides_text(overrides), **card.params}
    if card.timed:  # the cost of a seed; the report's wall time and per-step compute
        params["step_seconds"] = {name: round(duration(path), 1) for name, path in card.timed.items() if path.exists()}
        if card.name == "figures":
            params["wall_seconds"] = busy_seconds(card.timed.values())
    # With -jN (N > 1) the steps keep their output to their notebooks, and `watch` shows one progress line; in a
    # log (not a terminal) each step still says where it starts, beside `watch`'s line when it finishes.
    alone = make_jobs() == 1
    if alone or not sys.stdout.isatty():
        print(f"[{card.name}] {card.notebook} -> {card.folder}", flush=True)
    # The kernel is killed once its last cell ran: everything it wrote is written (products atomically) and its
    # outputs are in the notebook, so the graceful shutdown (an interrupt, a request, then waiting for the exit)
    # only cost each step seconds and printed "KeyboardInterrupt caught in kernel" into the log.
    try:
        with kernel_sockets() as config:
            papermill.execute_notebook(
                NOTEBOOKS / f"{card.notebook}.ipynb", partial, cwd=str(NOTEBOOKS),
                kernel_name=KERNEL, parameters=params, log_output=alone, progress_bar=False, config=config,
                shutdown_kernel="immediate")
    except papermill.PapermillExecutionError as exc:
        # The notebook's own error first, not papermill's traceback.
        raise SystemExit(f"error in {card.name} ({card.notebook}): {exc.ename}: {exc.evalue}\n"
                         f"  executed notebook kept for inspection: {partial}") from None
    except OSError as exc:  # papermill could not write the notebook (disk full, ...)
        partial.unlink(missing_ok=True)
        raise SystemExit(f"error in {card.name}: could not write its notebook {partial}: {exc.strerror or exc}; "
                         "free space there and run again") from None
    record_commit(partial, card.commit)
    os.replace(partial, card.executed)
    if not card.output.exists():
        raise SystemExit(f"error: {card.notebook} ran but did not write {card.output}")


def record_commit(notebook: Path, commit: str) -> None:
    """Note the code's commit in an executed notebook's metadata, where a product's manifest entry reads it (torch
    products carry it in their provenance; tables do not)."""
    executed = json.loads(notebook.read_text())
    executed.setdefault("metadata", {})["invadv"] = {"commit": commit}
    with open(notebook, "w") as file:  # the partial notebook: it becomes the product only by the rename after this
        json.dump(executed, file, indent=1, ensure_ascii=False)
        file.write("\n")


# --- what finished steps took, from papermill's record in their executed notebooks ------------------------------

def papermill_record(executed: Path) -> dict:
    """What papermill recorded in a finished task's executed notebook (duration, start and end time), or {}."""
    try:
        return json.loads(executed.read_text())["metadata"]["papermill"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def record_compute(seconds: float) -> None:
    """Leave a step's compute in its executed notebook, for `duration`: a training resumed in a later session (or
    clone) ran in several notebooks, and papermill's duration counts only the last of them."""
    from IPython.display import display

    display({COMPUTE: {"seconds": float(seconds)}, "text/plain": f"compute: {seconds / 60:.1f} min"}, raw=True)


def recorded_compute(executed: Path) -> float:
    """The compute a finished task's notebook recorded with `record_compute` (0 where none)."""
    try:
        cells = json.loads(executed.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return max((float(o["data"][COMPUTE]["seconds"]) for c in cells for o in c.get("outputs", [])
                if COMPUTE in o.get("data", {})), default=0.0)


def duration(executed: Path) -> float:
    """Seconds a finished task computed: its notebook's run, or what the step recorded where that is more (a
    training's epochs over every session it resumed in)."""
    try:
        ran = float(papermill_record(executed)["duration"])
    except (KeyError, TypeError, ValueError):
        ran = 0.0
    return max(ran, recorded_compute(executed))


def busy_seconds(executed: Iterable[Path]) -> float:
    """Wall time the finished tasks took together: the union of their notebooks' [start, end] intervals. Steps that
    ran side by side (make -jN) count once, and the pauses of a run resumed in a later session count not at all."""
    spans = []
    for path in executed:
        record = papermill_record(path)
        try:
            spans.append((datetime.fromisoformat(record["start_time"]).timestamp(),
                          datetime.fromisoformat(record["end_time"]).timestamp()))
        except (KeyError, TypeError, ValueError):
            continue
    total, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total
