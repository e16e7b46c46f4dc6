"""What code a product depends on: the definitions its maker reaches, found from the code itself.

A step's maker (and its notebook, where the notebook writes part of the product) is followed through every name it
uses: `lib` modules' top-level definitions (functions, classes, constants), each through the names it uses in turn.
The product's code hash covers each definition reached, as Python parses it (comments, docstrings and layout left
out), and every module-level statement that is not a definition of a module reached (it runs on import). So an edit
recomputes exactly the products whose makers can reach it: a new function nobody calls, a docstring or a comment
recomputes nothing; a change in the arithmetic of PGD's batch size recomputes the ε runs and the evaluation, not the
trainings, which never read it.

The planner (lib.pipeline outside lib.pipeline.steps: configuration, registry, DAG, make, cost, render) is not
followed: it decides what runs and enters a product only through the values it passes, which are in the key. A few
definitions are reached by name only (OPAQUE): the registry of model recipes, whose entries each training covers on
its own, and TrainConfig, whose values are in the key.
Where a name cannot be resolved to a definition (a module passed around whole, a name made at run time), the whole
module counts, so nothing is forgotten. Imports of `lib` sit at the top of a module (tests/test_layers.py checks that
none hides inside a function), which is where this reads them.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lib import ROOT

STEPS_PACKAGE = "lib.pipeline.steps"
WHOLE = "*"  # a module used whole: every definition of it
# Definitions reached by name only: neither their code is hashed nor are they followed. RECIPES maps each model to
# its recipe; a training covers its own recipe instead (registry.Step.code_root), so that adding a model retrains
# no other. TrainConfig holds values and their checks and computes nothing (tests/test_keys.py holds it to that);
# a training's key has the values its recipe reads (lib.core.recipes.key_params), so a field added for a new model
# retrains none of the others.
OPAQUE = frozenset({("lib.core.recipes", "RECIPES"), ("lib.core.protocol", "TrainConfig")})
# A model's declaration, `A = Model(Recipe(...), loss=..., baselines=..., hyperparameters=...)` in lib.core.recipes,
# counts for its own training as its recipe alone, `A = Recipe(...)`: how the model computes. How the report words
# its loss and which models it is contrasted with compute nothing in its training, and its hyperparameters' values
# are in the key (each is named in the recipe's params), so rewording a model or adding a contrast retrains nothing;
# the steps that show them (the report's tables) reach the whole declaration.
DECLARATION = ("lib.core.recipes", "Model")
RUN_TIME_NAMES = ("globals", "vars", "locals")  # called bare, they reach a module's names at run time: the whole module


def is_planner(module: str) -> bool:
    """Whether `module` belongs to the planner (lib.pipeline outside lib.pipeline.steps)."""
    in_pipeline = module == "lib.pipeline" or module.startswith("lib.pipeline.")
    return in_pipeline and not (module == STEPS_PACKAGE or module.startswith(STEPS_PACKAGE + "."))


def is_lib(module: str) -> bool:
    return module == "lib" or module.startswith("lib.")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The file of module `name` ('lib.core' -> lib/core/__init__.py), or None when it names no module."""
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def without_docstrings(tree: ast.AST) -> ast.AST:
    """`tree` with the docstring of every module, class and function dropped (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                # a def or class needs a body; a module may be empty
                node.body = node.body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])
    return tree


def normalized(node: ast.AST) -> str:
    """The code as Python runs it: the syntax tree of a parsed (docstring-free) node, without positions, comments or
    layout."""
    return ast.dump(node)


def normalized_source(source: str) -> str:
    """`normalized` of a whole source text, its docstrings dropped."""
    return normalized(without_docstrings(ast.parse(source)))


@dataclass(frozen=True)
class Module:
    """A parsed module: its top-level definitions by name, its other top-level statements, its imports."""

    name: str
    definitions: dict[str, list[ast.AST]]  # name -> the statements that bind it (def, class, assignment)
    statements: list[ast.AST]  # module-level code that runs on import (neither a definition nor an import)
    imports: dict[str, tuple[str, str | None]]  # local name -> (module, name in it) or (module, None): a module
    # A plan hashes the code of dozens of steps that reach the same definitions: each is dumped and followed once.
    memo: dict[str, tuple[str, set[tuple[str, str]]]] = field(default_factory=dict, compare=False, repr=False)

    def code_and_uses(self, name: str, root: Path, recipe_only: bool = False) -> tuple[str, set[tuple[str, str]]]:
        """The normalized code of definition `name` ('': the module-level statements) and the `lib` names it uses;
        with `recipe_only`, a model's declaration counts as its recipe (DECLARATION)."""
        memo = f"{name}:recipe" if recipe_only else name
        if memo not in self.memo:
            nodes = self.definitions[name] if name else self.statements
            if recipe_only:
                nodes = [as_recipe(n, self.name) for n in nodes]
            self.memo[memo] = "\n".join(normalized(n) for n in nodes), self.uses(nodes, root)
        return self.memo[memo]

    def uses(self, nodes: list[ast.AST], root: Path) -> set[tuple[str, str]]:
        """(module, name) of every `lib` definition that `nodes` refer to ((module, WHOLE) where unresolved)."""
        found: set[tuple[str, str]] = set()
        todo = list(nodes)
        while todo:
            node = todo.pop()
            chain = attribute_chain(node) if isinstance(node, ast.Attribute) else None
            if chain and chain[0] in self.imports and self.imports[chain[0]][1] is None:  # `inverse.run`
                found.add(resolve_attribute(self.imports[chain[0]][0], chain[1:], root))
                continue  # the chain is resolved whole: its inner parts name no more than it does
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RUN_TIME_NAMES \
                    and (node.func.id == "globals" or not node.args):
                found.add((self.name, WHOLE))  # e.g. the declared models, gathered from the module's names
            if isinstance(node, ast.Name):
                if node.id in self.definitions:
                    found.add((self.name, node.id))
                elif node.id in self.imports:
                    module, name = self.imports[node.id]
                    found.add((module, name or WHOLE))
            todo.extend(ast.iter_child_nodes(node))
        return found


def attribute_chain(node: ast.Attribute) -> list[str] | None:
    """['inverse', 'run'] for `inverse.run`; None when the chain does not start at a plain name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def resolve_attribute(module: str, attributes: list[str], root: Path) -> tuple[str, str]:
    """`lib.core` + ['train', 'restore'] -> ('lib.core.train', 'restore'); a chain ending at a module: WHOLE."""
    for attribute in attributes:
        if module_file(f"{module}.{attribute}", root):
            module = f"{module}.{attribute}"
        else:
            return module, attribute
    return module, WHOLE


def as_recipe(node: ast.AST, module: str) -> ast.AST:
    """A model's declaration as its recipe (DECLARATION); any other statement as it is."""
    if module == DECLARATION[0] and isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
            and isinstance(node.value.func, ast.Name) and node.value.func.id == DECLARATION[1] and node.value.args:
        return ast.Assign(targets=node.targets, value=node.value.args[0])
    return node


def parse(name: str, source: str, root: Path = ROOT) -> Module:
    """Split a module's top level into definitions, other statements and `lib` imports."""
    definitions: dict[str, list[ast.AST]] = {}
    statements, imports = [], {}
    for node in without_docstrings(ast.parse(source)).body:  # docstrings dropped once, here: they use no names
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for target in names:
                definitions.setdefault(target, []).append(node)
            if not names:  # e.g. `x.attr = ...`: runs on import
                statements.append(node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if is_lib(alias.name):
                    if alias.asname:
                        imports[alias.asname] = (alias.name, None)
                    else:
                        imports[alias.name.split(".")[0]] = ("lib", None)
        elif isinstance(node, ast.ImportFrom):
            if node.module and not node.level and is_lib(node.module):
                for alias in node.names:
                    local = alias.asname or alias.name
                    sub = f"{node.module}.{alias.name}"
                    imports[local] = (sub, None) if module_file(sub, root) else (node.module, alias.name)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # a bare string runs nothing
            statements.append(node)
    return Module(name, definitions, statements, imports)


@lru_cache(maxsize=256)
def _parsed(name: str, source: str, root: Path) -> Module:
    return parse(name, source, root)


def load(name: str, root: Path = ROOT) -> Module | None:
    """The parsed module `name`, or None when it is no file of `root` (a name that is no module)."""
    path = module_file(name, root)
    return _parsed(name, path.read_text(), root) if path else None


def packages(module: str) -> list[str]:
    """The packages importing `module` runs first: 'lib.core.train' -> ['lib', 'lib.core']."""
    parts = module.split(".")
    return [".".join(parts[:depth]) for depth in range(1, len(parts))]


def reached(roots: set[tuple[str, str]], extra: list[ast.AST] | None = None, extra_module: Module | None = None,
            root: Path = ROOT, recipes: frozenset[tuple[str, str]] = frozenset()) -> dict[tuple[str, str], str]:
    """{(module, name): normalized code} of every definition (and module-level statement, as name '')
    reached from `roots` and from the statements `extra` (a notebook's code, with its own imports), the
    planner not followed; a model declaration among `recipes` counts as its recipe (a training's own model)."""
    found: dict[tuple[str, str], str] = {}
    todo = set(roots)
    if extra_module is not None:
        todo |= {use for use in extra_module.uses(extra or [], root) if use[0] != extra_module.name}
    while todo:
        module_name, name = todo.pop()
        if (module_name, name) in found or is_planner(module_name) or not is_lib(module_name):
            continue
        module = load(module_name, root)
        if module is None:  # a name that is no module: its parent's definition of that name
            parent, _, attribute = module_name.rpartition(".")
            todo.add((parent, attribute))
            continue
        for package in [*packages(module_name), module_name]:  # their module-level code runs on import
            if (package, "") not in found and not is_planner(package) and (parsed := load(package, root)):
                found[(package, "")], uses = parsed.code_and_uses("", root)
                todo |= uses
        if (module_name, name) in OPAQUE:
            found[(module_name, name)] = ""
            continue
        if name == WHOLE:  # every definition, each visited (and followed) on its own
            found[(module_name, WHOLE)] = ""
            todo |= {(module_name, n) for n in module.definitions}
            continue
        if name in module.definitions:
            found[(module_name, name)], uses = module.code_and_uses(name, root, (module_name, name) in recipes)
        elif name in module.imports:  # re-exported: the definition it names
            target, attribute = module.imports[name]
            todo.add((target, attribute or WHOLE))
            continue
        else:
            if name != "":  # unknown here (made at run time?): the whole module, so nothing is forgotten
                todo.add((module_name, WHOLE))
            continue
        todo |= uses
    return found


def code_hash(found: dict[tuple[str, str], str]) -> str:
    """One hash of the reached definitions' names and code."""
    digest = hashlib.sha256()
    for (module, name), code in sorted(found.items()):
        digest.update(f"{module}:{name}\n{code}\n".encode())
    return digest.hexdigest()
