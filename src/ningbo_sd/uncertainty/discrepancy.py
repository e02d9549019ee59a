"""Model discrepancy: the structural error between the model's figures and published ones.

Parameter uncertainty and process noise spread the model's own runs; they do not say how far
a published figure may fall from the *right* run of an imperfect model. Following Kennedy and
O'Hagan (2001, "Bayesian calibration of computer models", J. R. Stat. Soc. B 63(3)), a
published figure is the model's value times a discrepancy,

    log(observed) = log(model) + delta_t,

where ``delta_t`` is the log deviation of an indicator in year ``t``: a stationary AR(1)
process with standard deviation ``sd`` and year-to-year correlation ``correlation`` (rho).
So a level has log standard deviation ``sd`` at any horizon, and a change over ``s`` years
(the ratio of two levels) ``sd * sqrt(2 * (1 - rho**s))``: small for one year when the error
is persistent, never more than ``sqrt(2) * sd``.

The two parameters are estimated by maximum likelihood from forecast errors the default
calibration never sees: the hindcast's (calibrated through 2018, forecasting 2019-2020;
:mod:`ningbo_sd.validation.hindcast`), and recorded in ``calibration/discrepancy.yaml`` by
``ningbo-sd check --record``. The published post-2020 figures then test the result.

Each measure's log scale:

=============  ============================
level          ``log(x)`` (x > 0)
cumulative     ``log(x)`` (x > 0)
change_pct     ``log(1 + x / 100)``, span ``year - year_start``
cagr_pct       ``span * log(1 + x / 100)``
change_pp/abs  none: no discrepancy (NaN)
=============  ============================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Measures with a log scale: a level, or a change over a span of years.
LEVEL_MEASURES = ("level", "cumulative")
CHANGE_MEASURES = ("change_pct", "cagr_pct")
#: Headline columns a scenario sets rather than the model's structure (lever paths, land
#: supply): a published figure differs from them by policy, not by model error, so no
#: predictive probability is given for targets on them.
SCENARIO_INPUTS = ("rd_intensity", "industrial_land_area", "land_revitalised")


def discrepancy_file() -> Path:
    """The recorded discrepancy (``calibration/discrepancy.yaml``)."""
    from ningbo_sd.resources import calibration_dir

    return calibration_dir() / "discrepancy.yaml"


@dataclass(frozen=True)
class Discrepancy:
    """A stationary AR(1) log discrepancy.

    Attributes
    ----------
    sd : float
        Standard deviation of an indicator's log deviation in any year.
    correlation : float
        Year-to-year correlation of the deviation, in [0, 1).
    """

    sd: float
    correlation: float

    def log_sd(self, measure: str, span: int | None = None) -> float:
        """Standard deviation of a figure's log-scale error (NaN: no log scale)."""
        if measure in LEVEL_MEASURES:
            return self.sd
        if measure in CHANGE_MEASURES and span is not None and span >= 1:
            return self.sd * math.sqrt(2.0 * (1.0 - self.correlation**span))
        return math.nan

    def quantiles(self, values, log_weights, levels, measure: str, span=None) -> np.ndarray:
        """Quantiles of what may be published: the weighted mixture of the samples' values,
        each moved by the discrepancy (a normal of ``log_sd`` on the measure's log scale).

        Exact (no draws): the mixture's CDF ``sum w_i Phi((y - m_i) / sd) / sum w_i`` on the
        log scale is inverted by bisection.

        Parameters
        ----------
        values : array-like
            One figure's value in every sample.
        log_weights : array-like or None
            The samples' log importance weights (None: equal weights).
        levels : sequence of float
        measure, span
            The figure's measure and, for a change, its span.

        Returns
        -------
        numpy.ndarray
            One quantile per level; NaN when no sample has a value on the log scale. A figure
            with no log scale gets the samples' own weighted quantiles.
        """
        from scipy.special import ndtr

        from ningbo_sd.uncertainty.results import weighted_quantiles

        values = np.asarray(values, dtype=float)
        sd = self.log_sd(measure, span)
        if not np.isfinite(sd) or sd == 0:
            return weighted_quantiles(values[:, None], log_weights, levels)[:, 0]
        logged = to_log(values, measure, span)
        weights = (
            np.ones(len(values))
            if log_weights is None
            else np.exp(np.asarray(log_weights) - np.max(log_weights))
        )
        keep = np.isfinite(logged) & (weights > 0)
        if not keep.any():
            return np.full(len(levels), np.nan)
        centres, weights = logged[keep], weights[keep] / weights[keep].sum()
        out = []
        for level in levels:
            low = centres.min() - 10 * sd
            high = centres.max() + 10 * sd
            for _ in range(100):  # bisection to the float resolution of the log scale
                middle = 0.5 * (low + high)
                if middle in (low, high):
                    break
                if np.dot(weights, ndtr((middle - centres) / sd)) < level:
                    low = middle
                else:
                    high = middle
            out.append(high)
        return from_log(np.array(out), measure, span)

    def probability(self, values: np.ndarray, measure: str, span, op: str, threshold: float):
        """Per sample, the probability that the published figure meets ``op threshold``.

        NaN where the figure has no log scale (or the value or the threshold is out of it).
        """
        from scipy.special import ndtr

        sd = self.log_sd(measure, span)
        if not np.isfinite(sd) or op not in (">=", "<="):
            return np.full(np.shape(values), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            margin = to_log(np.asarray(values, dtype=float), measure, span) - to_log(
                np.asarray(threshold, dtype=float), measure, span
            )
            p = ndtr(margin / sd) if sd > 0 else (margin >= 0).astype(float)
        return p if op == ">=" else 1.0 - p


def to_log(values, measure: str, span) -> np.ndarray:
    """A measure's values on its log scale (NaN where there is none)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if measure in LEVEL_MEASURES:
            return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)
        ratio = 1.0 + values / 100.0
        logged = np.where(ratio > 0, np.log(np.where(ratio > 0, ratio, 1.0)), np.nan)
        if measure == "change_pct":
            return logged
        if measure == "cagr_pct":
            return span * logged
    return np.full(values.shape, np.nan)


def from_log(log_values, measure: str, span) -> np.ndarray:
    """The inverse of :func:`to_log`."""
    log_values = np.asarray(log_values, dtype=float)
    if measure in LEVEL_MEASURES:
        return np.exp(log_values)
    if measure == "change_pct":
        return 100.0 * np.expm1(log_values)
    if measure == "cagr_pct":
        return 100.0 * np.expm1(log_values / span)
    raise ValueError(f"measure {measure!r} has no log scale")


def span_of(measure: str, year: int, year_start: int | None) -> int | None:
    """Years a change spans (None for a level)."""
    if measure in CHANGE_MEASURES and year_start is not None:
        return int(year) - int(year_start)
    return None


def estimate(errors, spans, model_variances) -> tuple[Discrepancy, float]:
    """Maximum-likelihood discrepancy from log forecast errors.

    Parameters
    ----------
    errors : array-like
        ``log(observed) - log(model)`` on each figure's log scale.
    spans : array-like
        0 for a level, else the years a change spans.
    model_variances : array-like
        The model ensemble's own variance of each figure on the log scale (added to the
        discrepancy's, so the ensemble's spread is not counted twice).

    Returns
    -------
    Discrepancy, float
        The estimate and its maximised log-likelihood.
    """
    from scipy.optimize import minimize

    errors = np.asarray(errors, dtype=float)
    spans = np.asarray(spans, dtype=float)
    model_variances = np.asarray(model_variances, dtype=float)
    if errors.size < 2:
        raise ValueError(f"a discrepancy needs at least two forecast errors (got {errors.size})")

    def negative_log_likelihood(theta: np.ndarray) -> float:
        sd, rho = math.exp(theta[0]), 1.0 / (1.0 + math.exp(-theta[1]))
        factor = np.where(spans > 0, 2.0 * (1.0 - rho**spans), 1.0)
        variance = model_variances + sd**2 * factor
        return 0.5 * float(np.sum(np.log(2 * np.pi * variance) + errors**2 / variance))

    start = np.array([math.log(max(float(np.sqrt(np.mean(errors**2))), 1e-3)), 0.0])
    best = None
    for rho_start in (-2.0, 0.0, 2.0):  # a few starts: the likelihood is flat in rho
        start[1] = rho_start
        fit = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                       options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})  # fmt: skip
        if best is None or fit.fun < best.fun:
            best = fit
    sd, rho = math.exp(best.x[0]), 1.0 / (1.0 + math.exp(-best.x[1]))
    return Discrepancy(sd=sd, correlation=rho), -float(best.fun)


def load_discrepancy(path: str | Path | None = None) -> Discrepancy | None:
    """The recorded discrepancy, or None when nothing is recorded."""
    from ningbo_sd.io import read_yaml_file

    path = discrepancy_file() if path is None else Path(path)
    if not path.is_file():
        return None
    data = read_yaml_file(path) or {}
    try:
        sd, rho = float(data["sd"]), float(data["correlation"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path.name}: needs numbers `sd` and `correlation` ({error})") from None
    if not (sd >= 0 and 0 <= rho < 1):
        raise ValueError(f"{path.name}: sd must be >= 0 and correlation in [0, 1)")
    return Discrepancy(sd=sd, correlation=rho)
