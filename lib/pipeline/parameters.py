"""The parameters' reference, docs/reference/parameters.md, generated from `Study` and `TrainConfig` themselves.

Every parameter's default, each profile's value where it differs, its rule and what it is come from the fields
(`lib.core.rules.param`) and the model declarations (`Hyperparameter`), so the page cannot drift from the code:
`python -m lib.pipeline.parameters` (`make docs`) rewrites it, and tests/test_docs.py fails when it is stale.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from lib import ROOT
from lib.core import products
from lib.core.protocol import TrainConfig
from lib.core.recipes import DECLARATIONS
from lib.pipeline.config import PROFILES, Study

PAGE = ROOT / "docs" / "reference" / "parameters.md"
# TrainConfig's fields a study does not set: the protocol fixes them (docs/study.md §2).
FIXED = ("center_alpha", "lr", "momentum", "weight_decay", "batch_size", "dropout")

HEADER = """# Reference: parameters

Every parameter of a study, with its default, each profile's value where it differs, the rule a value must meet
and what it is. Give any of them to `make report SET="name=value ..."` (a tuple as `eps=0,0.1,0.2`); a value that
breaks its rule stops the run with one line naming it. *Generated from `lib/pipeline/config.py` and the model
declarations by `python -m lib.pipeline.parameters` (`make docs`); do not edit.*
"""


def shown(value: object) -> str:
    """A value as `SET` takes it: tuples comma-separated, None as 'all'."""
    if value is None:
        return "all"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "(none)"
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def declared_by() -> dict[str, str]:
    """{hyperparameter: the model letters that declare it}."""
    owners: dict[str, list[str]] = {}
    for letter, model in DECLARATIONS.items():
        for h in model.hyperparameters:
            owners.setdefault(h.name, []).append(letter)
    return {name: ", ".join(letters) for name, letters in owners.items()}


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def study_table() -> str:
    """One row per Study field: name, default, paper / quick / smoke where they differ, rule, meaning."""
    owners = declared_by()
    lines = ["| parameter | default | paper | quick | smoke | rule | what it is |", "|---|---|---|---|---|---|---|"]
    for f in dataclasses.fields(Study):
        rule = f.metadata.get("rule")
        profiles = [shown(PROFILES[p][f.name]) if f.name in PROFILES[p] and PROFILES[p][f.name] != f.default else ""
                    for p in ("paper", "quick", "smoke")]
        what = f.metadata.get("doc", "") + (f" (declared by model {owners[f.name]})" if f.name in owners else "")
        lines.append(f"| `{f.name}` | {cell(shown(f.default))} | " + " | ".join(cell(p) for p in profiles)
                     + f" | {cell(rule[0]) if rule else ''} | {cell(what)} |")
    return "\n".join(lines)


def fixed_table() -> str:
    """TrainConfig's fields the protocol fixes, with their values and meaning."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    lines = ["| field | value | what it is |", "|---|---|---|"]
    for name in FIXED:
        f = fields[name]
        lines.append(f"| `{name}` | {shown(f.default)} | {cell(f.metadata.get('doc', ''))} |")
    return "\n".join(lines)


def page() -> str:
    """The whole reference page."""
    return (f"{HEADER}\n## A study's parameters\n\n{study_table()}\n\n"
            "## Fixed by the protocol\n\nEvery training's `TrainConfig` also holds these; no profile or `SET` changes "
            "them (a new protocol would be a new study).\n\n"
            f"{fixed_table()}\n")


def main(argv: list[str] | None = None) -> int:
    """Write the page (`--check`: exit 1 if it is stale instead)."""
    args = sys.argv[1:] if argv is None else argv
    text, current = page(), PAGE.read_text() if PAGE.exists() else ""
    if "--check" in args:
        if text != current:
            print(f"{PAGE.relative_to(ROOT)} is stale: python -m lib.pipeline.parameters", file=sys.stderr)
            return 1
        return 0
    if text != current:
        products.write_text(text, Path(PAGE))
        print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
