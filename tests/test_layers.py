"""The tree shows the layers: lib.core <- lib.analysis <- lib.pipeline, imports pointing one way, no cycle,
and no function-level import of lib hiding one."""
import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import lib
from lib.pipeline import code

LIB = Path(lib.__file__).parent
LAYERS = ("lib.core", "lib.analysis", "lib.pipeline")  # each may import only itself and the ones before it


def modules() -> dict[str, Path]:
    """Every module of lib by dotted name."""
    found = {"lib": LIB / "__init__.py"}
    for info in pkgutil.walk_packages([str(LIB)], prefix="lib."):
        found[info.name] = code.module_file(info.name)
    return found


def lib_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported lib module, line, at the top level?) of every lib import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib"):
            names = [f"{node.module}.{a.name}" if code.module_file(f"{node.module}.{a.name}") else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("lib")]
        else:
            continue
        found += [(name, node.lineno, id(node) in top) for name in names]
    return found


def layer(name: str) -> int:
    """0, 1, 2 for core, analysis, pipeline; -1 for the top package (ROOT only)."""
    return next((i for i, prefix in enumerate(LAYERS) if name == prefix or name.startswith(prefix + ".")), -1)


@pytest.mark.parametrize("name", sorted(set(modules()) - {"lib.pipeline.__main__"}))  # that one runs the CLI
def test_every_module_imports_on_its_own(name):
    importlib.import_module(name)


def test_imports_point_from_pipeline_to_analysis_to_core_only():
    wrong = [f"{name} (layer {LAYERS[layer(name)]}) imports {target}, line {line}"
             for name, path in modules().items() for target, line, _ in lib_imports(path)
             if layer(target) > layer(name)]
    assert not wrong, "\n".join(wrong)


def test_no_function_level_import_of_lib():
    inner = [f"{path.relative_to(LIB.parent)}:{line} imports {target} inside a function"
             for path in modules().values() for target, line, at_top in lib_imports(path) if not at_top]
    assert not inner, "\n".join(inner)


def test_no_import_cycle():
    graph = {name: {t for t, _, _ in lib_imports(path) if t in modules() and t != name}
             for name, path in modules().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
