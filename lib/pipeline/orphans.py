"""Product folders that no key of the current plan names: made by other parameters or other code, kept by
`make report` (switching back finds them again) and listed or removed only when asked.

    python -m lib.pipeline --profile paper orphans            # list them: step, size, age
    python -m lib.pipeline --profile paper orphans --remove   # remove them (and other plans' task cards)
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from lib.pipeline.dag import Task, runs_dir
from lib.pipeline.runner import CARDS


@dataclass(frozen=True)
class Orphan:
    folder: Path
    step: str  # the step that made it, from the folder's name ('train-A-200d-<key>' -> 'train')
    size: int  # bytes
    age: float  # seconds since its newest file was written


def folder_size_and_age(folder: Path, now: float) -> tuple[int, float]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    newest = max((p.stat().st_mtime for p in files), default=folder.stat().st_mtime)
    return sum(p.stat().st_size for p in files), now - newest


def orphans(profile: str, tasks: dict[str, Task]) -> list[Orphan]:
    """The product folders of `profile` that none of `tasks` (the current plan) names, oldest first."""
    named = {t.folder.name for t in tasks.values()}
    steps = {t.step.name for t in tasks.values()}
    now, found = time.time(), []
    root = runs_dir() / profile
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir() or folder.name in named or folder.name.startswith("."):
            continue
        size, age = folder_size_and_age(folder, now)
        step = folder.name.split("-", 1)[0]
        found.append(Orphan(folder, step if step in steps else "?", size, age))
    return sorted(found, key=lambda o: -o.age)


def human(size: float) -> str:
    """'3.2 MB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError


def age_text(seconds: float) -> str:
    return f"{seconds / 86400:.1f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"


def listing(found: list[Orphan], profile: str) -> str:
    """A table of the orphans, with their total and how to remove them."""
    if not found:
        return f"no orphaned products in {runs_dir() / profile}: every folder there belongs to the current plan"
    lines = [f"{'step':<10} {'size':>9} {'age':>8}  folder"]
    lines += [f"{o.step:<10} {human(o.size):>9} {age_text(o.age):>8}  {o.folder.name}" for o in found]
    lines.append(f"{len(found)} folder(s) that no key of the current plan names, {human(sum(o.size for o in found))} "
                 f"in {runs_dir() / profile}; `make clean-orphans` (same PROFILE and SET) removes them")
    return "\n".join(lines)


def remove(found: list[Orphan]) -> list[str]:
    """Remove the orphans' folders, except one a running step holds (its lock); one line per folder."""
    lines = []
    for o in found:
        lock = FileLock(o.folder / ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            lines.append(f"kept {o.folder.name}: a running step holds it")
            continue
        try:
            shutil.rmtree(o.folder)
        finally:
            lock.release()
        lines.append(f"removed {o.folder.name} ({human(o.size)})")
    return lines


def remove_cards(profile: str, tasks: dict[str, Task]) -> list[str]:
    """Remove the task cards (lib.pipeline.runner) that no key of the current plan names: other plans wrote them.
    A run of such a plan that needs one plans its task instead."""
    named = {t.folder.name for t in tasks.values()}
    folder = runs_dir() / profile / CARDS
    stale = [p for p in folder.glob("*.json") if p.stem not in named] if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return [f"removed {len(stale)} task card(s) of other plans from {folder}"] if stale else []
