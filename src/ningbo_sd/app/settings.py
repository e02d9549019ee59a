"""Lever settings of the app: one slider per lever period or cluster, and scenario conversion.

The settings are a ``param.Parameterized`` class built from the lever registry
(``scenarios/registry/levers.yaml`` and the model file), in *display* units (13 for 13 %), so that
slider values and the shareable URL read as the user sees them. :func:`settings_to_scenario`
turns them back into model units and a :class:`~ningbo_sd.scenarios.schema.Scenario`;
:func:`scenario_to_settings` goes the other way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import param

from ningbo_sd.app.text import LANGUAGES
from ningbo_sd.model.metadata import MODEL_PATH
from ningbo_sd.scenarios.levers import PERIODS, SHAPES, Lever, load_levers
from ningbo_sd.scenarios.schema import PeriodSetting, Scenario, ScenarioError


@dataclass(frozen=True)
class LeverControl:
    """One slider: a lever's value for one period, one cluster, or the lever itself.

    Attributes
    ----------
    name : str
        Parameter name on the settings object (and in the URL).
    lever : Lever
        The lever the slider sets.
    part : str or None
        The period (path lever) or cluster (cluster lever); None for a constant lever.
    start, end, default, step : float
        Slider range, default and step in display units.
    shape_name : str or None
        Name of the step/ramp parameter (path levers only).
    plan_target : float or None
        The plan's target for this period, in display units.
    """

    name: str
    lever: Lever
    part: str | None
    start: float
    end: float
    default: float
    step: float
    shape_name: str | None
    plan_target: float | None

    def to_model(self, display_value: float) -> float:
        """Display value -> model value, clipped to the lever's range."""
        value = float(display_value) / self.lever.display_scale
        return float(min(max(value, self.lever.low), self.lever.high))


def to_display(value: float, scale: float) -> float:
    """Model value -> display value, rounded so that 0.066 shows as 6.6 and not 6.6000000001."""
    return round(float(value) * scale, 10)


def nice_step(span: float) -> float:
    """A slider step of 1, 2 or 5 times a power of ten, about a 500th of ``span``."""
    if not span > 0:
        return 1.0
    return 10.0 ** math.floor(math.log10(span / 500.0))


def _control_name(lever_id: str, part: str | None) -> str:
    if part is None:
        return lever_id
    return f"{lever_id}_{part}".replace("-", "_")


@lru_cache(maxsize=4)
def lever_controls(model_path: str | Path = MODEL_PATH) -> tuple[LeverControl, ...]:
    """The app's sliders, one per lever period, cluster or constant, in ``levers.yaml`` order.

    Parameters
    ----------
    model_path : str or Path
        The model the levers refer to.

    Returns
    -------
    tuple of LeverControl
    """
    controls = []
    for lever in load_levers(model_path).values():
        scale = lever.display_scale
        start, end = to_display(lever.low, scale), to_display(lever.high, scale)
        step = nice_step(end - start)
        target = lever.plan_target or {}
        if lever.kind == "path":
            for period in PERIODS:
                name = _control_name(lever.id, period)
                planned = target.get("value") if target.get("period") == period else None
                controls.append(
                    LeverControl(
                        name=name,
                        lever=lever,
                        part=period,
                        start=start,
                        end=end,
                        default=to_display(lever.default[period]["value"], scale),
                        step=step,
                        shape_name=f"{name}_shape",
                        plan_target=None if planned is None else to_display(planned, scale),
                    )
                )
        elif lever.kind == "cluster":
            for cluster, value in lever.default.items():
                controls.append(
                    LeverControl(
                        name=_control_name(lever.id, cluster),
                        lever=lever,
                        part=cluster,
                        start=start,
                        end=end,
                        default=to_display(value, scale),
                        step=step,
                        shape_name=None,
                        plan_target=None,
                    )
                )
        else:
            planned = target.get("value")
            controls.append(
                LeverControl(
                    name=_control_name(lever.id, None),
                    lever=lever,
                    part=None,
                    start=start,
                    end=end,
                    default=to_display(lever.default["value"], scale),
                    step=step,
                    shape_name=None,
                    plan_target=None if planned is None else to_display(planned, scale),
                )
            )
    return tuple(controls)


@lru_cache(maxsize=4)
def settings_class(model_path: str | Path = MODEL_PATH) -> type[param.Parameterized]:
    """A ``param.Parameterized`` class with one parameter per slider and step/ramp toggle.

    Built once per model from the lever registry, so a new lever in ``levers.yaml`` gets
    a slider, a URL field and a scenario-file entry without code changes. Parameters are
    bounded: a value out of range (from the URL, say) raises ``ValueError``.
    """
    attrs: dict = {
        "language": param.Selector(default="en", objects=list(LANGUAGES), doc="Label language"),
    }
    for control in lever_controls(model_path):
        attrs[control.name] = param.Number(
            default=control.default,
            bounds=(control.start, control.end),
            step=control.step,
            label=control.lever.label["en"],
            doc=control.lever.documentation,
        )
        if control.shape_name is not None:
            attrs[control.shape_name] = param.Selector(
                default=control.lever.default[control.part]["shape"], objects=list(SHAPES)
            )
    return type("LeverSettings", (param.Parameterized,), attrs)


def setting_names(model_path: str | Path = MODEL_PATH) -> list[str]:
    """Names of the settings that change the run (sliders and toggles, not the language)."""
    names = []
    for control in lever_controls(model_path):
        names.append(control.name)
        if control.shape_name is not None:
            names.append(control.shape_name)
    return names


def default_settings(model_path: str | Path = MODEL_PATH) -> dict:
    """Every slider and toggle at the model's default, by parameter name."""
    values: dict = {}
    for control in lever_controls(model_path):
        values[control.name] = control.default
        if control.shape_name is not None:
            values[control.shape_name] = control.lever.default[control.part]["shape"]
    return values


def scenario_to_settings(scenario: Scenario, model_path: str | Path = MODEL_PATH) -> tuple:
    """Slider values for a scenario and the parameters no slider covers.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    model_path : str or Path

    Returns
    -------
    settings : dict
        Every slider and toggle (defaults where the scenario is silent).
    extra_parameters : dict
        The scenario's ``parameters`` that are not lever constants, unchanged.
    """
    controls = {(c.lever.id, c.part): c for c in lever_controls(model_path)}
    values = default_settings(model_path)
    for lever_id, setting in scenario.levers.items():
        if not isinstance(setting, dict):
            control = controls[(lever_id, None)]
            values[control.name] = to_display(setting, control.lever.display_scale)
            continue
        for part, entry in setting.items():
            control = controls[(lever_id, part)]
            shape = entry.shape if isinstance(entry, PeriodSetting) else "step"
            value = entry.value if isinstance(entry, PeriodSetting) else entry
            if control.shape_name is not None:
                values[control.shape_name] = shape
            values[control.name] = to_display(value, control.lever.display_scale)
    # A scenario may also set a lever's model constant under `parameters` (applied last).
    lever_constants: dict[str, list[tuple[LeverControl, str]]] = {}
    for control in controls.values():
        lever = control.lever
        if lever.kind == "path":
            lever_constants.setdefault(lever.constant_name(control.part), []).append(
                (control, "value")
            )
            lever_constants.setdefault(lever.shape_name(control.part), []).append(
                (control, "shape")
            )
        else:
            lever_constants.setdefault(lever.model_name, []).append((control, "value"))
    extra: dict = {}
    for name, value in scenario.parameters.items():
        if name not in lever_constants:
            extra[name] = value
            continue
        for control, what in lever_constants[name]:
            item = value
            if control.lever.kind == "cluster":
                elements = list(control.lever.default)
                array = np.broadcast_to(np.asarray(value, dtype=float), (len(elements),))
                item = array[elements.index(control.part)]
            if what == "shape":
                values[control.shape_name] = "ramp" if float(item) >= 0.5 else "step"
            else:
                values[control.name] = to_display(float(item), control.lever.display_scale)
    return values, extra


def settings_to_scenario(
    settings: param.Parameterized,
    title: dict,
    description: dict,
    extra_parameters: dict | None = None,
    source: str = "app settings",
    model_path: str | Path = MODEL_PATH,
    targets: dict | None = None,
) -> Scenario:
    """The scenario the sliders describe (model units; every lever written out).

    Raises
    ------
    ScenarioError
        If the title or description is empty or a value is not accepted by the schema.
    """
    levers: dict = {}
    for control in lever_controls(model_path):
        value = control.to_model(getattr(settings, control.name))
        lever = control.lever
        if lever.kind == "path":
            shape = getattr(settings, control.shape_name)
            levers.setdefault(lever.id, {})[control.part] = {"value": value, "shape": shape}
        elif lever.kind == "cluster":
            levers.setdefault(lever.id, {})[control.part] = value
        else:
            levers[lever.id] = value
    parameters = {
        name: (np.asarray(value, dtype=float).tolist() if np.ndim(value) else float(value))
        for name, value in (extra_parameters or {}).items()
    }
    data = {
        "title": title,
        "description": description,
        "levers": levers,
        "parameters": parameters,
        "targets": dict(targets or {}),
    }
    try:
        return Scenario.model_validate({**data, "source": source})
    except ValueError as exc:
        raise ScenarioError(f"{source}: {str(exc).splitlines()[0]}") from None
