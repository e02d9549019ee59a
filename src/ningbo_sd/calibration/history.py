"""Conditioning a Monte Carlo on history: importance weights from the 2015-2020 figures.

The Monte Carlo draws the calibrated parameters from the calibration posterior, which is
already conditioned on the 2015-2020 figures it fits (the plan's, and the published ones of
2015 and 2020), and everything else (the register's
unfitted assumptions, the process noise) from its prior. Conditioning the whole draw on the
same figures is importance sampling with the likelihood ratio

    w_i = L(theta_i, u_i, noise_i) / L(theta_i, u_0, 0),

where ``L`` is the calibration's Gaussian likelihood of the fitted 2015-2020 figures
(residual ``(simulated - observed) / tolerance``, the same terms and tolerances as
:mod:`ningbo_sd.calibration.problem`), ``theta_i`` is the sample's posterior draw, ``u_0``
the register's defaults and ``0`` no noise. The denominator is what the posterior already
used, so the fitted figures are not counted twice: a sample whose unfitted assumptions and
noise keep history as well as its posterior draw did gets weight 1; one that contradicts
2015-2020 gets a small weight. The denominators are one run per posterior draw
(:func:`history_likelihood`). Without a posterior the point calibration is the reference.

The weights are stored with every sample (``log_weight``); quantiles and target
probabilities use them, and the effective sample size ``(sum w)^2 / sum w^2`` says how many
equally weighted samples they are worth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ningbo_sd.calibration.observations import STATUS_FITTED, ObservationTerm, measure_values

#: A non-finite simulated figure counts as this many tolerances off (as in the calibration).
NON_FINITE_RESIDUAL = 1e6


@dataclass(frozen=True)
class HistoryLikelihood:
    """The fitted history terms and each posterior draw's own log-likelihood.

    Attributes
    ----------
    terms : tuple of ObservationTerm
        The fitted 2015-2020 figures of the default calibration.
    reference : numpy.ndarray
        Log-likelihood of each posterior draw with the register's defaults and no noise
        (one entry when there is no posterior: the point calibration's).
    """

    terms: tuple[ObservationTerm, ...]
    reference: np.ndarray

    def log_likelihood(self, results) -> np.ndarray:
        """:func:`log_likelihood` of this history's terms."""
        return log_likelihood(self.terms, results)

    def log_weights(self, results, draws: np.ndarray | None) -> np.ndarray:
        """Log importance weights of a batch (``draws``: each sample's posterior row)."""
        reference = self.reference[draws] if draws is not None else self.reference[0]
        return self.log_likelihood(results) - reference


def log_likelihood(terms, results) -> np.ndarray:
    """``-0.5 * sum(residual^2)`` over the terms, for each sample of a batch.

    Parameters
    ----------
    terms : sequence of ObservationTerm
    results : xarray.Dataset
        Headline columns over ``(sample, year)``.
    """
    years = results["year"].to_numpy()
    total = np.zeros(results.sizes["sample"])
    for term in terms:
        series = results[term.column].transpose("sample", "year").to_numpy() * term.scale
        residual = (measure_values(series, term, years) - term.value) / term.tolerance
        total += np.where(np.isfinite(residual), residual, NON_FINITE_RESIDUAL) ** 2
    return -0.5 * total


def fitted_ids_beside(calibrated) -> frozenset[str] | None:
    """Ids of the figures the calibration at ``calibrated`` fitted; None without its report.

    ``ningbo-sd calibrate`` writes ``calibration_report.csv`` beside the calibration file,
    one row per figure of its problem with the figure's status there.
    """
    from pathlib import Path

    import pandas as pd

    from ningbo_sd.calibration.report import REPORT_CSV

    report = Path(calibrated).parent / REPORT_CSV
    if not report.is_file():
        return None
    frame = pd.read_csv(report, usecols=["id", "status"], dtype=str, keep_default_na=False)
    return frozenset(frame.loc[frame["status"] == STATUS_FITTED, "id"])


def fitted_terms(calibrated=None) -> list[ObservationTerm]:
    """The figures a calibration fitted, as terms: what an ensemble from it is conditioned on.

    Parameters
    ----------
    calibrated : path, optional
        The calibration file. None, the default calibration, or one without its report:
        the default problem's fitted terms. Another calibration (one through 2018 fits the
        figures of 2016-2018 as well): the figures its report marks fitted.

    Returns
    -------
    list of ObservationTerm
    """

    from ningbo_sd.calibration.observations import (
        actual_terms,
        build_terms,
        load_observation_map,
    )
    from ningbo_sd.calibration.problem import load_problem
    from ningbo_sd.plan.data import load_observations
    from ningbo_sd.resources import is_default_calibration

    ids = None if is_default_calibration(calibrated) else fitted_ids_beside(calibrated)
    if ids is None:
        return [term for term in load_problem().terms if term.status == STATUS_FITTED]
    terms = build_terms(load_observations(), load_observation_map()) + actual_terms()
    return [term for term in terms if term.id in ids and term.status == STATUS_FITTED]


def history_likelihood(prepared, terms: list | None = None) -> HistoryLikelihood:
    """The likelihood of the fitted 2015-2020 figures for a prepared Monte Carlo.

    Parameters
    ----------
    prepared : ningbo_sd.uncertainty.montecarlo.Prepared
        Its scenario parameters and posterior draws give the reference runs.
    terms : list of ObservationTerm, optional
        Default: the fitted terms of the default calibration problem.

    Returns
    -------
    HistoryLikelihood
    """
    import pandas as pd

    from ningbo_sd.calibration.problem import load_problem
    from ningbo_sd.uncertainty.montecarlo import run_samples
    from ningbo_sd.uncertainty.sampling import engine_columns

    if terms is None:
        terms = [term for term in load_problem().terms if term.status == STATUS_FITTED]
    terms = tuple(term for term in terms if term.status == STATUS_FITTED and term.computable)
    draws = prepared.spec.posterior
    table = draws.reset_index(drop=True) if draws is not None else pd.DataFrame(index=[0])
    vectors = {name: v for name, v in prepared.context.vectors.items() if name in table.columns}
    results = run_samples(
        engine_columns(table, vectors) if draws is not None else table,
        prepared.context,
    )
    return HistoryLikelihood(terms, log_likelihood(terms, results))


def effective_sample_size(log_weights: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2`` of weights given as logs (0 for no finite weight)."""
    log_weights = np.asarray(log_weights, dtype=float)
    finite = log_weights[np.isfinite(log_weights)]
    if finite.size == 0:
        return 0.0
    scaled = np.exp(finite - finite.max())
    return float(scaled.sum() ** 2 / np.square(scaled).sum())
