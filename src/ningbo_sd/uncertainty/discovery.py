"""Scenario discovery: the box of inputs in which a target is (nearly) always met.

:mod:`ningbo_sd.uncertainty.conditions` reads one input at a time. A verdict often hangs on
several at once ("doubling is safe when inflation is above 1.2% *and* land intensity falls
faster than 3% a year"), which is what the Patient Rule Induction Method finds (PRIM:
Friedman and Fisher 1999, "Bump hunting in high-dimensional data", *Statistics and
Computing* 9: 123-143; the scenario-discovery use of Bryant and Lempert 2010, as in EMA
Workbench's ``prim``). Starting from every sample, PRIM peels off a small share
(:data:`PEEL`) of the box's weight from the low or high end of one input, choosing the peel
that leaves the highest share of runs meeting the target (the box's *density*), and repeats
until the box holds :data:`MIN_MASS` of the weight. Each box on the way has a density, a
*coverage* (the share of all runs meeting the target that it holds) and a *mass* (its share
of the weight). :func:`discover` returns that peeling trajectory, and :func:`choose` the box
with the largest coverage among those dense enough.

Everything is weighted by the samples' importance weights, deterministic (ties go to the
earlier input, the low side first) and exact in the sense that a box's figures are weighted
sums over the samples inside it. A run counts as met or not, or with its predictive
probability when the model discrepancy is given, as in :mod:`~ningbo_sd.uncertainty.conditions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.uncertainty.conditions import (
    ConditionsError,
    conditional_table,
    input_columns,
    load_target,
    read_column,
)

#: Share of the box's weight removed at each peel (Friedman and Fisher's alpha).
PEEL = 0.05
#: The smallest box, as a share of the ensemble's weight.
MIN_MASS = 0.05
#: Inputs searched: the most decisive of the one-at-a-time screen.
SEARCHED = 8


@dataclass(frozen=True)
class Box:
    """One box of a peeling trajectory.

    Attributes
    ----------
    limits : dict of str to (float, float)
        Per input, the smallest and largest value inside the box.
    density, coverage, mass : float
        Weighted share of the box's runs meeting the target; share of all runs meeting it
        that lie in the box; the box's share of the weight.
    restricted : tuple of str
        The inputs whose range the box narrows, in the order they were first peeled.
    """

    limits: dict
    density: float
    coverage: float
    mass: float
    restricted: tuple = field(default=())


def peel(inputs: dict[str, np.ndarray], met, weights, peel_share: float = PEEL,
         min_mass: float = MIN_MASS) -> list[Box]:  # fmt: skip
    """PRIM's peeling trajectory over the given inputs.

    Parameters
    ----------
    inputs : dict of str to numpy.ndarray
        Each input's value in every sample.
    met : numpy.ndarray
        1.0 met, 0.0 not met, NaN undefined (left out).
    weights : numpy.ndarray
        Non-negative sample weights.
    peel_share, min_mass : float
        The share of the box's weight each peel removes, and the smallest box's share of the
        whole weight.

    Returns
    -------
    list of Box
        The whole ensemble first, then each box after one more peel.
    """
    names = list(inputs)
    met = np.asarray(met, dtype=float)
    weights = np.asarray(weights, dtype=float)
    values = np.column_stack([np.asarray(inputs[n], dtype=float) for n in names])
    keep = np.isfinite(met) & (weights > 0) & np.isfinite(values).all(axis=1)
    values, met, weights = values[keep], met[keep], weights[keep]
    if not len(met):
        return []
    hits = weights * met
    total_weight, total_hits = weights.sum(), hits.sum()
    orders = [np.argsort(values[:, j], kind="stable") for j in range(len(names))]
    inside = np.ones(len(met), dtype=bool)
    restricted: list[str] = []

    def box() -> Box:
        w, h = weights[inside].sum(), hits[inside].sum()
        limits = {
            n: (float(values[inside, j].min()), float(values[inside, j].max()))
            for j, n in enumerate(names)
        }
        return Box(
            limits,
            float(h / w),
            float(h / total_hits) if total_hits > 0 else float("nan"),
            float(w / total_weight),
            tuple(restricted),
        )

    trajectory = [box()]
    while (box_weight := weights[inside].sum()) > min_mass * total_weight:
        best = None  # (density, input, side, rows removed)
        for j in range(len(names)):
            order = orders[j][inside[orders[j]]]  # the box's samples, ascending in input j
            column = values[order, j]
            cumulative = np.cumsum(weights[order])
            for side in ("low", "high"):
                if side == "low":  # drop the values up to the alpha quantile (ties go too)
                    edge = column[np.searchsorted(cumulative, peel_share * box_weight)]
                    removed = column <= edge
                else:
                    reach = (1 - peel_share) * box_weight
                    edge = column[min(np.searchsorted(cumulative, reach), len(column) - 1)]
                    removed = column >= edge
                if removed.all() or not removed.any():
                    continue
                rest = order[~removed]
                density = hits[rest].sum() / weights[rest].sum()
                candidate = (density, j, side, order[removed])
                if best is None or density > best[0]:
                    best = candidate
        if best is None:
            break
        _, j, _, removed_rows = best
        inside[removed_rows] = False
        if names[j] not in restricted:
            restricted.append(names[j])
        trajectory.append(box())
    return trajectory


def choose(trajectory: list[Box], density: float) -> tuple[Box, bool]:
    """The box with the largest coverage among those whose density reaches ``density``.

    Returns
    -------
    box : Box
        That box; when no box is that dense, the densest one.
    reached : bool
        Whether the box reaches ``density``.
    """
    dense = [b for b in trajectory if b.density >= density]
    if dense:
        return max(dense, key=lambda b: (b.coverage, -len(b.restricted))), True
    return max(trajectory, key=lambda b: (b.density, b.coverage)), False


def discover(path: str | Path, target: str, density: float = 0.95, searched: int = SEARCHED,
             discrepancy=None) -> tuple[Box, bool, Box]:  # fmt: skip
    """The box of inputs in which a target of a Monte Carlo file is met with ``density``.

    Parameters
    ----------
    path : str or Path
        A Monte Carlo results file.
    target : str
        A target id of the file.
    density : float
        The share of the box's runs that must meet the target, in (0, 1].
    searched : int
        How many inputs PRIM searches: the most decisive of the one-at-a-time screen
        (:func:`~ningbo_sd.uncertainty.conditions.conditional_table`), so memory stays at
        ``searched`` columns.
    discrepancy : Discrepancy, optional
        Read each run's outcome as the probability that the published figure meets the
        target (:func:`~ningbo_sd.uncertainty.conditions.load_target`).

    Returns
    -------
    box : Box
        The chosen box (see :func:`choose`).
    reached : bool
        Whether it reaches ``density``.
    whole : Box
        The whole ensemble (its density is the target's probability).

    Raises
    ------
    ConditionsError
        A bad file or target (:func:`~ningbo_sd.uncertainty.conditions.load_target`), or a
        density outside (0, 1].
    """
    if not 0 < density <= 1:
        raise ConditionsError(f"--density {density}: give a share in (0, 1], e.g. 0.9")
    if searched < 1:
        raise ConditionsError(f"--searched {searched}: give at least 1")
    path = Path(path)
    source, met, weights = load_target(path, target, discrepancy)
    screen = conditional_table(input_columns(source), met, weights)
    # the searched columns are read again: the screen keeps one column at a time
    chosen = list(screen["input"].head(searched))
    inputs = {n: read_column(source, f"param:{n}").astype(float) for n in chosen}
    trajectory = peel(inputs, met, weights)
    if not trajectory:
        raise ConditionsError(f"{path}: no sample with every searched input defined")
    box, reached = choose(trajectory, density)
    return box, reached, trajectory[0]


def box_table(box: Box, whole: Box) -> pd.DataFrame:
    """The restricted inputs of a box: its range against the ensemble's, one row each."""
    rows = []
    for name in box.restricted:
        low, high = box.limits[name]
        full_low, full_high = whole.limits[name]
        rows.append({
            "input": name,
            "from": low if low > full_low else np.nan,
            "to": high if high < full_high else np.nan,
            "sampled_from": full_low,
            "sampled_to": full_high,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["input", "from", "to", "sampled_from", "sampled_to"])


__all__ = ["Box", "ConditionsError", "box_table", "choose", "discover", "peel"]
