"""Goal-seeking: the smallest lever value that meets a target, and two-lever frontiers.

A target is either a comparison written in a small grammar over the run's headline
columns, e.g. ``gross_output[2035] >= 2 * gross_output[2020]``, or the id of a scorecard
target (``industrial_land_area_2025``); :mod:`ningbo_sd.scenarios.targets_expr` parses it
(nothing the user writes is ever evaluated as Python).

The search runs the lever over a coarse grid in one batch (checking that the target's
margin is monotone in the lever), brackets the first grid step where the target becomes
met, and refines it with :func:`scipy.optimize.brentq`. The answer is always a value that
was run and meets the target; the largest value run below it that misses the target is
reported too, so the answer's precision is explicit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from ningbo_sd.scenarios.schema import LeverChoice, Scenario, load_scenario, parse_lever
from ningbo_sd.scenarios.targets_expr import (
    GoalError,
    Target,
    parse_target,
    resolve_target,
    target_margin,
    target_sides,
)

if TYPE_CHECKING:
    import xarray as xr

# the target grammar is ``targets_expr``'s; goal-seeking callers find it here too
__all__ = [
    "FRONTIER_POINTS",
    "GRID_POINTS",
    "GoalError",
    "GoalResult",
    "Target",
    "frontier",
    "goal_seek",
    "parse_lever",
    "parse_target",
    "resolve_target",
    "target_margin",
    "target_sides",
]

GRID_POINTS = 17
FRONTIER_POINTS = 6


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
