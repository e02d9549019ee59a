"""The plan scorecard: each target of the plan, computed from a run and checked.

Targets are data: ``calibration/data/targets.csv`` says what each target is (indicator,
measure, years, op, value, reading, source); ``scenarios/registry/targets.yaml`` says which targets
the scorecard shows and which headline column each one is computed from. One
implementation computes every target on an :class:`xarray.Dataset` over ``(sample,
year)``; a single run is scored as a one-sample dataset, so the scorecard of one scenario
and the Monte Carlo probabilities of meeting each target can never disagree. Reading the
targets and their mapping is :mod:`ningbo_sd.scenarios.target_specs`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ningbo_sd.scenarios.target_specs import (
    MEASURE_TEXT,
    OPS,
    TARGETS_MAPPING_FILE,
    TargetMappingError,
    TargetSpec,
    load_target_specs,
    target_expression,
)

if TYPE_CHECKING:
    import xarray as xr

# reading the targets is target_specs'; the scorecard's callers find it here too
__all__ = [
    "MEASURE_TEXT",
    "OPS",
    "SCORECARD_COLUMNS",
    "TARGETS_MAPPING_FILE",
    "TargetMappingError",
    "TargetSpec",
    "load_target_specs",
    "results_dataset",
    "scorecard",
    "scorecard_outcomes",
    "target_expression",
    "target_met",
    "with_published",
]

SCORECARD_COLUMNS: tuple[str, ...] = (
    "id", "label_en", "label_zh", "simulated", "target", "op", "unit", "met", "modelled",
    "reading", "column", "source",
)  # fmt: skip


# ---------------------------------------------------------------- computation


def _with_year_dim(results: xr.Dataset) -> xr.Dataset:
    import xarray as xr

    if not isinstance(results, xr.Dataset):
        raise TypeError(f"scorecard: expected an xarray.Dataset of results, got {type(results)}")
    if "year" not in results.dims and "time" in results.dims:
        years = np.round(results["time"].to_numpy()).astype(int)
        results = results.assign_coords(time=years).rename(time="year")
    if "year" not in results.dims:
        raise ValueError("scorecard: results need a 'year' (or 'time') dimension")
    if "sample" not in results.dims:
        results = results.expand_dims(sample=[0])
    return results


class _Columns:
    """Headline columns of a results dataset (or of one run's table) over (sample, year).

    A run's table is read as one sample without building a dataset (1 ms instead of 10).
    """

    def __init__(self, results: xr.Dataset | pd.DataFrame) -> None:
        self.frame = None
        if isinstance(results, pd.DataFrame):
            numeric = results.select_dtypes(include="number")
            self.frame = (list(numeric.columns), numeric.to_numpy(dtype=float))
            self.results = None
            self.years = np.asarray(results.index.to_numpy(), dtype=float).round().astype(int)
            self.n_samples = 1
        else:
            self.results = _with_year_dim(results)
            self.years = self.results["year"].to_numpy().astype(int)
            self.n_samples = self.results.sizes["sample"]
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, column: str) -> np.ndarray:
        if column not in self._cache:
            self._cache[column] = self._lookup(column)
        return self._cache[column]

    def _lookup(self, column: str) -> np.ndarray:
        if self.frame is not None:
            names, matrix = self.frame
            if column not in names:
                raise KeyError(
                    f"scorecard: the results lack the column {column!r}; "
                    f"they have {', '.join(sorted(map(str, names)))}"
                )
            return matrix[:, names.index(column)][None, :]
        results = self.results
        if column in results.data_vars:
            variable = results[column]
        else:
            variable = None
            for name, candidate in results.data_vars.items():
                prefix = f"{name}_"
                if "cluster" in candidate.dims and column.startswith(prefix):
                    cluster = column[len(prefix) :]
                    if cluster in candidate["cluster"].to_numpy():
                        variable = candidate.sel(cluster=cluster, drop=True)
                        break
            if variable is None:
                raise KeyError(
                    f"scorecard: the results lack the column {column!r}; "
                    f"they have {', '.join(sorted(map(str, results.data_vars)))}"
                )
        if variable.dims != ("sample", "year"):
            variable = variable.transpose("sample", "year")
        return np.asarray(variable.values, dtype=float)  # no copy when already float

    def index(self, year: int, target_id: str) -> int:
        hits = np.flatnonzero(self.years == year)
        if hits.size == 0:
            raise KeyError(
                f"scorecard: target {target_id} needs year {year}; the results cover "
                f"{self.years.min()}-{self.years.max()}"
            )
        return int(hits[0])


def _compute(columns: _Columns, spec: TargetSpec) -> np.ndarray:
    """One target's simulated value per sample (NaN when not modelled)."""
    if spec.column is None:
        return np.full(columns.n_samples, np.nan)
    series = columns(spec.column)
    end = series[:, columns.index(spec.year, spec.id)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if spec.measure == "level":
            value = end
        elif spec.measure == "cumulative":
            first = columns.index(spec.year_start, spec.id)
            value = series[:, first : columns.index(spec.year, spec.id) + 1].sum(axis=1)
        else:
            start = series[:, columns.index(spec.year_start, spec.id)]
            if spec.measure == "change_pct":
                value = 100.0 * (end / start - 1.0)
            elif spec.measure == "cagr_pct":
                value = 100.0 * ((end / start) ** (1.0 / (spec.year - spec.year_start)) - 1.0)
            else:  # change_abs, change_pp
                value = end - start
        return np.where(np.isfinite(value), value * spec.scale, np.nan)


def _met(value: np.ndarray, op: str, target: float, tolerance: float) -> np.ndarray:
    if op not in OPS or np.isnan(target):
        return np.full(value.shape, np.nan)
    with np.errstate(invalid="ignore"):
        if op == ">=":
            met = value >= target
        elif op == "<=":
            met = value <= target
        else:
            met = np.abs(value - target) <= tolerance
    return np.where(np.isnan(value), np.nan, met.astype(float))


def target_met(value, op: str, target: float, tolerance: float = math.nan) -> np.ndarray:
    """Whether simulated values meet a target: 1.0, 0.0, or NaN when unknown.

    Parameters
    ----------
    value : array-like
        Simulated values.
    op : {">=", "<=", "~", "done"}
    target : float
    tolerance : float
        For ``~``: the largest distance from ``target`` that counts as met.

    Returns
    -------
    numpy.ndarray
        Float (1 met, 0 not met, NaN when the value or the target is missing, or the op
        is ``done``).
    """
    return _met(np.asarray(value, dtype=float), op, float(target), float(tolerance))


def _apply_assumed(specs, assumed: Mapping[str, float] | None) -> tuple[TargetSpec, ...]:
    if not assumed:
        return tuple(specs)
    by_id = {spec.id: spec for spec in specs}
    for target_id, value in assumed.items():
        if target_id not in by_id or not by_id[target_id].assumed:
            allowed = [spec.id for spec in specs if spec.assumed]
            raise TargetMappingError(
                f"targets.{target_id}: only a target without a number in the plan can be set "
                f"by a scenario; allowed: {', '.join(allowed)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or np.isnan(value):
            raise TargetMappingError(f"targets.{target_id}: expected a number, got {value!r}")
    return tuple(
        spec if spec.id not in assumed else replace(spec, value=float(assumed[spec.id]))
        for spec in specs
    )


def _values_and_met(columns: _Columns, specs) -> tuple[np.ndarray, np.ndarray]:
    """Every target's simulated value and met-flag, each over ``(sample, target)``."""
    values = np.stack([_compute(columns, spec) for spec in specs], axis=1)
    met = np.stack(
        [_met(values[:, i], spec.op, spec.value, spec.tolerance) for i, spec in enumerate(specs)],
        axis=1,
    )
    return values, met


def scorecard_outcomes(
    results: xr.Dataset,
    assumed: Mapping[str, float] | None = None,
    specs: tuple[TargetSpec, ...] | None = None,
) -> xr.Dataset:
    """Score many runs at once: every target's simulated value and met-flag per sample.

    Parameters
    ----------
    results : xarray.Dataset
        Headline columns (``model/outputs.yaml`` names) over ``(sample, year)``; per-cluster
        columns either as ``gross_output_<cluster>`` variables or as a variable with a
        ``cluster`` dimension. A ``time`` dimension is accepted in place of ``year``.
    assumed : mapping, optional
        Values for targets the plan gives without a number (e.g. a scenario's
        ``targets: {energy_intensity_2021_2025: -15}``).
    specs : tuple of TargetSpec, optional
        The targets (default: :func:`load_target_specs`).

    Returns
    -------
    xarray.Dataset
        ``value`` and ``met`` over ``(sample, target)``; ``met`` is 1.0 / 0.0, NaN where
        the model cannot compute the target. Coordinates along ``target``: ``label_en``,
        ``label_zh``, ``op``, ``target_value``, ``unit``, ``modelled``, ``reading``.
        ``met.mean("sample")`` is the probability of meeting each target.
    """
    specs = _apply_assumed(specs if specs is not None else load_target_specs(), assumed)
    columns = _Columns(_with_year_dim(results))  # rejects a table (one run: use scorecard)
    values, met = _values_and_met(columns, specs)
    import xarray as xr

    return xr.Dataset(
        {
            "value": (("sample", "target"), values),
            "met": (("sample", "target"), met),
        },
        coords={
            "sample": columns.results["sample"].to_numpy(),
            "target": [spec.id for spec in specs],
            "label_en": ("target", [spec.label_en for spec in specs]),
            "label_zh": ("target", [spec.label_zh for spec in specs]),
            "op": ("target", [spec.op for spec in specs]),
            "target_value": ("target", [spec.value for spec in specs]),
            "unit": ("target", [spec.unit for spec in specs]),
            "modelled": ("target", [spec.modelled for spec in specs]),
            "reading": ("target", [spec.reading for spec in specs]),
        },
    )


def results_dataset(results: pd.DataFrame) -> xr.Dataset:
    """Turn one run's headline table (index ``year``) into a one-sample dataset.

    Parameters
    ----------
    results : pandas.DataFrame
        One row per year, headline columns; non-numeric columns are dropped.

    Returns
    -------
    xarray.Dataset
        Numeric columns over ``(sample, year)`` with ``sample = [0]``.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"scorecard: expected a DataFrame of headline results, got {results!r}")
    years = np.asarray(results.index.to_numpy(), dtype=float).round().astype(int)
    numeric = results.select_dtypes(include="number")
    import xarray as xr

    return xr.Dataset(
        {
            name: (("sample", "year"), numeric[name].to_numpy(dtype=float)[None, :])
            for name in numeric.columns
        },
        coords={"sample": [0], "year": years},
    )


def scorecard(
    results: pd.DataFrame,
    assumed: Mapping[str, float] | None = None,
    specs: tuple[TargetSpec, ...] | None = None,
) -> pd.DataFrame:
    """Score one run against the plan's targets.

    Parameters
    ----------
    results : pandas.DataFrame
        A run's headline table (``run_scenario``'s result, index ``year``).
    assumed : mapping, optional
        Values for targets without a number in the plan (see :func:`scorecard_outcomes`).
    specs : tuple of TargetSpec, optional
        The targets (default: :func:`load_target_specs`).

    Returns
    -------
    pandas.DataFrame
        One row per target, columns ``id, label_en, label_zh, simulated, target, op, unit,
        met, modelled, reading, column, source``; ``met`` is a nullable boolean (NA where
        the model cannot compute the target or the plan gives no number).
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"scorecard: expected a DataFrame of headline results, got {results!r}")
    specs = _apply_assumed(specs if specs is not None else load_target_specs(), assumed)
    values, met = (array[0] for array in _values_and_met(_Columns(results), specs))
    return pd.DataFrame(
        {
            "id": [spec.id for spec in specs],
            "label_en": [spec.label_en for spec in specs],
            "label_zh": [spec.label_zh for spec in specs],
            "simulated": values,
            "target": [spec.value for spec in specs],
            "op": [spec.op for spec in specs],
            "unit": [spec.unit for spec in specs],
            "met": pd.array([pd.NA if np.isnan(m) else bool(m) for m in met], dtype="boolean"),
            "modelled": [spec.modelled for spec in specs],
            "reading": [spec.reading for spec in specs],
            "column": [spec.column or "" for spec in specs],
            "source": [spec.source for spec in specs],
        },
        columns=list(SCORECARD_COLUMNS),
    )


def with_published(card: pd.DataFrame) -> pd.DataFrame:
    """A scorecard with the published outcome beside each target, where one was published.

    Adds ``published`` (the figure), ``met_in_fact`` (the target's test applied to it:
    nullable boolean), ``published_source`` and ``published_confidence``; ``met`` stays
    what the model said.
    """
    from ningbo_sd.plan.actuals import published_outcomes
    from ningbo_sd.plan.data import load_targets

    outcomes = published_outcomes(load_targets())
    frame = card.join(outcomes, on="id")
    facts = [
        target_met(value, op, target)[()] if value == value else np.nan
        for value, op, target in zip(frame["published"], frame["op"], frame["target"], strict=True)
    ]
    frame["met_in_fact"] = pd.array(
        [pd.NA if np.isnan(m) else bool(m) for m in facts], dtype="boolean"
    )
    return frame.drop(columns=["published_id"])
