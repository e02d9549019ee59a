"""Where the project's data files are: the one place that knows.

Every data file (the model, its outputs table, scenarios and registries, the plan's figures,
the calibration) is shipped inside the package under ``ningbo_sd/data`` and found through
:mod:`importlib.resources`, so an installed wheel works from any directory. In a source
checkout ``src/ningbo_sd/data/{model,scenarios,calibration}`` are links to the repository's
top-level folders of the same names, which stay where people look for them.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

__all__ = [
    "calibrated_file",
    "calibration_data_dir",
    "calibration_dir",
    "data_dir",
    "is_default_calibration",
    "model_dir",
    "model_file",
    "registry_file",
    "scenario_dir",
]


@cache
def data_dir() -> Path:
    """The package's data folder (``ningbo_sd/data``)."""
    return Path(str(files("ningbo_sd") / "data"))


def model_dir() -> Path:
    """``model/``: the Vensim model and its outputs table."""
    return data_dir() / "model"


def model_file() -> Path:
    """The Ningbo model, ``model/ningbo.mdl``."""
    return model_dir() / "ningbo.mdl"


def scenario_dir() -> Path:
    """``scenarios/``: the bundled scenario files (scenarios only)."""
    return data_dir() / "scenarios"


def registry_file(name: str) -> Path:
    """A registry beside the scenarios: ``levers``, ``targets`` or ``uncertainty`` (YAML)."""
    return scenario_dir() / "registry" / f"{name}.yaml"


def calibration_dir() -> Path:
    """``calibration/``: the calibration's results (point estimate, posterior, reports)."""
    return data_dir() / "calibration"


def calibration_data_dir() -> Path:
    """``calibration/data/``: the plan's figures, targets, indicators and assumptions."""
    return calibration_dir() / "data"


def calibrated_file() -> Path:
    """The default calibration's point estimate, ``calibration/calibrated.yaml``."""
    return calibration_dir() / "calibrated.yaml"


def is_default_calibration(path: str | Path | None) -> bool:
    """Whether ``path`` is the default calibration (None stands for it)."""
    return path is None or Path(path).resolve() == calibrated_file().resolve()
