"""The model's causal structure read from the Vensim file: who depends on whom.

Used to check that the brief's feedback loops exist as loops (not chains) and to draw
the stock-and-flow graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ningbo_sd.model.metadata import MODEL_PATH, file_digest, parse_product


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
    sector : dict of str to str
        The Vensim group (sector) each variable is written in, '' where none.
    equation : dict of str to str
        The equation's text, on one line.
    """

    depends_on: dict[str, frozenset[str]]
    kind: dict[str, str]
    sector: dict[str, str]
    equation: dict[str, str]

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


def model_text_entries(text: str) -> dict[str, tuple[str, str]]:
    """Variable name -> (sector, equation text), from the group markers and the equations.

    Sectors are the Vensim groups (a ``.Capital`` line between rows of ``*``), which PySD's
    abstract model does not keep; the equation is the text between the name and the first
    ``~``, on one line.
    """
    sector, out = "", {}
    for chunk in text.split("\\\\\\---///")[0].split("|"):
        group = re.search(r"\*{5,}\s*\n\s*\.(.+?)\s*\n\s*\*{5,}", chunk)
        if group:
            sector = group.group(1).strip()
            continue
        definition = re.match(r"\s*([^=~(\[\n:]+?)\s*(\[[^\]]*\])?\s*(:?=|\()", chunk)
        if definition:
            name = definition.group(1).strip()
            equation = chunk[definition.start(1) :].split("~")[0]
            out.setdefault(name, (sector, " ".join(equation.split())))
    return out


def _build_structure(abstract, path: Path) -> Structure:
    section = abstract.sections[0]
    by_normal = {_normal(element.name): element.name for element in section.elements}
    entries = model_text_entries(path.read_text(encoding="utf-8", errors="replace"))
    by_normal_entry = {_normal(name): value for name, value in entries.items()}
    depends_on: dict[str, frozenset[str]] = {}
    kind: dict[str, str] = {}
    sector: dict[str, str] = {}
    equation: dict[str, str] = {}
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
        sector[element.name], equation[element.name] = entries.get(
            element.name, by_normal_entry.get(_normal(element.name), ("", ""))
        )
    return Structure(depends_on=depends_on, kind=kind, sector=sector, equation=equation)


@lru_cache(maxsize=4)
def _structure(path: str, digest: str) -> Structure:
    return parse_product(path, "structure", _build_structure, __file__)


def read_structure(path: str | Path = MODEL_PATH) -> Structure:
    """A Vensim file's dependency structure (one parse per content, cached on disk)."""
    return _structure(str(path), file_digest(path))
