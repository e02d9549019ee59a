"""Load and validate the plan's figures: 2015-2020 observations and 2021-2035 targets.

The data live in ``calibration/data/`` as UTF-8 CSV files:

- ``observations.csv``: every 2015-2020 figure of the plan a manufacturing model could be
  calibrated against, with a tolerance;
- ``targets.csv``: every quantified 2025/2035 target of the plan;
- ``indicators.csv``: the indicator vocabulary (English and Chinese labels, unit, allowed bases).

``calibration/data/README.md`` documents the columns, vocabularies, the tolerance rule and the
ambiguity decisions. Every problem found while loading raises :class:`DataFileError`, whose
message names the file, the 1-based *data row* (the header is not counted) together with the
*CSV line* on which that row starts, the column, and what is allowed there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ningbo_sd.plan.csvfile import DataFileError, Problem, read_records
from ningbo_sd.resources import calibration_data_dir

DATA_DIR = calibration_data_dir()
OBSERVATIONS_PATH = DATA_DIR / "observations.csv"
TARGETS_PATH = DATA_DIR / "targets.csv"
INDICATORS_PATH = DATA_DIR / "indicators.csv"

OBSERVATION_COLUMNS: tuple[str, ...] = (
    "id", "indicator", "measure", "year_start", "year", "value", "unit", "basis",
    "tolerance", "source", "quote", "note",
)  # fmt: skip
TARGET_COLUMNS: tuple[str, ...] = (
    "id", "indicator", "measure", "year_start", "year", "op", "value", "unit", "basis",
    "base_year", "base_value", "modelled", "reading", "source", "quote", "note",
)  # fmt: skip
INDICATOR_COLUMNS: tuple[str, ...] = ("id", "label_en", "label_zh", "unit", "basis", "description")

MEASURES: tuple[str, ...] = (
    "level", "change_pct", "change_pp", "cagr_pct", "cumulative", "change_abs",
)  # fmt: skip
BASES: tuple[str, ...] = ("nominal", "real", "share", "count", "index")
OPS: tuple[str, ...] = (">=", "<=", "~", "done")

Measure = Literal["level", "change_pct", "change_pp", "cagr_pct", "cumulative", "change_abs"]
Basis = Literal["nominal", "real", "share", "count", "index"]
Op = Literal[">=", "<=", "~", "done"]

#: Measures whose value is a change between ``year_start`` (the base year) and ``year``.
CHANGE_MEASURES = frozenset({"change_pct", "change_pp", "cagr_pct", "change_abs"})
#: Unit a measure forces; other measures carry the indicator's own unit.
MEASURE_UNITS: Mapping[str, str] = {"change_pct": "%", "cagr_pct": "%", "change_pp": "pp"}

#: Tags that may open a ``note`` (written ``[tag]``), and what they mean.
NOTE_TAGS: Mapping[str, str] = {
    "reading": "the row rests on a documented reading of an ambiguous sentence",
    "derived": "the value is computed from other figures of the plan, not printed in it",
    "conflict": "the plan gives a figure that contradicts this one (see note)",
    "ambiguous": "scope, period or price basis is not stated; the row records a decision",
    "approx": "the plan rounds or bounds the figure (余, 超, 以上, 万)",
    "scope": "the figure covers a different scope than the model's (e.g. zones, land sold)",
    "duplicate": "same figure as the group's primary row, printed again elsewhere",
    "alternative": "a competing value for the same quantity; the primary row is preferred",
}
#: Tags that double an observation's tolerance.
WIDENING_TAGS = frozenset({"derived", "conflict", "ambiguous", "approx", "scope"})
#: Tags that make an observation secondary within its group.
SECONDARY_TAGS = frozenset({"duplicate", "alternative"})

#: The model's ``cluster`` subscript: id -> (English label, Chinese label).
CLUSTERS: Mapping[str, tuple[str, str]] = {
    "petrochem": ("green petrochemicals", "绿色石化"),
    "auto": ("automobiles", "汽车"),
    "equipment": ("high-end equipment", "高端装备"),
    "new_materials": ("new materials", "新材料"),
    "electronics": ("electronic information", "电子信息"),
    "software": ("software and emerging services", "软件与新兴服务"),
    "basic_parts": ("key basic components", "关键基础件"),
    "appliances": ("smart appliances", "智能家电"),
    "textiles": ("fashion textiles and apparel", "时尚纺织服装"),
    "biomedicine": ("biomedicine", "生物医药"),
    "stationery_sports": ("stationery and sporting goods", "文体用品"),
    "green_tech": ("energy saving and environmental protection", "节能环保"),
    "other": ("other manufacturing", "其他制造业"),
}

YEAR_MIN, YEAR_MAX = 2010, 2035
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*(?:__[a-z0-9]+(?:_[a-z0-9]+)*)?$")
SOURCE_PATTERN = re.compile(
    r"^(?:表\d+-\d+|[一二三四五六七八九十]+(?:\([一二三四五六七八九十]+\)\d*(?:专栏\d+)?)?)$"
)
_TAG_BLOCK = re.compile(r"^\s*((?:\[[a-z_-]+\]\s*)*)")
_TAG = re.compile(r"\[([a-z_-]+)\]")
_CJK = re.compile(r"[\u4e00-\u9fff]")

ALLOWED: Mapping[str, str] = {
    "id": "a unique lower-case slug (a-z, 0-9, '_'; optional '__<cluster>' suffix)",
    "indicator": "an id listed in indicators.csv",
    "measure": ", ".join(MEASURES),
    "year_start": f"empty or a year {YEAR_MIN}-{YEAR_MAX}",
    "year": f"a year {YEAR_MIN}-{YEAR_MAX}",
    "value": "a finite decimal number",
    "unit": "'%' for change_pct/cagr_pct, 'pp' for change_pp, else the indicator's unit",
    "basis": ", ".join(BASES) + " (and one the indicator allows)",
    "tolerance": "a finite decimal number > 0",
    "source": "a place in the plan such as 表1-1, 一(一)1, 三(三), 五(二)专栏2",
    "quote": "a non-empty verbatim phrase from the plan",
    "note": "free text, optionally opened by tags " + " ".join(f"[{t}]" for t in NOTE_TAGS),
    "op": ", ".join(OPS),
    "base_year": f"empty or a year {YEAR_MIN}-{YEAR_MAX} (with base_value)",
    "base_value": "empty or a finite decimal number (with base_year)",
    "modelled": "true or false",
    "reading": "a non-empty English sentence",
    "label_en": "a non-empty English label",
    "label_zh": "a non-empty Chinese label",
    "description": "free text",
}


# --------------------------------------------------------------------------- row schemas


def _empty_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() == "" else value


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)

    id: str
    indicator: str
    measure: Measure
    year_start: int | None
    year: int
    value: float
    unit: str
    basis: Basis
    source: str
    quote: str
    note: str

    @field_validator("year_start", "base_year", mode="before", check_fields=False)
    @classmethod
    def _blank_year(cls, v: Any) -> Any:
        return _empty_to_none(v)

    @field_validator("year_start", "year", "base_year", check_fields=False)
    @classmethod
    def _year_range(cls, v: int | None) -> int | None:
        if v is not None and not YEAR_MIN <= v <= YEAR_MAX:
            raise ValueError(f"year {v} outside {YEAR_MIN}-{YEAR_MAX}")
        return v

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(f"{v!r} is not a lower-case slug")
        return v

    @field_validator("indicator")
    @classmethod
    def _known_indicator(cls, v: str, info: Any) -> str:
        known = (info.context or {}).get("indicators", {})
        if v not in known:
            raise ValueError(f"unknown indicator {v!r}")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not SOURCE_PATTERN.match(v):
            raise ValueError(f"{v!r} is not a place in the plan")
        return v

    @field_validator("unit", "quote")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("empty")
        return v


class ObservationRow(_Row):
    """One row of ``observations.csv``."""

    tolerance: float

    @field_validator("tolerance")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError(f"tolerance {v} is not > 0")
        return v


class TargetRow(_Row):
    """One row of ``targets.csv``; ``value`` is None only when ``op`` is ``done``."""

    value: float | None  # type: ignore[assignment]
    op: Op
    base_year: int | None
    base_value: float | None
    modelled: bool
    reading: str

    @field_validator("value", "base_value", mode="before")
    @classmethod
    def _blank_number(cls, v: Any) -> Any:
        return _empty_to_none(v)

    @field_validator("modelled", mode="before")
    @classmethod
    def _true_false(cls, v: Any) -> Any:
        if v not in ("true", "false"):
            raise ValueError(f"{v!r} is not 'true' or 'false'")
        return v == "true"

    @field_validator("reading")
    @classmethod
    def _reading(cls, v: str) -> str:
        if not v:
            raise ValueError("empty")
        return v


class IndicatorRow(BaseModel):
    """One row of ``indicators.csv``; ``basis`` lists allowed bases, '|'-separated."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str
    label_en: str
    label_zh: str
    unit: str
    basis: tuple[Basis, ...]
    description: str

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9]+(?:_[a-z0-9]+)*$", v):
            raise ValueError(f"{v!r} is not a lower-case slug")
        return v

    @field_validator("basis", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return tuple(s.strip() for s in v.split("|")) if isinstance(v, str) else v

    @field_validator("label_en", "unit")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("empty")
        return v

    @field_validator("label_zh")
    @classmethod
    def _chinese(cls, v: str) -> str:
        if not _CJK.search(v):
            raise ValueError(f"{v!r} has no Chinese characters")
        return v


# --------------------------------------------------------------------------- helpers


def parse_tags(note: str) -> tuple[str, ...]:
    """Return the ``[tag]`` markers that open a note, in order.

    Parameters
    ----------
    note : str
        The ``note`` cell.

    Returns
    -------
    tuple of str
        Tag names without brackets (possibly unknown ones; the loader checks them).
    """
    block = _TAG_BLOCK.match(note or "")
    return tuple(_TAG.findall(block.group(1))) if block else ()


def decimals(value_text: str) -> int:
    """Number of decimals a value is printed with (``"17887.1"`` -> 1, ``"4042"`` -> 0)."""
    text = value_text.strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def tolerance_rule(value_text: str, measure: str, basis: str, tags: Iterable[str] = ()) -> float:
    """Absolute tolerance a calibration should accept for an observation.

    The rule (documented in ``calibration/data/README.md``):

    - ``level`` or ``cumulative``: 0.5 pp or 5 % of the value, whichever is smaller, for
      ``share``; 2 % of the value otherwise;
    - ``change_pp``: 0.5 pp or 10 % of the value, whichever is smaller;
    - ``cagr_pct``: 0.5 pp;
    - ``change_pct``: 1 pp or 5 % of the value, whichever is larger;
    - ``change_abs``: 5 % of the value;
    - never below half a unit of the last printed digit (the rounding in the plan);
    - doubled if the note carries any of :data:`WIDENING_TAGS`.

    Parameters
    ----------
    value_text : str
        The value as written in the CSV (its decimals set the rounding floor).
    measure, basis : str
        The row's measure and basis.
    tags : iterable of str
        The note's tags.

    Returns
    -------
    float
        The tolerance, rounded to 6 significant digits.
    """
    v = abs(float(value_text))
    if measure in ("level", "cumulative"):
        base = min(0.5, 0.05 * v) if basis == "share" else 0.02 * v
    elif measure == "change_pp":
        base = min(0.5, 0.1 * v)
    elif measure == "cagr_pct":
        base = 0.5
    elif measure == "change_pct":
        base = max(1.0, 0.05 * v)
    elif measure == "change_abs":
        base = 0.05 * v
    else:
        raise ValueError(f"unknown measure {measure!r}")
    tol = max(base, 0.5 * 10.0 ** -decimals(value_text))
    if WIDENING_TAGS.intersection(tags):
        tol *= 2
    return float(f"{tol:.6g}")


def _check_rows(
    path: Path,
    records: list[tuple[int, int, dict[str, str]]],
    model: type[_Row],
    indicators: Mapping[str, IndicatorRow],
) -> list[_Row]:
    problems: list[Problem] = []
    rows: list[_Row] = []
    first_seen: dict[str, int] = {}
    for row_no, line, record in records:
        try:
            row = model.model_validate(record, context={"indicators": indicators})
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else "(row)"
                given = record.get(column, "")
                problems.append(
                    Problem(row_no, line, column, f"{given!r}: {err['msg']}",
                            ALLOWED.get(column, "see README.md"))
                )  # fmt: skip
            continue
        for column, message in _cross_checks(row, indicators[row.indicator]):
            problems.append(Problem(row_no, line, column, message, ALLOWED[column]))
        if row.id in first_seen:
            problems.append(
                Problem(row_no, line, "id",
                        f"duplicate id {row.id!r} (first in data row {first_seen[row.id]})",
                        ALLOWED["id"])
            )  # fmt: skip
        else:
            first_seen[row.id] = row_no
        rows.append(row)
    if problems:
        raise DataFileError(path, problems)
    return rows


def _cross_checks(row: _Row, indicator: IndicatorRow) -> list[tuple[str, str]]:
    """Checks that involve several columns; returns ``(column, message)`` pairs."""
    out: list[tuple[str, str]] = []
    if row.measure in CHANGE_MEASURES or row.measure == "cumulative":
        if row.year_start is None:
            out.append(("year_start", f"measure {row.measure} needs year_start"))
    if row.year_start is not None:
        if row.measure in CHANGE_MEASURES and row.year_start >= row.year:
            out.append(("year_start", f"base year {row.year_start} not before year {row.year}"))
        elif row.year_start > row.year:
            out.append(("year_start", f"year_start {row.year_start} after year {row.year}"))
    unit = MEASURE_UNITS.get(row.measure, indicator.unit)
    if row.unit != unit:
        out.append(("unit", f"{row.unit!r} but measure {row.measure} of "
                            f"{indicator.id} needs {unit!r}"))  # fmt: skip
    if row.basis not in indicator.basis:
        out.append(("basis", f"{row.basis!r} not allowed for {indicator.id} "
                             f"({'|'.join(indicator.basis)})"))  # fmt: skip
    unknown = [t for t in parse_tags(row.note) if t not in NOTE_TAGS]
    if unknown:
        out.append(("note", f"unknown tag(s) {unknown}"))
    if "__" in row.id and row.id.split("__", 1)[1] not in CLUSTERS:
        out.append(("id", f"cluster suffix {row.id.split('__', 1)[1]!r} is not one of "
                          f"{', '.join(CLUSTERS)}"))  # fmt: skip
    if isinstance(row, TargetRow):
        if (row.op == "done") != (row.value is None):
            out.append(("value", f"op {row.op!r} with value {row.value!r}: only op 'done' "
                                 "has an empty value"))  # fmt: skip
        if (row.base_year is None) != (row.base_value is None):
            out.append(("base_value", "base_year and base_value go together"))
    return out


def _resolve(path: str | Path | None, default: Path) -> Path:
    return default if path is None else Path(path)


# --------------------------------------------------------------------------- public API


def load_indicators(path: str | Path | None = None) -> pd.DataFrame:
    """Load the indicator vocabulary.

    Parameters
    ----------
    path : str or Path, optional
        CSV file; defaults to ``calibration/data/indicators.csv`` next to this module.

    Returns
    -------
    pandas.DataFrame
        One row per indicator, indexed by ``id``; ``basis`` holds a tuple of allowed bases
        (the first is the default).

    Raises
    ------
    DataFileError
        On a missing/unknown column, an unknown basis, an empty label or a duplicate id.
    """
    rows = _indicator_rows(_resolve(path, INDICATORS_PATH))
    frame = pd.DataFrame([r.model_dump() for r in rows.values()], columns=INDICATOR_COLUMNS)
    return frame.set_index("id", drop=False)


def _indicator_rows(path: Path) -> dict[str, IndicatorRow]:
    problems: list[Problem] = []
    rows: dict[str, IndicatorRow] = {}
    for row_no, line, record in read_records(path, INDICATOR_COLUMNS):
        try:
            row = IndicatorRow.model_validate(record)
        except ValidationError as exc:
            for err in exc.errors():
                column = str(err["loc"][0]) if err["loc"] else "(row)"
                allowed = ", ".join(BASES) if column == "basis" else ALLOWED.get(column, "")
                problems.append(
                    Problem(row_no, line, column, f"{record.get(column, '')!r}: {err['msg']}",
                            allowed)
                )  # fmt: skip
            continue
        if row.id in rows:
            problems.append(Problem(row_no, line, "id", f"duplicate id {row.id!r}", "unique ids"))
        rows[row.id] = row
    if problems:
        raise DataFileError(path, problems)
    return rows


def _frame(rows: Sequence[_Row], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame([r.model_dump() for r in rows], columns=list(columns))
    for col in ("year_start", "year", "base_year"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    for col in ("value", "tolerance", "base_value"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col]).astype("float64")
    frame["tags"] = [parse_tags(n) for n in frame["note"]]
    frame["cluster"] = [i.split("__", 1)[1] if "__" in i else None for i in frame["id"]]
    return frame


def load_observations(
    path: str | Path | None = None, *, indicators_path: str | Path | None = None
) -> pd.DataFrame:
    """Load and validate the 2015-2020 observations.

    Parameters
    ----------
    path : str or Path, optional
        CSV file; defaults to ``calibration/data/observations.csv`` next to this module.
    indicators_path : str or Path, optional
        Indicator vocabulary; defaults to ``calibration/data/indicators.csv``.

    Returns
    -------
    pandas.DataFrame
        The file's columns in order (``year_start``/``year`` as ``Int64``, ``value`` and
        ``tolerance`` as float), plus ``tags`` (tuple of note tags), ``cluster`` (cluster id from
        an ``__<cluster>`` id suffix, else None) and ``primary`` (False for rows tagged
        ``duplicate`` or ``alternative``: use one primary row per quantity when calibrating).

    Raises
    ------
    DataFileError
        On a missing column, an unknown indicator/measure/basis, a value of the wrong type, a
        duplicate id or an inconsistent row; the message names file, data row, CSV line and
        column.
    """
    file = _resolve(path, OBSERVATIONS_PATH)
    indicators = _indicator_rows(_resolve(indicators_path, INDICATORS_PATH))
    rows = _check_rows(file, read_records(file, OBSERVATION_COLUMNS), ObservationRow, indicators)
    frame = _frame(rows, OBSERVATION_COLUMNS)
    frame["primary"] = [not SECONDARY_TAGS.intersection(t) for t in frame["tags"]]
    return frame


def load_targets(
    path: str | Path | None = None, *, indicators_path: str | Path | None = None
) -> pd.DataFrame:
    """Load and validate the 2021-2035 targets.

    Parameters
    ----------
    path : str or Path, optional
        CSV file; defaults to ``calibration/data/targets.csv`` next to this module.
    indicators_path : str or Path, optional
        Indicator vocabulary; defaults to ``calibration/data/indicators.csv``.

    Returns
    -------
    pandas.DataFrame
        The file's columns in order (years as ``Int64``, ``value``/``base_value`` as float with
        NaN when empty, ``modelled`` as bool), plus ``tags`` and ``cluster`` as in
        :func:`load_observations`.

    Raises
    ------
    DataFileError
        On a missing column, an unknown indicator/measure/basis/op, a value of the wrong type,
        a duplicate id or an inconsistent row.
    """
    file = _resolve(path, TARGETS_PATH)
    indicators = _indicator_rows(_resolve(indicators_path, INDICATORS_PATH))
    rows = _check_rows(file, read_records(file, TARGET_COLUMNS), TargetRow, indicators)
    return _frame(rows, TARGET_COLUMNS)
