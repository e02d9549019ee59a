"""Subscript ranges and loop frames used while lowering equations to the IR.

A *frame* is the loop space of one equation (a component's left-hand side, or
the inner space of a ``SUM(x[d!])``): a list of points, each a tuple of element
keys, one per position.  References are resolved to integer gather indices by
matching their subscripts against the frame's named positions.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from .ir import UnsupportedConstructError, VarInfo

__all__ = ["Frame", "Subscripts", "key"]


def key(name: str) -> str:
    """Case/space/underscore-insensitive key of a Vensim name (as Vensim matches names)."""
    return re.sub(r"[\s_]+", "_", str(name).strip().lower())


@dataclass
class Frame:
    """Loop space of one equation.

    Attributes
    ----------
    names : tuple
        Range key per position (``None`` for a position fixed to one element).
    sets : tuple of frozenset
        Element keys each position may take.
    points : list of tuple
        Element keys per point (one per position).
    """

    names: tuple
    sets: tuple
    points: list

    @property
    def n(self) -> int:
        """Number of loop points."""
        return len(self.points)


class Subscripts:
    """Subscript ranges of a model (with copies and positional mappings)."""

    def __init__(self, ranges) -> None:
        self.elements: dict[str, list[str]] = {}  # range key -> element keys
        self.original: dict[str, str] = {}  # element or range key -> original name
        self.mapping: dict[str, list[str]] = {}
        pending = list(ranges)
        for _ in range(len(pending) + 1):
            rest = []
            for rng in pending:
                subs = rng.subscripts
                if isinstance(subs, str):
                    if key(subs) not in self.elements:
                        rest.append(rng)
                        continue
                    elems = list(self.elements[key(subs)])
                elif isinstance(subs, list):
                    range_names = {key(r.name) for r in ranges}
                    if any(key(e) in range_names and key(e) not in self.elements for e in subs):
                        rest.append(rng)  # lists a range not yet defined
                        continue
                    elems = []
                    for e in subs:
                        if key(e) in self.elements:  # a subrange listed inside a range
                            elems.extend(self.elements[key(e)])
                        else:
                            elems.append(key(e))
                            self.original.setdefault(key(e), str(e).strip())
                else:
                    raise UnsupportedConstructError(
                        f"subscript range '{rng.name}': GET DIRECT SUBSCRIPT / "
                        "external subscript definitions are not supported"
                    )
                self.elements[key(rng.name)] = elems
                self.original[key(rng.name)] = rng.name
                maps = []
                for m in rng.mapping or []:
                    if not isinstance(m, str):
                        raise UnsupportedConstructError(
                            f"subscript range '{rng.name}': non-positional subscript "
                            "mapping is not supported"
                        )
                    maps.append(key(m))
                self.mapping[key(rng.name)] = maps
            pending = rest
            if not pending:
                break
        if pending:
            raise UnsupportedConstructError(
                f"subscript range '{pending[0].name}': unresolved range copy"
            )
        self.all_elements = {e for els in self.elements.values() for e in els}
        copies = {key(r.name) for r in ranges if isinstance(r.subscripts, str)}
        self.main: dict[str, str] = {}
        for rk, els in self.elements.items():
            best = rk
            for ok, oels in self.elements.items():
                if ok in copies or not set(els) <= set(oels):
                    continue
                if len(oels) > len(self.elements[best]) or best in copies:
                    best = ok
                elif len(oels) == len(self.elements[best]) and ok != best:
                    # equal sets: the first declared range is the main one
                    order = list(self.elements)
                    if order.index(ok) < order.index(best):
                        best = ok
            self.main[rk] = best

    # ------------------------------------------------------------------
    def is_range(self, name: str) -> bool:
        """Return True if ``name`` is a subscript range."""
        return key(name) in self.elements

    def members(self, name: str) -> list[str]:
        """Element keys of a range or ``[element]`` for an element."""
        k = key(name)
        if k in self.elements:
            return self.elements[k]
        if k in self.all_elements:
            return [k]
        raise UnsupportedConstructError(f"unknown subscript '{name}'")

    def choose_range(self, elems: list[str], hints: list[str]) -> str:
        """Pick the range that names a variable dimension holding ``elems``."""
        target = set(elems)
        for h in hints:
            if h in self.elements and set(self.elements[h]) == target:
                return h
        for rk, els in self.elements.items():
            if set(els) == target:
                return rk
        best = None
        for rk, els in self.elements.items():
            if target <= set(els) and (best is None or len(els) < len(self.elements[best])):
                best = rk
        if best is None:
            raise UnsupportedConstructError(f"no subscript range contains {sorted(target)}")
        return best

    # ------------------------------------------------------------------
    def lhs_frame(self, subs: list, excepts: list) -> Frame:
        """Frame of a component's left-hand side (with ``:EXCEPT:`` removed)."""
        names, sets, lists = [], [], []
        for s in subs:
            k = key(s)
            lists.append(self.members(s))
            names.append(k if k in self.elements else None)
            sets.append(frozenset(lists[-1]))
        points = list(itertools.product(*lists))
        for exc in excepts or []:
            ex_sets = [set(self.members(e)) for e in exc]
            points = [p for p in points if not all(p[i] in ex_sets[i] for i in range(len(ex_sets)))]
        return Frame(tuple(names), tuple(sets), points)

    def inner_frame(self, frame: Frame, reduced: list[str]) -> Frame:
        """Frame of an aggregation's argument: outer points x reduced ranges."""
        lists = [self.members(r) for r in reduced]
        inner = list(itertools.product(*lists))
        points = [p + q for p in frame.points for q in inner]
        return Frame(
            frame.names + tuple(key(r) for r in reduced),
            frame.sets + tuple(frozenset(x) for x in lists),
            points,
        )

    def _position(self, rk: str, frame: Frame, var: str, last: bool = False):
        """Return ``(position, mapper)`` of range ``rk`` in ``frame``.

        ``last`` selects the innermost position of that name (aggregated ``d!``).
        """
        if rk in frame.names:
            if last:
                return len(frame.names) - 1 - frame.names[::-1].index(rk), None
            return frame.names.index(rk), None
        # positional mapping between ranges
        for j, nm in enumerate(frame.names):
            if nm is None:
                continue
            if nm in self.mapping.get(rk, []) or rk in self.mapping.get(nm, []):
                src, dst = self.elements[nm], self.elements[rk]
                if len(src) != len(dst):
                    break
                return j, dict(zip(src, dst, strict=True))
        elems = set(self.elements[rk])
        cands = [
            j
            for j, st in enumerate(frame.sets)
            if frame.names[j] != rk and (st <= elems or elems <= st)
        ]
        if len(cands) == 1:
            return cands[0], None
        raise UnsupportedConstructError(
            f"variable '{var}': cannot match subscript range "
            f"'{self.original.get(rk, rk)}' to the equation's subscripts"
        )

    def gather(self, target: VarInfo, subs: list, frame: Frame, var: str) -> np.ndarray:
        """Flat rows of ``target`` read at every point of ``frame``.

        ``subs`` are the reference's subscripts (range or element names; a
        trailing ``!`` marks an aggregated range, looked up like a range).
        """
        if not target.dims:
            if subs:
                raise UnsupportedConstructError(
                    f"variable '{var}': subscripted reference to scalar '{target.name}'"
                )
            return np.zeros(frame.n, dtype=np.int64)
        if not subs:
            subs = list(target.dims)
        if len(subs) != len(target.dims):
            raise UnsupportedConstructError(
                f"variable '{var}': reference to '{target.name}' with "
                f"{len(subs)} subscripts, expected {len(target.dims)}"
            )
        lookup = [{key(e): i for i, e in enumerate(c)} for c in target.coords]
        cols = []
        for pos, s in enumerate(subs):
            sk = key(str(s).rstrip("!"))
            if sk in self.elements:
                j, mapper = self._position(sk, frame, var, last=str(s).endswith("!"))
                vals = [p[j] for p in frame.points]
                if mapper is not None:
                    vals = [mapper[v] for v in vals]
            elif sk in self.all_elements:
                vals = [sk] * frame.n
            else:
                raise UnsupportedConstructError(f"variable '{var}': unknown subscript '{s}'")
            try:
                cols.append(np.array([lookup[pos][v] for v in vals], dtype=np.int64))
            except KeyError as err:
                raise UnsupportedConstructError(
                    f"variable '{var}': element {err} is not defined for '{target.name}'"
                ) from None
        if not cols or frame.n == 0:
            return np.zeros(frame.n, dtype=np.int64)
        return np.ravel_multi_index(tuple(cols), target.shape).astype(np.int64)

    def range_position_values(self, rk: str, frame: Frame, var: str) -> np.ndarray:
        """1-based position of each point's element in range ``rk`` (range used as a value)."""
        j, mapper = self._position(rk, frame, var)
        els = self.elements[self.main[rk]]
        vals = [p[j] for p in frame.points]
        if mapper is not None:
            vals = [mapper[v] for v in vals]
        return np.array([els.index(v) + 1 for v in vals], dtype=float)
