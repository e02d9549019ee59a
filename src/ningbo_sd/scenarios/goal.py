"""Goal-seeking: the smallest lever value that meets a target, and two-lever frontiers.

A target is either a comparison written in a small grammar over the run's headline
columns, e.g. ``gross_output[2035] >= 2 * gross_output[2020]``, or the id of a scorecard
target (``industrial_land_area_2025``). The text is parsed by a recursive-descent parser
into a tree of numbers, ``column[year]`` references and ``+ - * /``; nothing the user
writes is ever evaluated as Python.

The search runs the lever over a coarse grid in one batch (checking that the target's
margin is monotone in the lever), brackets the first grid step where the target becomes
met, and refines it with :func:`scipy.optimize.brentq`. The answer is always a value that
was run and meets the target; the largest value run below it that misses the target is
reported too, so the answer's precision is explicit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from ningbo_sd.io import UserError
from ningbo_sd.scenarios.schema import LeverChoice, Scenario, load_scenario, parse_lever

if TYPE_CHECKING:
    import xarray as xr

COMPARISONS: tuple[str, ...] = (">=", "<=", ">", "<")
#: The longest target expression accepted (characters).
MAX_TARGET_CHARS = 500
#: The deepest nesting of parentheses and signs in a target expression.
MAX_TARGET_DEPTH = 50
#: The most characters of a target quoted back in an error line.
QUOTED_CHARS = 80
GRID_POINTS = 17
FRONTIER_POINTS = 6
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


# ---------------------------------------------------------------- search


@dataclass
class GoalResult:
    """The outcome of a goal-seek.

    Attributes
    ----------
    target, lever : str
        As given.
    value : float or None
        The lever value found (None when no value in the range meets the target).
    direction : str
        ``"at least"`` (met for values >= value), ``"at most"`` (met for values <= value)
        or ``""`` when not found.
    feasible : bool
    low, high : float
        The range searched.
    unmet_neighbour : float or None
        The nearest value run on the other side of ``value`` that misses the target.
    left, right : float
        The target's two sides at ``value`` (or at the best value tried).
    binding_constraint : str
        Which limit binds in the target's year at ``value`` (or the best value tried).
    monotone : bool
        Whether the target's margin was monotone in the lever on the coarse grid.
    runs : int
        Model runs used.
    message : str
        The answer in one plain sentence.
    fixed : dict
        Other lever settings held fixed (frontier).
    """

    target: str
    lever: str
    value: float | None
    direction: str
    feasible: bool
    low: float
    high: float
    unmet_neighbour: float | None
    left: float
    right: float
    binding_constraint: str
    monotone: bool
    runs: int
    message: str
    fixed: dict = field(default_factory=dict)


class _Evaluator:
    """Runs the model for lever values and returns target margins (counting runs)."""

    def __init__(self, scenario, target: Target, choice: LeverChoice, fixed: dict) -> None:
        self.scenario, self.target, self.choice, self.fixed = scenario, target, choice, fixed
        self.runs = 0
        self.tried: dict[float, float] = {}

    def run(self, values) -> xr.Dataset:
        from ningbo_sd.scenarios.run import run_batch

        values = np.atleast_1d(np.asarray(values, dtype=float))
        table = {**self.choice.table(values)}
        for name, value in self.fixed.items():
            table[name] = np.full(values.size, float(value))
        self.runs += values.size
        return run_batch(pd.DataFrame(table), scenario=self.scenario)

    def margins(self, values) -> tuple[np.ndarray, xr.Dataset]:
        results = self.run(values)
        margin = target_margin(self.target, results)
        for value, item in zip(np.atleast_1d(values), margin, strict=True):
            self.tried[float(value)] = float(item)
        return margin, results

    def __call__(self, value: float) -> float:
        return float(self.margins([value])[0][0])


def _binding(results: xr.Dataset, sample: int, year: int) -> str:
    from ningbo_sd.model.outputs import binding_label

    if "binding_constraint" not in results or year not in results["year"].to_numpy():
        return "unknown"
    return binding_label(results["binding_constraint"].isel(sample=sample).sel(year=year).item())


def _monotone(margin: np.ndarray) -> str:
    scale = max(1.0, float(np.nanmax(np.abs(margin))))
    with np.errstate(all="ignore"):  # a NaN run: "neither", without a printed warning
        steps = np.diff(margin)
    if np.all(steps >= -1e-9 * scale):
        return "increasing"
    if np.all(steps <= 1e-9 * scale):
        return "decreasing"
    return "neither"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def goal_seek(
    scenario: Scenario | str | Path,
    target: str | Target,
    lever: str | LeverChoice,
    low: float | None = None,
    high: float | None = None,
    fixed: dict | None = None,
    grid_points: int = GRID_POINTS,
    xtol: float | None = None,
) -> GoalResult:
    """Find the smallest value of a lever that meets a target.

    Parameters
    ----------
    scenario : Scenario, path or bundled name
        Every other setting comes from it.
    target : str or Target
        A comparison (see :func:`parse_target`) or a scorecard target id.
    lever : str or LeverChoice
        ``lever[.period|.cluster]`` (see :func:`parse_lever`).
    low, high : float, optional
        Search range (default: the lever's whole allowed range).
    fixed : dict, optional
        Model constants held at other values (used by :func:`frontier`).
    grid_points : int
        Points of the coarse grid (at least 3).
    xtol : float, optional
        Precision of the answer (default: range / 10,000).

    Returns
    -------
    GoalResult
        When the margin falls as the lever rises, the target is met for values *up to*
        the answer (``direction == "at most"``); the smallest value meeting it is then the
        range's low end, and the answer reported is the boundary.

    Raises
    ------
    GoalError
        Bad target, lever or range.
    """
    scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    target = target if isinstance(target, Target) else resolve_target(target)
    choice = lever if isinstance(lever, LeverChoice) else parse_lever(lever)
    low, high = _search_range(choice, low, high)
    if grid_points < 3:
        raise GoalError(f"grid_points: {grid_points}; allowed: 3 or more")
    xtol = xtol if xtol is not None else (high - low) / 10_000
    evaluate = _Evaluator(scenario, target, choice, dict(fixed or {}))
    grid = np.linspace(low, high, grid_points)
    margin, results = evaluate.margins(grid)
    shape = _monotone(margin)
    met = margin >= 0
    common = {"target": target.text, "lever": choice.label, "low": low, "high": high}
    if not met.any():
        best = int(np.nanargmax(margin))
        left, right = target_sides(target, results)
        left, right = np.broadcast_to(left, grid.shape), np.broadcast_to(right, grid.shape)
        binding = _binding(results, best, target.year)
        message = (
            f"No value of {choice.label} in [{_fmt(low)}, {_fmt(high)}] meets {target.text}: "
            f"at best ({choice.label} = {_fmt(grid[best])}) the left side is {_fmt(left[best])} "
            f"against {_fmt(right[best])}; the binding constraint in {target.year} is {binding}."
        )
        return GoalResult(
            **common, value=None, direction="", feasible=False, unmet_neighbour=None,
            left=float(left[best]), right=float(right[best]), binding_constraint=binding,
            monotone=shape != "neither", runs=evaluate.runs, message=message,
            fixed=dict(fixed or {}),
        )  # fmt: skip
    if shape == "decreasing":
        last = int(np.flatnonzero(met)[-1])
        direction, inside, outside = "at most", last, last + 1
    else:
        first = int(np.flatnonzero(met)[0])
        direction, inside, outside = "at least", first, first - 1
    neighbour = None
    value = float(grid[inside])
    if 0 <= outside < grid.size:
        lo, hi = sorted((float(grid[inside]), float(grid[outside])))
        try:
            brentq(evaluate, lo, hi, xtol=xtol, full_output=False, disp=False)
        except ValueError as exc:  # the two ends no longer straddle the target
            raise GoalError(
                f"goal: runs of {choice.label} = {_fmt(lo)} and {_fmt(hi)} disagree with the "
                f"coarse grid ({exc}); did the model or calibration file change during the search?"
            ) from None
        value, neighbour = _closest_met(evaluate.tried, lo, hi, direction)
        if neighbour is not None and abs(neighbour - value) > xtol:
            # brentq stops at an exact root (a target linear in the lever) before the
            # bracket is narrow: one run a tolerance beyond it names the unmet neighbour
            step = xtol / 2 if direction == "at most" else -xtol / 2
            evaluate(min(max(value + step, lo), hi))
            value, neighbour = _closest_met(evaluate.tried, lo, hi, direction)
    _, final = evaluate.margins([value])
    left, right = (float(np.ravel(side)[0]) for side in target_sides(target, final))
    binding = _binding(final, 0, target.year)
    if neighbour is None:
        edge = "lowest" if direction == "at least" else "highest"
        message = (
            f"{target.text} is met across the {edge} end of the range: {choice.label} = "
            f"{_fmt(value)} already meets it ({_fmt(left)} against {_fmt(right)})."
        )
    else:
        message = (
            f"{target.text} needs {choice.label} {direction} {_fmt(value)} "
            f"({_fmt(left)} against {_fmt(right)}; {_fmt(neighbour)} misses it); binding "
            f"constraint in {target.year}: {binding}."
        )
    if shape == "neither":
        message += " The target is not monotone in this lever on the coarse grid; the answer is "
        message += "the first crossing from the low end."
    return GoalResult(
        **common, value=value, direction=direction, feasible=True, unmet_neighbour=neighbour,
        left=left, right=right, binding_constraint=binding, monotone=shape != "neither",
        runs=evaluate.runs, message=message, fixed=dict(fixed or {}),
    )  # fmt: skip


def _closest_met(tried: dict[float, float], lo: float, hi: float, direction: str):
    """The met value nearest the boundary, and the nearest unmet value beyond it."""
    inside = {x: m for x, m in tried.items() if lo <= x <= hi}
    met = [x for x, m in inside.items() if m >= 0]
    unmet = [x for x, m in inside.items() if m < 0]
    if direction == "at least":
        value = min(met)
        below = [x for x in unmet if x < value]
        return value, (max(below) if below else None)
    value = max(met)
    above = [x for x in unmet if x > value]
    return value, (min(above) if above else None)


def _search_range(choice: LeverChoice, low, high) -> tuple[float, float]:
    lever = choice.lever
    low = lever.low if low is None else float(low)
    high = lever.high if high is None else float(high)
    if (
        not (math.isfinite(low) and math.isfinite(high))
        or not lever.low <= low < high <= lever.high
    ):
        raise GoalError(
            f"search range [{low:g}, {high:g}] for {choice.label}: must be increasing and "
            f"inside the lever's allowed range [{lever.low:g}, {lever.high:g}]"
        )
    return low, high


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


def frontier(
    scenario: Scenario | str | Path,
    target: str | Target,
    lever: str | LeverChoice,
    frontier_lever: str | LeverChoice,
    frontier_values=None,
    points: int = FRONTIER_POINTS,
    low: float | None = None,
    high: float | None = None,
) -> pd.DataFrame:
    """For a grid of values of a second lever, the smallest value of the first that meets a target.

    Parameters
    ----------
    scenario, target, lever, low, high
        As in :func:`goal_seek`.
    frontier_lever : str or LeverChoice
        The second lever (held fixed at each grid value).
    frontier_values : sequence of float, optional
        Its values (default: ``points`` evenly spaced over its allowed range).
    points : int
        Grid size when ``frontier_values`` is not given.

    Returns
    -------
    pandas.DataFrame
        One row per value of the second lever: ``<frontier lever>``, ``<lever>`` (NaN when
        no value meets the target), ``direction``, ``binding_constraint``, ``message``.
    """
    scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    target = target if isinstance(target, Target) else resolve_target(target)
    choice = lever if isinstance(lever, LeverChoice) else parse_lever(lever)
    other = (
        frontier_lever if isinstance(frontier_lever, LeverChoice) else parse_lever(frontier_lever)
    )
    if set(choice.constants) & set(other.constants):
        raise GoalError(f"frontier: {choice.label} and {other.label} set the same constants")
    if frontier_values is None:
        frontier_values = np.linspace(other.lever.low, other.lever.high, points)
    values = [float(v) for v in frontier_values]
    for value in values:
        if not other.lever.low <= value <= other.lever.high:
            raise GoalError(
                f"frontier value {value:g} for {other.label}: outside the allowed range "
                f"[{other.lever.low:g}, {other.lever.high:g}]"
            )
    rows = []
    for value in values:
        fixed = {name: value for name in other.constants}
        result = goal_seek(scenario, target, choice, low=low, high=high, fixed=fixed)
        rows.append(
            {
                other.label: value,
                choice.label: np.nan if result.value is None else result.value,
                "direction": result.direction,
                "binding_constraint": result.binding_constraint,
                "message": result.message,
            }
        )
    return pd.DataFrame(rows)
