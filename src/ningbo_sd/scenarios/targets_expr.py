"""Target expressions: a small grammar over a run's headline columns, parsed, never executed.

A target is a comparison such as ``gross_output[2035] >= 2 * gross_output[2020]``, or the id
of a scorecard target (``industrial_land_area_2025``), which :func:`resolve_target` turns
into one. The text is parsed by a recursive-descent parser into a tree of numbers,
``column[year]`` references and ``+ - * /``; nothing the user writes is ever evaluated as
Python. :func:`target_margin` evaluates a parsed target over a (sample, year) dataset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ningbo_sd.io import UserError

if TYPE_CHECKING:
    import xarray as xr

COMPARISONS: tuple[str, ...] = (">=", "<=", ">", "<")
#: The longest target expression accepted (characters).
MAX_TARGET_CHARS = 500
#: The deepest nesting of parentheses and signs in a target expression.
MAX_TARGET_DEPTH = 50
#: The most characters of a target quoted back in an error line.
QUOTED_CHARS = 80
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>>=|<=|[-+*/()\[\]<>]))"
)


class GoalError(UserError):
    """A target expression, lever or search range is invalid; the message says what is allowed."""


def _quoted(text: str) -> str:
    """A target as quoted in an error line: as written, cut short past QUOTED_CHARS."""
    return repr(text if len(text) <= QUOTED_CHARS else text[: QUOTED_CHARS - 1] + "…")


def _check_length(text: str) -> None:
    if len(text) > MAX_TARGET_CHARS:
        raise GoalError(
            f"target {_quoted(text)}: {len(text):,} characters; a target is at most "
            f"{MAX_TARGET_CHARS} (e.g. 'gross_output[2035] >= 2 * gross_output[2020]')"
        )


# ---------------------------------------------------------------- target expressions


@dataclass(frozen=True)
class Target:
    """A parsed target: ``left op right``, each side a tree of tuples.

    Nodes: ``("num", value)``, ``("ref", column, year)``, ``("neg", node)`` and
    ``(op, left, right, position)`` for ``+ - * /`` (``position``: the operator's place in
    ``text``, for error lines).
    """

    text: str
    op: str
    left: tuple
    right: tuple

    @property
    def references(self) -> list[tuple[str, int]]:
        """The ``(column, year)`` pairs the target reads."""

        def walk(node: tuple) -> list[tuple[str, int]]:
            if node[0] == "ref":
                return [(node[1], node[2])]
            if node[0] == "num":
                return []
            return [ref for sub in node[1 : 2 if node[0] == "neg" else 3] for ref in walk(sub)]

        return walk(self.left) + walk(self.right)

    @property
    def year(self) -> int:
        """The latest year the target reads (where the binding constraint is reported)."""
        years = [year for _, year in self.references]
        return max(years) if years else 0


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            bad = stripped[position:].lstrip()[:1]
            raise GoalError(
                f"target {_quoted(text)}: unexpected character {bad!r} at position "
                f"{len(stripped) - len(stripped[position:].lstrip())}; allowed: column[year], "
                "numbers, + - * / ( ), and one of >= <= > <"
            )
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over: comparison := sum OP sum; sum := product (('+'|'-') product)*;
    product := unary (('*'|'/') unary)*; unary := '-' unary | atom;
    atom := NUMBER | NAME '[' YEAR ']' | '(' sum ')'."""

    def __init__(self, text: str, columns: frozenset[str], years: tuple[int, int]) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.depth = 0
        self.columns = columns
        self.years = years

    def error(self, message: str) -> GoalError:
        if self.position < len(self.tokens):
            where = (
                f"at position {self.tokens[self.position][2]} ({self.tokens[self.position][1]!r})"
            )
        else:
            where = "at the end"
        return GoalError(f"target {_quoted(self.text)}: {message} {where}")

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str, int]:
        if self.position >= len(self.tokens):
            raise self.error(f"expected {expected!r}" if expected else "unexpected end")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise self.error(f"expected {expected!r}")
        self.position += 1
        return token

    def comparison(self) -> Target:
        left = self.sum()
        if self.peek() not in COMPARISONS:
            raise self.error(f"expected a comparison ({' '.join(COMPARISONS)})")
        op = self.take()[1]
        right = self.sum()
        if self.position != len(self.tokens):
            raise self.error("unexpected text after the comparison")
        return Target(self.text, op, left, right)

    def sum(self) -> tuple:
        node = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            node = (op, node, self.product())
        return node

    def product(self) -> tuple:
        node = self.unary()
        while self.peek() in ("*", "/"):
            _, op, where = self.take()
            divisor = self.unary()
            if op == "/" and _constant(divisor) == 0:
                raise GoalError(
                    f"division by zero in the target at position {where} of "
                    f"{_quoted(self.text)}: the divisor is 0; allowed: a divisor that is never 0"
                )
            node = (op, node, divisor, where)
        return node

    def nested(self) -> None:
        """Enter one level of parentheses or sign (bounded: the parser recurses)."""
        self.depth += 1
        if self.depth > MAX_TARGET_DEPTH:
            raise self.error(
                f"nested too deeply (at most {MAX_TARGET_DEPTH} levels of parentheses and signs)"
            )

    def unary(self) -> tuple:
        if self.peek() == "-":
            self.nested()
            self.take()
            node = ("neg", self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> tuple:
        if self.position >= len(self.tokens):
            raise self.error("expected a number, column[year] or '('")
        kind, text, _ = self.tokens[self.position]
        if kind == "number":
            if not math.isfinite(float(text)):
                raise self.error("number too large (at most about 1.8e308)")
            self.take()
            return ("num", float(text))
        if text == "(":
            self.nested()
            self.take()
            node = self.sum()
            self.take(")")
            self.depth -= 1
            return node
        if kind == "name":
            if text not in self.columns:
                raise self.error(
                    f"unknown column {text!r}; allowed: {', '.join(sorted(self.columns))}"
                )
            self.take()
            self.take("[")
            if self.position >= len(self.tokens) or self.tokens[self.position][0] != "number":
                raise self.error("expected a year")
            year_text = self.take()[1]
            first, last = self.years
            if not year_text.isdigit() or not first <= int(year_text) <= last:
                self.position -= 1
                raise self.error(f"year must be a whole year {first}-{last}")
            self.take("]")
            return ("ref", text, int(year_text))
        raise self.error("expected a number, column[year] or '('")


def _numeric_columns() -> frozenset[str]:
    from ningbo_sd.model.outputs import output_columns

    return frozenset(c.name for c in output_columns() if c.name != "binding_constraint")


def parse_target(text: str, years: tuple[int, int] = (2015, 2035)) -> Target:
    """Parse a target expression such as ``gross_output[2035] >= 2 * gross_output[2020]``.

    Parameters
    ----------
    text : str
        ``expression OP expression`` with OP one of ``>= <= > <``; expressions use
        numbers, ``column[year]`` (headline columns of ``model/outputs.yaml``),
        ``+ - * /`` and parentheses.
    years : tuple of int
        First and last year a reference may name.

    Returns
    -------
    Target

    Raises
    ------
    GoalError
        Naming the position and what is allowed there; also for a text longer than
        :data:`MAX_TARGET_CHARS`, nesting deeper than :data:`MAX_TARGET_DEPTH` and a
        division by a constant 0.
    """
    if not isinstance(text, str) or not text.strip():
        raise GoalError("target: empty; write e.g. 'gross_output[2035] >= 2 * gross_output[2020]'")
    _check_length(text)
    return _Parser(text, _numeric_columns(), years).comparison()


def _constant(node: tuple) -> float | None:
    """The value of a subtree that reads no column (None if it reads one)."""
    if node[0] == "num":
        return node[1]
    if node[0] == "ref":
        return None
    if node[0] == "neg":
        value = _constant(node[1])
        return None if value is None else -value
    left, right = _constant(node[1]), _constant(node[2])
    if left is None or right is None:
        return None
    with np.errstate(all="ignore"):
        return float(_OPERATIONS[node[0]](left, right)) if node[0] != "/" or right else None


_OPERATIONS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


def _evaluate(node: tuple, results: xr.Dataset, text: str) -> np.ndarray:
    """The value of a subtree for every sample; a division by zero or an overflow of finite
    values is a :class:`GoalError` (a target must be defined in every run), never "met"."""
    kind = node[0]
    if kind == "num":
        return np.asarray(node[1], dtype=float)
    if kind == "ref":
        return results[node[1]].sel(year=node[2]).to_numpy().astype(float)
    if kind == "neg":
        return -_evaluate(node[1], results, text)
    left, right = _evaluate(node[1], results, text), _evaluate(node[2], results, text)
    if kind == "/" and np.any(right == 0):
        zero = np.broadcast_to(right == 0, np.broadcast(left, right).shape)
        raise GoalError(
            f"division by zero in the target at position {node[3]} of {_quoted(text)}: the "
            f"divisor is 0 in {int(zero.sum())} of {zero.size} runs; allowed: a divisor that "
            "is never 0"
        )
    with np.errstate(all="ignore"):  # overflow is reported below, never printed
        value = _OPERATIONS[kind](left, right)
    finite = np.isfinite(left) & np.isfinite(right)
    if np.any(finite & ~np.isfinite(value)):
        raise GoalError(
            f"target {_quoted(text)}: the value at position {node[3]} overflows (beyond about "
            "1.8e308); allowed: finite values"
        )
    return value


def target_sides(target: Target, results: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of a target for every sample of a results dataset ``(sample, year)``."""
    return _evaluate(target.left, results, target.text), _evaluate(
        target.right, results, target.text
    )


def target_margin(target: Target, results: xr.Dataset) -> np.ndarray:
    """How far each sample is past the target (>= 0: met), in the target's units."""
    left, right = target_sides(target, results)
    with np.errstate(all="ignore"):  # sides of opposite signs near 1e308: an infinite margin
        margin = left - right if target.op in (">=", ">") else right - left
    margin = np.broadcast_to(margin, (results.sizes["sample"],)).astype(float)
    if target.op in (">", "<"):
        margin = np.where(margin > 0, margin, np.minimum(margin, -np.finfo(float).tiny))
    return margin


def resolve_target(text: str) -> Target:
    """A target expression, or a scorecard target id turned into one.

    A scorecard id (e.g. ``industrial_land_area_2025``) with a level measure becomes
    ``column[year] op value``; a change or growth target becomes the equivalent comparison
    of two years (e.g. a CAGR of 13% 2020-2025 becomes
    ``x[2025] >= 1.13 ^ 5 * x[2020]``, written out as a number).
    """
    text = str(text).strip()
    _check_length(text)
    if re.fullmatch(r"[a-z0-9_]+", text) and text not in _numeric_columns():
        from ningbo_sd.scenarios.scorecard import load_target_specs, target_expression

        specs = {spec.id: spec for spec in load_target_specs()}
        if text not in specs:
            raise GoalError(
                f"target {_quoted(text)}: not an expression and not a scorecard target id; "
                "write e.g. 'gross_output[2035] >= 2 * gross_output[2020]'"
            )
        try:
            return parse_target(target_expression(specs[text]))
        except ValueError as exc:
            raise GoalError(str(exc)) from None
    return parse_target(text)
