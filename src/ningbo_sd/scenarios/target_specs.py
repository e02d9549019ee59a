"""The plan's targets as the scorecard reads them: which are modelled, from which column, how.

``calibration/data/targets.csv`` says what each target is (indicator, measure, years, op,
value, reading, source); ``scenarios/registry/targets.yaml`` says which targets the scorecard
shows and which headline column each one is computed from. :func:`load_target_specs` joins
the two into :class:`TargetSpec` records (checked: a mapping error names the file, the target
and what is allowed); :func:`target_expression` writes a modelled target in the goal-seek
grammar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.resources import registry_file

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
