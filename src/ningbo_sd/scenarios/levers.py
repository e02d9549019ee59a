"""The policy levers a scenario can set, read from ``levers.yaml`` and the model file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from ningbo_sd.io import read_yaml_file
from ningbo_sd.model.metadata import MODEL_PATH, read_metadata
from ningbo_sd.resources import registry_file

LEVERS_FILE = registry_file("levers")
PERIODS: dict[str, str] = {"2021-2025": "2021 2025", "2026-2035": "2026 2035"}
SHAPES: dict[str, float] = {"step": 0.0, "ramp": 1.0}


@dataclass(frozen=True)
class Lever:
    """One policy lever: its model constants, labels, range and default.

    Attributes
    ----------
    id : str
        Identifier used in scenario files.
    kind : {"path", "cluster", "constant"}
        A time path with a value per plan period, a per-cluster constant, or a scalar.
    model_name : str
        Vensim name (the stem for path levers).
    family : str
        Slider group in the app.
    label : dict
        ``{"en": ..., "zh": ...}``.
    unit : dict
        Display unit ``{"en": ..., "zh": ...}``.
    display_scale : float
        Multiply model values by this to display them (0.13 -> 13 %).
    low, high : float
        Allowed range, from the model file.
    default : dict
        Default value per period (path), per cluster (cluster) or ``{"value": x}``.
    documentation : str
        The model's documentation line.
    plan_target : dict or None
        The plan's target for the lever, with its source and quote.
    """

    id: str
    kind: Literal["path", "cluster", "constant"]
    model_name: str
    family: str
    label: dict
    unit: dict
    display_scale: float
    low: float
    high: float
    default: dict
    documentation: str
    plan_target: dict | None

    def constant_name(self, period: str) -> str:
        """Model constant holding this path lever's value for ``period``."""
        return f"{self.model_name} {PERIODS[period]}"

    def shape_name(self, period: str) -> str:
        """Model constant holding this path lever's shape for ``period``."""
        return f"{self.model_name} Shape {PERIODS[period]}"


@lru_cache(maxsize=4)
def load_levers(model_path: str | Path = MODEL_PATH) -> dict[str, Lever]:
    """Read the lever registry, with ranges and defaults from the model file.

    Parameters
    ----------
    model_path : str or Path
        The `.mdl` file the levers refer to.

    Returns
    -------
    dict of str to Lever
    """
    meta = read_metadata(model_path)
    spec = read_yaml_file(LEVERS_FILE)
    levers: dict[str, Lever] = {}
    for lever_id, entry in spec.items():
        kind = entry["kind"]
        if kind == "path":
            first = meta[f"{entry['model_name']} {PERIODS['2021-2025']}"]
            default = {}
            for period in PERIODS:
                value = meta[f"{entry['model_name']} {PERIODS[period]}"].default
                shape = meta[f"{entry['model_name']} Shape {PERIODS[period]}"].default
                default[period] = {
                    "value": float(value),
                    "shape": "ramp" if shape == 1 else "step",
                }
        else:
            first = meta[entry["model_name"]]
            if kind == "cluster":
                elements = meta.subscripts[first.subscripts[0]]
                default = dict(zip(elements, np.asarray(first.default).tolist(), strict=True))
            else:
                default = {"value": float(first.default)}
        levers[lever_id] = Lever(
            id=lever_id,
            kind=kind,
            model_name=entry["model_name"],
            family=entry["family"],
            label=entry["label"],
            unit=entry["unit"],
            display_scale=float(entry.get("display_scale", 1)),
            low=first.low,
            high=first.high,
            default=default,
            documentation=first.documentation,
            plan_target=entry.get("plan_target"),
        )
    return levers
