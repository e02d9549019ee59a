"""The model against published figures: out of sample (actuals) and in sample (the plan).

Both tables come from one computation: pair every figure with the headline column that
computes it (:func:`ningbo_sd.calibration.observations.build_terms`), run the model, and
compute the figure's measure (:func:`~ningbo_sd.calibration.observations.measure_values`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.calibration.history import effective_sample_size, fitted_ids_beside, fitted_terms
from ningbo_sd.calibration.observations import (
    STATUS_FITTED,
    STATUS_NOT_FITTED,
    ObservationTerm,
    actual_terms,
    build_terms,
    load_observation_map,
    measure_values,
)
from ningbo_sd.calibration.report import parameters_at_bound
from ningbo_sd.io import read_yaml_file
from ningbo_sd.plan.actuals import load_actuals
from ningbo_sd.resources import calibrated_file, calibration_dir, is_default_calibration
from ningbo_sd.uncertainty.discrepancy import load_discrepancy
from ningbo_sd.uncertainty.results import weighted_quantiles
from ningbo_sd.validation import Section

#: The MAPE recorded when the model last landed: the regression guard of the build.
RECORD_FILE = calibration_dir() / "validation_record.yaml"
#: The last year the default calibration fits: later figures test the forecast cleanly.
FIT_LAST_YEAR = 2020
#: Years whose gross-output band width is reported, and issue 18's bar on it (% of median).
WIDTH_YEARS = (2025, 2035)
WIDTH_BAR_PCT = 40.0
DISCREPANCY_NOTE = "estimated from the hindcast's forecast errors, calibration/discrepancy.yaml"
BAND_SAMPLES = 1000
#: The band quantiles of every figure: the 90% and the 50% band.
BAND_LEVELS = (0.05, 0.25, 0.75, 0.95)
BAND_SEED = 1
#: A figure is a replay when the fitted parameters move it by less than this (relative).
REPLAY_TOLERANCE = 1e-9
#: Status of the out-of-sample table's per-indicator rows (errors by indicator).
STATUS_BY_INDICATOR = "by indicator"


def term_values(terms, results) -> np.ndarray:
    """Each term's measure in every sample of a batch: ``(samples, terms)``, NaN if not modelled.

    Parameters
    ----------
    terms : sequence of ObservationTerm
    results : xarray.Dataset
        Headline columns over ``(sample, year)`` (:func:`ningbo_sd.scenarios.run.run_batch`).
    """
    years = results["year"].to_numpy()
    values = np.full((results.sizes["sample"], len(terms)), np.nan)
    for position, term in enumerate(terms):
        if term.column is None or term.year not in years:
            continue
        if term.year_start is not None and term.year_start not in years:
            continue
        series = results[term.column].transpose("sample", "year").to_numpy() * term.scale
        values[:, position] = measure_values(series, term, years)
    return values


def band_results(
    scenario: str | None,
    calibrated,
    n_samples: int,
    seed: int,
    posterior: Path | None = None,
    history_terms: list | None = None,
):
    """The Monte Carlo ensemble (posterior, register, noise) and its weights on history.

    Parameters
    ----------
    scenario : str or None
        A bundled scenario (None: the defaults, as the calibration runs).
    calibrated : path
        The calibration the ensemble starts from.
    n_samples, seed : int
    posterior : Path, optional
        The posterior draws to sample (default: those beside ``calibrated``, else the
        uncertainty specification's, i.e. the default calibration's).
    history_terms : list of ObservationTerm, optional
        The figures the ensemble is conditioned on (default: those ``calibrated`` fitted,
        :func:`ningbo_sd.calibration.history.fitted_terms`).

    Returns
    -------
    results : xarray.Dataset
    log_weights : numpy.ndarray
        Each sample's log importance weight.
    """
    from ningbo_sd.calibration.history import history_likelihood
    from ningbo_sd.uncertainty.montecarlo import posterior_beside, prepare, run_samples
    from ningbo_sd.uncertainty.sampling import POSTERIOR_COLUMN, sample_table

    if posterior is None:
        posterior = posterior_beside(calibrated)
    prepared = prepare(scenario, calibrated=calibrated, targets=False, posterior=posterior)
    table = sample_table(prepared.spec, n_samples, seed)
    results = run_samples(table, prepared.context)
    draws = table[POSTERIOR_COLUMN].to_numpy() if POSTERIOR_COLUMN in table else None
    if results.sizes["sample"] != len(table):  # nothing uncertain: one run stands for all
        return results, np.zeros(results.sizes["sample"])
    if history_terms is None:
        history_terms = fitted_terms(calibrated)
    log_weights = history_likelihood(prepared, history_terms).log_weights(results, draws)
    return results, log_weights


def predictive_bands(terms, ensemble: np.ndarray, log_weights, discrepancy) -> np.ndarray:
    """Each figure's predictive 5, 25, 75 and 95% quantiles ``(4, terms)``: what may be published.

    The weighted mixture of the samples' values, each moved by the model discrepancy on the
    figure's log scale (:meth:`ningbo_sd.uncertainty.discrepancy.Discrepancy.quantiles`:
    exact, no draws). A figure without a log scale keeps the ensemble's own band.

    Parameters
    ----------
    terms : sequence of ObservationTerm
    ensemble : numpy.ndarray
        ``(samples, terms)`` model values (:func:`term_values`).
    log_weights : numpy.ndarray or None
    discrepancy : ningbo_sd.uncertainty.discrepancy.Discrepancy
    """
    from ningbo_sd.uncertainty.discrepancy import span_of

    out = np.full((4, len(terms)), np.nan)
    for position, term in enumerate(terms):
        column = ensemble[:, position]
        if np.isfinite(column).any():
            span = span_of(term.measure, term.year, term.year_start)
            out[:, position] = discrepancy.quantiles(
                column, log_weights, BAND_LEVELS, term.measure, span
            )
    return out


def _bands(ensemble: np.ndarray, log_weights) -> np.ndarray:
    """Weighted 5, 25, 75 and 95% quantiles of each column ``(4, columns)``."""
    quantiles = np.full((4, ensemble.shape[1]), np.nan)
    computed = np.isfinite(ensemble).any(axis=0)
    quantiles[:, computed] = weighted_quantiles(ensemble[:, computed], log_weights, BAND_LEVELS)
    return quantiles


def compare_terms(
    terms,
    point: np.ndarray,
    ensemble: np.ndarray,
    extra=None,
    log_weights=None,
    predictive: np.ndarray | None = None,
) -> pd.DataFrame:
    """Observed against the point run and the ensemble's 50% and 90% bands, one row per term.

    ``status`` is ``compared`` (a primary figure the model computes), ``secondary`` or
    ``not modelled``; ``extra`` maps a term id to more columns for its row; ``log_weights``
    weight the ensemble's samples (conditioning on history). ``predictive``, the bands with
    the model discrepancy (:func:`predictive_bands`), adds ``p05``/``p95`` and
    ``in_50p``/``in_90p``.
    """
    quantiles = _bands(ensemble, log_weights)
    rows = []
    for position, term in enumerate(terms):
        row = {
            "id": term.id,
            "indicator": term.indicator,
            "measure": term.measure,
            "year": term.year,
            "year_start": term.year_start,
            "basis": term.basis,
            "observed": term.value,
            "model": np.nan,
            "error": np.nan,
            "ape_pct": np.nan,
            "growth_error_pp": np.nan,
            "q05": np.nan,
            "q95": np.nan,
            "in_50": None,
            "in_90": None,
            "status": "not modelled" if term.column is None else "compared",
            "reason": term.reason,
            **((extra or {}).get(term.id, {})),
        }
        if term.column is not None and np.isfinite(point[position]):
            model, q05, q25, q75, q95 = point[position], *quantiles[:, position]
            row.update(model=model, error=model - term.value, q05=q05, q95=q95)
            row["in_50"] = bool(q25 <= term.value <= q75)
            row["in_90"] = bool(q05 <= term.value <= q95)
            if predictive is not None and np.isfinite(predictive[:, position]).all():
                p05, p25, p75, p95 = predictive[:, position]
                row.update(p05=p05, p95=p95)
                row["in_50p"] = bool(p25 <= term.value <= p75)
                row["in_90p"] = bool(p05 <= term.value <= p95)
            if term.measure == "level" and term.value != 0:
                row["ape_pct"] = 100 * abs(model - term.value) / abs(term.value)
            elif term.measure in ("change_pct", "change_pp", "cagr_pct"):
                row["growth_error_pp"] = model - term.value
            if term.status not in (STATUS_FITTED, STATUS_NOT_FITTED):
                row["status"] = "secondary"  # a duplicate or alternative reading: not counted
        rows.append(row)
    table = pd.DataFrame(rows)
    table["year"] = table["year"].astype("Int64")
    return table


def append_row(table: pd.DataFrame, row: dict) -> pd.DataFrame:
    """``table`` with one more row (a summary row: the band flags become plain objects)."""
    flags = {c: object for c in ("in_50", "in_90", "in_50p", "in_90p") if c in table}
    table = table.astype(flags)
    for column in [c for c in row if c not in table]:  # a column only summary rows have
        table[column] = np.nan
    table.loc[len(table)] = row
    return table


def error_summary(table: pd.DataFrame) -> tuple[dict, str]:
    """MAPE on levels, mean growth error and band coverage of the ``compared`` rows."""
    counted = table[table["status"] == "compared"]
    figures = {
        "compared": len(counted),
        "mape_pct": counted["ape_pct"].mean(),
        "n_levels": int(counted["ape_pct"].notna().sum()),
        "growth_error_pp": counted["growth_error_pp"].abs().mean(),
        "n_growth": int(counted["growth_error_pp"].notna().sum()),
        **coverage(counted),
    }
    text = (
        f"MAPE on levels {figures['mape_pct']:.1f}% (n={figures['n_levels']}), mean "
        f"growth-rate error {figures['growth_error_pp']:.1f} pp (n={figures['n_growth']}); "
        f"inside the model's 90% band {figures['cover90']:.0%}, its 50% band "
        f"{figures['cover50']:.0%}"
    )
    if "in_90p" in counted:
        text += (
            f"; inside the predictive (model + discrepancy) 90% band {figures['cover90p']:.1%} "
            f"(n={figures['n_bandp']}), its 50% band {figures['cover50p']:.0%}"
        )
    return figures, text


def indicator_errors(table: pd.DataFrame) -> pd.DataFrame:
    """The out-of-sample errors of each indicator, smallest MAPE first.

    Parameters
    ----------
    table : pandas.DataFrame
        An out-of-sample table; its ``compared`` rows are used.

    Returns
    -------
    pandas.DataFrame
        One row per indicator with a compared figure: ``figures``, ``levels``, ``mape_pct``
        (NaN without a level), ``growth_error_pp`` (mean absolute error of its growth rates,
        NaN without one) and ``cover90p`` (share inside the predictive 90% band, NaN
        without bands). Indicators without a level come last.
    """
    counted = table[table["status"] == "compared"]
    rows = []
    for indicator, group in counted.groupby("indicator", sort=True):
        bands = group["in_90p"].dropna() if "in_90p" in group else pd.Series(dtype=bool)
        rows.append({
            "indicator": indicator,
            "figures": len(group),
            "levels": int(group["ape_pct"].notna().sum()),
            "mape_pct": group["ape_pct"].mean(),
            "growth_error_pp": group["growth_error_pp"].abs().mean(),
            "cover90p": bands.astype(bool).mean() if len(bands) else np.nan,
        })  # fmt: skip
    columns = ["indicator", "figures", "levels", "mape_pct", "growth_error_pp", "cover90p"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.sort_values(["mape_pct", "indicator"], na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def append_indicator_rows(table: pd.DataFrame, errors: pd.DataFrame) -> pd.DataFrame:
    """The table with one ``by indicator`` row per indicator of ``errors``."""
    for row in errors.itertuples(index=False):
        table = append_row(table, {
            "id": f"indicator__{row.indicator}",
            "indicator": row.indicator,
            "measure": "MAPE on levels; mean absolute growth-rate error; share in predictive 90%",
            "ape_pct": row.mape_pct,
            "growth_error_pp": row.growth_error_pp,
            "n_figures": row.figures,
            "n_levels": row.levels,
            "cover90p": row.cover90p,
            "status": STATUS_BY_INDICATOR,
            "reason": f"{row.figures} figures compared, {row.levels} of them levels",
        })  # fmt: skip
    return table


def coverage(rows: pd.DataFrame) -> dict:
    """Shares of rows inside the model's and the predictive 50% and 90% bands."""
    figures = {}
    for suffix in ("", "p"):
        column = f"in_90{suffix}"
        known = rows[column].notna() if column in rows else pd.Series(False, index=rows.index)
        n = int(known.sum())
        figures[f"n_band{suffix}"] = n
        for level in (90, 50):
            inside = rows.loc[known, f"in_{level}{suffix}"].astype(bool).sum() if n else 0
            figures[f"cover{level}{suffix}"] = inside / n if n else np.nan
    return figures


def recorded_mape() -> float | None:
    """The out-of-sample MAPE (%) recorded at the last landing, if any."""
    if not RECORD_FILE.is_file():
        return None
    value = (read_yaml_file(RECORD_FILE) or {}).get("out_of_sample_mape_pct")
    return None if value is None else float(value)


def out_of_sample(
    calibrated: str | Path | None = None,
    n_samples: int = BAND_SAMPLES,
    seed: int = BAND_SEED,
    actuals: pd.DataFrame | None = None,
) -> Section:
    """The baseline and its Monte Carlo band against every published actual.

    Parameters
    ----------
    calibrated : path, optional
        The calibration to run from (default: the default calibration, fitted 2015-2020).
    n_samples, seed : int
        The Monte Carlo band's ensemble.
    actuals : pandas.DataFrame, optional
        The figures (default: the bundled file).

    Returns
    -------
    Section
        One row per figure (``compared``, ``in sample``, ``secondary`` or ``not modelled``),
        the band widths (``info``), one ``by indicator`` row per indicator compared
        (:func:`indicator_errors`) and a last row, the MAPE guard: it fails when the MAPE on
        levels is worse than the recorded figure.
    """
    from ningbo_sd.scenarios.run import run_batch

    calibrated = calibrated_file() if calibrated is None else calibrated
    actuals = load_actuals() if actuals is None else actuals
    terms = actual_terms(actuals)
    point = term_values(terms, run_batch(scenario="baseline", calibrated=calibrated))[0]
    history = fitted_terms(calibrated)  # what the calibration fitted: in sample, and the weights
    results, log_weights = band_results("baseline", calibrated, n_samples, seed, None, history)
    ensemble = term_values(terms, results)
    extra = {
        row["id"]: {
            "scope": row["scope"],
            "confidence": row["confidence"],
            "source": f"{row['publisher']}, {row['published']}",
        }
        for _, row in actuals.iterrows()
    }
    discrepancy = load_discrepancy()
    predictive = (
        predictive_bands(terms, ensemble, log_weights, discrepancy) if discrepancy else None
    )
    table = compare_terms(terms, point, ensemble, extra, log_weights, predictive)
    default = is_default_calibration(calibrated)
    fitted = table["id"].isin({term.id for term in history})
    table.loc[fitted, "status"] = "in sample"  # shown, not counted: the calibration fits it
    table.loc[fitted, "reason"] = (
        "fitted by the default calibration (published, of 2015 or 2020)"
        if default  # (window_actual's rule)
        else f"fitted by the calibration it runs from ({Path(calibrated).name})"
    )
    figures, text = error_summary(table)
    errors = indicator_errors(table)
    text += f"; effective sample size {effective_sample_size(log_weights):,.0f}"
    if discrepancy is not None:
        later = table[(table["status"] == "compared") & (table["year"] > FIT_LAST_YEAR)]
        after = coverage(later)
        text += (
            f"; discrepancy sd {discrepancy.sd:.3f}, correlation {discrepancy.correlation:.2f} "
            f"({DISCREPANCY_NOTE}); figures after {FIT_LAST_YEAR}: {after['cover90p']:.1%} "
            f"inside the predictive 90% band (n={after['n_bandp']}), "
            f"{after['cover90']:.0%} inside the model's"
        )
        shown = []
        for year in WIDTH_YEARS:
            widths = band_widths(results, log_weights, discrepancy, year)
            shown.append(
                f"{widths['model']:.0f}%/{widths['predictive']:.0f}% in {year} "
                f"(the deflator alone: {widths['deflator']:.0f}%)"
            )
            table = append_row(table, {
                "id": f"band_width_gross_output_{year}",
                "indicator": "gross_output",
                "measure": "90% band width / median (%): bar; predictive; model's runs",
                "year": year,
                "observed": WIDTH_BAR_PCT,
                "model": widths["predictive"],
                "model_band_pct": widths["model"],
                "status": "info",
                "reason": (
                    f"relative width of the 90% band of gross output in {year}: "
                    f"{widths['model']:.0f}% for the model's runs, {widths['predictive']:.0f}% "
                    f"with the discrepancy, {widths['deflator']:.0f}% from the deflator's spread "
                    f"and the discrepancy alone (issue 18's bar: at most {WIDTH_BAR_PCT:.0f}%)"
                ),
            })  # fmt: skip
        text += (
            "; gross output's 90% band over its median, the model's runs/with the discrepancy "
            "(the deflator's spread with the discrepancy, before any real uncertainty): "
            + ", ".join(shown)
            + f" (issue 18's bar: at most {WIDTH_BAR_PCT:.0f}%)"
        )
    with_levels = errors[errors["levels"] > 0]
    text += "; MAPE on levels by indicator: " + ", ".join(
        f"{row.indicator} {row.mape_pct:.1f}% ({row.levels})" for row in with_levels.itertuples()
    )
    table = append_indicator_rows(table, errors)
    mape = figures["mape_pct"]
    record = recorded_mape() if default else None  # the guard is the default's
    guard = "pass" if record is None or mape <= record + 0.005 else "fail"
    table = append_row(table, {
        "id": "mape_guard",
        "indicator": "(levels)",
        "measure": "MAPE",
        "observed": record if record is not None else np.nan,
        "model": mape,
        "status": guard,
        "reason": (
            f"MAPE {mape:.2f}% against {record:.2f}% recorded at the last landing"
            if record is not None
            else "no MAPE recorded yet (calibration/validation_record.yaml)"
            if default
            else f"not the default calibration ({Path(calibrated).name}): no guard"
        ),
    })  # fmt: skip
    summary = (
        f"{figures['compared']} of {len(terms)} published figures compared: {text} "
        f"({n_samples:,} samples, seed {seed}); MAPE guard {guard}"
        + (f" (recorded {record:.2f}%)" if record is not None else " (nothing recorded)")
    )
    return Section("out_of_sample", "Out of sample: published actuals", table, summary, gate=True)


def band_widths(results, log_weights, discrepancy, year: int) -> dict[str, float]:
    """Width of gross output's 90% band in ``year`` over its median (%).

    ``model``: the model's runs; ``predictive``: with the discrepancy; ``deflator``: with the
    discrepancy, of an ensemble in which only the deflator varies (the median run's output
    times each run's price index, nominal over real output, over the median index). The last
    is what the future-price range, the price noise and the discrepancy give on their own,
    before any uncertainty of real output.
    """
    values = results["gross_output"].sel(year=year).to_numpy()
    index = values / results["gross_output_real"].sel(year=year).to_numpy()
    levels = [0.05, 0.5, 0.95]

    def median(array: np.ndarray) -> float:
        return float(weighted_quantiles(array[:, None], log_weights, [0.5])[0, 0])

    deflator_only = median(values) * index / median(index)
    bands = {
        "model": weighted_quantiles(values[:, None], log_weights, levels)[:, 0],
        "predictive": discrepancy.quantiles(values, log_weights, levels, "level"),
        "deflator": discrepancy.quantiles(deflator_only, log_weights, levels, "level"),
    }
    return {name: 100 * (q95 - q05) / q50 for name, (q05, q50, q95) in bands.items()}


def _fitted_parameters() -> dict[str, tuple[float, float]]:
    """The calibration's fitted parameters and their bounds (the register's range)."""
    from ningbo_sd.plan.assumptions import calibration_candidates, load_assumptions

    rows = calibration_candidates(load_assumptions())
    return {row.name: (float(row.low), float(row.high)) for row in rows}


def in_sample(calibrated: str | Path | None = None, seed: int = 0, draws: int = 8) -> Section:
    """The plan's 2015-2020 figures against the calibrated model, net of replays.

    A figure is a *replay* when an input or an initial value reproduces it, not the fitted
    dynamics: a level in the first model year (the initial state), or a figure that ``draws``
    joint draws of the fitted parameters over their ranges leave unchanged (an input path).
    Replays are shown, not counted as fits.

    Returns
    -------
    Section
        One row per plan figure; ``status`` is ``fit``, ``miss``, ``replay``, ``secondary``,
        ``not fitted`` (kept out of the payoff, or outside the window of a calibration other
        than the default, as its report says) or ``not modelled``. Informative (never gates
        the build).
    """
    from ningbo_sd.calibration.observations import STATUS_SECONDARY
    from ningbo_sd.plan.data import load_observations
    from ningbo_sd.scenarios.run import run_batch

    calibrated = calibrated_file() if calibrated is None else calibrated
    default = is_default_calibration(calibrated)
    fitted_ids = None if default else fitted_ids_beside(calibrated)  # None: the plan's rule
    terms: list[ObservationTerm] = build_terms(load_observations(), load_observation_map())
    point = term_values(terms, run_batch(calibrated=calibrated))[0]
    bounds = _fitted_parameters()
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {name: rng.uniform(low, high, draws) for name, (low, high) in bounds.items()}
    )
    moved = term_values(terms, run_batch(table, calibrated=calibrated))
    spread = np.full(len(terms), np.nan)
    computed = np.isfinite(point)
    spread[computed] = np.max(np.abs(moved[:, computed] - point[computed]), axis=0) / np.maximum(
        np.abs(point[computed]), 1e-300
    )
    first_year = 2015
    rows = []
    for position, term in enumerate(terms):
        status, why = "not modelled", term.reason
        value = point[position]
        if term.column is not None and np.isfinite(value):
            within = abs(value - term.value) <= term.tolerance
            if term.measure == "level" and term.year == first_year:
                status, why = "replay", "the initial state (first model year)"
            elif spread[position] < REPLAY_TOLERANCE:
                status, why = "replay", "an input path: the fitted parameters do not move it"
            elif term.status == STATUS_SECONDARY:
                status = "secondary"
            elif term.status == STATUS_FITTED and (fitted_ids is None or term.id in fitted_ids):
                status, why = ("fit" if within else "miss"), ""
            elif term.status == STATUS_FITTED:  # e.g. a 2020 figure a fit through 2018 never saw
                status, why = "not fitted", f"not fitted by {Path(calibrated).name}"
            else:
                status = "not fitted"
        rows.append(
            {
                "id": term.id,
                "indicator": term.indicator,
                "measure": term.measure,
                "year": term.year,
                "observed": term.value,
                "model": value,
                "tolerance": term.tolerance,
                "status": status,
                "reason": why,
            }
        )
    frame = pd.DataFrame(rows)
    counts = frame["status"].value_counts()
    fits, misses = int(counts.get("fit", 0)), int(counts.get("miss", 0))
    summary = (
        f"{fits} of {fits + misses} fitted plan figures within tolerance "
        f"({int(counts.get('replay', 0))} replays of inputs or initial values not counted; "
        f"{int(counts.get('not modelled', 0))} not modelled)"
    )
    bounded = parameters_at_bound(calibrated)
    if len(bounded):
        frame = pd.concat([frame, _bound_rows(bounded)], ignore_index=True)
        summary += (
            f"; {len(bounded)} fitted parameters at a bound of their register range "
            f"({', '.join(bounded['parameter'])}): the range holds them, not the data"
        )
    return Section("in_sample", "In sample: the plan's 2015-2020 figures", frame, summary)


def _bound_rows(bounded: pd.DataFrame) -> pd.DataFrame:
    """Rows of the in-sample table for the fitted parameters at a bound of their range."""
    return pd.DataFrame(
        {
            "id": "parameter__" + bounded["parameter"],
            "indicator": "-",
            "measure": "parameter",
            "year": None,
            "observed": np.where(bounded["side"] == "lower", bounded["low"], bounded["high"]),
            "model": bounded["calibrated"],
            "tolerance": None,
            "status": "at bound",
            "reason": [
                f"at the {side} end of its range [{low:g}, {high:g}]: the data pull it further"
                for side, low, high in zip(
                    bounded["side"], bounded["low"], bounded["high"], strict=True
                )
            ],
        }
    )
