"""The plan scorecard: each target of the plan, computed from a run and checked.

Targets are data: ``calibration/data/targets.csv`` says what each target is (indicator,
measure, years, op, value, reading, source); ``scenarios/registry/targets.yaml`` says which targets
the scorecard shows and which headline column each one is computed from. One
implementation computes every target on an :class:`xarray.Dataset` over ``(sample,
year)``; a single run is scored as a one-sample dataset, so the scorecard of one scenario
and the Monte Carlo probabilities of meeting each target can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.resources import registry_file

if TYPE_CHECKING:
    import xarray as xr

TARGETS_MAPPING_FILE = registry_file("targets")
MEASURE_TEXT: dict[str, str] = {
    "level": "level in {year}",
    "change_pct": "% change {start}-{year}",
    "cagr_pct": "growth a year (CAGR) {start}-{year}",
    "change_abs": "change {start}-{year}",
    "change_pp": "change in points {start}-{year}",
    "cumulative": "sum of yearly values {start}-{year}",
}
OPS: tuple[str, ...] = (">=", "<=", "~")
SCORECARD_COLUMNS: tuple[str, ...] = (
    "id", "label_en", "label_zh", "simulated", "target", "op", "unit", "met", "modelled",
    "reading", "column", "source",
)  # fmt: skip


class TargetMappingError(UserError):
    """``targets.yaml`` (or a target override) is inconsistent with ``targets.csv``."""


@dataclass(frozen=True)
class TargetSpec:
    """One scorecard row: the target and how it is computed from a run.

    Attributes
    ----------
    id : str
        The target's id in ``targets.csv``.
    label_en, label_zh : str
        Row labels.
    column : str or None
        Headline column it is computed from; None when the model cannot compute it.
    measure : str
        ``level``, ``change_pct``, ``cagr_pct``, ``change_abs``, ``change_pp`` or ``cumulative``.
    year_start : int or None
        Base year of a change (first year of a cumulative sum).
    year : int
        Target year.
    op : str
        ``>=``, ``<=``, ``~`` or ``done`` (no number; unscored unless an assumption is given).
    value : float
        The target (NaN when there is none).
    unit : str
    scale : float
        Multiplies the computed value (scope factor).
    tolerance : float
        For ``~``: largest distance from ``value`` that counts as met.
    reading : str
        How the row is read: the computation, then the data's reading.
    source : str
        Place in the plan.
    assumed : bool
        True when op and value are an assumption (a target without a number).
    """

    id: str
    label_en: str
    label_zh: str
    column: str | None
    measure: str
    year_start: int | None
    year: int
    op: str
    value: float
    unit: str
    scale: float
    tolerance: float
    reading: str
    source: str
    assumed: bool

    @property
    def modelled(self) -> bool:
        """Whether the run can compute this row."""
        return self.column is not None


def _labels(row: pd.Series, indicators: pd.DataFrame, clusters: Mapping) -> tuple[str, str]:
    label_en, label_zh = row["indicator"], row["indicator"]
    if row["indicator"] in indicators.index:
        label_en = indicators.loc[row["indicator"], "label_en"]
        label_zh = indicators.loc[row["indicator"], "label_zh"]
    if row.get("basis") == "real" and row["indicator"] in indicators.index:
        # a real reading of an indicator the plan writes at current prices says so
        default_basis = str(indicators.loc[row["indicator"], "basis"]).split("|")[0]
        if default_basis != "real":
            label_en, label_zh = f"{label_en} at 2020 prices", f"{label_zh}（2020年价）"
    cluster = row.get("cluster")
    if isinstance(cluster, str) and cluster in clusters:
        label_en = f"{label_en}: {clusters[cluster][0]}"
        label_zh = f"{label_zh}：{clusters[cluster][1]}"
    year, start = int(row["year"]), row["year_start"]
    if row["measure"] == "cagr_pct":
        first = int(start) + 1
        return (
            f"{label_en}, growth a year {first}-{year}",
            f"{label_zh}年均增速（{first}-{year}年）",
        )
    if row["measure"] in ("change_pct", "change_pp", "change_abs"):
        return f"{label_en}, change {start}-{year}", f"{label_zh}较{start}年变化（{year}年）"
    if row["measure"] == "cumulative":
        return f"{label_en}, total {start}-{year}", f"{label_zh}（{start}-{year}年累计）"
    return f"{label_en} in {year}", f"{year}年{label_zh}"


def _reading(spec_entry: dict, row: pd.Series, measure: str, column: str | None) -> str:
    if column is None:
        return f"not computable from the run: {spec_entry.get('why', 'no mapping')}"
    start = row["year_start"]
    how = MEASURE_TEXT[measure].format(start=start, year=int(row["year"]))
    scale = float(spec_entry.get("scale", 1.0))
    text = f"{how} of {column} ({row['basis']})"
    if scale != 1.0:
        text += f" × scope factor {scale:g}"
    parts = [text, str(row["reading"]).strip()]
    if spec_entry.get("note"):
        parts.append(str(spec_entry["note"]).strip())
    if spec_entry.get("assumed"):
        assumed = spec_entry["assumed"]
        parts.append(
            f"Scored as {assumed['op']} {assumed['value']:g} (assumption): "
            f"{str(assumed.get('rationale', '')).strip()}"
        )
    return " ".join(part if part.endswith(".") else part + "." for part in parts)


def _check_entry(target_id: str, entry, row: pd.Series, where: Path) -> None:
    if not isinstance(entry, dict):
        raise TargetMappingError(f"{where}: {target_id}: expected a mapping, got {entry!r}")
    allowed = {"column", "measure", "scale", "assumed", "tolerance", "note", "why"}
    extra = sorted(set(entry) - allowed)
    if extra:
        raise TargetMappingError(
            f"{where}: {target_id}.{extra[0]}: unknown field; allowed: {', '.join(sorted(allowed))}"
        )
    if "column" not in entry and "why" not in entry:
        raise TargetMappingError(
            f"{where}: {target_id}: give `column` (computed) or `why` (not computable)"
        )
    measure = entry.get("measure", row["measure"])
    if measure not in MEASURE_TEXT:
        raise TargetMappingError(
            f"{where}: {target_id}.measure: {measure!r}; allowed: {', '.join(MEASURE_TEXT)}"
        )
    if measure != "level" and pd.isna(row["year_start"]):
        raise TargetMappingError(
            f"{where}: {target_id}: measure {measure} needs a year_start in targets.csv"
        )
    if "column" in entry and row["op"] == "done" and "assumed" not in entry:
        raise TargetMappingError(
            f"{where}: {target_id}: targets.csv gives no number (op done); add `assumed` "
            "with op and value"
        )
    assumed = entry.get("assumed")
    if assumed is not None:
        if row["op"] != "done":
            raise TargetMappingError(
                f"{where}: {target_id}.assumed: only for targets without a number (op done); "
                f"targets.csv gives op {row['op']}"
            )
        if assumed.get("op") not in OPS or not isinstance(assumed.get("value"), int | float):
            raise TargetMappingError(
                f"{where}: {target_id}.assumed: needs op ({', '.join(OPS)}) and a number value"
            )
    if row["op"] == "~" and "column" in entry and "tolerance" not in entry:
        raise TargetMappingError(f"{where}: {target_id}: op ~ needs a tolerance")


@lru_cache(maxsize=4)
def _load_specs(
    mapping_path: str, mapping_mtime: float, targets_path: str | None, targets_mtime: float
) -> tuple[TargetSpec, ...]:
    from ningbo_sd.plan.data import CLUSTERS, load_indicators, load_targets

    where = Path(mapping_path)
    try:
        mapping = read_yaml_file(where) or {}
    except UserError as exc:
        raise TargetMappingError(str(exc)) from None
    if not isinstance(mapping, dict):
        raise TargetMappingError(f"{where}: expected a mapping of target ids")
    targets = load_targets(targets_path).set_index("id", drop=False)
    indicators = load_indicators()
    specs = []
    for target_id, entry in mapping.items():
        if target_id not in targets.index:
            raise TargetMappingError(
                f"{where}: {target_id}: not an id of targets.csv ({len(targets)} targets)"
            )
        row = targets.loc[target_id]
        _check_entry(target_id, entry, row, where)
        column = entry.get("column")
        measure = entry.get("measure", row["measure"])
        op, value, assumed = row["op"], float(row["value"]), False
        if entry.get("assumed"):
            op, value, assumed = entry["assumed"]["op"], float(entry["assumed"]["value"]), True
        label_en, label_zh = _labels(row, indicators, CLUSTERS)
        start = row["year_start"]
        specs.append(
            TargetSpec(
                id=target_id,
                label_en=label_en,
                label_zh=label_zh,
                column=column,
                measure=measure,
                year_start=None if pd.isna(start) else int(start),
                year=int(row["year"]),
                op=op,
                value=value,
                unit=str(row["unit"]),
                scale=float(entry.get("scale", 1.0)),
                tolerance=float(entry.get("tolerance", math.nan)),
                reading=_reading(entry, row, measure, column),
                source=str(row["source"]),
                assumed=assumed,
            )
        )
    return tuple(specs)


def load_target_specs(
    mapping_path: str | Path = TARGETS_MAPPING_FILE, targets_path: str | Path | None = None
) -> tuple[TargetSpec, ...]:
    """Read the scorecard's targets: ``targets.csv`` joined with the mapping file.

    Parameters
    ----------
    mapping_path : str or Path
        The mapping (default ``scenarios/registry/targets.yaml``).
    targets_path : str or Path, optional
        The targets file (default ``calibration/data/targets.csv``).

    Returns
    -------
    tuple of TargetSpec
        In the mapping file's order.

    Raises
    ------
    TargetMappingError
        An id unknown to targets.csv, an unknown field, a target without a number and
        without an assumption; the message names the file and the target.
    """
    mapping_path = Path(mapping_path)
    if not mapping_path.is_file():
        raise FileNotFoundError(f"{mapping_path}: target mapping file not found")
    from ningbo_sd.plan.data import TARGETS_PATH

    targets_file = Path(targets_path) if targets_path is not None else TARGETS_PATH
    targets_mtime = targets_file.stat().st_mtime if targets_file.is_file() else 0.0
    return _load_specs(
        str(mapping_path),
        mapping_path.stat().st_mtime,
        None if targets_path is None else str(targets_path),
        targets_mtime,
    )


def target_expression(spec: TargetSpec) -> str:
    """A modelled target as a goal-seek comparison (``ningbo_sd.scenarios.goal`` grammar).

    A level target becomes ``column[year] op value``; a change or growth target the
    equivalent comparison of two years (a CAGR of 13% over 2020-2025 becomes
    ``x[2025] >= 1.842... * x[2020]``).

    Raises
    ------
    ValueError
        For a target the model cannot compute, without a number, or with a scope factor.
    """
    if not spec.modelled or spec.op not in (">=", "<=") or spec.scale != 1.0:
        raise ValueError(
            f"target {spec.id}: cannot be sought (modelled: {spec.modelled}, op: {spec.op}, "
            f"scope factor {spec.scale:g}); allowed: modelled targets with >= or <= and no "
            "scope factor"
        )
    column, year, start, op = spec.column, spec.year, spec.year_start, spec.op
    if spec.measure == "level":
        return f"{column}[{year}] {op} {spec.value!r}"
    if spec.measure == "change_pct":
        return f"{column}[{year}] {op} {1 + spec.value / 100!r} * {column}[{start}]"
    if spec.measure == "cagr_pct":
        factor = (1 + spec.value / 100) ** (year - start)
        return f"{column}[{year}] {op} {factor!r} * {column}[{start}]"
    if spec.measure in ("change_abs", "change_pp"):
        return f"{column}[{year}] - {column}[{start}] {op} {spec.value!r}"
    raise ValueError(f"target {spec.id}: measure {spec.measure} cannot be sought")


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
