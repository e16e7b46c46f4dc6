"""One computation per product when runs overlap: whoever holds a product folder's lock makes the product, any
other run waits for it and uses it. An OS-level lock (flock), so a killed holder releases it at once and a lock file
left behind blocks nobody. Imports nothing heavy: `python -m lib.pipeline` waits here before loading the pipeline."""
from __future__ import annotations

import sys
from pathlib import Path

from filelock import FileLock, Timeout


def lock(folder: Path) -> FileLock:
    """The lock of a product folder (created if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / ".lock")


def acquire(held: FileLock, name: str) -> None:
    """Take the lock, saying so when another run holds it and this one waits."""
    try:
        held.acquire(blocking=False)
    except Timeout:
        print(f"[{name}] another run is making this product; waiting for it", file=sys.stderr, flush=True)
        held.acquire()


def made_by_another_run(name: str, executed: Path) -> bool:
    """Whether the step's executed notebook exists (another run made it), saying so."""
    if executed.exists():
        print(f"[{name}] made by another run; using it", file=sys.stderr, flush=True)
        return True
    return False


def wait_for_another_run(name: str, executed: Path) -> bool:
    """Wait while another run holds the step's lock; True when that run made the product meanwhile."""
    held = lock(executed.parent)
    try:
        held.acquire(blocking=False)
    except Timeout:
        acquire(held, name)
        held.release()
        return made_by_another_run(name, executed)
    held.release()
    return False
