"""Tables and files of a calibration: fit table, parameter table, YAML, JSON and CSV.

- The *fit table* has one row per observation of ``observations.csv``: observed,
  simulated (at the calibrated point), tolerance, the residual in tolerances, within or
  outside the tolerance, a 90 % posterior-predictive band, and the status (fitted,
  secondary, not fitted, not modelled) with the reason.
- The *parameter table* has one row per fitted parameter: register default and range,
  the calibrated value, the Laplace (Jacobian) standard error and 95 % interval, the
  posterior mean, sd and 95 % interval, and the identifiability verdict.
- ``calibrated.yaml`` holds ``parameters:`` (Vensim name -> value), which
  ``ningbo_sd.scenarios.run.base_parameters`` reads, plus the intervals and a summary.

Every file is written to a temporary file in the same folder and then moved into place.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ningbo_sd.calibration.fit import FitResult
from ningbo_sd.calibration.observations import STATUS_FITTED
from ningbo_sd.calibration.posterior import (
    PosteriorResult,
    correlations,
    identifiability,
    strong_pairs,
)
from ningbo_sd.io import atomic_write, write_text_atomically

REPORT_JSON = "calibration_report.json"
REPORT_CSV = "calibration_report.csv"
POSTERIOR_FILE = "posterior.parquet"
PREDICTIVE_DRAWS = 500
#: A fitted value within this share of its range's width from an end sits *at* that bound.
BOUND_TOLERANCE = 1e-3
#: Significant digits of the values in calibrated.yaml.
SIGNIFICANT_DIGITS = 6
FIT_COLUMNS = (
    "id",
    "indicator",
    "measure",
    "year_start",
    "year",
    "unit",
    "basis",
    "observed",
    "simulated",
    "tolerance",
    "residual",
    "within",
    "predictive_q05",
    "predictive_q95",
    "status",
    "reason",
)


def fit_table(fit: FitResult, posterior: PosteriorResult | None = None) -> pd.DataFrame:
    """One row per observation: observed, simulated, tolerance, within/outside, status.

    Parameters
    ----------
    fit : FitResult
        The calibrated point.
    posterior : PosteriorResult, optional
        When given, adds the 5-95 % posterior-predictive band of each computable
        observation (from an evenly spaced subset of the draws, one batch run).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`FIT_COLUMNS`; ``within`` is ``within``, ``outside`` or empty for
        rows the model cannot compute.
    """
    problem = fit.problem
    simulated = problem.simulate(fit.theta[None, :])[0]
    by_id = dict(zip([t.id for t in problem.computable], simulated, strict=True))
    band: dict[str, tuple[float, float]] = {}
    if posterior is not None:
        theta = posterior.thinned(PREDICTIVE_DRAWS)[problem.names].to_numpy()
        predictive = problem.simulate(theta)
        low, high = np.quantile(predictive, [0.05, 0.95], axis=0)
        band = {
            t.id: (float(a), float(b))
            for t, a, b in zip(problem.computable, low, high, strict=True)
        }
    rows = []
    for term in problem.terms:
        value = by_id.get(term.id, math.nan)
        residual = (value - term.value) / term.tolerance if term.computable else math.nan
        if term.computable:
            within = "within" if abs(value - term.value) <= term.tolerance else "outside"
        else:
            within = ""
        q05, q95 = band.get(term.id, (math.nan, math.nan))
        rows.append(
            (
                term.id,
                term.indicator,
                term.measure,
                term.year_start,
                term.year,
                term.unit,
                term.basis,
                term.value,
                value,
                term.tolerance,
                residual,
                within,
                q05,
                q95,
                term.status,
                term.reason,
            )
        )
    table = pd.DataFrame(rows, columns=list(FIT_COLUMNS))
    table["year_start"] = table["year_start"].astype("Int64")
    return table


def parameter_table(fit: FitResult, posterior: PosteriorResult | None = None) -> pd.DataFrame:
    """One row per fitted parameter: default, range, fit, Laplace and posterior intervals.

    Parameters
    ----------
    fit : FitResult
    posterior : PosteriorResult, optional

    Returns
    -------
    pandas.DataFrame
        Indexed by Vensim name.
    """
    problem = fit.problem
    low, high = fit.interval(0.95)
    table = pd.DataFrame(
        {
            "unit": [p.assumption.unit for p in problem.parameters],
            "category": [p.assumption.category for p in problem.parameters],
            "default": [p.default for p in problem.parameters],
            "low": problem.lower,
            "high": problem.upper,
            "calibrated": fit.theta,
            "laplace_sd": fit.sd,
            "laplace_q025": low,
            "laplace_q975": high,
            "start_spread_sd": fit.start_spread(),
        },
        index=pd.Index(problem.names, name="parameter"),
    )
    table["at_bound"] = [
        bound_side(value, lo, hi)
        for value, lo, hi in zip(fit.theta, problem.lower, problem.upper, strict=True)
    ]
    if posterior is not None:
        ident = identifiability(posterior)
        table = table.join(
            ident.rename(columns={"q025": "posterior_q025", "q975": "posterior_q975"})
        )
        table = table.drop(columns=["median"])
    return table


def bound_side(value: float, low: float, high: float, tolerance: float = BOUND_TOLERANCE) -> str:
    """``"lower"`` or ``"upper"`` when ``value`` sits at that end of ``[low, high]``, else ``""``.

    A fitted parameter at a bound of its register range is held there by the range, not by
    the data: the data pull it further, its Laplace interval is not a standard error and its
    posterior is cut off at the bound. Either the range is too narrow (widen it, with
    evidence) or the structure misses something the parameter is standing in for.
    """
    width = high - low
    if not width > 0:
        return ""
    if value - low <= tolerance * width:
        return "lower"
    if high - value <= tolerance * width:
        return "upper"
    return ""


def parameters_at_bound(calibrated: str | Path) -> pd.DataFrame:
    """The fitted parameters at a bound of their range, from the report beside ``calibrated``.

    Parameters
    ----------
    calibrated : str or Path
        A ``calibrated.yaml``; its ``calibration_report.json`` lies beside it.

    Returns
    -------
    pandas.DataFrame
        Columns ``parameter``, ``calibrated``, ``low``, ``high``, ``side`` (``lower`` or
        ``upper``); empty when none is at a bound or there is no report.
    """
    columns = ["parameter", "calibrated", "low", "high", "side"]
    report = Path(calibrated).parent / REPORT_JSON
    if not report.is_file():
        return pd.DataFrame(columns=columns)
    rows = []
    for entry in json.loads(report.read_text(encoding="utf-8")).get("parameters", []):
        value, low, high = (entry.get(key) for key in ("calibrated", "low", "high"))
        if not all(isinstance(x, int | float) for x in (value, low, high)):
            continue
        side = bound_side(float(value), float(low), float(high))
        if side:
            rows.append([entry["parameter"], float(value), float(low), float(high), side])
    return pd.DataFrame(rows, columns=columns)


def summary(fit: FitResult, table: pd.DataFrame) -> dict:
    """Headline numbers of a calibration (cost, chi-square, counts within tolerance).

    Parameters
    ----------
    fit : FitResult
    table : pandas.DataFrame
        From :func:`fit_table`.

    Returns
    -------
    dict
    """
    fitted = table[table["status"] == STATUS_FITTED]
    computed_not_fitted = (table["status"] != STATUS_FITTED) & table["within"].ne("")
    dof = len(fitted) - fit.problem.n_parameters
    return {
        "cost": float(fit.cost),
        "data_chi_square": fit.data_chi_square,
        "observations": len(table),
        "fitted": len(fitted),
        "fitted_within": int((fitted["within"] == "within").sum()),
        "fitted_outside": int((fitted["within"] == "outside").sum()),
        "computed_not_fitted": int(computed_not_fitted.sum()),
        "not_modelled": int((table["within"] == "").sum()),
        "parameters": fit.problem.n_parameters,
        "degrees_of_freedom": dof,
        "starts": len(fit.starts),
        "start_costs": [float(s.cost) for s in fit.starts],
        "starts_at_best": int(sum(s.cost <= fit.cost + 1.0 for s in fit.starts)),
    }


def _clean(value):
    """JSON-safe value: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA:
        return None
    return value


def significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """Round to ``digits`` significant digits (the files carry no false precision)."""
    return float(f"{float(value):.{digits}g}")


def calibrated_parameters(fit: FitResult) -> dict[str, float | list[float]]:
    """Vensim name -> calibrated model value (lists for subscripted constants).

    Values are rounded to :data:`SIGNIFICANT_DIGITS` significant digits and kept inside
    the register's bounds.
    """
    out: dict[str, float | list[float]] = {}
    for spec, value in zip(fit.problem.parameters, fit.theta, strict=True):
        rounded = min(max(significant(value), spec.low), spec.high)
        model_value = spec.assumption.model_value(rounded)
        out[spec.name] = (
            [significant(v) for v in model_value]
            if isinstance(model_value, np.ndarray)
            else float(model_value)
        )
    return out


def calibrated_yaml(fit: FitResult, parameters: pd.DataFrame, settings: dict) -> str:
    """Text of ``calibrated.yaml``: ``parameters`` plus intervals and a summary.

    Parameters
    ----------
    fit : FitResult
    parameters : pandas.DataFrame
        From :func:`parameter_table`.
    settings : dict
        How the calibration was run (seed, starts, draws...).

    Returns
    -------
    str
    """
    intervals = {}
    for name, row in parameters.iterrows():
        entry = {
            "laplace_95": [
                significant(row["laplace_q025"], 4),
                significant(row["laplace_q975"], 4),
            ],
        }
        if "posterior_q025" in row:
            entry["posterior_95"] = [
                significant(row["posterior_q025"], 4),
                significant(row["posterior_q975"], 4),
            ]
            entry["verdict"] = str(row["verdict"])
        intervals[name] = entry
    document = {
        "parameters": calibrated_parameters(fit),
        "intervals": intervals,
        "settings": _clean(settings),
    }
    through = settings.get("through")
    window = (
        "# 2015-2020 observations (calibration/data/observations.csv, and the published\n"
        "# figures of 2015 and 2020 in actuals.csv) with priors from the\n"
        if through is None
        else f"# observations and published figures of 2015-{through} (--through {through}:\n"
        "# calibration/data/observations.csv and actuals.csv) with priors from the\n"
    )
    header = (
        "# Calibrated parameters of model/ningbo.mdl: bounded least squares against the\n"
        + window
        + "# assumptions register. Written by `ningbo-sd calibrate`; do not edit by hand.\n"
        "# scenarios/run.py reads `parameters` (Vensim name -> value) as every run's base.\n"
        "# Intervals are 95 %: Laplace (Jacobian) and posterior (emcee) quantiles;\n"
        "# the full report is calibration_report.json / .csv next to this file.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def report_document(
    fit: FitResult,
    table: pd.DataFrame,
    parameters: pd.DataFrame,
    posterior: PosteriorResult | None,
    settings: dict,
) -> dict:
    """The JSON report: settings, summary, parameters, identifiability, fit table.

    Parameters
    ----------
    fit : FitResult
    table : pandas.DataFrame
        From :func:`fit_table`.
    parameters : pandas.DataFrame
        From :func:`parameter_table`.
    posterior : PosteriorResult or None
    settings : dict

    Returns
    -------
    dict
        JSON-serialisable.
    """
    document = {
        "settings": settings,
        "summary": {
            **summary(fit, table),
            "at_bound": [name for name, side in parameters["at_bound"].items() if side],
        },
        "parameters": parameters.reset_index().to_dict(orient="records"),
        "fit_table": table.astype(object).where(table.notna(), None).to_dict(orient="records"),
    }
    if posterior is not None:
        corr = correlations(posterior)
        document["posterior"] = {
            "walkers": posterior.walkers,
            "steps": posterior.steps,
            "burn_in": posterior.burn_in,
            "thin": posterior.thin,
            "draws": len(posterior.draws),
            "acceptance": posterior.acceptance,
            "autocorrelation_steps": dict(
                zip(fit.problem.names, posterior.autocorrelation, strict=True)
            ),
            "effective_size": posterior.effective_size,
            "strong_correlations": strong_pairs(corr).to_dict(orient="records"),
            "correlation": corr.to_dict(),
        }
    return _clean(document)


def write_outputs(
    fit: FitResult,
    posterior: PosteriorResult | None,
    output: str | Path,
    settings: dict,
    keep_draws: int = 2000,
) -> dict[str, Path]:
    """Write ``calibrated.yaml`` and, next to it, the JSON and CSV report and the draws.

    Parameters
    ----------
    fit : FitResult
    posterior : PosteriorResult or None
        Without it, no draws are written and the report has Laplace intervals only.
    output : str or Path
        The YAML file (e.g. ``calibration/calibrated.yaml``).
    settings : dict
        Recorded in the files.
    keep_draws : int
        Thinned draws written to ``posterior.parquet``.

    Returns
    -------
    dict
        Kind -> path written.
    """
    from ningbo_sd.calibration.posterior import write_draws

    output = Path(output)
    if output.suffix not in (".yaml", ".yml"):
        raise ValueError(f"--output {output}: the calibrated parameters are a .yaml file")
    folder = output.parent
    table = fit_table(fit, posterior)
    parameters = parameter_table(fit, posterior)
    written: dict[str, Path] = {}
    if posterior is not None:
        written["posterior"] = write_draws(posterior.thinned(keep_draws), folder / POSTERIOR_FILE)
        settings = {**settings, "posterior_file": POSTERIOR_FILE}
    document = report_document(fit, table, parameters, posterior, settings)
    written["report_json"] = write_text_atomically(
        folder / REPORT_JSON, json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    )
    written["report_csv"] = atomic_write(
        folder / REPORT_CSV, lambda tmp: table.to_csv(tmp, index=False, encoding="utf-8")
    )
    written["calibrated"] = write_text_atomically(
        output, calibrated_yaml(fit, parameters, settings)
    )
    return written
