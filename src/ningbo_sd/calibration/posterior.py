"""Posterior sampling with emcee, identifiability and the draws the Monte Carlo reuses.

The sampler targets the same objective as the least-squares fit
(:meth:`ningbo_sd.calibration.problem.CalibrationProblem.log_probability`) on the unit scale, with
``vectorize=True`` so that every ensemble half-step is one batch engine call. Walkers
start from the Laplace approximation around the optimum; after a burn-in the chain is
flattened to the requested number of draws and thinned for the committed file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import emcee
import numpy as np
import pandas as pd

from ningbo_sd.calibration.fit import FitResult
from ningbo_sd.calibration.problem import CalibrationProblem
from ningbo_sd.io import atomic_write

#: Posterior sd over the prior range's sd below which the data constrain a parameter.
CONSTRAINED_RATIO = 0.5
#: ... and below which they constrain it weakly.
WEAK_RATIO = 0.8
#: Absolute posterior correlation reported as a strong pair.
STRONG_CORRELATION = 0.7
LOG_PROBABILITY_COLUMN = "log_probability"


@dataclass
class PosteriorResult:
    """Posterior draws and sampler diagnostics.

    Attributes
    ----------
    problem : CalibrationProblem
    draws : pandas.DataFrame
        One row per draw, one column per parameter (Vensim name, register scale), plus
        ``log_probability``.
    acceptance : float
        Mean acceptance fraction of the walkers.
    autocorrelation : numpy.ndarray
        Integrated autocorrelation time per parameter, in steps (NaN where unreliable).
    walkers, steps, burn_in, thin : int
        Sampler settings.
    """

    problem: CalibrationProblem
    draws: pd.DataFrame
    acceptance: float
    autocorrelation: np.ndarray
    walkers: int
    steps: int
    burn_in: int
    thin: int

    @property
    def theta(self) -> np.ndarray:
        """Draws as an array ``(draws, n_parameters)`` on the register's scale."""
        return self.draws[self.problem.names].to_numpy()

    @property
    def effective_size(self) -> float:
        """Rough effective sample size: post-burn-in samples over the largest
        integrated autocorrelation time (in steps), capped at the number of draws."""
        finite = self.autocorrelation[np.isfinite(self.autocorrelation)]
        if finite.size == 0 or finite.max() <= 0:
            return float("nan")
        kept = self.walkers * (self.steps - self.burn_in) / max(1.0, finite.max())
        return float(min(kept, len(self.draws)))

    def thinned(self, n_draws: int = 2000) -> pd.DataFrame:
        """An evenly spaced subset of the draws (for the committed file).

        Parameters
        ----------
        n_draws : int
            Rows to keep (all when there are fewer).

        Returns
        -------
        pandas.DataFrame
        """
        if len(self.draws) <= n_draws:
            return self.draws.reset_index(drop=True)
        index = np.linspace(0, len(self.draws) - 1, n_draws).round().astype(int)
        return self.draws.iloc[index].reset_index(drop=True)


class LaplaceIndependenceMove(emcee.moves.MHMove):
    """Independence Metropolis-Hastings move from a widened Laplace approximation.

    Proposals are drawn, for all walkers at once (one engine call), from a multivariate
    Student t centred on the optimum with the Jacobian covariance scaled by ``scale``:
    heavier tails than the posterior's Gaussian approximation, so the Metropolis-Hastings
    correction keeps the chain exact while a near-Gaussian posterior is explored with
    short autocorrelation times. It is mixed with differential-evolution moves, which do
    not rely on the approximation.

    Parameters
    ----------
    mean : numpy.ndarray
        Centre (the unit-scale optimum).
    covariance : numpy.ndarray
        Unit-scale covariance of the Laplace approximation.
    scale : float
        Factor on the standard deviations.
    degrees_of_freedom : float
        Of the Student t.
    """

    def __init__(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        scale: float = 1.3,
        degrees_of_freedom: float = 6.0,
    ) -> None:
        self.mean = np.asarray(mean, dtype=float)
        self.factor = np.linalg.cholesky(covariance * scale**2)
        self.inverse_factor = np.linalg.inv(self.factor)
        self.degrees_of_freedom = float(degrees_of_freedom)
        super().__init__(self._propose, ndim=self.mean.size)

    def log_density(self, points: np.ndarray) -> np.ndarray:
        """Log proposal density (up to a constant) at ``(k, n)`` points."""
        whitened = (np.atleast_2d(points) - self.mean) @ self.inverse_factor.T
        distance = np.sum(whitened**2, axis=1)
        power = -(self.degrees_of_freedom + self.mean.size) / 2.0
        return power * np.log1p(distance / self.degrees_of_freedom)

    def draw(self, count: int, random) -> np.ndarray:
        """Draw ``count`` proposals with a numpy random generator or RandomState."""
        normal = random.standard_normal((count, self.mean.size))
        mixing = random.chisquare(self.degrees_of_freedom, count) / self.degrees_of_freedom
        return self.mean + (normal @ self.factor.T) / np.sqrt(mixing)[:, None]

    def _propose(self, coords: np.ndarray, random) -> tuple[np.ndarray, np.ndarray]:
        proposal = self.draw(coords.shape[0], random)
        return proposal, self.log_density(coords) - self.log_density(proposal)


def laplace_covariance_unit(fit: FitResult) -> np.ndarray:
    """Unit-scale covariance ``(J^T J)^-1`` at the optimum (priors keep it regular)."""
    return np.linalg.pinv(fit.jacobian.T @ fit.jacobian, hermitian=True)


def initial_walkers(
    fit: FitResult, walkers: int, rng: np.random.Generator, move: LaplaceIndependenceMove
) -> np.ndarray:
    """Walker starts drawn from the widened Laplace approximation, inside the unit cube.

    Parameters
    ----------
    fit : FitResult
        The optimum and its Jacobian.
    walkers : int
        Number of walkers.
    rng : numpy.random.Generator
        Seeded generator.
    move : LaplaceIndependenceMove
        The proposal whose draws are used.

    Returns
    -------
    numpy.ndarray
        ``(walkers, n_parameters)`` strictly inside ``(0, 1)``.
    """
    starts = np.empty((0, fit.unit.size))
    for _ in range(100):
        draws = move.draw(4 * walkers, rng)
        inside = np.all((draws > 0.0) & (draws < 1.0), axis=1)
        starts = np.vstack([starts, draws[inside]])
        if len(starts) >= walkers:
            return starts[:walkers]
    # Optimum on a bound and a wide approximation: top up with points near the optimum.
    extra = walkers - len(starts)
    noise = rng.standard_normal((extra, fit.unit.size)) * 1e-3
    return np.vstack([starts, np.clip(fit.unit + noise, 1e-6, 1.0 - 1e-6)])


def sample_posterior(
    fit: FitResult,
    n_draws: int = 10_000,
    walkers: int | None = None,
    burn_in: int = 200,
    thin: int = 10,
    seed: int = 20210101,
) -> PosteriorResult:
    """Sample the posterior of the fitted parameters with emcee.

    Parameters
    ----------
    fit : FitResult
        The point calibration (walkers start from its Laplace approximation).
    n_draws : int
        Draws to keep after burn-in and thinning (walkers x kept steps, cut to size).
    walkers : int, optional
        Ensemble size (default ``max(64, 4 * n_parameters)``, made even).
    burn_in : int
        Steps discarded at the start.
    thin : int
        Keep every ``thin``-th step after burn-in.
    seed : int
        Seeds the walkers' starts and emcee's generator (same seed, same draws).

    Returns
    -------
    PosteriorResult
    """
    problem = fit.problem
    ndim = problem.n_parameters
    walkers = walkers or max(64, 4 * ndim)
    walkers += walkers % 2
    steps = burn_in + int(np.ceil(n_draws / walkers)) * thin
    rng = np.random.default_rng(seed)
    independence = LaplaceIndependenceMove(fit.unit, laplace_covariance_unit(fit))
    start = initial_walkers(fit, walkers, rng, independence)
    sampler = emcee.EnsembleSampler(
        walkers,
        ndim,
        problem.log_probability,
        vectorize=True,
        moves=[
            (independence, 0.5),
            (emcee.moves.DEMove(), 0.4),
            (emcee.moves.DESnookerMove(), 0.1),
        ],
    )
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(start, steps, progress=False)
    chain = sampler.get_chain(discard=burn_in, thin=thin, flat=True)[:n_draws]
    log_probability = sampler.get_log_prob(discard=burn_in, thin=thin, flat=True)[:n_draws]
    draws = pd.DataFrame(problem.from_unit(chain), columns=problem.names)
    draws[LOG_PROBABILITY_COLUMN] = log_probability
    emcee_logger = logging.getLogger("emcee.autocorr")
    previous = emcee_logger.level
    emcee_logger.setLevel(logging.ERROR)  # short chains: the estimate is rough, not an error
    try:
        # A walker that never moved has a constant series (0/0 autocorrelation): its
        # estimate is NaN, reported as unreliable.
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = sampler.get_autocorr_time(discard=burn_in, quiet=True)
    except emcee.autocorr.AutocorrError:
        tau = np.full(ndim, np.nan)
    finally:
        emcee_logger.setLevel(previous)
    return PosteriorResult(
        problem=problem,
        draws=draws,
        acceptance=float(np.mean(sampler.acceptance_fraction)),
        autocorrelation=np.asarray(tau, dtype=float),
        walkers=walkers,
        steps=steps,
        burn_in=burn_in,
        thin=thin,
    )


def identifiability(posterior: PosteriorResult) -> pd.DataFrame:
    """Which parameters the data constrain (see :func:`identifiability_table`).

    Parameters
    ----------
    posterior : PosteriorResult

    Returns
    -------
    pandas.DataFrame
    """
    return identifiability_table(posterior.problem, posterior.draws)


def identifiability_table(problem: CalibrationProblem, draws: pd.DataFrame) -> pd.DataFrame:
    """Posterior summaries and whether the data constrain each parameter.

    A parameter is *constrained* when its posterior sd is below
    :data:`CONSTRAINED_RATIO` times the sd of the register's uniform range, *weakly
    constrained* below :data:`WEAK_RATIO`, else *not constrained* (its posterior is
    about its prior).

    Parameters
    ----------
    problem : CalibrationProblem
    draws : pandas.DataFrame
        Posterior draws with one column per parameter (e.g. from :func:`read_draws`).

    Returns
    -------
    pandas.DataFrame
        Indexed by parameter: posterior mean, sd, 2.5/50/97.5 % quantiles, prior sd,
        ratio, verdict.
    """
    missing = [name for name in problem.names if name not in draws.columns]
    if missing:
        raise KeyError(f"posterior draws lack the parameters {missing}")
    theta = draws[problem.names].to_numpy()
    prior_sd = np.array([p.prior_sd for p in problem.parameters])
    sd = theta.std(axis=0, ddof=1)
    ratio = sd / prior_sd
    verdict = np.where(
        ratio < CONSTRAINED_RATIO,
        "constrained",
        np.where(ratio < WEAK_RATIO, "weakly constrained", "not constrained"),
    )
    quantiles = np.quantile(theta, [0.025, 0.5, 0.975], axis=0)
    return pd.DataFrame(
        {
            "posterior_mean": theta.mean(axis=0),
            "posterior_sd": sd,
            "q025": quantiles[0],
            "median": quantiles[1],
            "q975": quantiles[2],
            "prior_sd": prior_sd,
            "sd_ratio": ratio,
            "verdict": verdict,
        },
        index=pd.Index(problem.names, name="parameter"),
    )


def correlations(posterior: PosteriorResult) -> pd.DataFrame:
    """Pairwise posterior correlations of the parameters (a square DataFrame)."""
    return posterior.draws[posterior.problem.names].corr()


def strong_pairs(correlation: pd.DataFrame, threshold: float = STRONG_CORRELATION) -> pd.DataFrame:
    """Parameter pairs whose absolute correlation is at least ``threshold``.

    Parameters
    ----------
    correlation : pandas.DataFrame
        From :func:`correlations`.
    threshold : float

    Returns
    -------
    pandas.DataFrame
        Columns ``first``, ``second``, ``correlation``, strongest first.
    """
    names = list(correlation.index)
    rows = [
        (names[i], names[j], float(correlation.iloc[i, j]))
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if abs(correlation.iloc[i, j]) >= threshold
    ]
    frame = pd.DataFrame(rows, columns=["first", "second", "correlation"])
    return frame.reindex(frame["correlation"].abs().sort_values(ascending=False).index)


def write_draws(draws: pd.DataFrame, path: str | Path) -> Path:
    """Write posterior draws atomically (``.parquet`` or ``.csv`` by suffix).

    Parameters
    ----------
    draws : pandas.DataFrame
    path : str or Path

    Returns
    -------
    Path
    """
    path = Path(path)
    if path.suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: posterior draws are written as .parquet or .csv")

    def write(temporary: Path) -> None:
        if path.suffix == ".parquet":
            draws.to_parquet(temporary, index=False, compression="zstd")
        else:
            draws.to_csv(temporary, index=False)

    return atomic_write(path, write)


def read_draws(path: str | Path) -> pd.DataFrame:
    """Read posterior draws written by :func:`write_draws` (Vensim-named columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: posterior draws not found (run `ningbo-sd calibrate`)")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
