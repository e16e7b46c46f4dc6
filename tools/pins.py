"""Print dependency pins from pyproject.toml, the one place they are declared.

Usage: python tools/pins.py [GROUP]   (GROUP: "main" (default), "test", "workflow", "runtime-no-deps", "all")

"runtime-no-deps" are runtime dependencies that pip installs with --no-deps (pyproject's [tool.invadv] says why).
"""
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
RUNTIME = "runtime-no-deps"


def pins(group: str = "main") -> list[str]:
    """Return the pinned requirement strings of one dependency group."""
    pyproject = tomllib.loads(PYPROJECT.read_text())
    project = pyproject["project"]
    groups = {"main": project["dependencies"], **project["optional-dependencies"],
              RUNTIME: pyproject["tool"]["invadv"][RUNTIME]}
    if group == "all":
        return [p for g in groups.values() for p in g]
    if group not in groups:
        raise SystemExit(f"unknown pin group {group!r}; choose from {sorted(groups) + ['all']}")
    return list(groups[group])


if __name__ == "__main__":
    print(" ".join(pins(sys.argv[1] if len(sys.argv) > 1 else "main")))
