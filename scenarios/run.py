"""The one way to turn a scenario into parameters and run the model.

The CLI, the app, the calibration, the Monte Carlo and the notebooks all call these
functions; none keeps its own copy of the model's logic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from model.metadata import MODEL_PATH
from model.outputs import headline_frame, required_variables
from scenarios.schema import Scenario, load_scenario, scenario_parameters

CALIBRATED_FILE = Path(__file__).resolve().parents[1] / "calibration" / "calibrated.yaml"
ENGINES = ("pysd",)


def base_parameters(path: str | Path | None = CALIBRATED_FILE) -> dict:
    """Parameters every run starts from: the calibrated values, where a calibration exists.

    Parameters
    ----------
    path : str or Path or None
        A calibration result with a ``parameters`` mapping (Vensim name -> value);
        ``None`` or a missing file means the model file's own defaults.

    Returns
    -------
    dict
    """
    if path is None or not Path(path).is_file():
        return {}
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {
        name: (np.asarray(value, dtype=float) if isinstance(value, list) else float(value))
        for name, value in (data.get("parameters") or {}).items()
    }


def resolve_parameters(
    scenario: Scenario | str | Path | None = None,
    overrides: dict | None = None,
    model_path: str | Path = MODEL_PATH,
    calibrated: str | Path | None = CALIBRATED_FILE,
) -> dict:
    """Merge calibrated base values, a scenario's settings and explicit overrides.

    Later sources win: base (calibration) < scenario < overrides.
    """
    params = base_parameters(calibrated) if Path(model_path) == MODEL_PATH else {}
    if scenario is not None:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario, model_path)
        params.update(scenario_parameters(scenario, model_path))
    params.update(overrides or {})
    return params


def run_raw(
    params: dict | None = None,
    model_path: str | Path = MODEL_PATH,
    engine: str = "pysd",
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Run the model once and return raw Vensim-named results indexed by time."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    from model.reference import run_pysd

    return run_pysd(params, model_path, return_columns=columns)


def run_scenario(
    scenario: Scenario | str | Path | None = None,
    overrides: dict | None = None,
    engine: str = "pysd",
    calibrated: str | Path | None = CALIBRATED_FILE,
) -> pd.DataFrame:
    """Run a scenario of the Ningbo model, 2015-2035, and return the headline table.

    Parameters
    ----------
    scenario : Scenario, path or None
        A scenario, a YAML file or a bundled scenario's name; ``None`` runs the defaults.
    overrides : dict, optional
        Constant overrides by Vensim name, applied last.
    engine : str
        ``"pysd"`` (reference).
    calibrated : path or None
        Calibration result to start from (``None``: the model file's defaults).

    Returns
    -------
    pandas.DataFrame
        One row per year (index ``year``), the columns of ``model/outputs.yaml``.
    """
    params = resolve_parameters(scenario, overrides, MODEL_PATH, calibrated)
    raw = run_raw(params, MODEL_PATH, engine, columns=required_variables())
    return headline_frame(raw)
