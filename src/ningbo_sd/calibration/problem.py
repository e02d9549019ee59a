"""The calibration problem: parameters, observations and a batched payoff.

Parameters to fit are the assumptions-register rows marked ``calibrate = true``; they are
fitted on the unit scale ``u = (theta - low) / (high - low)`` so that every parameter
lives in ``[0, 1]``. Observations are the rows of ``calibration/data/observations.csv``;
``calibration/observation_map.yaml`` says which headline column (and price basis)
computes each indicator, or why the model cannot.

The observation terms come from :mod:`ningbo_sd.calibration.observations`. The payoff is a vector
of weighted residuals, evaluated for a whole batch of parameter vectors in one engine
call:

- one residual per fitted observation, ``(simulated - observed) / tolerance``;
- one prior residual per parameter, ``(theta - default) / prior_sd`` with
  ``prior_sd = (high - low) / sqrt(12)``: a Gaussian with the spread of the register's
  uniform range, centred on the register's default, truncated to the range (bounds).

The log-posterior is ``-0.5 * sum(residual**2)`` inside the bounds and ``-inf`` outside,
so least squares, the Jacobian covariance and the posterior sampler share one objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ningbo_sd.calibration.observations import (
    MAP_FILE,
    MODEL_YEARS,
    STATUS_FITTED,
    STATUS_NOT_FITTED,
    ObservationTerm,
    actual_terms,
    build_terms,
    load_observation_map,
    measure_values,
    window_actual,
)
from ningbo_sd.calibration.simulate import BatchSimulator
from ningbo_sd.io import UserError
from ningbo_sd.plan.assumptions import (
    ASSUMPTIONS_FILE,
    Assumption,
    calibration_candidates,
    load_assumptions,
)

UNIFORM_SD = 1.0 / np.sqrt(12.0)


class UninformedParameterError(UserError):
    """A calibrated register row that no fitted figure depends on."""


@dataclass(frozen=True)
class ParameterSpec:
    """A parameter to fit.

    Attributes
    ----------
    name : str
        Vensim constant name.
    low, high : float
        Bounds (for a ``vector_scale`` row: of the common factor).
    default : float
        Prior centre on the same scale (the model default, or 1 for a factor).
    assumption : Assumption
        The register row it comes from.
    """

    name: str
    low: float
    high: float
    default: float
    assumption: Assumption

    @property
    def width(self) -> float:
        """Length of the range."""
        return self.high - self.low

    @property
    def prior_sd(self) -> float:
        """Standard deviation of the register's uniform range."""
        return self.width * UNIFORM_SD


class CalibrationProblem:
    """Parameters, observations and the batched payoff of the 2015-2020 calibration.

    Parameters
    ----------
    parameters : sequence of ParameterSpec
        What to fit.
    terms : sequence of ObservationTerm
        Every observation (fitted, secondary and not modelled).
    simulator : BatchSimulator, optional
        Built from the terms' columns when omitted.
    fixed : dict, optional
        Constants to set in every run (Vensim name -> value); default: none, so every
        other constant keeps its model-file default.
    """

    def __init__(
        self,
        parameters: Sequence[ParameterSpec],
        terms: Sequence[ObservationTerm],
        simulator: BatchSimulator | None = None,
        fixed: dict | None = None,
    ) -> None:
        if not parameters:
            raise ValueError("no parameters to calibrate")
        self.parameters = tuple(parameters)
        self.terms = tuple(terms)
        self.computable = tuple(term for term in self.terms if term.computable)
        self.fitted = tuple(term for term in self.terms if term.status == STATUS_FITTED)
        if not self.fitted:
            raise ValueError("no observation can be computed by the model; nothing to fit")
        columns = sorted({term.column for term in self.computable})
        last_year = max(term.year for term in self.computable)
        self.years = np.arange(MODEL_YEARS.start, last_year + 1)
        self.simulator = simulator or BatchSimulator(columns, self.years)
        self.fixed = dict(fixed or {})
        self.lower = np.array([p.low for p in self.parameters])
        self.upper = np.array([p.high for p in self.parameters])
        self.default_unit = self.to_unit(np.array([p.default for p in self.parameters]))
        self.prior_sd_unit = np.full(len(self.parameters), UNIFORM_SD)
        self._fitted_index = np.array(
            [self.computable.index(term) for term in self.fitted], dtype=int
        )
        self.tolerance = np.array([term.tolerance for term in self.fitted])
        self.observed = np.array([term.value for term in self.fitted])

    # ------------------------------------------------------------------ scales
    @property
    def names(self) -> list[str]:
        """Vensim names of the fitted parameters."""
        return [p.name for p in self.parameters]

    @property
    def n_parameters(self) -> int:
        """Number of fitted parameters."""
        return len(self.parameters)

    @property
    def n_residuals(self) -> int:
        """Observation residuals plus one prior residual per parameter."""
        return len(self.fitted) + self.n_parameters

    def to_unit(self, theta: np.ndarray) -> np.ndarray:
        """Map parameter values to the unit cube."""
        return (np.asarray(theta, dtype=float) - self.lower) / (self.upper - self.lower)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """Map unit-cube coordinates to parameter values."""
        return self.lower + np.asarray(unit, dtype=float) * (self.upper - self.lower)

    # ------------------------------------------------------------------ runs
    def parameter_table(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Engine input for a batch of parameter vectors.

        Parameters
        ----------
        theta : numpy.ndarray
            ``(samples, n_parameters)`` values on the register's scale.

        Returns
        -------
        dict
            Vensim name -> ``(samples,)`` or ``(samples, elements)`` array.
        """
        theta = np.atleast_2d(theta)
        table: dict[str, np.ndarray] = {
            name: np.broadcast_to(np.asarray(value, dtype=float), (1, *np.shape(value)))
            for name, value in self.fixed.items()
        }
        for index, spec in enumerate(self.parameters):
            # a vector row: (samples, elements), base ** u or u * base
            table[spec.name] = spec.assumption.model_value(theta[:, index])
        return table

    def simulate(self, theta: np.ndarray) -> np.ndarray:
        """Simulated values of every computable observation.

        Parameters
        ----------
        theta : numpy.ndarray
            ``(samples, n_parameters)`` parameter values.

        Returns
        -------
        numpy.ndarray
            ``(samples, len(self.computable))``.
        """
        runs = self.simulator.run(self.parameter_table(theta))
        out = np.empty((np.atleast_2d(theta).shape[0], len(self.computable)))
        for index, term in enumerate(self.computable):
            out[:, index] = measure_values(runs[term.column] * term.scale, term, self.years)
        return out

    def residuals_from_simulated(self, simulated: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Weighted residuals from simulated observations and unit-scale parameters."""
        fitted = simulated[:, self._fitted_index]
        data = (fitted - self.observed) / self.tolerance
        prior = (np.atleast_2d(unit) - self.default_unit) / self.prior_sd_unit
        out = np.concatenate([data, prior], axis=1)
        return np.where(np.isfinite(out), out, 1e6)

    def residuals(self, unit: np.ndarray) -> np.ndarray:
        """Weighted residuals for a batch of unit-scale parameter vectors.

        Parameters
        ----------
        unit : numpy.ndarray
            ``(samples, n_parameters)`` in ``[0, 1]``.

        Returns
        -------
        numpy.ndarray
            ``(samples, n_residuals)``: observations first, then priors. Non-finite
            simulated values become a residual of 1e6.
        """
        unit = np.atleast_2d(unit)
        return self.residuals_from_simulated(self.simulate(self.from_unit(unit)), unit)

    def log_probability(self, unit: np.ndarray) -> np.ndarray:
        """Log posterior (up to a constant) for a batch of unit-scale vectors.

        Parameters
        ----------
        unit : numpy.ndarray
            ``(samples, n_parameters)``.

        Returns
        -------
        numpy.ndarray
            ``(samples,)``; ``-inf`` outside the unit cube.
        """
        unit = np.atleast_2d(unit)
        inside = np.all((unit >= 0.0) & (unit <= 1.0), axis=1)
        out = np.full(unit.shape[0], -np.inf)
        if inside.any():
            res = self.residuals(unit[inside])
            out[inside] = -0.5 * np.sum(res**2, axis=1)
        return out

    def uninformed(self, points: int = 16, seed: int = 0) -> list[str]:
        """Parameters that move no fitted figure anywhere the data could place them.

        Each parameter is set to both ends of its range at ``points`` random points of the
        unit cube; one whose fitted figures never change is informed only by its prior (a
        rate that acts after the window, a level that cancels in every fitted ratio), so
        the posterior can only echo the prior, and a sampler's noise in it would reach the
        forecasts. Such a row should not be calibrated.

        Parameters
        ----------
        points : int
            Random points of the unit cube to test at (seeded).
        seed : int
            Seed of the points.

        Returns
        -------
        list of str
            The uninformed parameters, in register order.
        """
        rng = np.random.default_rng(seed)
        centre = rng.uniform(0.05, 0.95, (points, self.n_parameters))
        batch = []
        for index in range(self.n_parameters):
            for end in (0.0, 1.0):
                moved = centre.copy()
                moved[:, index] = end
                batch.append(moved)
        simulated = self.simulate(self.from_unit(np.vstack(batch)))[:, self._fitted_index]
        ends = simulated.reshape(self.n_parameters, 2, points, -1)
        with np.errstate(invalid="ignore"):
            changed = ~np.isclose(ends[:, 0], ends[:, 1], rtol=1e-12, atol=0.0, equal_nan=True)
        return [
            name
            for name, moves in zip(self.names, changed.any(axis=(1, 2)), strict=True)
            if not moves
        ]

    def with_observed(self, values: np.ndarray) -> CalibrationProblem:
        """The same problem with other observed values for the fitted observations.

        Parameters
        ----------
        values : numpy.ndarray
            ``(len(self.fitted),)`` replacement values (synthetic-data tests).

        Returns
        -------
        CalibrationProblem
            Shares the simulator (and its compiled model).
        """
        values = np.asarray(values, dtype=float)
        if values.shape != (len(self.fitted),):
            raise ValueError(f"expected {len(self.fitted)} observed values, got {values.shape}")
        replaced = dict(zip([t.id for t in self.fitted], values, strict=True))
        terms = [
            replace(term, value=float(replaced[term.id])) if term.id in replaced else term
            for term in self.terms
        ]
        return CalibrationProblem(self.parameters, terms, self.simulator, self.fixed)


def parameter_specs(
    register: dict[str, Assumption], names: Sequence[str] | None = None
) -> list[ParameterSpec]:
    """Parameters to fit: the register's candidates, or the given subset of them.

    Parameters
    ----------
    register : dict
        From :func:`ningbo_sd.plan.assumptions.load_assumptions`.
    names : sequence of str, optional
        Vensim names to fit (each must be a register row with a non-empty range).

    Returns
    -------
    list of ParameterSpec
    """
    candidates = {entry.name: entry for entry in calibration_candidates(register)}
    levers = _lever_constants()
    policy = sorted(name for name in candidates if name in levers)
    if policy:
        raise ValueError(
            f"assumptions register: {policy} are policy levers (scenarios/registry/levers.yaml) "
            "marked calibrate = true; a lever is a scenario's choice: set calibrate = false"
        )
    if names is None:
        chosen = list(candidates.values())
    else:
        unknown = [name for name in names if name not in register]
        if unknown:
            raise KeyError(f"{unknown} are not rows of the assumptions register")
        flat = [name for name in names if register[name].high <= register[name].low]
        if flat:
            raise ValueError(f"{flat} have an empty range in the assumptions register")
        chosen = [register[name] for name in names]
    return [
        ParameterSpec(name=a.name, low=a.low, high=a.high, default=a.centre, assumption=a)
        for a in chosen
    ]


def _lever_constants() -> set[str]:
    """Model constants a scenario sets as policy levers (every period of a path lever)."""
    from ningbo_sd.scenarios.levers import load_levers

    names: set[str] = set()
    for lever in load_levers().values():
        if lever.kind == "path":
            for period in ("2021 2025", "2026 2035"):
                names |= {f"{lever.model_name} {period}", f"{lever.model_name} Shape {period}"}
        else:
            names.add(lever.model_name)
    return names


def fit_through(terms: list, year: int) -> list:
    """Terms with every figure after ``year`` kept out of the fit (shown, not fitted)."""
    reason = f"after {year}: outside the calibration window (--through {year})"
    return [
        replace(term, status=STATUS_NOT_FITTED, reason=reason)
        if term.status == STATUS_FITTED and term.year > year
        else term
        for term in terms
    ]


def load_problem(
    observations_path: str | Path | None = None,
    assumptions_path: str | Path = ASSUMPTIONS_FILE,
    map_path: str | Path = MAP_FILE,
    parameters: Sequence[str] | None = None,
    indicators_path: str | Path | None = None,
    through: int | None = None,
) -> CalibrationProblem:
    """Build the calibration problem from the project's data files.

    Parameters
    ----------
    observations_path : str or Path, optional
        ``observations.csv`` (default: the bundled one).
    assumptions_path : str or Path
        The assumptions register.
    map_path : str or Path
        The observation map.
    parameters : sequence of str, optional
        Fit only these register rows (default: every ``calibrate = true`` row).
    indicators_path : str or Path, optional
        ``indicators.csv`` (default: the bundled one).
    through : int, optional
        Fit the plan's figures and the published actuals up to this year (the default,
        None, fits the plan's 2015-2020 figures and the published figures of 2015 and 2020,
        :func:`~ningbo_sd.calibration.observations.window_actual`).

    Returns
    -------
    CalibrationProblem

    Raises
    ------
    ningbo_sd.plan.data.DataFileError, AssumptionsError, ObservationMapError
        Bad input files; the message names the file, row and column.
    """
    from ningbo_sd.plan.data import load_observations

    observations = load_observations(observations_path, indicators_path=indicators_path)
    terms = build_terms(observations, load_observation_map(map_path))
    if through is not None:
        terms = fit_through(terms + actual_terms(), through)
    else:
        terms = terms + [term for term in actual_terms() if window_actual(term)]
    specs = parameter_specs(load_assumptions(assumptions_path), parameters)
    problem = CalibrationProblem(specs, terms)
    known = problem.simulator.compiled.constants
    unknown = [spec for spec in specs if spec.name not in known]
    if unknown:
        lines = ", ".join(f"line {s.assumption.line} ({s.name})" for s in unknown)
        raise KeyError(f"{assumptions_path}: {lines}: not a constant of the model")
    return problem


def refuse_uninformed(problem: CalibrationProblem, assumptions_path: str | Path) -> None:
    """Refuse calibrated register rows that no fitted figure depends on.

    Parameters
    ----------
    problem : CalibrationProblem
        From :func:`load_problem`.
    assumptions_path : str or Path
        The register it was built from (for the message).

    Raises
    ------
    UninformedParameterError
        One line naming the register lines and parameters, and what is allowed.
    """
    uninformed = set(problem.uninformed())
    if uninformed:
        lines = ", ".join(
            f"line {spec.assumption.line} ({spec.name})"
            for spec in problem.parameters
            if spec.name in uninformed
        )
        raise UninformedParameterError(
            f"{assumptions_path}: {lines}: calibrate is true, but no fitted figure depends on "
            "it; allowed: calibrate false (the Monte Carlo then draws it from its range)"
        )
