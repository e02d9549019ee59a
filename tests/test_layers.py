"""The package's layers import downward only, and the engine imports nothing of the project.

Read from the source text (``ast``), not by importing, so a lazy import inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ningbo_sd"
#: Lowest first. A module may import its own layer, any lower one and the plumbing.
LAYERS = (
    "engine",
    "model",
    "plan",
    "scenarios",
    "uncertainty",
    "calibration",
    "validation",
    "app",
    "cli",
)
PLUMBING = ("io", "resources")


def _imports(path: Path) -> set[str]:
    """The ``ningbo_sd`` modules a source file imports (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                found.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                found.add(node.module)
    return {name for name in found if name == "ningbo_sd" or name.startswith("ningbo_sd.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer_or_the_plumbing():
    for path in MODULES:
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert top in (*LAYERS, *PLUMBING, "__init__", "__main__"), f"{path}: not in a layer"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_downward_only(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    own = "cli" if own == "__main__" else own  # python -m ningbo_sd: the command
    if own not in LAYERS:
        allowed = set(PLUMBING) | {""}  # io and resources use nothing of the layers
    elif own == "engine":
        allowed = {"engine"}  # generic: nothing else of the project, not even the plumbing
    else:
        allowed = set(LAYERS[: LAYERS.index(own) + 1]) | set(PLUMBING) | {""}
    wrong = sorted(name for name in _imports(path) if _layer(name) not in allowed)
    assert not wrong, f"{path.relative_to(PACKAGE)} ({own}) imports {wrong}"


def test_no_import_cycles_between_modules():
    graph = {}
    for path in MODULES:
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        graph[name.removesuffix(".__init__")] = {
            target for target in _imports(path) if target != name.removesuffix(".__init__")
        }
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(target):
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [node])
