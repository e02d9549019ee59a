"""Hindcast: calibrate on 2015-2018 only, forecast 2019-2020, and score the forecast.

The out-of-sample test that needs no outside data beyond what the calibration itself may
use: ``ningbo-sd calibrate --through 2018 -o calibration/hindcast/calibrated.yaml`` fits the
plan's figures and the published actuals up to 2018 (committed, with its posterior); this
section runs the model from that calibration and its posterior, and compares every figure
of 2019-2020 (the plan's and the published ones) with the point run and the band.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.calibration.history import effective_sample_size
from ningbo_sd.calibration.observations import (
    STATUS_FITTED,
    STATUS_NOT_FITTED,
    actual_terms,
    build_terms,
    load_observation_map,
)
from ningbo_sd.calibration.problem import load_problem
from ningbo_sd.resources import calibration_dir
from ningbo_sd.uncertainty.discrepancy import (
    LEVEL_MEASURES,
    Discrepancy,
    estimate,
    load_discrepancy,
    to_log,
)
from ningbo_sd.validation import Section
from ningbo_sd.validation.evidence import (
    BAND_SAMPLES,
    BAND_SEED,
    append_indicator_rows,
    append_row,
    band_results,
    compare_terms,
    error_summary,
    indicator_errors,
    term_values,
)

HINDCAST_FILE = calibration_dir() / "hindcast" / "calibrated.yaml"
THROUGH = 2018
WINDOW = range(2019, 2021)
TITLE = f"Hindcast: fit to {THROUGH}, forecast {WINDOW.start}-{WINDOW.stop - 1}"


def missing_calibration(name: str, title: str, path: Path, through: int, output: str) -> Section:
    """The section of a check whose calibration file is missing: no rows, and how to make it.

    Parameters
    ----------
    name, title : str
        The section's.
    path : Path
        Where the calibration was looked for.
    through : int
        The last year it fits (``ningbo-sd calibrate --through``).
    output : str
        The rest of the command that writes it (``-o ...``, options).
    """
    summary = (
        f"no calibration through {through} at {path}: run `ningbo-sd calibrate "
        f"--through {through} {output}`"
    )
    return Section(name, title, pd.DataFrame(), summary)  # no rows: nothing was compared


def hindcast(
    calibrated: str | Path = HINDCAST_FILE,
    n_samples: int = BAND_SAMPLES,
    seed: int = BAND_SEED,
) -> Section:
    """Score the 2019-2020 forecast of the calibration through 2018 (informative).

    Parameters
    ----------
    calibrated : path
        The calibration through 2018; its ``posterior.parquet`` beside it gives the band.
    n_samples, seed : int
        The band's ensemble.

    Returns
    -------
    Section
        One row per 2019-2020 figure the model computes, primary ones counted, one
        ``by indicator`` row per indicator, and the ``discrepancy`` row.
    """
    from ningbo_sd.plan.data import load_observations
    from ningbo_sd.scenarios.run import run_batch

    calibrated = Path(calibrated)
    if not calibrated.is_file():
        return missing_calibration(
            "hindcast", TITLE, calibrated, THROUGH, "-o calibration/hindcast/calibrated.yaml"
        )
    terms = build_terms(load_observations(), load_observation_map()) + actual_terms()
    terms = [
        term
        for term in terms
        if term.column is not None
        and term.year in WINDOW
        and term.status in (STATUS_FITTED, STATUS_NOT_FITTED)
        and (term.year_start is None or term.year_start >= 2015)
    ]
    point = term_values(terms, run_batch(calibrated=calibrated))[0]
    posterior = calibrated.parent / "posterior.parquet"
    fitted = [term for term in load_problem(through=THROUGH).terms if term.status == STATUS_FITTED]
    results, log_weights = band_results(
        None, calibrated, n_samples, seed, posterior if posterior.is_file() else None, fitted
    )
    ensemble = term_values(terms, results)
    table = compare_terms(terms, point, ensemble, log_weights=log_weights)
    figures, text = error_summary(table)
    text += f"; effective sample size {effective_sample_size(log_weights):,.0f}"
    found, n_errors = estimate_discrepancy(table)
    table = append_indicator_rows(table, indicator_errors(table))
    recorded = load_discrepancy()
    agrees = recorded is not None and all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        for a, b in ((found.sd, recorded.sd), (found.correlation, recorded.correlation))
    )
    text += (
        f"; discrepancy from these {n_errors} forecast errors: sd {found.sd:.3f}, "
        f"correlation {found.correlation:.2f}"
    )
    table = append_row(table, {
        "id": "discrepancy",
        "measure": "sd, correlation",
        "observed": recorded.sd if recorded is not None else np.nan,
        "model": found.sd,
        "status": "info" if agrees else "fail",
        "reason": (
            f"estimated sd {found.sd:.4f}, correlation {found.correlation:.4f} "
            + (
                f"{'=' if agrees else '!='} recorded {recorded.sd:.4f}, "
                f"{recorded.correlation:.4f}"
                if recorded is not None
                else "(nothing recorded)"
            )
            + ("" if agrees else ": run `ningbo-sd check --record`")
        ),
    })  # fmt: skip
    summary = (
        f"calibrated through {THROUGH}, forecasting {WINDOW.start}-{WINDOW.stop - 1}: "
        f"{figures['compared']} figures, {text} ({n_samples:,} samples, seed {seed})"
    )
    return Section("hindcast", TITLE, table, summary)


def forecast_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Log-scale errors of the compared rows that have a log scale.

    Columns ``id``, ``error`` (``log observed - log model``), ``span`` (0 for a level) and
    ``model_variance`` (the ensemble's, from its 90% band: ``((log q95 - log q05) / 3.29)^2``).
    """
    rows = []
    counted = table[(table["status"] == "compared") & table["model"].notna()]
    for _, row in counted.iterrows():
        level = row["measure"] in LEVEL_MEASURES
        if not level and pd.isna(row["year_start"]):
            continue
        span = None if level else int(row["year"]) - int(row["year_start"])
        logged = to_log(
            [row["observed"], row["model"], row["q05"], row["q95"]], row["measure"], span
        )
        if not np.isfinite(logged).all():
            continue  # no log scale (points, absolute changes) or a non-positive value
        width = (logged[3] - logged[2]) / (2 * 1.6448536269514722)
        rows.append(
            {"id": row["id"], "error": logged[0] - logged[1], "span": span or 0,
             "model_variance": width**2}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["id", "error", "span", "model_variance"])


def estimate_discrepancy(table: pd.DataFrame) -> tuple[Discrepancy, int]:
    """The maximum-likelihood discrepancy of a hindcast table, and how many errors it used."""
    errors = forecast_errors(table)
    found, _ = estimate(errors["error"], errors["span"], errors["model_variance"])
    return found, len(errors)
