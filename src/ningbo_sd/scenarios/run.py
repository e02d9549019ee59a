"""The one way to turn a scenario into parameters and run the model.

The CLI, the app, the calibration, the Monte Carlo and the notebooks all call these
functions; none keeps its own copy of the model's logic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ningbo_sd.io import read_yaml_file
from ningbo_sd.model.metadata import MODEL_PATH, ModelFileError
from ningbo_sd.model.outputs import (
    BINDING_LABELS,
    TIMING_OFFSETS,
    annual_years,
    headline_frame,
    output_columns,
    required_variables,
    year_rows,
)
from ningbo_sd.model.safety import check_model_text
from ningbo_sd.resources import calibrated_file

if TYPE_CHECKING:
    import xarray as xr

    from ningbo_sd.scenarios.schema import Scenario

CALIBRATED_FILE = calibrated_file()
ENGINES = ("batch", "pysd")


@lru_cache(maxsize=4)
def _compiled(path: str, mtime: float):
    from ningbo_sd.engine.engine import compile_model

    check_model_text(path)  # PySD's parser evaluates some model text (docs/security.md)
    return compile_model(path)


def compiled_model(model_path: str | Path = MODEL_PATH):
    """The batch engine's compiled model for a `.mdl` file (compiled once per process).

    Raises
    ------
    ModelFileError
        If the file is missing or cannot be parsed.
    """
    path = Path(model_path).resolve()
    if not path.is_file():
        raise ModelFileError(f"{model_path}: model file not found (expected a Vensim .mdl file)")
    try:
        return _compiled(str(path), path.stat().st_mtime)
    except (ModelFileError, KeyError):
        raise
    except Exception as exc:
        if type(exc).__name__ == "UnsupportedConstructError":
            raise ModelFileError(f"{model_path}: {exc}") from exc
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{model_path}: cannot parse the Vensim model: {text}") from exc


@lru_cache(maxsize=4)
def _read_calibrated(path: str, mtime: float) -> dict:
    data = read_yaml_file(path) or {}
    return {
        name: (np.asarray(value, dtype=float) if isinstance(value, list) else float(value))
        for name, value in (data.get("parameters") or {}).items()
    }


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
    path = Path(path).resolve()
    return dict(_read_calibrated(str(path), path.stat().st_mtime))  # a copy: callers update it


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
        # imported here: a run of the defaults needs no scenario schema (pydantic)
        from ningbo_sd.scenarios.schema import Scenario, load_scenario, scenario_parameters

        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario, model_path)
        params.update(scenario_parameters(scenario, model_path))
    params.update(overrides or {})
    return params


def run_raw(
    params: dict | None = None,
    model_path: str | Path = MODEL_PATH,
    engine: str = "batch",
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Run the model once and return raw Vensim-named results indexed by time.

    Parameters
    ----------
    params : dict, optional
        Constant overrides by Vensim name.
    model_path : str or Path
        The `.mdl` file.
    engine : {"batch", "pysd"}
        The compiled numpy engine (default) or PySD (the reference).
    columns : list of str, optional
        Variables to return (default: all).

    Returns
    -------
    pandas.DataFrame
        Indexed by time; subscripted variables as ``Name[elem]`` columns.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "pysd":
        from ningbo_sd.model.reference import run_pysd

        return run_pysd(params, model_path, return_columns=columns)
    return compiled_model(model_path).run_one(params, keep=columns)


def run_scenario(
    scenario: Scenario | str | Path | None = None,
    overrides: dict | None = None,
    engine: str = "batch",
    calibrated: str | Path | None = CALIBRATED_FILE,
) -> pd.DataFrame:
    """Run a scenario of the Ningbo model, 2015-2035, and return the headline table.

    Parameters
    ----------
    scenario : Scenario, path or None
        A scenario, a YAML file or a bundled scenario's name; ``None`` runs the defaults.
    overrides : dict, optional
        Constant overrides by Vensim name, applied last.
    engine : {"batch", "pysd"}
        The compiled engine (default) or PySD (the reference).
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


def headline_dataset(raw: xr.Dataset) -> xr.Dataset:
    """Turn a batch of raw results into headline variables over (sample, year).

    ``binding_constraint`` stays a small integer code (0 capital, 1 land, 2 energy; the
    names are in its ``labels`` attribute) so that batches stay numeric.
    """
    variables = {}
    times = raw["time"].to_numpy()
    years = annual_years(times)
    rows = {timing: year_rows(times, years, timing) for timing in TIMING_OFFSETS}
    # each raw variable once as (sample, time[, cluster]), with its cluster names
    arrays: dict[str, tuple[np.ndarray, list]] = {}
    for column in output_columns():
        name, _, element = column.variable.partition("[")
        if name not in arrays:
            data = raw[name]
            order = ("sample", "time", *(d for d in data.dims if d not in ("sample", "time")))
            clusters = data["cluster"].to_numpy().tolist() if "cluster" in data.dims else []
            arrays[name] = (
                (data if data.dims == order else data.transpose(*order)).values,
                clusters,
            )
        values, clusters = arrays[name]
        values = values[:, rows[column.timing]]
        if element:
            values = values[:, :, clusters.index(element.rstrip("]"))]
        if column.name == "binding_constraint":
            values = values.round().astype(np.int8)
            attrs = {"labels": list(BINDING_LABELS)}
        else:
            values = values * column.scale if column.scale != 1.0 else values
            attrs = {"units": column.unit, "label_en": column.label_en, "label_zh": column.label_zh}
        variables[column.name] = (("sample", "year"), values, attrs)
    # plain (dims, values, attrs) with the coordinates given once: no alignment pass
    import xarray as xr

    return xr.Dataset(variables, coords={"sample": raw["sample"].to_numpy(), "year": years})


def run_batch(
    samples: pd.DataFrame | None = None,
    scenario: Scenario | str | Path | None = None,
    overrides: dict | None = None,
    calibrated: str | Path | None = CALIBRATED_FILE,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> xr.Dataset:
    """Run many parameter samples of a scenario with the batch engine.

    Parameters
    ----------
    samples : pandas.DataFrame, optional
        One row per sample; columns are Vensim constant names (``Name[elem]`` for one
        element of a subscripted constant). Omitted: one sample.
    scenario, overrides, calibrated
        As in :func:`run_scenario`; they apply to every sample, and the sample table
        wins over them.
    chunk_size, threads : int, optional
        Passed to the engine.

    Returns
    -------
    xarray.Dataset
        Headline variables over ``(sample, year)``.
    """
    params = resolve_parameters(scenario, overrides, MODEL_PATH, calibrated)
    model = compiled_model(MODEL_PATH)
    n = 1 if samples is None else len(samples)
    table: dict = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=float)
        table[name] = np.broadcast_to(value, (n, *value.shape))
    if samples is not None:
        # ``Name[elem]`` columns are applied by the engine on top of ``Name``'s values
        table.update({str(c): samples[c].to_numpy(dtype=float) for c in samples.columns})
    if n > 1 and not table:
        table["INITIAL TIME"] = np.full(n, float(model.constants["INITIAL TIME"]))
    raw = model.run(
        table or None, keep=required_variables(), chunk_size=chunk_size, threads=threads
    )
    return headline_dataset(raw)
