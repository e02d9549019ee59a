"""The model's causal structure read from the Vensim file: who depends on whom.

Used to check that the brief's feedback loops exist as loops (not chains) and to draw
the stock-and-flow graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ningbo_sd.model.metadata import MODEL_PATH


def _normal(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def _references(node, found: set[str]) -> None:
    """Collect every variable reference inside a PySD abstract-syntax node."""
    if node is None or isinstance(node, str | int | float | bool):
        return
    if type(node).__name__ == "ReferenceStructure":
        found.add(_normal(node.reference))
    if isinstance(node, list | tuple):
        for item in node:
            _references(item, found)
        return
    for value in getattr(node, "__dict__", {}).values():
        _references(value, found)


@dataclass(frozen=True)
class Structure:
    """Dependencies and kinds of a model's variables.

    Attributes
    ----------
    depends_on : dict of str to frozenset of str
        For each variable (Vensim name), the variables its equation reads.
    kind : dict of str to str
        ``stock``, ``constant``, ``lookup`` or ``auxiliary`` (flows are auxiliaries read
        by a stock's INTEG).
    """

    depends_on: dict[str, frozenset[str]]
    kind: dict[str, str]

    def find_path(self, source: str, target: str) -> list[str] | None:
        """Shortest causal path ``source -> ... -> target`` (influence direction)."""
        influences: dict[str, set[str]] = {name: set() for name in self.depends_on}
        for name, deps in self.depends_on.items():
            for dep in deps:
                influences.setdefault(dep, set()).add(name)
        frontier, parent = [source], {source: None}
        while frontier:
            next_frontier = []
            for node in frontier:
                for child in sorted(influences.get(node, ())):
                    if child not in parent:
                        parent[child] = node
                        next_frontier.append(child)
            frontier = next_frontier
            if target in parent:
                path = [target]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return path[::-1]
        return None


@lru_cache(maxsize=4)
def read_structure(path: str | Path = MODEL_PATH) -> Structure:
    """Parse a Vensim file and return its dependency structure."""
    from pysd.translators.vensim.vensim_file import VensimFile

    vensim_file = VensimFile(Path(path))
    vensim_file.parse()
    section = vensim_file.get_abstract_model().sections[0]
    by_normal = {_normal(element.name): element.name for element in section.elements}
    depends_on: dict[str, frozenset[str]] = {}
    kind: dict[str, str] = {}
    for element in section.elements:
        found: set[str] = set()
        for component in element.components:
            _references(component.ast, found)
        names = {by_normal[ref] for ref in found if ref in by_normal} - {element.name}
        depends_on[element.name] = frozenset(names)
        first = element.components[0]
        ast_type = type(first.ast).__name__
        if ast_type == "IntegStructure":
            kind[element.name] = "stock"
        elif type(first).__name__ == "AbstractLookup":
            kind[element.name] = "lookup"
        elif not names and ast_type not in ("CallStructure", "ArithmeticStructure"):
            kind[element.name] = "constant"
        else:
            kind[element.name] = "auxiliary"
    return Structure(depends_on=depends_on, kind=kind)
