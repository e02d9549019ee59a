"""Point calibration: bounded least squares from several seeded starts.

Every start runs :func:`scipy.optimize.least_squares` (trust-region reflective, bounds
``[0, 1]`` on the unit scale) on the weighted residuals of
:class:`ningbo_sd.calibration.problem.CalibrationProblem`. The Jacobian is a forward-difference
Jacobian evaluated as one batch of ``n`` perturbed samples (plus the cached centre), so
each iteration costs two engine calls. Starts are the register defaults plus a seeded
Latin hypercube; the best optimum is kept and the spread of the others is reported.
The covariance is the Laplace approximation ``(J^T J)^-1`` at the optimum: residuals
are already divided by the observations' tolerances and the prior spreads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import qmc

from ningbo_sd.calibration.problem import CalibrationProblem

#: Forward-difference step on the unit scale.
JACOBIAN_STEP = 1e-6
#: Optima whose cost is within this much of the best count as equally good
#: (a change of 2 in chi-square: 0.5 * 2 in cost units).
EQUIVALENT_COST = 1.0


@dataclass(frozen=True)
class StartResult:
    """The outcome of one least-squares start.

    Attributes
    ----------
    start, optimum : numpy.ndarray
        Unit-scale start and optimum.
    cost : float
        ``0.5 * sum(residual**2)`` at the optimum.
    evaluations : int
        Residual evaluations (engine calls for the centre).
    status : int
        :func:`scipy.optimize.least_squares` status (> 0 converged).
    """

    start: np.ndarray
    optimum: np.ndarray
    cost: float
    evaluations: int
    status: int


@dataclass
class FitResult:
    """The calibrated point and its local uncertainty.

    Attributes
    ----------
    problem : CalibrationProblem
    unit, theta : numpy.ndarray
        The best optimum on the unit and on the register's scale.
    cost : float
        Half the sum of squared residuals (data and prior) at the optimum.
    residuals, jacobian : numpy.ndarray
        Residual vector and its Jacobian on the unit scale at the optimum.
    covariance : numpy.ndarray
        Parameter covariance on the register's scale, ``D (J^T J)^-1 D``.
    starts : list of StartResult
        Every start, in order (start 0: the register defaults).
    """

    problem: CalibrationProblem
    unit: np.ndarray
    theta: np.ndarray
    cost: float
    residuals: np.ndarray
    jacobian: np.ndarray
    covariance: np.ndarray
    starts: list[StartResult] = field(default_factory=list)

    @property
    def sd(self) -> np.ndarray:
        """Standard errors from the Jacobian covariance."""
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    @property
    def correlation(self) -> np.ndarray:
        """Correlation matrix from the Jacobian covariance."""
        sd = self.sd
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = self.covariance / np.outer(sd, sd)
        return np.nan_to_num(corr)

    @property
    def data_chi_square(self) -> float:
        """Sum of squared observation residuals (priors excluded)."""
        return float(np.sum(self.residuals[: len(self.problem.fitted)] ** 2))

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Normal interval from the Jacobian covariance, clipped to the bounds.

        Parameters
        ----------
        level : float
            Coverage (0.95: mean +- 1.96 sd).

        Returns
        -------
        (low, high) : tuple of numpy.ndarray
        """
        from scipy.stats import norm

        half = norm.ppf(0.5 + level / 2.0) * self.sd
        lower = np.maximum(self.theta - half, self.problem.lower)
        upper = np.minimum(self.theta + half, self.problem.upper)
        return lower, upper

    def equivalent_optima(self) -> np.ndarray:
        """Optima (register scale) of the starts as good as the best, ``(k, n)``."""
        good = [s.optimum for s in self.starts if s.cost <= self.cost + EQUIVALENT_COST]
        return self.problem.from_unit(np.array(good))

    def start_spread(self) -> np.ndarray:
        """Standard deviation over all starts' optima, per parameter (register scale)."""
        optima = self.problem.from_unit(np.array([s.optimum for s in self.starts]))
        return optima.std(axis=0)


class BatchedObjective:
    """Residuals and forward-difference Jacobian, each one engine call.

    Parameters
    ----------
    problem : CalibrationProblem
    step : float
        Forward-difference step on the unit scale (taken backwards near the upper bound).
    """

    def __init__(self, problem: CalibrationProblem, step: float = JACOBIAN_STEP) -> None:
        self.problem = problem
        self.step = step
        self.evaluations = 0
        self._last_x: np.ndarray | None = None
        self._last_residuals: np.ndarray | None = None

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """Residual vector at one unit-scale point (cached for the Jacobian)."""
        x = np.asarray(x, dtype=float)
        if self._last_x is not None and np.array_equal(x, self._last_x):
            return self._last_residuals.copy()
        values = self.problem.residuals(x[None, :])[0]
        self.evaluations += 1
        self._last_x, self._last_residuals = x.copy(), values
        return values.copy()

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Forward-difference Jacobian ``(n_residuals, n_parameters)`` in one batch."""
        x = np.asarray(x, dtype=float)
        n = x.size
        steps = np.where(x + self.step <= 1.0, self.step, -self.step)
        points = np.repeat(x[None, :], n, axis=0) + np.diag(steps)
        centre_known = self._last_x is not None and np.array_equal(x, self._last_x)
        batch = points if centre_known else np.vstack([x[None, :], points])
        values = self.problem.residuals(batch)
        self.evaluations += 1
        centre = self._last_residuals if centre_known else values[0]
        shifted = values if centre_known else values[1:]
        return ((shifted - centre[None, :]) / steps[:, None]).T


def latin_starts(n_parameters: int, n_starts: int, seed: int) -> np.ndarray:
    """Seeded Latin-hypercube starts in the unit cube, ``(n_starts, n_parameters)``."""
    if n_starts <= 0:
        return np.empty((0, n_parameters))
    sampler = qmc.LatinHypercube(d=n_parameters, seed=np.random.default_rng(seed))
    return sampler.random(n_starts)


def fit_start(
    problem: CalibrationProblem, start: np.ndarray, max_evaluations: int = 200
) -> StartResult:
    """Run least squares from one unit-scale start.

    Parameters
    ----------
    problem : CalibrationProblem
    start : numpy.ndarray
        Start in ``[0, 1]^n``.
    max_evaluations : int
        Cap on residual evaluations.

    Returns
    -------
    StartResult
    """
    objective = BatchedObjective(problem)
    solution = least_squares(
        objective.residuals,
        np.clip(start, 0.0, 1.0),
        jac=objective.jacobian,
        bounds=(0.0, 1.0),
        method="trf",
        x_scale="jac",
        xtol=1e-10,
        ftol=1e-10,
        gtol=1e-10,
        max_nfev=max_evaluations,
    )
    return StartResult(
        start=np.asarray(start, dtype=float),
        optimum=solution.x,
        cost=float(solution.cost),
        evaluations=int(solution.nfev),
        status=int(solution.status),
    )


def jacobian_covariance(problem: CalibrationProblem, jacobian: np.ndarray) -> np.ndarray:
    """Parameter covariance on the register's scale from a unit-scale Jacobian.

    Parameters
    ----------
    problem : CalibrationProblem
    jacobian : numpy.ndarray
        ``(n_residuals, n_parameters)`` at the optimum.

    Returns
    -------
    numpy.ndarray
        ``D (J^T J)^+ D`` with ``D = diag(high - low)``.
    """
    information = jacobian.T @ jacobian
    covariance_unit = np.linalg.pinv(information, hermitian=True)
    width = problem.upper - problem.lower
    return covariance_unit * np.outer(width, width)


def calibrate(
    problem: CalibrationProblem,
    n_starts: int = 8,
    seed: int = 20210101,
    max_evaluations: int = 200,
) -> FitResult:
    """Fit the parameters by multi-start bounded least squares.

    Parameters
    ----------
    problem : CalibrationProblem
    n_starts : int
        Latin-hypercube starts in addition to the register defaults.
    seed : int
        Seed of the Latin hypercube (same seed, same result).
    max_evaluations : int
        Cap on residual evaluations per start.

    Returns
    -------
    FitResult
    """
    starts = np.vstack(
        [problem.default_unit[None, :], latin_starts(problem.n_parameters, n_starts, seed)]
    )
    outcomes: list[StartResult] = []
    for start in starts:
        outcomes.append(fit_start(problem, start, max_evaluations))
    best = min(outcomes, key=lambda outcome: outcome.cost)
    optimum = best.optimum
    objective = BatchedObjective(problem)
    residuals = objective.residuals(optimum)
    jacobian = objective.jacobian(optimum)
    return FitResult(
        problem=problem,
        unit=optimum,
        theta=problem.from_unit(optimum),
        cost=best.cost,
        residuals=residuals,
        jacobian=jacobian,
        covariance=jacobian_covariance(problem, jacobian),
        starts=outcomes,
    )


class _FixedParameter:
    """The problem with one unit-scale coordinate held fixed (for profiles)."""

    def __init__(self, problem: CalibrationProblem, index: int, value: float) -> None:
        self.problem = problem
        self.index = index
        self.value = value

    def residuals(self, unit: np.ndarray) -> np.ndarray:
        unit = np.atleast_2d(unit)
        full = np.insert(unit, self.index, self.value, axis=1)
        return self.problem.residuals(full)


def influence(fit: FitResult) -> pd.Series:
    """How strongly each parameter moves the weighted residuals over its whole range.

    The norm of the Jacobian column on the unit scale: the change in the residual
    vector (in tolerances) per full register range, at the optimum.

    Parameters
    ----------
    fit : FitResult

    Returns
    -------
    pandas.Series
        Indexed by parameter, largest first.
    """
    n_data = len(fit.problem.fitted)
    norms = np.linalg.norm(fit.jacobian[:n_data], axis=0)
    return pd.Series(norms, index=fit.problem.names, name="influence").sort_values(ascending=False)


def profile(
    fit: FitResult, name: str, n_points: int = 9, max_evaluations: int = 30
) -> pd.DataFrame:
    """Profile of the cost along one parameter, the others re-fitted at each point.

    Parameters
    ----------
    fit : FitResult
        The optimum (each re-fit starts there).
    name : str
        Vensim name of a fitted parameter.
    n_points : int
        Grid points across the register range.
    max_evaluations : int
        Cap on residual evaluations per re-fit.

    Returns
    -------
    pandas.DataFrame
        Columns ``value`` (register scale), ``profile_cost`` (others re-fitted),
        ``slice_cost`` (others held at the optimum); costs are relative to the optimum
        (``0.5 * delta chi-square``; 1.92 marks a 95 % profile interval).
    """
    problem = fit.problem
    if name not in problem.names:
        raise KeyError(f"{name!r} is not a fitted parameter; fitted: {problem.names}")
    index = problem.names.index(name)
    grid = np.linspace(0.0, 1.0, n_points)
    slices = np.repeat(fit.unit[None, :], n_points, axis=0)
    slices[:, index] = grid
    slice_cost = 0.5 * np.sum(problem.residuals(slices) ** 2, axis=1)
    others = np.delete(fit.unit, index)
    profile_cost = []
    for value in grid:
        restricted = _FixedParameter(problem, index, float(value))
        objective = BatchedObjective(restricted)  # duck-typed: only .residuals is used
        solution = least_squares(
            objective.residuals,
            others,
            jac=objective.jacobian,
            bounds=(0.0, 1.0),
            method="trf",
            x_scale="jac",
            max_nfev=max_evaluations,
        )
        profile_cost.append(min(float(solution.cost), float(slice_cost[len(profile_cost)])))
    return pd.DataFrame(
        {
            "value": problem.from_unit(slices)[:, index],
            "profile_cost": np.array(profile_cost) - fit.cost,
            "slice_cost": slice_cost - fit.cost,
        }
    )
