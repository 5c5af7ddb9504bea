"""The package's shape: no import cycle, no private name used across modules, small modules,
no torch in nst_ort/, and a bundle driver that imports nothing of nst_ort."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nst_ort", "export")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, lazy ones in functions included; not those for type checkers."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def project_targets(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for each project module the statement imports from."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names if alias.name in MODULES]
    if node.level or node.module not in MODULES:
        return []
    targets = []
    for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        targets.append((submodule, None) if submodule in MODULES else (node.module, alias.name))
    return targets


GRAPH = {
    name: {target for node in imports(ast.parse(path.read_text())) for target, _ in project_targets(node)}
    for name, path in MODULES.items()
}


def test_no_import_cycle():
    """Depth-first search for a back edge; the message shows the cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_no_private_name_crosses_a_module():
    """`from nst_ort.x import _name` or `x._name` from another module: a seam that is not one."""
    found = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in imports(tree):
            for target, imported in project_targets(node):
                if imported and imported.startswith("_") and not imported.startswith("__"):
                    found.append(f"{name}: from {target} import {imported}")
            for alias in node.names:
                module = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
                if module in MODULES:
                    aliases[alias.asname or alias.name.split(".")[0]] = module
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


def test_modules_stay_small():
    actual = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: lines for name, lines in actual.items() if lines > MAX_LINES} == {}


def test_the_bundle_driver_imports_nothing_of_nst_ort():
    assert GRAPH["nst_ort.bundle.driver"] == set()
    assert not any(target.startswith("nst_ort") for target in GRAPH["nst_ort.bundle.driver"])


def test_no_nst_ort_module_imports_torch():
    code = (
        "import sys, pkgutil, importlib, nst_ort\n"
        "for m in pkgutil.walk_packages(nst_ort.__path__, 'nst_ort.'): importlib.import_module(m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
