"""Ceiling: how close the structure comes to the published figures when it is fitted to them.

The out-of-sample check asks how well the default calibration (fitted to 2015-2020) forecasts
the figures it did not see. It cannot say whether a miss is the structure's or the
calibration's: a figure may be missed because 2015-2020 could not tell the calibration what it
needed, or because no parameter values inside the register's ranges reproduce it.

``ningbo-sd calibrate --through 2025 --draws 0 -o calibration/ceiling/calibrated.yaml`` fits
every figure a calibration may use (the plan's 2015-2020 figures and the published actuals
through 2025; committed, without a posterior). This section runs the model from it and sets
its errors beside the default's, figure by figure, on the figures the default forecasts out
of sample. A figure missed by more than its tolerance even when fitted is ``unreached``: the
structure's limit, which no recalibration mends. It never serves a forecast: the default
calibration stays the one fitted to 2015-2020.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.calibration.history import fitted_terms
from ningbo_sd.calibration.observations import STATUS_FITTED, STATUS_NOT_FITTED, actual_terms
from ningbo_sd.io import format_number
from ningbo_sd.resources import calibrated_file, calibration_dir
from ningbo_sd.validation import Section
from ningbo_sd.validation.evidence import compare_terms, term_values
from ningbo_sd.validation.hindcast import missing_calibration

CEILING_FILE = calibration_dir() / "ceiling" / "calibrated.yaml"
THROUGH = 2025
TITLE = f"Ceiling: fitted to every published figure through {THROUGH}"
#: Figures named in the summary as beyond the structure's reach, worst first.
UNREACHED_SHOWN = 5
#: Columns the section adds to the comparison table (the default calibration's run) -> theirs.
DEFAULT_COLUMNS = {
    "default_model": "model",
    "default_ape_pct": "ape_pct",
    "default_growth_error_pp": "growth_error_pp",
}


def ceiling(
    calibrated: str | Path | None = None, fitted_to_all: str | Path = CEILING_FILE
) -> Section:
    """Errors of a calibration fitted to everything, beside the default's (informative).

    Parameters
    ----------
    calibrated : path, optional
        The calibration being validated, whose out-of-sample figures are compared (default:
        the default calibration, fitted 2015-2020).
    fitted_to_all : path
        The calibration through 2025 (its ``calibration_report.json`` beside it names what it
        fitted and the parameters that ended at a bound).

    Returns
    -------
    Section
        One row per figure the default forecasts out of sample: ``model``, ``ape_pct`` and
        ``growth_error_pp`` from the ceiling, ``default_*`` from the default, ``tolerance``
        and ``status`` (``reached``, ``unreached`` or, for a figure the ceiling does not fit
        either, ``not fitted``).
    """
    from ningbo_sd.scenarios.run import run_batch

    ceiling_file = Path(fitted_to_all)
    if not ceiling_file.is_file():
        output = "--draws 0 -o calibration/ceiling/calibrated.yaml"
        return missing_calibration("ceiling", TITLE, ceiling_file, THROUGH, output)
    calibrated = calibrated_file() if calibrated is None else calibrated
    in_default = {term.id for term in fitted_terms(calibrated)}
    in_ceiling = {term.id for term in fitted_terms(ceiling_file)}
    terms = [
        term
        for term in actual_terms()
        if term.column is not None
        and term.status in (STATUS_FITTED, STATUS_NOT_FITTED)
        and term.id not in in_default
    ]
    runs = [run_batch(scenario="baseline", calibrated=path) for path in (calibrated, ceiling_file)]
    forecast, fitted = (term_values(terms, run)[0] for run in runs)
    table = compare_terms(terms, fitted, fitted[None, :])
    before = compare_terms(terms, forecast, forecast[None, :])
    for column, source in DEFAULT_COLUMNS.items():
        table[column] = before[source].to_numpy()
    table["tolerance"] = [term.tolerance for term in terms]
    table = table.drop(columns=["q05", "q95", "in_50", "in_90"])
    table["residual"] = table["error"].abs() / table["tolerance"]  # in tolerances
    table["status"] = np.where(table["residual"] <= 1, "reached", "unreached")
    table.loc[~table["id"].isin(in_ceiling), "status"] = "not fitted"
    table.loc[table["status"] == "not fitted", "reason"] = (
        "the ceiling does not fit it either (calibration/actuals_map.yaml)"
    )
    return Section("ceiling", TITLE, table, _summary(table, ceiling_file))


def _summary(table: pd.DataFrame, ceiling_file: Path) -> str:
    """The headline: both MAPEs on the same figures, and what stays out of reach."""
    levels, growth = table["ape_pct"].notna(), table["growth_error_pp"].notna()
    counted = table["status"] != "not fitted"
    reached = int((table["status"] == "reached").sum())
    forecast_within = int(
        ((table["default_model"] - table["observed"]).abs() <= table["tolerance"])[counted].sum()
    )
    unreached = table[table["status"] == "unreached"].sort_values("residual", ascending=False)
    text = (
        f"fitted to every published figure through {THROUGH} ({ceiling_file.parent.name}/"
        f"{ceiling_file.name}), on the {len(table)} figures the default calibration forecasts: "
        f"MAPE on levels {table.loc[levels, 'ape_pct'].mean():.1f}% (the default's out of "
        f"sample: {table.loc[levels, 'default_ape_pct'].mean():.1f}%, n={int(levels.sum())}), "
        f"growth-rate error {table.loc[growth, 'growth_error_pp'].abs().mean():.1f} pp "
        f"({table.loc[growth, 'default_growth_error_pp'].abs().mean():.1f} pp, "
        f"n={int(growth.sum())}); {reached} of {int(counted.sum())} fitted figures within "
        f"their tolerance (the default's forecasts: {forecast_within})"
    )
    bound = _at_bound(ceiling_file)
    if bound is not None:
        text += f"; {len(bound[0])} of {bound[1]} parameters end at a bound of their range"
    if len(unreached):
        text += "; furthest out of reach (observed/fitted): " + ", ".join(
            f"{row.id} {format_number(row.observed)}/{format_number(row.model)}"
            for row in unreached.head(UNREACHED_SHOWN).itertuples()
        )
    return text


def _at_bound(calibration: Path) -> tuple[list[str], int] | None:
    """The parameters a calibration left at a bound, and how many it fitted."""
    report = calibration.parent / "calibration_report.json"
    if not report.is_file():
        return None
    summary = json.loads(report.read_text(encoding="utf-8"))["summary"]
    return list(summary.get("at_bound", [])), int(summary["parameters"])
