"""Dependencies say the truth: every module that lib/ and the notebooks import at run time comes from the standard
library, from lib itself, or from a runtime dependency that pyproject.toml declares (and environment.yml mirrors)."""
import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from pins import RUNTIME, pins  # noqa: E402


def optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether an import sits in a `try:` that catches ImportError (an optional extra, e.g. pyarrow for Parquet)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            return True
    return False


def imported(source: str) -> set[str]:
    """The top-level names of the modules a source imports for sure (relative and optional imports left out)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and not optional(node, parents):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and not optional(node, parents):
            found.add(node.module.split(".")[0])
    return found


def notebook_source(path: Path) -> str:
    """A notebook's code cells as Python (IPython magics and shell lines left out)."""
    cells = json.loads(path.read_text())["cells"]
    lines = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


def runtime_imports() -> dict[str, set[str]]:
    """{module: the files importing it} over lib/**/*.py and notebooks/*.ipynb, without lib and the standard library."""
    sources = {p: p.read_text() for p in (ROOT / "lib").rglob("*.py")}
    sources |= {p: notebook_source(p) for p in (ROOT / "notebooks").glob("*.ipynb")}
    found: dict[str, set[str]] = {}
    for path, source in sources.items():
        for module in imported(source) - {"lib", "__future__"} - set(sys.stdlib_module_names):
            found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def name_of(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503): 'Pillow==13.0.0' -> 'pillow'."""
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]).lower()


def declared() -> set[str]:
    """The runtime distributions pyproject.toml declares: its dependencies, and those installed without theirs."""
    return {name_of(r) for r in pins("main") + pins(RUNTIME)}


def test_every_runtime_import_is_a_declared_runtime_dependency():
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(runtime_imports().items()):
        provided_by = {name_of(d) for d in distributions.get(module, [])}
        if not provided_by & declared():
            missing.append(f"{module} (from {', '.join(sorted(provided_by)) or 'no installed distribution'}), "
                           f"imported by {', '.join(sorted(files))}")
    assert not missing, "not declared as runtime dependencies in pyproject.toml:\n  " + "\n  ".join(missing)


def test_the_scan_finds_what_a_real_module_imports():
    """The check could fail: it sees third-party imports, including one inside a function, and skips optional ones."""
    source = "import torch\nfrom scipy.stats import t\ndef f():\n    import requests\ntry:\n    import pyarrow\n" \
             "except ImportError:\n    pyarrow = None\nfrom . import sibling\n"
    assert imported(source) == {"torch", "scipy", "requests"}
    assert "torchattacks" in runtime_imports()  # lib/core/autoattack.py: the AutoAttack steps need it


def test_environment_yml_declares_the_runtime_dependencies_pip_cannot_resolve():
    """The packages installed with --no-deps (their metadata conflicts with JupyterLab's) are in environment.yml's
    instructions, since conda's pip section cannot install a package without its dependencies."""
    text = (ROOT / "environment.yml").read_text()
    for requirement in pins(RUNTIME):
        assert f"pip install --no-deps {requirement}" in text, requirement


def installed_with(names: set[str]) -> set[str]:
    """The distributions that installing `names` installs: them and their dependencies, transitively (extras and
    markers that do not apply left out)."""
    from packaging.requirements import Requirement

    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(name_of(requirement.name))
    return found


@pytest.mark.parametrize("requirement", pins(RUNTIME))
def test_a_no_deps_runtime_dependency_loads_nothing_undeclared(requirement):
    """Installed without its dependencies, a package must need nothing the others do not install: imported in a fresh
    interpreter, every module it loads comes from the standard library or from what the declared runtime
    dependencies install."""
    module = name_of(requirement).replace("-", "_")
    script = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    loaded = set(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
                 .stdout.split()) - set(sys.stdlib_module_names) - {module}
    distributions = importlib.metadata.packages_distributions()
    present = installed_with({name_of(r) for r in pins("main")})
    undeclared = {m for m in loaded if m in distributions and not {name_of(d) for d in distributions[m]} & present}
    assert not undeclared, f"{requirement} loads {sorted(undeclared)}, which no runtime dependency installs"
