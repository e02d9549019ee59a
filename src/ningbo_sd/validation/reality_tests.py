"""Reality Check tests as data: the schema of ``model/reality_checks.yaml``, read and checked.

Each test has an ``id``, a ``title``, a ``condition`` (lever ids of ``levers.yaml`` or Vensim
constant names -> numbers, and ``from_year``), the expectations on headline outputs it must
meet (``expect``, kinds in :data:`KINDS`) and optionally the ``known_failure`` reason why the
model fails it today. :func:`load_reality_checks` turns the file into :class:`RealityCheck`
records; a problem raises a :class:`~ningbo_sd.io.UserError` naming the file, the test, the
field, the value and what is allowed. :mod:`ningbo_sd.validation.reality` runs them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from ningbo_sd.io import UserError, excerpt, read_yaml_file
from ningbo_sd.model.metadata import MODEL_PATH, read_metadata
from ningbo_sd.model.outputs import output_columns, report_years
from ningbo_sd.resources import model_dir
from ningbo_sd.scenarios.levers import PERIODS, load_levers

__all__ = ["KINDS", "Expectation", "RealityCheck", "load_reality_checks"]

#: Each expectation kind and its fields besides ``kind`` (all required).
KINDS: dict[str, tuple[str, ...]] = {
    "falls_every_year": ("var", "from", "to"),
    "rises_every_year": ("var", "from", "to"),
    "at_most_share_of_baseline": ("var", "year", "share"),
    "at_least_share_of_baseline": ("var", "year", "share"),
    "below_baseline": ("var", "year"),
    "above_baseline": ("var", "year"),
    "no_negative_stock": (),
    "finite": (),
    "bounded": ("var", "factor"),
    "recovers": ("var", "year", "within"),
}
TEST_FIELDS = ("id", "title", "condition", "expect", "known_failure")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
#: The first year of each plan period whose constants change during a run.
PERIOD_START = {period: int(period[:4]) for period in PERIODS}
#: Output columns that are codes, not quantities; constants that set the time grid.
CATEGORICAL = ("binding_constraint",)
CONTROLS = ("INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER")


@dataclass(frozen=True)
class Expectation:
    """One expectation on a headline output.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    var : str or None
        The output column (``None`` for ``no_negative_stock`` and ``finite``).
    start, end : int or None
        ``from`` and ``to`` of ``falls_every_year`` / ``rises_every_year``.
    year : int or None
        The year a share, a comparison or a recovery is checked at.
    value : float or None
        ``share``, ``factor`` or ``within``, whichever the kind has.
    """

    kind: str
    var: str | None = None
    start: int | None = None
    end: int | None = None
    year: int | None = None
    value: float | None = None

    @property
    def label(self) -> str:
        """A short label: ``falls_every_year(capital_stock, 2016-2035)``."""
        parts = [self.var] if self.var else []
        if self.start is not None:
            parts.append(f"{self.start}-{self.end}")
        if self.year is not None:
            parts.append(str(self.year))
        if self.value is not None:
            parts.append(f"{self.value:g}")
        return f"{self.kind}({', '.join(parts)})"


@dataclass(frozen=True)
class RealityCheck:
    """One extreme-condition test.

    Attributes
    ----------
    id, title : str
    from_year : int
        The year the condition holds from (``condition.from_year``; default the first year).
    condition : dict
        The condition as written (key -> number), without ``from_year``.
    parameters : dict
        Sample-table columns it sets (Vensim name, or ``Name[elem]``) -> value.
    missing : tuple of str
        Condition keys the model has no parameter for (only in a known-failure test).
    expect : tuple of Expectation
    known_failure : str or None
    """

    id: str
    title: str
    from_year: int
    condition: dict
    parameters: dict
    missing: tuple[str, ...]
    expect: tuple[Expectation, ...]
    known_failure: str | None = None


# ---------------------------------------------------------------- loading


def _describe(value) -> str:
    """A value as an error line quotes it."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, str):
        return f"{excerpt(value)!r} (text)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    return "nothing (empty)" if value is None else repr(value)


def _number(where: str, field: str, value, low: float | None = None) -> float:
    """A real, finite number (not a bool, not text), at least ``low`` where given."""
    allowed = "a number" if low is None else f"a number >= {low:g}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UserError(f"{where}: {field}: expected {allowed}, got {_describe(value)}")
    if low is not None and value < low:
        raise UserError(f"{where}: {field}: value {value:g} is below {low:g}; expected {allowed}")
    return float(value)


def _year(where: str, field: str, value, first: int, last: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not first <= value <= last:
        raise UserError(
            f"{where}: {field}: expected a year from {first} to {last}, got {_describe(value)}"
        )
    return int(value)


def _parse_expectation(where: str, field: str, item, years: tuple[int, int]) -> Expectation:
    first, last = years
    if not isinstance(item, dict):
        raise UserError(
            f"{where}: {field}: expected a mapping with 'kind' and its fields, "
            f"got {_describe(item)}"
        )
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise UserError(
            f"{where}: {field}.kind: unknown expectation kind {_describe(kind)}; "
            f"allowed: {', '.join(KINDS)}"
        )
    needed = KINDS[kind]
    extra = sorted(set(item) - {"kind", *needed})
    if extra:
        fields = ", ".join(needed) or "no other field"
        raise UserError(f"{where}: {field}.{extra[0]}: unknown field for {kind}; allowed: {fields}")
    missing = [name for name in needed if name not in item]
    if missing:
        raise UserError(f"{where}: {field}.{missing[0]}: missing; {kind} needs {', '.join(needed)}")
    values: dict = {}
    if "var" in needed:
        var = item["var"]
        allowed = [c.name for c in output_columns() if c.name not in CATEGORICAL]
        if not isinstance(var, str) or var not in allowed:
            raise UserError(
                f"{where}: {field}.var: unknown output variable {_describe(var)}; allowed: the "
                f"numeric columns of model/outputs.yaml ({', '.join(allowed)})"
            )
        values["var"] = var
    if "from" in needed:
        values["start"] = _year(where, f"{field}.from", item["from"], first + 1, last)
        values["end"] = _year(where, f"{field}.to", item["to"], values["start"], last)
    if "year" in needed:
        values["year"] = _year(where, f"{field}.year", item["year"], first, last)
    for name in ("share", "factor", "within"):
        if name in needed:
            values["value"] = _number(where, f"{field}.{name}", item[name], low=0.0)
    return Expectation(kind=kind, **values)


def _condition_columns(where: str, key: str, value: float, from_year: int) -> dict | None:
    """Sample-table columns a condition key sets (``None`` for a key the model lacks).

    A path lever's period value is reached as a step (its shape constant set to 0); a
    subscripted constant set as a whole becomes one ``Name[elem]`` column per element.
    """
    levers, meta = load_levers(MODEL_PATH), read_metadata(MODEL_PATH)
    lever_id, _, part = key.partition(".")
    lever = levers.get(lever_id)
    if lever is not None and lever.kind == "path":
        if part and part not in PERIODS:
            return None
        if not part and from_year not in PERIOD_START.values():
            raise UserError(
                f"{where}: condition.from_year: {from_year}: path lever {key} changes only at "
                f"a plan period's start; allowed: {', '.join(map(str, PERIOD_START.values()))} "
                f"(or write {key}.<period>)"
            )
        periods = [part] if part else [p for p in PERIODS if PERIOD_START[p] >= from_year]
        columns = {}
        for period in periods:
            columns[lever.constant_name(period)] = value
            columns[lever.shape_name(period)] = 0.0
        return columns
    if lever is not None:
        if lever.kind == "cluster" and part in lever.default:
            return {f"{lever.model_name}[{part}]": value}
        if part:
            return None
        key = lever.model_name
    var = meta.variables.get(key)
    if var is None or var.default is None or key in CONTROLS:
        return None
    if var.subscripts:
        return {f"{key}[{element}]": value for element in meta.subscripts[var.subscripts[0]]}
    return {key: value}


def _parse_condition(where: str, data: dict, from_year: int, first: int, has_known_failure: bool):
    """The parameters a condition sets and the keys the model lacks."""
    parameters: dict[str, float] = {}
    missing: list[str] = []
    for key, value in data.items():
        field = f"condition.{key}"
        columns = _condition_columns(where, str(key), _number(where, field, value), from_year)
        if columns is None:
            if not has_known_failure:
                raise UserError(
                    f"{where}: {field}: not a parameter of {MODEL_PATH.name}; allowed: a lever id "
                    "(lever, lever.period, lever.cluster) of levers.yaml or a Vensim constant's "
                    "exact name (a test of a parameter the model lacks needs known_failure)"
                )
            missing.append(str(key))
            continue
        for column, number in columns.items():
            if column in parameters:
                raise UserError(f"{where}: {field}: sets {column} a second time in this test")
            parameters[column] = number
    # the year each constant takes effect: its plan period's start, else the run's
    ends = {f" {suffix}": PERIOD_START[period] for period, suffix in PERIODS.items()}
    starts = {
        column: next((y for end, y in ends.items() if column.endswith(end)), first)
        for column in parameters
    }
    if starts and min(starts.values()) != from_year:
        column = min(starts, key=starts.get)
        earliest = starts[column]
        how = "has no period constants: it applies for the whole run" if earliest == first else ""
        raise UserError(
            f"{where}: condition.from_year: {from_year}: {column} {how or 'takes effect'} from "
            f"{earliest}; "
            f"write from_year: {earliest} (only the plan periods' constants, from "
            f"{', '.join(map(str, PERIOD_START.values()))}, change during a run)"
        )
    return parameters, tuple(missing)


def _parse_test(source: str, index: int, item, seen: set[str], years) -> RealityCheck:
    first, last = years
    where = f"{source}: test {index + 1}"
    if not isinstance(item, dict):
        raise UserError(f"{where}: expected a mapping with {', '.join(TEST_FIELDS)}")
    test_id = item.get("id")
    if not isinstance(test_id, str) or not ID_PATTERN.match(test_id):
        raise UserError(
            f"{where}: id: expected lower-case letters, digits and '_' starting with a letter, "
            f"got {_describe(test_id)}"
        )
    if test_id in seen:
        raise UserError(f"{source}: {test_id}: id: written twice; each test needs its own id")
    seen.add(test_id)
    where = f"{source}: {test_id}"
    extra = [key for key in item if key not in TEST_FIELDS]
    if extra:
        raise UserError(f"{where}: {extra[0]}: unknown field; allowed: {', '.join(TEST_FIELDS)}")
    for field in ("title", "condition", "expect"):
        if field not in item:
            raise UserError(f"{where}: {field}: missing")
    title = item["title"]
    if not isinstance(title, str) or not title.strip():
        raise UserError(f"{where}: title: expected a non-empty text, got {_describe(title)}")
    known_failure = item.get("known_failure")
    if "known_failure" in item and (not isinstance(known_failure, str) or not known_failure):
        raise UserError(
            f"{where}: known_failure: expected the reason as a non-empty text, "
            f"got {_describe(known_failure)}"
        )
    condition = item["condition"]
    if not isinstance(condition, dict) or not set(condition) - {"from_year"}:
        raise UserError(
            f"{where}: condition: expected a non-empty mapping of lever ids or Vensim constant "
            f"names to numbers (and from_year), got {_describe(condition)}"
        )
    condition = dict(condition)
    from_year = _year(where, "condition.from_year", condition.pop("from_year", first), first, last)
    parameters, missing = _parse_condition(
        where, condition, from_year, first, known_failure is not None
    )
    expect = item["expect"]
    if not isinstance(expect, list) or not expect:
        raise UserError(
            f"{where}: expect: expected a non-empty list of expectations, got {_describe(expect)}"
        )
    expectations = tuple(
        _parse_expectation(where, f"expect[{i}]", entry, years) for i, entry in enumerate(expect)
    )
    return RealityCheck(
        id=test_id,
        title=title.strip(),
        from_year=from_year,
        condition=condition,
        parameters=parameters,
        missing=missing,
        expect=expectations,
        known_failure=known_failure,
    )


def load_reality_checks(path: str | Path | None = None) -> list[RealityCheck]:
    """Read and validate a Reality Check file.

    Parameters
    ----------
    path : str or Path, optional
        The YAML file (default ``model/reality_checks.yaml``).

    Returns
    -------
    list of RealityCheck

    Raises
    ------
    UserError
        One line naming the file, the test id, the field, the value and what is allowed:
        an unknown field, expectation kind, output variable or parameter, a value that is
        not a number, a year outside the run, a ``from_year`` its parameters do not match.
    """
    path = Path(path) if path is not None else model_dir() / "reality_checks.yaml"
    data = read_yaml_file(path)
    source = str(path)
    if not isinstance(data, list) or not data:
        raise UserError(f"{source}: expected a non-empty list of tests, got {_describe(data)}")
    meta = read_metadata(MODEL_PATH)
    reported = report_years(meta["INITIAL TIME"].default, meta["FINAL TIME"].default)
    years = (reported[0], reported[-1])
    seen: set[str] = set()
    return [_parse_test(source, index, item, seen, years) for index, item in enumerate(data)]
