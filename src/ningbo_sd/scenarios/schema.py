"""Scenario files: a schema, a loader with clear errors, and the parameters they set.

A scenario is data: a title and description in English and Chinese, lever settings by
plan period (each a value and a shape, ``step`` or ``ramp``), and optional overrides
of any other model constant (an assumption), by its Vensim name.

Every error names the file, the field (a dotted path such as
``levers.investment_growth.2021-2025.value``), the value found and what is allowed.
The structure is checked field by field before pydantic sees the data, so that a
wrong type (text where a number belongs, ``true`` for a growth rate, a list for a
period mapping) or a period that overlaps the plan periods gets its own message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ningbo_sd.io import UserError, excerpt, read_yaml_file
from ningbo_sd.model.metadata import MODEL_PATH, read_metadata
from ningbo_sd.resources import scenario_dir
from ningbo_sd.scenarios.levers import PERIODS, SHAPES, Lever, load_levers

SCENARIO_DIR = scenario_dir()
TOP_LEVEL_FIELDS = ("title", "description", "levers", "parameters", "targets")
PERIOD_PATTERN = re.compile(r"^\s*(\d{4})\s*[-–]\s*(\d{4})\s*$")


class ScenarioError(UserError):
    """A scenario file or setting is invalid; the message names file, field and what is allowed."""


class Text(BaseModel):
    """A text in English and Chinese."""

    model_config = ConfigDict(extra="forbid")
    en: str = Field(min_length=1)
    zh: str = Field(min_length=1)


class PeriodSetting(BaseModel):
    """A path lever's value for one plan period and how it is reached."""

    model_config = ConfigDict(extra="forbid")
    value: float
    shape: Literal["step", "ramp"] = "step"


class Scenario(BaseModel):
    """A named set of lever settings and parameter overrides."""

    model_config = ConfigDict(extra="forbid")
    title: Text
    description: Text
    levers: dict[str, float | dict[str, float | PeriodSetting]] = Field(default_factory=dict)
    parameters: dict[str, float | list[float]] = Field(default_factory=dict)
    targets: dict[str, float] = Field(default_factory=dict)
    source: str = Field(default="<memory>", exclude=True)

    @property
    def name(self) -> str:
        """Short name: the file stem of the source, else the English title."""
        if self.source and self.source != "<memory>":
            return Path(self.source).stem
        return self.title.en


def bundled_scenarios() -> list[str]:
    """Names of the scenario files shipped in ``scenarios/`` (``baseline``, ``plan_2025``...).

    A YAML file there is a scenario when its top level has a ``title`` and ``levers``
    (``levers.yaml``, ``targets.yaml`` and other registries are not).
    """
    files = tuple((str(path), path.stat().st_mtime) for path in sorted(SCENARIO_DIR.glob("*.yaml")))
    return list(_bundled(files))


@lru_cache(maxsize=4)
def _bundled(files: tuple[tuple[str, float], ...]) -> tuple[str, ...]:
    names = []
    for name, _ in files:
        path = Path(name)
        try:
            data = read_yaml_file(path)
        except UserError:
            continue
        if isinstance(data, dict) and "title" in data and "levers" in data:
            names.append(path.stem)
    return tuple(names)


# ---------------------------------------------------------------- structural checks


def _key(key) -> str:
    """A key of the user's file as quoted in a field path (a short excerpt)."""
    return excerpt(str(key))


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return f"{excerpt(value)!r} (text)"
        return (
            f"{excerpt(value)!r} (text: write a number without quotes, an exponent with a "
            "decimal point and a sign, e.g. 1.0e+6)"
        )
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if value is None:
        return "nothing (empty)"
    return repr(value)


def _range_text(low: float | None, high: float | None) -> str:
    return f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"


def _number(where: str, field: str, value, low: float | None, high: float | None) -> float:
    """Check one number: a real int or float (not a bool, not text), finite, in range."""
    bounded = low is not None or high is not None
    allowed = f"a number in {_range_text(low, high)}" if bounded else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {field}: expected {allowed}, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ScenarioError(f"{where}: {field}: expected {allowed}, got {value!r}")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ScenarioError(
            f"{where}: {field}: value {number:g} is outside the allowed range "
            f"{_range_text(low, high)}"
        )
    return number


def _check_text(where: str, field: str, value) -> None:
    if not isinstance(value, dict):
        raise ScenarioError(
            f"{where}: {field}: expected a mapping with 'en' and 'zh' texts, got {_describe(value)}"
        )
    for language in ("en", "zh"):
        text = value.get(language)
        if not isinstance(text, str) or not text.strip():
            raise ScenarioError(
                f"{where}: {field}.{language}: expected a non-empty text, got {_describe(text)}"
            )
    extra = sorted(set(value) - {"en", "zh"})
    if extra:
        raise ScenarioError(f"{where}: {field}.{_key(extra[0])}: unknown field; allowed: en, zh")


def _check_period_key(where: str, field: str, period) -> None:
    if period in PERIODS:
        return
    allowed = ", ".join(PERIODS)
    match = PERIOD_PATTERN.match(str(period))
    if match:
        start, end = int(match.group(1)), int(match.group(2))
        overlapping = [
            name
            for name in PERIODS
            if start <= int(name[5:]) and end >= int(name[:4]) and name != str(period)
        ]
        if start > end:
            raise ScenarioError(
                f"{where}: {field}.{_key(period)}: period ends before it starts; allowed: {allowed}"
            )
        if overlapping:
            raise ScenarioError(
                f"{where}: {field}.{_key(period)}: period overlaps {' and '.join(overlapping)}; "
                f"lever values are set per plan period, allowed: {allowed}"
            )
        raise ScenarioError(
            f"{where}: {field}.{_key(period)}: period is outside the scenario years; "
            f"allowed: {allowed}"
        )
    raise ScenarioError(f"{where}: {field}.{_key(period)}: unknown period; allowed: {allowed}")


def _check_period_entry(where: str, field: str, entry, lever: Lever) -> None:
    if not isinstance(entry, dict):
        _number(where, field, entry, lever.low, lever.high)
        return
    extra = sorted(set(entry) - {"value", "shape"})
    if extra:
        raise ScenarioError(
            f"{where}: {field}.{_key(extra[0])}: unknown field; allowed: value, shape"
        )
    if "value" not in entry:
        raise ScenarioError(
            f"{where}: {field}.value: missing; expected a number in "
            f"{_range_text(lever.low, lever.high)}"
        )
    _number(where, f"{field}.value", entry["value"], lever.low, lever.high)
    shape = entry.get("shape", "step")
    if shape not in SHAPES:
        raise ScenarioError(
            f"{where}: {field}.shape: got {_describe(shape)}; allowed: {', '.join(SHAPES)}"
        )


def _check_lever(where: str, field: str, setting, lever: Lever) -> None:
    if lever.kind == "constant":
        if isinstance(setting, dict):
            raise ScenarioError(
                f"{where}: {field}: expected one number in {_range_text(lever.low, lever.high)}, "
                "got a mapping (this lever has no periods)"
            )
        _number(where, field, setting, lever.low, lever.high)
        return
    if lever.kind == "path":
        if not isinstance(setting, dict):
            raise ScenarioError(
                f"{where}: {field}: expected a mapping of periods {', '.join(PERIODS)} to values "
                f"in {_range_text(lever.low, lever.high)}, got {_describe(setting)}"
            )
        for period, entry in setting.items():
            _check_period_key(where, field, period)
            _check_period_entry(where, f"{field}.{period}", entry, lever)
        return
    elements = list(lever.default)
    if not isinstance(setting, dict):
        raise ScenarioError(
            f"{where}: {field}: expected a mapping of cluster ids to numbers in "
            f"{_range_text(lever.low, lever.high)}, got {_describe(setting)}"
        )
    for cluster, value in setting.items():
        if cluster not in elements:
            raise ScenarioError(
                f"{where}: {field}.{_key(cluster)}: unknown cluster; allowed: {', '.join(elements)}"
            )
        _number(where, f"{field}.{cluster}", value, lever.low, lever.high)


def _check_targets(where: str, targets) -> None:
    """A scenario may give numbers only to targets the plan states without one."""
    if not isinstance(targets, dict):
        raise ScenarioError(
            f"{where}: targets: expected a mapping of target ids to numbers, got "
            f"{_describe(targets)}"
        )
    if not targets:
        return
    from ningbo_sd.scenarios.scorecard import load_target_specs

    allowed = [spec.id for spec in load_target_specs() if spec.assumed]
    for target_id, value in targets.items():
        if target_id not in allowed:
            raise ScenarioError(
                f"{where}: targets.{_key(target_id)}: a scenario can only set targets the plan "
                f"gives without a number; allowed: {', '.join(allowed)}"
            )
        _number(where, f"targets.{target_id}", value, None, None)


def _check_structure(data, where: str, model_path: str | Path) -> None:
    """Check a scenario's raw data field by field, raising :class:`ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{where}: expected a mapping with fields {', '.join(TOP_LEVEL_FIELDS)}, "
            f"got {_describe(data)}"
        )
    extra = [key for key in data if key not in TOP_LEVEL_FIELDS]
    if extra:
        raise ScenarioError(
            f"{where}: {_key(extra[0])}: unknown field; allowed: {', '.join(TOP_LEVEL_FIELDS)}"
        )
    for field in ("title", "description"):
        if field not in data:
            raise ScenarioError(f"{where}: {field}: missing; expected 'en' and 'zh' texts")
        _check_text(where, field, data[field])
    levers = data.get("levers") or {}
    if not isinstance(levers, dict):
        raise ScenarioError(
            f"{where}: levers: expected a mapping of lever ids to settings, got {_describe(levers)}"
        )
    known = load_levers(model_path)
    for lever_id, setting in levers.items():
        if lever_id not in known:
            raise ScenarioError(
                f"{where}: levers.{_key(lever_id)}: unknown lever; "
                f"allowed: {', '.join(sorted(known))}"
            )
        _check_lever(where, f"levers.{lever_id}", setting, known[lever_id])
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ScenarioError(
            f"{where}: parameters: expected a mapping of Vensim constant names to values, "
            f"got {_describe(parameters)}"
        )
    meta = read_metadata(model_path)
    for name, value in parameters.items():
        field = f"parameters.{_key(name)}"
        if name not in meta.variables or meta[name].default is None:
            raise ScenarioError(
                f"{where}: {field}: not a constant of {Path(model_path).name}; "
                "use a Vensim constant's exact name"
            )
        var = meta[name]
        expected = int(np.prod(np.shape(var.default))) or 1
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) not in (expected, 1):
            raise ScenarioError(
                f"{where}: {field}: expected {expected} value(s) (one per "
                f"{', '.join(var.subscripts) or 'value'}), got {len(value)}"
            )
        for index, item in enumerate(items):
            label = f"{field}[{index}]" if isinstance(value, list) else field
            _number(where, label, item, var.low, var.high)
    _check_targets(where, data.get("targets") or {})


# ---------------------------------------------------------------- parameters


def scenario_parameters(scenario: Scenario, model_path: str | Path = MODEL_PATH) -> dict:
    """Translate a scenario into model constants (Vensim name -> value).

    Parameters
    ----------
    scenario : Scenario
    model_path : str or Path
        The model the levers refer to.

    Returns
    -------
    dict
        Only the constants the scenario sets; a subscripted constant as a numpy array.

    Raises
    ------
    ScenarioError
        For an unknown lever, period, cluster or parameter, or a value out of range.
    """
    _check_structure(
        scenario.model_dump(mode="python", exclude={"source"}), scenario.source, model_path
    )
    levers = load_levers(model_path)
    meta = read_metadata(model_path)
    params: dict = {}
    for lever_id, setting in scenario.levers.items():
        lever = levers[lever_id]
        if lever.kind == "constant":
            params[lever.model_name] = float(setting)
        elif lever.kind == "path":
            for period, entry in setting.items():
                entry = entry if isinstance(entry, PeriodSetting) else PeriodSetting(value=entry)
                params[lever.constant_name(period)] = float(entry.value)
                params[lever.shape_name(period)] = SHAPES[entry.shape]
        else:
            elements = list(lever.default)
            values = np.array([lever.default[e] for e in elements], dtype=float)
            for cluster, value in setting.items():
                values[elements.index(cluster)] = float(value)
            params[lever.model_name] = values
    for name, value in scenario.parameters.items():
        array = np.asarray(value, dtype=float)
        expected = np.shape(meta[name].default)
        if array.size == 1 and expected:
            array = np.full(expected, float(array.ravel()[0]))
        params[name] = array if array.ndim else float(array)
    return params


# ---------------------------------------------------------------- lever addresses


@dataclass(frozen=True)
class LeverChoice:
    """One lever address: a lever, and a period or a cluster where it has them.

    Written ``lever[.period|.cluster]`` (``investment_growth.2026-2035``,
    ``cluster_priority_weight.auto``); goal-seeking moves the model constants it names.
    """

    lever: Lever
    part: str | None

    @property
    def label(self) -> str:
        """``lever[.part]`` as written on the command line."""
        return self.lever.id if self.part is None else f"{self.lever.id}.{self.part}"

    @property
    def constants(self) -> list[str]:
        """The model constants (sample-table columns) set to the searched value."""
        lever = self.lever
        if lever.kind == "constant":
            return [lever.model_name]
        if lever.kind == "cluster":
            return [f"{lever.model_name}[{self.part}]"]
        periods = list(PERIODS) if self.part is None else [self.part]
        return [lever.constant_name(period) for period in periods]

    def table(self, values) -> dict[str, np.ndarray]:
        """Sample-table columns for an array of lever values."""
        values = np.asarray(values, dtype=float)
        return {name: values for name in self.constants}


def parse_lever(text: str) -> LeverChoice:
    """Parse ``lever[.period|.cluster]``, e.g. ``investment_growth.2026-2035``.

    A path lever without a period moves both periods together; a cluster lever needs a
    cluster.

    Raises
    ------
    ScenarioError
        Unknown lever, period or cluster (the message lists what is allowed).
    """
    levers = load_levers()
    lever_id, _, part = str(text).strip().partition(".")
    if lever_id not in levers:
        raise ScenarioError(f"lever {text!r}: unknown lever; allowed: {', '.join(sorted(levers))}")
    lever = levers[lever_id]
    part = part or None
    if lever.kind == "constant" and part is not None:
        raise ScenarioError(
            f"lever {text!r}: {lever_id} has no periods or clusters; write {lever_id}"
        )
    if lever.kind == "path" and part is not None and part not in PERIODS:
        raise ScenarioError(
            f"lever {text!r}: unknown period {part!r}; allowed: {', '.join(PERIODS)} "
            "(or no period: both)"
        )
    if lever.kind == "cluster" and part not in lever.default:
        raise ScenarioError(
            f"lever {text!r}: name a cluster, e.g. {lever_id}.auto; allowed: "
            f"{', '.join(lever.default)}"
        )
    return LeverChoice(lever, part)


# ---------------------------------------------------------------- reading and writing


def load_scenario(path: str | Path, model_path: str | Path = MODEL_PATH) -> Scenario:
    """Read and validate a scenario file.

    Parameters
    ----------
    path : str or Path
        A YAML file, or the name of a bundled scenario (``baseline``, ``plan_2025``...).
    model_path : str or Path
        The model the levers refer to.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Missing file, malformed YAML, a key written twice, wrong structure or types,
        unknown levers, overlapping periods, values out of range; the message names the
        file and the field.
    """
    path = Path(path)
    # a bundled scenario is named bare: ``../baseline`` is a path, never a bundled name
    bare = str(path) == path.name
    if bare and not path.suffix and not path.exists() and path.name in bundled_scenarios():
        path = SCENARIO_DIR / f"{path.name}.yaml"
    if path.is_dir():
        raise ScenarioError(f"{path}: is a folder; expected a scenario YAML file")
    if not path.is_file():
        named = "" if bare or path.suffix else "; a bundled scenario is named without a folder"
        raise ScenarioError(
            f"{path}: scenario file not found (bundled scenarios: "
            f"{', '.join(bundled_scenarios())}{named})"
        )
    try:
        data = read_yaml_file(path)
    except UserError as exc:
        raise ScenarioError(str(exc)) from None
    return parse_scenario(data, source=str(path), model_path=model_path)


def parse_scenario(data, source: str = "<memory>", model_path: str | Path = MODEL_PATH) -> Scenario:
    """Validate scenario data already read (a dict, e.g. from the app).

    Parameters
    ----------
    data : dict
        ``title``, ``description`` (``en``/``zh`` texts), ``levers`` and ``parameters``.
    source : str
        Where the data came from, used in error messages.
    model_path : str or Path
        The model the levers refer to.

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Naming ``source``, the field, the value found and what is allowed.
    """
    _check_structure(data, source, model_path)
    data = {key: ({} if value is None else value) for key, value in data.items()}
    try:
        scenario = Scenario.model_validate({**data, "source": source})
    except ValidationError as exc:  # the structural check should have caught it first
        # a union reports one error per branch: the deepest location is the informative one
        error = max(exc.errors(), key=lambda item: len(item["loc"]))
        field = ".".join(
            str(part) for part in error["loc"] if part not in ("float", "PeriodSetting")
        )
        raise ScenarioError(f"{source}: {field}: {error['msg']}") from None
    return scenario


def dump_scenario(scenario: Scenario) -> str:
    """Serialise a scenario as YAML text (round-trips through :func:`parse_scenario`).

    Parameters
    ----------
    scenario : Scenario

    Returns
    -------
    str
        YAML text with ``title``, ``description``, ``levers`` and ``parameters``.
    """
    data = scenario.model_dump(mode="json", exclude={"source"})
    for optional in ("parameters", "targets"):
        if not data[optional]:
            del data[optional]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
