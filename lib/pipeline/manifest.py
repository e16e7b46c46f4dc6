"""products/<profile>/MANIFEST.json: what a store of carried products holds, file by file, so that a reader can
audit the committed study and a restore copies only what was committed.

Each product folder has an entry: under `tasks` by its task's name for a finished step, under `partial` by its
folder's name for a step under way (its progress states only, lib.pipeline.carry), so that a study's committed
product and the progress of its recomputation under a new key are both listed, and both restorable. An entry holds
its task and step, its key and the values the key holds, the hash of its code with the hash of each definition
behind it, its inputs' keys, the commit of the code that made it, and each file's size and SHA-256. `make carry`
writes it; a restore (lib.pipeline.carry) checks every file it copies against it and refuses one that differs;
`differences` says why a task of the current plan does not match its committed product (which value, which code,
which input), so a run says what it would recompute and why before it computes anything.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from lib import ROOT
from lib.core import products
from lib.core.errors import ProductError
from lib.pipeline.dag import Task, code_parts

NAME = "MANIFEST.json"
FORMAT = 1


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (checkpoints are megabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read(store: Path) -> dict:
    """The manifest of a store (an empty one where there is none)."""
    path = store / NAME
    if not path.exists():
        return {"format": FORMAT, "tasks": {}, "partial": {}, "code": {}}
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise ProductError(f"{path} is not valid JSON ({exc}); restore it with `git checkout -- {path}`") from None
    if manifest.get("format") != FORMAT:
        raise ProductError(f"{path} has format {manifest.get('format')!r}, this code reads format {FORMAT}")
    return manifest


def entries_by_folder(manifest: dict) -> dict[str, dict]:
    """The manifest's entries, finished and partial, by their folder's name."""
    return {**manifest.get("partial", {}),
            **{entry["folder"]: {"task": name, **entry} for name, entry in manifest["tasks"].items()}}


def only_progress(folder: Path) -> bool:
    """Whether a store folder holds only a step's progress (dot-files: its states), not a finished product."""
    return all(path.relative_to(folder).parts[0].startswith(".") for path in folder.rglob("*") if path.is_file())


def files_of(folder: Path) -> dict[str, dict]:
    """{path in the folder: {bytes, sha256}} of the files a store folder holds, figures/ included (dot-files are
    training states: included)."""
    return {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


def commits_adding(store: Path) -> dict[str, str]:
    """{folder name: the commit that first added it to git}, for products that record no commit of their own."""
    try:
        log = subprocess.run(["git", "log", "--reverse", "--diff-filter=A", "--name-only", "--format=commit %H", "--",
                              str(store)], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    found, commit = {}, None
    for line in log.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.strip() and commit:
            parts = Path(line).parts
            if len(parts) >= 2 and (ROOT / Path(*parts[:-2])).resolve() == store.resolve():
                found.setdefault(parts[-2], commit)
    return found


def recorded_commit(folder: Path) -> str | None:
    """The commit a product records of the code that made it: its provenance (torch products), or its executed
    notebook's (lib.pipeline.runner records it since products carried a manifest); None where it records none."""
    for path in sorted(folder.glob("*.pt")):
        try:
            commit = products.load(path).get("provenance", {}).get("commit")
        except ProductError:
            commit = None
        if commit:
            return commit
    for path in sorted(folder.glob("*.ipynb")):
        try:
            commit = json.loads(path.read_text())["metadata"].get("invadv", {}).get("commit")
        except (ValueError, KeyError):
            commit = None
        if commit:
            return commit
    return None


def task_entry(t: Task, folder: Path, added_in: dict[str, str]) -> dict:
    """A task's manifest entry, from the plan and the store folder that holds its product."""
    commit = recorded_commit(folder)
    return {"step": t.step.name, "folder": folder.name, "key": t.key, "values": t.key_params,
            "code_hash": t.code_hash, "code": t.code_id, "inputs": {d.name: d.key for d in t.deps},
            "commit": commit or added_in.get(folder.name),
            "commit_from": "product" if commit else "git (the commit that added it)" if folder.name in added_in else None,
            "files": files_of(folder)}


def write(tasks: dict[str, Task], store: Path) -> Path:
    """Rewrite the store's manifest: every folder it holds, described from the plan where the plan names it (else
    its earlier entry is kept, with its files read again). Returns its path."""
    old = read(store)
    by_folder, added_in = entries_by_folder(old), commits_adding(store)
    planned = {t.folder.name: t for t in tasks.values()}
    manifest = {"format": FORMAT, "profile": store.name, "tasks": {}, "partial": {}, "code": {}}
    for folder in sorted(p for p in store.iterdir() if p.is_dir()):
        if folder.name in planned:
            t = planned[folder.name]
            name, entry = t.name, task_entry(t, folder, added_in)
            manifest["code"].setdefault(t.code_hash, code_parts(t.step, t.code_root))
        elif folder.name in by_folder:
            entry = dict(by_folder[folder.name])
            name = entry.pop("task")
            entry["files"] = files_of(folder)
            if entry.get("code_hash") in old["code"]:
                manifest["code"][entry["code_hash"]] = old["code"][entry["code_hash"]]
        else:
            continue
        if only_progress(folder):
            manifest["partial"][folder.name] = {"task": name, **entry}
        else:
            manifest["tasks"][name] = entry
    path = store / NAME
    products.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", path)
    return path


def check_files(entry: dict, folder: Path) -> list[str]:
    """Why the files of a store folder differ from its manifest entry (missing, other size or checksum); [] if not."""
    problems = []
    for name, expected in entry["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            problems.append(f"{path} differs from its SHA-256 in {NAME} ({expected['sha256'][:12]}…)")
    return problems


def verified(entry: dict, folder: Path) -> None:
    """ProductError unless every file of a store folder is the one its manifest entry lists."""
    if problems := check_files(entry, folder):
        raise ProductError("refusing to restore a committed product that is not what was committed:\n  "
                           + "\n  ".join(problems) + f"\nRestore the folder as committed (`git checkout -- {folder}`),"
                           " or, if you changed it on purpose, run `make carry` to list it anew")


# --- why a task does not match what is committed -------------------------------------------------------------------

def changed_code(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The definitions whose code differs between two `code_parts` (changed, added or gone)."""
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def value_text(value) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def differences(t: Task, entry: dict, manifest: dict, parts: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """Why task `t` does not have the committed product `entry` of the same task name: {'values': ['precision: bf16
    → fp32'], 'code': ['lib.core.attacks:pgd'], 'inputs': ['train-A-200d']} (only the kinds that differ). `parts`
    caches the current code parts by code hash."""
    found: dict[str, list[str]] = {}
    old_values, new_values = entry.get("values", {}), t.key_params
    values = [f"{name}: {value_text(old_values.get(name, '—'))} → {value_text(new_values.get(name, '—'))}"
              for name in sorted(old_values.keys() | new_values.keys()) if old_values.get(name) != new_values.get(name)]
    if values:
        found["values"] = values
    if entry.get("code_hash") != t.code_hash:
        if t.code_hash not in parts:
            parts[t.code_hash] = code_parts(t.step, t.code_root)
        found["code"] = changed_code(manifest["code"].get(entry.get("code_hash"), {}), parts[t.code_hash]) \
            or [f"the code of step {t.step.name}"]
    inputs = {d.name: d.key for d in t.deps}
    moved = sorted(name for name in inputs.keys() | entry.get("inputs", {}).keys()
                   if inputs.get(name) != entry.get("inputs", {}).get(name))
    if moved:
        found["inputs"] = moved
    return found
