"""What a run reuses of the carried products and what it would recompute, and why, said before anything runs.

A profile's store (products/<profile>/; the paper study's is committed) is its reference: the planner restores every
product whose key the current plan names, and computes only what no product stands for. A task whose committed
product has another key (the same task name, made by other values or other code) is *recomputed*; that is never a
side effect of the machine (its instruction set, its operating system): recomputing a committed product is a
choice, made by giving other values (`SET=...`) or explicitly with `RECOMPUTE=1` when the code differs. The planner
says, per cause, which value or which definitions differ from what the manifest (lib.pipeline.manifest) records.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lib.core.errors import UserFacing
from lib.pipeline import manifest
from lib.pipeline.carry import store_dir
from lib.pipeline.dag import Task

SHOWN = 6  # task names (and definitions) shown per cause; the rest are counted
WHAT = {"values": "values differ", "code": "code differs"}  # a cause, as a line names it (manifest.differences)


class RecomputeRefused(UserFacing):
    """The plan would recompute committed products without being asked to."""


@dataclass
class Reuse:
    """The plan against the store: made steps, new ones, and committed ones it would recompute (with why)."""

    made: list[str] = field(default_factory=list)  # in runs/ (restored from the store or made here)
    new: list[str] = field(default_factory=list)  # to compute; nothing of this task is committed
    recompute: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # task -> manifest.differences
    store: str = ""

    def needs_choice(self, overrides: str) -> list[str]:
        """The recomputed tasks nobody asked for: their code differs, or their values differ while no value was set."""
        return [name for name, why in self.recompute.items() if "code" in why or ("values" in why and not overrides)]


def assess(tasks: dict[str, Task], profile: str) -> Reuse:
    """Sort the plan's tasks into made, new and recomputed, against the store's manifest."""
    store = store_dir(profile)
    committed = manifest.read(store) if store.is_dir() else {"tasks": {}, "code": {}}
    reuse, parts = Reuse(store=str(store)), {}
    for t in tasks.values():
        entry = committed["tasks"].get(t.name)
        if t.executed.exists():
            reuse.made.append(t.name)
        elif entry is None or entry["key"] == t.key:
            reuse.new.append(t.name)  # a key the store holds is restored before this: here it is a missing file
        else:
            reuse.recompute[t.name] = manifest.differences(t, entry, committed, parts)
    return reuse


def names_text(names: list[str], separator: str = ", ") -> str:
    """'a, b, c' or 'a, b, … and 12 more'."""
    shown = separator.join(names[:SHOWN])
    return shown + (f"{separator}… and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def causes(reuse: Reuse) -> list[str]:
    """One line per cause of recomputation: the tasks it moves and what differs (values, code), inputs last."""
    grouped: dict[str, list[str]] = {}
    for name, why in reuse.recompute.items():
        own = [f"{WHAT[kind]}: {names_text(items, '; ')}" for kind, items in why.items() if kind != "inputs"]
        cause = " · ".join(own) if own else "their inputs are recomputed"
        grouped.setdefault(cause, []).append(name)
    return [f"{names_text(names)} — {cause}" for cause, names in
            sorted(grouped.items(), key=lambda item: item[0] == "their inputs are recomputed")]


def summary(reuse: Reuse, total: int, seconds: dict[str, float], minutes) -> list[str]:
    """What the run reuses, recomputes and computes anew, for the note printed before it starts."""
    lines = [f"  {len(reuse.made)} of {total} steps are made (restored from {reuse.store}, checksums verified, "
             "or made in runs/ before)"]
    if reuse.recompute:
        cost = sum(seconds.get(name, 0.0) for name in reuse.recompute)
        lines.append(f"  {len(reuse.recompute)} committed step(s) would be recomputed (≈ {minutes(cost)} of compute), "
                     "because their key differs from the committed one:")
        lines += [f"    {line}" for line in causes(reuse)]
    if reuse.new:
        cost = sum(seconds.get(name, 0.0) for name in reuse.new)
        lines.append(f"  {len(reuse.new)} step(s) have no committed product and will be computed "
                     f"(≈ {minutes(cost)}): {names_text(reuse.new)}")
    return lines


def refusal(reuse: Reuse, overrides: str) -> RecomputeRefused:
    """The error that stops a run which would recompute committed products nobody asked to recompute."""
    names = reuse.needs_choice(overrides)
    return RecomputeRefused(
        f"this run would recompute {len(names)} committed step(s) ({names_text(names)}) whose products in "
        f"{reuse.store} were made by other code or values (the lines above say which). Recomputing committed "
        "products is a choice: `make report RECOMPUTE=1` recomputes them under the new keys (the committed ones "
        "stay in the store); or check out the commit that made them (its MANIFEST.json names each product's), or "
        "give other values with SET=\"...\" for a study of your own")
