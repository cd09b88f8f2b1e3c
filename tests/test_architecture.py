"""The layers (docs/architecture.md): imports only go down; modules stay small.

Every import of an rdppl module in rdppl's source is read from the syntax tree (module
level, inside functions and under ``TYPE_CHECKING`` alike). A module may import a
module of its own component (subpackage) or of a component in a lower layer, never a
sibling in the same layer or anything above; nothing below the facade imports the
``rdppl`` package itself; and the import graph has no cycle. The layers are read from
docs/architecture.md, so the page and the code cannot drift apart.
"""

import ast
import importlib
import pathlib
import re
import sys
import warnings

import pytest

import rdppl
from rdppl import _moved

ROOT = pathlib.Path(rdppl.__file__).resolve().parent
DOCS = ROOT.parent / "docs" / "architecture.md"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80

# the package's face: what users import and run, above every layer
FACADE = {"rdppl", "rdppl.__main__", "rdppl._moved"}


def _layers() -> dict[str, int]:
    """Component -> layer, from the table in docs/architecture.md."""
    rows = re.findall(r"^\| (\d) \| ([^|]+) \|", DOCS.read_text(), re.M)
    assert rows, "docs/architecture.md has no table of layers"
    layers = {}
    for number, components in rows:
        for component in re.findall(r"`([\w./]+)`", components):
            layers[component.removeprefix("rdppl/").rstrip("/")] = int(number)
    return layers


LAYERS = _layers()


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("rdppl", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The rdppl modules ``name`` imports (``from a import b``: ``a.b`` if a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import (line {node.lineno})"
            base = node.module or ""
            if base != "rdppl" and not base.startswith("rdppl."):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in MODULES else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "rdppl" or alias.name.startswith("rdppl."):
                    found.add(alias.name)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _component(name: str) -> str:
    """The layer component of a module: its subpackage, or the entry-point layer."""
    if name in FACADE:
        return "facade"
    parts = name.split(".")
    if len(parts) > 2 or (ROOT / parts[1]).is_dir():
        return parts[1]
    return parts[1] + ".py"  # a top-level module


def _layer(name: str) -> int:
    component = _component(name)
    if component == "facade":
        return max(LAYERS.values()) + 1
    return LAYERS[component]


def test_every_module_belongs_to_a_documented_layer():
    unknown = {
        _component(name)
        for name in MODULES
        if _component(name) != "facade" and _component(name) not in LAYERS
    }
    assert not unknown, f"add {sorted(unknown)} to the table in docs/architecture.md"
    assert set(LAYERS) <= {_component(name) for name in MODULES}, "stale layer table"


def _group(name: str) -> str:
    """Modules free to import each other: a subpackage, or a layer's top-level files."""
    component = _component(name)
    return f"top-level {_layer(name)}" if component.endswith(".py") else component


def test_imports_only_go_down():
    upward = [
        f"{name} (layer {_layer(name)}) imports {dependency} "
        f"(layer {_layer(dependency)})"
        for name, dependencies in GRAPH.items()
        for dependency in sorted(dependencies)
        if _group(dependency) != _group(name) and _layer(dependency) >= _layer(name)
    ]
    assert upward == []


def test_nothing_below_the_facade_imports_the_package_itself():
    assert [n for n, deps in GRAPH.items() if "rdppl" in deps and n not in FACADE] == []


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dependency in sorted(GRAPH.get(name, ())):
            if state.get(dependency) == 1:
                cycle = path[path.index(dependency) :] + [dependency]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dependency not in state:
                visit(dependency, [*path, dependency])
        state[name] = 2

    for name in GRAPH:
        if name not in state:
            visit(name, [name])


def test_model_and_data_are_validated_only_at_the_entry_points():
    """``prepare_model`` and the settings checks are called from entry points only."""
    entry = LAYERS["rd.py"]
    callers = [
        name
        for name, deps in GRAPH.items()
        if {"rdppl.validation", "rdppl.program.prepare"} & deps
        and _component(name) != "facade"
        and _layer(name) < entry
    ]
    assert callers == []


def test_no_module_over_the_line_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    docstring = (
        isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    )
    first = body[1] if docstring and len(body) > 1 else body[0]
    return node.end_lineno - first.lineno + 1


def test_no_function_body_over_the_line_limit():
    long = {
        f"{name}.{node.name} (line {node.lineno})": _body_lines(node)
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and _body_lines(node) > MAX_FUNCTION_LINES
    }
    assert long == {}


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_module_paths_still_import(old):
    """A flat path of rdppl 0.1 gives the moved module; internal ones warn."""
    new = importlib.import_module(_moved.MOVED[old])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop(old, None)
        # an import statement in this file, as a user writes it
        exec(compile(f"import {old}", __file__, "exec"), {})
    assert sys.modules[old] is new
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if old in _moved.PUBLIC:
        assert deprecations == []
    else:
        assert len(deprecations) == 1
        message = str(deprecations[0].message)
        assert old in message and _moved.MOVED[old] in message
        assert deprecations[0].filename == __file__  # points at the import


def test_old_paths_are_not_current_modules():
    assert not set(_moved.MOVED) & set(MODULES)
    assert set(_moved.MOVED.values()) <= set(MODULES)
    assert _moved.PUBLIC <= set(_moved.MOVED)


def test_public_submodules_and_names_resolve_to_current_modules():
    for name, module in rdppl._SUBMODULES.items():
        assert module in MODULES, name
        assert getattr(rdppl, name) is importlib.import_module(module)
    for name, module in rdppl._ATTRIBUTES.items():
        assert module in MODULES, name
        assert getattr(rdppl, name) is getattr(importlib.import_module(module), name)
