"""Scenario files: a schema, a loader with clear errors, and the parameters they set.

A scenario is data: a title and description in English and Chinese, lever settings by
plan period (each a value and a shape, ``step`` or ``ramp``), and optional overrides
of any other model constant (an assumption), by its Vensim name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.metadata import MODEL_PATH, read_metadata
from scenarios.levers import PERIODS, SHAPES, Lever, load_levers

SCENARIO_DIR = Path(__file__).resolve().parent


class ScenarioError(ValueError):
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
    source: str = Field(default="<memory>", exclude=True)


def _range_text(lever: Lever) -> str:
    return f"[{lever.low:g}, {lever.high:g}]"


def _check_value(where: str, field: str, value: float, low: float | None, high: float | None):
    if not np.isfinite(value):
        raise ScenarioError(f"{where}: {field}: value {value!r} is not a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScenarioError(
            f"{where}: {field}: value {value:g} is outside the allowed range "
            f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        )


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
    where = scenario.source
    levers = load_levers(model_path)
    meta = read_metadata(model_path)
    params: dict = {}
    for lever_id, setting in scenario.levers.items():
        field = f"levers.{lever_id}"
        if lever_id not in levers:
            raise ScenarioError(
                f"{where}: {field}: unknown lever; allowed: {', '.join(sorted(levers))}"
            )
        lever = levers[lever_id]
        if lever.kind == "constant":
            if isinstance(setting, dict):
                raise ScenarioError(f"{where}: {field}: expected one number in {_range_text(lever)}")
            _check_value(where, field, setting, lever.low, lever.high)
            params[lever.model_name] = float(setting)
            continue
        if not isinstance(setting, dict):
            allowed = "periods " + ", ".join(PERIODS) if lever.kind == "path" else "cluster ids"
            raise ScenarioError(f"{where}: {field}: expected a mapping of {allowed}")
        if lever.kind == "path":
            for period, entry in setting.items():
                if period not in PERIODS:
                    raise ScenarioError(
                        f"{where}: {field}.{period}: unknown or overlapping period; "
                        f"allowed: {', '.join(PERIODS)}"
                    )
                entry = entry if isinstance(entry, PeriodSetting) else PeriodSetting(value=entry)
                _check_value(where, f"{field}.{period}", entry.value, lever.low, lever.high)
                params[lever.constant_name(period)] = entry.value
                params[lever.shape_name(period)] = SHAPES[entry.shape]
        else:
            elements = list(lever.default)
            values = np.array([lever.default[e] for e in elements], dtype=float)
            for cluster, value in setting.items():
                if cluster not in elements:
                    raise ScenarioError(
                        f"{where}: {field}.{cluster}: unknown cluster; allowed: {', '.join(elements)}"
                    )
                if isinstance(value, PeriodSetting):
                    raise ScenarioError(f"{where}: {field}.{cluster}: expected a number")
                _check_value(where, f"{field}.{cluster}", value, lever.low, lever.high)
                values[elements.index(cluster)] = value
            params[lever.model_name] = values
    for name, value in scenario.parameters.items():
        field = f"parameters.{name}"
        if name not in meta.variables or meta[name].default is None:
            raise ScenarioError(f"{where}: {field}: not a constant of {Path(model_path).name}")
        var = meta[name]
        array = np.asarray(value, dtype=float)
        expected = np.shape(var.default)
        if array.shape not in (expected, ()):
            raise ScenarioError(
                f"{where}: {field}: expected {int(np.prod(expected)) or 1} value(s), "
                f"got {array.size}"
            )
        for item in np.atleast_1d(array):
            _check_value(where, field, float(item), var.low, var.high)
        params[name] = array if array.ndim else float(array)
    return params


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
        Missing file, malformed YAML, wrong structure or types, unknown levers,
        values out of range; the message names the file and the field.
    """
    path = Path(path)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{path.name}.yaml"
    if not path.is_file():
        bundled = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml") if p.stem != "levers"))
        raise ScenarioError(f"{path}: scenario file not found (bundled scenarios: {bundled})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"{path}: malformed YAML{at}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from None
    return parse_scenario(data, source=str(path), model_path=model_path)


def parse_scenario(data, source: str = "<memory>", model_path: str | Path = MODEL_PATH) -> Scenario:
    """Validate scenario data already read (a dict, e.g. from the app)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping with title, description and levers")
    try:
        scenario = Scenario.model_validate({**data, "source": source})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"] if part not in ("float", "PeriodSetting"))
        got = error.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        raise ScenarioError(f"{source}: {field}: {error['msg']}{got_text}") from None
    scenario_parameters(scenario, model_path)  # range and name checks
    return scenario


def dump_scenario(scenario: Scenario) -> str:
    """Serialise a scenario as YAML text (round-trips through :func:`parse_scenario`)."""
    data = scenario.model_dump(mode="json", exclude={"source"})
    for lever, setting in data["levers"].items():
        if isinstance(setting, dict):
            data["levers"][lever] = {
                key: value for key, value in setting.items()
            }
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
