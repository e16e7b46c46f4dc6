"""A long run's products, carried in git: a fresh clone, or a machine that lost runs/, resumes the study
where it stopped instead of recomputing it (the paper run takes longer than a working session, issue 29).

    python -m lib.pipeline --profile paper carry   # runs/paper/ -> products/paper/ (then commit products/paper/)
    make report                                    # copies back from products/paper/ what runs/paper/ lacks

`carry` keeps every finished step's folder (its executed notebook and products) and the last epoch state of every
training still under way, and lists every file with its checksum in the store's MANIFEST.json (lib.pipeline.manifest).
Folders are named by their keys, so a carried product of other code or other parameters is never taken for the
current one: it is an orphan, as in runs/. A restore copies only files the manifest lists, after checking their
checksums; carried files are then read like any product (torch checkpoints with weights_only), and a carried
product that does not load is set aside and recomputed.
"""
from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from lib import ROOT
from lib.core import products
from lib.pipeline import manifest
from lib.pipeline.dag import Task, runs_dir


def store_dir(profile: str) -> Path:
    """Where a profile's products are carried (INVADV_STORE, default products/), tracked by git for `paper`."""
    return Path(os.environ.get("INVADV_STORE", ROOT / "products")) / profile


def resume_states(folder: Path) -> list[Path]:
    """The progress states a step under way keeps in its folder, each `.<name>.resume.pt`: a training's per-epoch
    state, an AutoAttack's per-batch state at each ε (lib.pipeline.steps.autoattack_authors)."""
    return sorted(folder.glob(".*.resume.pt"))


def progress(state: Path) -> tuple[int, int]:
    """How far a progress state got, comparable between copies of it: a training's (epochs, 0), an AutoAttack's
    (stages done, images of the next one); (0, 0) when it is absent or does not load."""
    try:
        saved = products.load(state)
    except Exception:  # a missing or unreadable state is worth nothing; the step starts over or from another copy
        return 0, 0
    if "history" in saved:
        return len(saved["history"]), 0
    stages = saved.get("stages", {})
    # a state saved as a stage ends still names that stage and counts its images: none of the next one are done
    return len(stages), (0 if saved.get("stage") in stages else saved.get("done", 0))


def finished_files(folder: Path) -> list[str]:
    """The files a finished step leaves, relative to its folder: its executed notebook and products, figures/
    included (the report's figures are exported from them), not locks, partial or broken files."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts)
                  and ".broken-" not in path.name)


def copy(source: Path, target: Path) -> None:
    """Copy a file atomically: `target` is whole or absent, so an interrupted copy is never taken for a product."""
    with products.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)  # a fresh mtime: make sees a restored step as newer than what it depends on


def same(a: Path, b: Path) -> bool:
    """Whether `b` holds the bytes of `a`. Read, not judged by mtime: a clone's files carry its checkout time."""
    return b.exists() and filecmp.cmp(a, b, shallow=False)


def copy_finished(source: Path, names: list[str], executed: str, into: Path) -> None:
    """Copy a finished step's files (`names`, relative to folder `source`) into folder `into`, its executed notebook
    last: a copy cut short by an interruption leaves a folder that does not look finished, so it is never taken for a
    made step."""
    for name in sorted(names, key=lambda n: n == executed):
        copy(source / name, into / name)


def superseded(tasks: dict[str, Task], store: Path) -> list[Path]:
    """The store's folders of the plan's tasks under other keys (made by other code or values): any, once the plan's
    own product of that task is in the store; progress alone, once the plan's own progress there is as far along at
    every state (a run resumed it under the new key, or went further)."""
    planned = {t.name: t for t in tasks.values()}

    def replaced(folder: Path) -> bool:
        t = planned.get(folder.name.rsplit("-", 1)[0])
        if t is None or folder.name == t.folder.name:
            return False
        kept = store / t.folder.name
        if (kept / t.executed.name).exists():
            return True
        states = resume_states(folder)
        return bool(states) and not (folder / t.executed.name).exists() \
            and all(progress(state) <= progress(kept / state.name) for state in states)

    return sorted(f for f in (store.iterdir() if store.is_dir() else ()) if f.is_dir() and replaced(f))


def carry(tasks: dict[str, Task], profile: str) -> list[str]:
    """Copy into the store what runs/ has made of `tasks` (the current plan) and the store lacks, remove the store's
    products those supersede (git keeps the committed ones in its history), and list the store in its manifest; one
    line per step copied or removed."""
    store, done = store_dir(profile), []
    for t in tasks.values():
        into = store / t.folder.name
        if t.executed.exists():
            fresh = [name for name in finished_files(t.folder) if not same(t.folder / name, into / name)]
            copy_finished(t.folder, fresh, t.executed.name, into)
            for state in resume_states(into):  # the finished product supersedes its progress
                state.unlink()
            if fresh:
                done.append(f"{t.name}: {len(fresh)} file(s)")
        else:
            for state in resume_states(t.folder):
                if (reached := progress(state)) > progress(kept := into / state.name):
                    copy(state, kept)
                    done.append(f"{t.name}: {progress_text(t, state.name, reached)}")
    for folder in superseded(tasks, store):
        shutil.rmtree(folder)
        done.append(f"{folder.name}: removed, superseded by the plan's product or progress of the same step")
    if store.is_dir():
        manifest.write(tasks, store)
    return done


def restore(tasks: dict[str, Task], profile: str) -> list[str]:
    """Copy into runs/ what the store holds of `tasks` and runs/ lacks (a step's progress states only where the store's
    is further along), each folder checked against the store's manifest first (ProductError where a file differs);
    one line each. Called before a run plans what to compute."""
    store, done = store_dir(profile), []
    listed = manifest.entries_by_folder(manifest.read(store)) if store.is_dir() else {}
    for t in tasks.values():
        source = store / t.folder.name
        if t.executed.exists() or not source.is_dir():
            continue
        if source.name not in listed:  # nothing says what it should hold: not taken for a product
            done.append(f"{t.name}: not restored, {source} is not listed in {manifest.NAME} (`make carry` lists it)")
            continue
        entry = listed[source.name]
        manifest.verified(entry, source)
        if (source / t.executed.name).exists():
            copy_finished(source, [name for name in entry["files"] if not name.startswith(".")], t.executed.name, t.folder)
            done.append(f"{t.name}: made")
        else:
            for state in resume_states(source):
                if (reached := progress(state)) > progress(t.folder / state.name):
                    copy(state, t.folder / state.name)
                    done.append(f"{t.name}: {progress_text(t, state.name, reached, resumes=True)}")
    return done


def progress_text(t: Task, name: str, reached: tuple[int, int], resumes: bool = False) -> str:
    """'epoch 3 of training' (carried) or 'training resumes after epoch 3' (restored); an AutoAttack's progress
    at one ε: 'autoattack-0.3: 2 stage(s) and 512 image(s) of the next' (', resumes' when restored)."""
    if t.step.name == "train":
        return f"training resumes after epoch {reached[0]}" if resumes else f"epoch {reached[0]} of training"
    what = name.removeprefix(".").removesuffix(".resume.pt")
    return f"{what}: {reached[0]} stage(s) and {reached[1]} image(s) of the next" + (", resumes" if resumes else "")


def summary(lines: list[str], verb: str, profile: str) -> str:
    """One line for the user (how many steps moved, between which folders), then a line per step."""
    runs, store = runs_dir() / profile, store_dir(profile)
    source, target = (store, runs) if verb == "restored" else (runs, store)
    shown = lines if len(lines) <= SHOWN else [*lines[:SHOWN - 1], f"… and {len(lines) - SHOWN + 1} more"]
    return f"{verb} {len(lines)} step(s) from {source} into {target}" + "".join(f"\n  {line}" for line in shown)


SHOWN = 12  # lines of a summary: a whole study restored is one line per step, 213 for the paper
