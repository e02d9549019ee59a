"""The app's Monte Carlo ensemble: prepared, run chunk by chunk, and summarised into fans.

The ensemble is the project's Monte Carlo (:mod:`ningbo_sd.uncertainty.montecarlo`), conditioned
on the figures the calibration fitted as ``ningbo-sd mc`` is; :func:`summarise` turns the chunk
outputs into weighted quantile fans per indicator, P(met) per target (with the predictive
probability when a model discrepancy is recorded) and the doubling ratios.
:mod:`ningbo_sd.app.uncertainty` shows them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ningbo_sd.app.published import points_of
from ningbo_sd.uncertainty.discrepancy import load_discrepancy

FAN_INDICATORS: tuple[str, ...] = ("gross_output", "value_added", "rd_intensity", "energy_use")
SAMPLE_SIZES: tuple[int, ...] = (1000, 2000, 5000)
CHUNK_SIZE = 500
QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES: tuple[str, ...] = ("q05", "q25", "q50", "q75", "q95")
#: The 90% band with the model discrepancy drawn (what a published figure may be).
PREDICTIVE_NAMES: tuple[str, ...] = ("p05", "p95")
#: The doubling of gross output on 2020 by 2035, at current and at 2020 prices (scorecard ids).
DOUBLING_TARGETS: tuple[tuple[str, str], ...] = (
    ("nominal", "gross_output_2035"),
    ("real", "gross_output_real_2035"),
)


@dataclass(frozen=True)
class MonteCarloOutcome:
    """What the uncertainty section shows.

    Attributes
    ----------
    fans : dict of str to pandas.DataFrame
        Per indicator: quantiles ``q05 ... q95`` by year (index ``year``).
    probabilities : pandas.Series
        P(target met) by target id (met over samples where the target is defined).
    n_samples, seed : int
    seconds : float
        Wall time of the ensemble.
    settings : dict
        The lever settings it was run for.
    effective_samples : float
        ``(sum w)^2 / sum w^2`` of the importance weights (``n_samples`` when unweighted).
    weighted : bool
        Whether the samples carry weights on history (``log_weight``).
    ratios : pandas.DataFrame
        Per doubling reading (index ``nominal``, ``real``): the weighted 5/50/95%
        quantiles of gross output 2035 / 2020 (``q05``, ``q50``, ``q95``).
    predictive : pandas.Series or None
        Per target: the probability that the *published* figure meets it, the model's
        value moved by the recorded model discrepancy
        (:mod:`ningbo_sd.uncertainty.discrepancy`); None when none is recorded. The fans
        then also carry ``p05`` and ``p95``, the 90% band with the discrepancy.
    holds : pandas.DataFrame or None
        What has to hold for the nominal doubling: P(met) by tercile of each sampled input,
        most decisive first (:func:`ningbo_sd.uncertainty.conditions.conditional_table`);
        None when the ensemble does not score it.
    """

    fans: dict
    probabilities: pd.Series
    n_samples: int
    seed: int
    seconds: float
    settings: dict
    effective_samples: float = np.nan
    weighted: bool = False
    ratios: pd.DataFrame | None = None
    predictive: pd.Series | None = None
    holds: pd.DataFrame | None = None


def prepare_ensemble(
    scenario,
    indicators: tuple[str, ...] = FAN_INDICATORS,
    calibrated=None,
    weighted: bool = True,
):
    """Resolve the scenario and the uncertainty specification (``montecarlo.prepare``).

    Parameters
    ----------
    scenario : Scenario, path, bundled name or None
    indicators : tuple of str
        The headline columns kept per sample.
    calibrated : path, optional
        The calibration to start from (default: the default); its posterior draws are
        sampled when they sit beside it.
    weighted : bool
        Condition the ensemble on the figures the calibration fitted (as ``ningbo-sd mc``
        does; :func:`ningbo_sd.calibration.history.fitted_terms`: the default's 2015-2020
        figures): the chunk context gets
        :func:`ningbo_sd.calibration.history.history_likelihood`, so every row carries
        ``log_weight`` and ``weight``. It costs one run per posterior draw, once per
        ensemble.

    Returns
    -------
    ningbo_sd.uncertainty.montecarlo.Prepared
    """
    import dataclasses

    from ningbo_sd.calibration.history import fitted_terms, history_likelihood
    from ningbo_sd.uncertainty.montecarlo import CALIBRATED_FILE, posterior_beside, prepare

    calibrated = CALIBRATED_FILE if calibrated is None else calibrated
    prepared = prepare(
        scenario,
        indicators=tuple(indicators),
        calibrated=calibrated,
        targets=True,
        threads=1,
        posterior=posterior_beside(calibrated),
    )
    if not weighted:
        return prepared
    history = history_likelihood(prepared, fitted_terms(calibrated))
    context = dataclasses.replace(prepared.context, history=history)
    return dataclasses.replace(prepared, context=context)


def run_ensemble_chunk(prepared, n_samples: int, seed: int, start: int, stop: int) -> pd.DataFrame:
    """Samples ``start:stop`` of the ensemble a seed gives, run and scored (one output row each)."""
    from ningbo_sd.uncertainty.montecarlo import run_chunk
    from ningbo_sd.uncertainty.sampling import sample_table

    table = sample_table(prepared.spec, n_samples, seed, "lhs", start, stop)
    return run_chunk(table, prepared.context)


def summarise(
    frames: list[pd.DataFrame],
    indicators,
    n_samples: int,
    seed: int,
    seconds: float,
    settings: dict | None = None,
) -> MonteCarloOutcome:
    """Quantile fans per indicator and year, and P(met) per target, from the chunk outputs.

    When the rows carry ``log_weight`` (a weighted ensemble), the quantiles are weighted
    (the inverted weighted CDF, :func:`ningbo_sd.uncertainty.results.weighted_quantiles`)
    and each P(met) is the weighted share of the samples where the target is defined.
    """
    from ningbo_sd.calibration.history import effective_sample_size
    from ningbo_sd.uncertainty.results import weighted_quantiles

    frame = pd.concat(frames, ignore_index=True)
    weighted = "log_weight" in frame
    log_weights = frame["log_weight"].to_numpy(dtype=float) if weighted else None
    weights = (
        np.exp(log_weights - np.max(log_weights)) if weighted else np.ones(len(frame))
    )  # relative weights: the shares and quantiles do not depend on their scale
    discrepancy = load_discrepancy()
    fans = {}
    for indicator in indicators:
        columns = [c for c in frame.columns if c.split(":")[0] == indicator and c.count(":") == 1]
        years = np.array([int(c.split(":")[1]) for c in columns])
        order = np.argsort(years)
        values = frame[columns].to_numpy(dtype=float)[:, order]
        levels = weighted_quantiles(values, log_weights, QUANTILES).T
        fans[indicator] = pd.DataFrame(
            levels, index=pd.Index(years[order], name="year"), columns=list(QUANTILE_NAMES)
        )
        if discrepancy is not None:
            fans[indicator][["p05", "p95"]] = predictive_band(
                values, log_weights, discrepancy, indicator
            )
    met_columns = [c for c in frame.columns if c.startswith("target:") and c.endswith(":met")]
    probabilities = {}
    for column in met_columns:
        flags = frame[column].astype("Float64")
        defined = flags.notna().to_numpy()
        met = flags.fillna(0).to_numpy(dtype=float) == 1
        total = weights[defined].sum()
        probabilities[column.split(":")[1]] = (
            float(weights[met & defined].sum() / total) if total > 0 else np.nan
        )
    probabilities = pd.Series(probabilities, dtype=float)
    ratios = {}
    for reading, target in DOUBLING_TARGETS:
        column = f"target:{target}:value"
        if column in frame:  # the change on 2020 in %, as a ratio 2035 / 2020
            ratio = 1 + frame[[column]].to_numpy(dtype=float) / 100
            levels = weighted_quantiles(ratio, log_weights, (0.05, 0.5, 0.95))[:, 0]
            ratios[reading] = dict(zip(("q05", "q50", "q95"), levels, strict=True))
    ratios = pd.DataFrame.from_dict(ratios, orient="index", columns=["q05", "q50", "q95"])
    effective = effective_sample_size(log_weights) if weighted else float(len(frame))
    holds = doubling_conditions(frame, weights)
    predictive = (
        predictive_probabilities(frame, weights, discrepancy) if discrepancy is not None else None
    )
    return MonteCarloOutcome(
        fans,
        probabilities,
        n_samples,
        seed,
        seconds,
        dict(settings or {}),
        effective_samples=effective,
        weighted=weighted,
        ratios=ratios,
        predictive=predictive,
        holds=holds,
    )


def doubling_conditions(frame: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame | None:
    """P(nominal doubling) by tercile of each sampled input (None when it is not scored)."""
    from ningbo_sd.uncertainty.conditions import conditional_table

    column = f"target:{dict(DOUBLING_TARGETS)['nominal']}:met"
    if column not in frame:
        return None
    met = frame[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    inputs = (
        (name.removeprefix("param:"), frame[name].to_numpy(dtype=float))
        for name in frame.columns
        if name.startswith("param:")
    )
    return conditional_table(inputs, met, weights)


def predictive_band(values, log_weights, discrepancy, indicator: str) -> np.ndarray:
    """The weighted 5 and 95% quantiles ``(years, 2)`` of what may be published each year.

    The mixture of the samples' values moved by the discrepancy of a level
    (:meth:`ningbo_sd.uncertainty.discrepancy.Discrepancy.quantiles`). A scenario input
    (:data:`~ningbo_sd.uncertainty.discrepancy.SCENARIO_INPUTS`) keeps the model's band: a
    published figure differs from it by policy, not by model error.
    """
    from ningbo_sd.uncertainty.discrepancy import SCENARIO_INPUTS
    from ningbo_sd.uncertainty.results import weighted_quantiles

    if indicator in SCENARIO_INPUTS:
        return weighted_quantiles(values, log_weights, (0.05, 0.95)).T
    return np.array(
        [
            discrepancy.quantiles(values[:, year], log_weights, (0.05, 0.95), "level")
            for year in range(values.shape[1])
        ]
    )


def predictive_probabilities(frame: pd.DataFrame, weights, discrepancy) -> pd.Series:
    """Per target: the weighted mean probability that the published figure meets it."""
    from ningbo_sd.uncertainty.summary import target_readings

    ids = [
        c.split(":")[1] for c in frame.columns if c.startswith("target:") and c.endswith(":value")
    ]
    out = {}
    for target, reading in target_readings(ids).items():
        values = frame[f"target:{target}:value"].to_numpy(dtype=float)
        p = discrepancy.probability(
            values, reading.measure, reading.span, reading.op, reading.value
        )
        defined = np.isfinite(p)
        total = weights[defined].sum()
        out[target] = float(np.dot(weights[defined], p[defined]) / total) if total > 0 else np.nan
    return pd.Series(out, dtype=float)


def band_coverage(fans: dict) -> pd.DataFrame:
    """The published figures of the fan charts and whether the bands cover them.

    Parameters
    ----------
    fans : dict of str to pandas.DataFrame
        :attr:`MonteCarloOutcome.fans`.

    Returns
    -------
    pandas.DataFrame
        One row per published figure of a charted indicator in a year of its fan:
        ``id``, ``column``, ``year``, ``value``, ``q05``, ``q25``, ``q75``, ``q95``,
        ``in_50``, ``in_90``.
    """
    rows = []
    for column, fan in fans.items():
        for point in points_of(column):
            if point.year not in fan.index:
                continue
            band = fan.loc[point.year]
            predictive = "p05" in band and np.isfinite(band[["p05", "p95"]]).all()
            rows.append(
                {
                    "id": point.id,
                    "column": column,
                    "year": point.year,
                    "value": point.value,
                    **{name: float(band[name]) for name in ("q05", "q25", "q75", "q95")},
                    "in_50": bool(band["q25"] <= point.value <= band["q75"]),
                    "in_90": bool(band["q05"] <= point.value <= band["q95"]),
                    "in_90p": bool(band["p05"] <= point.value <= band["p95"])
                    if predictive
                    else None,
                }
            )
    columns = ["id", "column", "year", "value", "q05", "q25", "q75", "q95", "in_50", "in_90"]
    return pd.DataFrame(rows, columns=[*columns, "in_90p"])


def run_ensemble(
    scenario,
    n_samples: int,
    seed: int,
    progress=None,
    settings: dict | None = None,
    calibrated=None,
) -> MonteCarloOutcome:
    """Run the whole ensemble in this thread; ``progress(done, total)`` after each chunk."""
    start = time.perf_counter()
    prepared = prepare_ensemble(scenario, calibrated=calibrated)
    frames = []
    for lo in range(0, n_samples, CHUNK_SIZE):
        hi = min(lo + CHUNK_SIZE, n_samples)
        frames.append(run_ensemble_chunk(prepared, n_samples, seed, lo, hi))
        if progress is not None:
            progress(hi, n_samples)
    seconds = time.perf_counter() - start
    return summarise(frames, FAN_INDICATORS, n_samples, seed, seconds, settings)


def fan_data(fan: pd.DataFrame | None) -> dict:
    """Column data of one fan chart."""
    names = (*QUANTILE_NAMES, *PREDICTIVE_NAMES)
    if fan is None:
        return {"year": [], **{name: [] for name in names}}
    data = {"year": fan.index.to_numpy(dtype=float).tolist()}  # lists: one message, no buffers
    for name in names:  # no discrepancy recorded: the predictive lines are not drawn
        column = fan[name] if name in fan else pd.Series(np.nan, index=fan.index)
        data[name] = column.to_numpy(dtype=float).tolist()
    return data
