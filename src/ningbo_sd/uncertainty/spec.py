"""Uncertainty specifications: which model constants are uncertain, and how.

An *uncertainty specification* (``scenarios/registry/uncertainty.yaml`` by default) gives each
uncertain parameter a distribution (``uniform``, ``triangular``, ``normal``, ``lognormal``
or ``posterior`` = the calibration's draws), bounds and a source. The default file builds
its list from the assumptions register (``calibration/data/assumptions.csv``): every row
whose distribution is not ``fixed`` and whose range is not a point, except the scenario's
levers (see :func:`resolve_spec`). :mod:`ningbo_sd.uncertainty.sampling` turns a resolved
specification into sample tables.

Every error names the file, the dotted field, the value found and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ningbo_sd.io import UserError, read_yaml_file
from ningbo_sd.resources import registry_file

SPEC_FILE = registry_file("uncertainty")
DISTRIBUTIONS = ("uniform", "triangular", "normal", "lognormal", "posterior")
#: The factor that picks a row of the calibration posterior.
POSTERIOR_FACTOR = "posterior draw"
#: Column of the sample table holding the posterior row index.
POSTERIOR_COLUMN = "posterior_draw"
#: Distance from 0 and 1 kept on an unbounded side of a distribution (ppf(0) is -inf).
UNBOUNDED_EPSILON = 1e-12
_FIELDS = {
    "uniform": {"low", "high"},
    "triangular": {"low", "mode", "high"},
    "normal": {"mean", "sd"},
    "lognormal": {"median", "sigma"},
    "posterior": set(),
}
_OPTIONAL = {"normal": {"low", "high"}, "lognormal": {"low", "high"}}
_SHAPE_FIELDS = ("low", "high", "mode", "mean", "sd", "median", "sigma")


class UncertaintySpecError(UserError):
    """An uncertainty specification is invalid; the message names file and field."""


class ParameterEntry(BaseModel):
    """One uncertain parameter of a specification file."""

    model_config = ConfigDict(extra="forbid")
    distribution: Literal["uniform", "triangular", "normal", "lognormal", "posterior"]
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    sigma: float | None = None
    scale_vector: bool = False
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _check_shape(self) -> ParameterEntry:
        kind = self.distribution
        given = {name for name in _SHAPE_FIELDS if getattr(self, name) is not None}
        missing = sorted(_FIELDS[kind] - given)
        if missing:
            raise ValueError(f"{kind!r} needs {', '.join(_FIELDS[kind])}; missing {missing}")
        allowed = _FIELDS[kind] | _OPTIONAL.get(kind, set())
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(
                f"{kind!r} takes {', '.join(sorted(allowed)) or 'no shape fields'}; remove {extra}"
            )
        values = {name: getattr(self, name) for name in given}
        if not all(math.isfinite(value) for value in values.values()):
            raise ValueError(f"all of {sorted(given)} must be finite numbers")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
        if kind == "triangular" and not self.low <= self.mode <= self.high:
            raise ValueError(f"mode ({self.mode:g}) must lie in [low, high]")
        if kind == "normal" and not self.sd > 0:
            raise ValueError(f"sd must be positive (got {self.sd:g})")
        if kind == "lognormal" and not (self.median > 0 and self.sigma > 0):
            raise ValueError("median and sigma must be positive")
        if kind == "lognormal" and self.low is not None and self.low < 0:
            raise ValueError(f"low ({self.low:g}) must be >= 0 for a lognormal")
        return self


class RegisterSelection(BaseModel):
    """Which rows of the assumptions register the specification samples."""

    model_config = ConfigDict(extra="forbid")
    include: bool = True
    path: str | None = None
    categories: list[Literal["plan", "derived", "assumption", "lever", "definition"]] = [
        "plan",
        "derived",
        "assumption",
    ]
    exclude: list[str] = Field(default_factory=list)


class PosteriorSource(BaseModel):
    """Where the calibration's posterior draws are, and when to use them."""

    model_config = ConfigDict(extra="forbid")
    path: str = "../../calibration/posterior.parquet"
    use: Literal["auto", "always", "never"] = "auto"


class NoiseChannelEntry(BaseModel):
    """One process-noise channel: the model constants of its path, amplitude and memory."""

    model_config = ConfigDict(extra="forbid")
    path: str
    sd: str
    correlation: str


class NoiseSource(BaseModel):
    """Process noise (:mod:`ningbo_sd.uncertainty.noise`): its channels, and whether to use them."""

    model_config = ConfigDict(extra="forbid")
    use: bool = True
    channels: dict[str, NoiseChannelEntry] = Field(default_factory=dict)


class UncertaintySpec(BaseModel):
    """A whole specification file."""

    model_config = ConfigDict(extra="forbid")
    description: str = ""
    assumptions: RegisterSelection = Field(default_factory=RegisterSelection)
    posterior: PosteriorSource = Field(default_factory=PosteriorSource)
    parameters: dict[str, ParameterEntry] = Field(default_factory=dict)
    noise: NoiseSource = Field(default_factory=NoiseSource)
    source: str = Field(default="<memory>", exclude=True)


@dataclass(frozen=True)
class UncertainParameter:
    """A parameter ready to sample.

    Attributes
    ----------
    name : str
        Vensim constant name.
    distribution : str
        One of :data:`DISTRIBUTIONS`.
    settings : dict
        The shape fields (``low``, ``high``, ``mode``, ``mean``, ``sd``, ``median``, ``sigma``).
    scale_vector : bool
        The value is one number for the whole subscripted constant: a common factor, or
        (``spread_vector``) an exponent on every element.
    source : str
        Where the distribution comes from.
    origin : str
        ``register line N``, ``posterior`` or ``spec``.
    """

    name: str
    distribution: str
    settings: dict = field(default_factory=dict)
    scale_vector: bool = False
    source: str = ""
    origin: str = "spec"
    spread_vector: bool = False

    def ppf(self, unit: np.ndarray) -> np.ndarray:
        """Map uniform [0, 1) values to this distribution (not for ``posterior``).

        Bounds truncate ``normal`` and ``lognormal``: ``ppf(cdf(low) + u (cdf(high) -
        cdf(low)))``.
        """
        s = self.settings
        unit = np.asarray(unit, dtype=float)
        # scipy's distributions called unfrozen: the same computation, without the
        # ~0.7 ms of building a frozen distribution per call (per chunk and parameter)
        if self.distribution == "uniform":
            # scipy.stats.uniform.ppf's own arithmetic (q * scale + loc), without importing
            # scipy.stats (about 0.7 s of every Monte Carlo process) for the common case
            return unit * (s["high"] - s["low"]) + s["low"]
        from scipy import stats

        if self.distribution == "triangular":
            width = s["high"] - s["low"]
            shape = (s["mode"] - s["low"]) / width
            return stats.triang.ppf(unit, shape, loc=s["low"], scale=width)
        if self.distribution == "normal":
            law, args = stats.norm, {"loc": s["mean"], "scale": s["sd"]}
        elif self.distribution == "lognormal":
            law, args = stats.lognorm, {"s": s["sigma"], "scale": s["median"]}
        else:
            raise ValueError(f"{self.name!r}: a 'posterior' parameter is drawn by row, not by ppf")
        low, high = s.get("low"), s.get("high")
        lower = law.cdf(low, **args) if low is not None else UNBOUNDED_EPSILON
        upper = law.cdf(high, **args) if high is not None else 1.0 - UNBOUNDED_EPSILON
        values = law.ppf(lower + unit * (upper - lower), **args)
        return np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)

    def describe(self) -> str:
        """A one-line summary, e.g. ``uniform(low=0.05, high=0.1)``."""
        inner = ", ".join(f"{k}={v:g}" for k, v in self.settings.items())
        scaled = " x vector" if self.scale_vector else ""
        return f"{self.distribution}({inner}){scaled}"


@dataclass(frozen=True)
class ResolvedSpec:
    """A specification resolved against the register, the posterior and a scenario.

    Attributes
    ----------
    parameters : tuple of UncertainParameter
        In sampling order: the ppf parameters, then the posterior ones.
    posterior : pandas.DataFrame or None
        The draws (one row per draw) of the ``posterior`` parameters.
    posterior_path : str or None
    held : tuple of str
        Register rows left at the scenario's value because the scenario sets them.
    source : str
        The specification file.
    noise : tuple of ningbo_sd.uncertainty.noise.NoiseChannel
        Process-noise channels drawn with every sample (set by
        :func:`ningbo_sd.uncertainty.montecarlo.prepare`, which reads them off the model).
    """

    parameters: tuple[UncertainParameter, ...]
    posterior: pd.DataFrame | None = None
    posterior_path: str | None = None
    held: tuple[str, ...] = ()
    source: str = "<memory>"
    noise: tuple = ()

    @property
    def sampled(self) -> tuple[UncertainParameter, ...]:
        """Parameters drawn through their ppf (one factor each)."""
        return tuple(p for p in self.parameters if p.distribution != "posterior")

    @property
    def from_posterior(self) -> tuple[UncertainParameter, ...]:
        """Parameters taken jointly from a posterior row."""
        return tuple(p for p in self.parameters if p.distribution == "posterior")

    @property
    def factors(self) -> list[str]:
        """Columns of the unit hypercube."""
        names = [p.name for p in self.sampled]
        return [*names, POSTERIOR_FACTOR] if self.from_posterior else names

    @property
    def names(self) -> list[str]:
        """Vensim names of every uncertain parameter."""
        return [p.name for p in self.parameters]

    def subset(self, names: list[str]) -> ResolvedSpec:
        """Only the given parameters (``posterior draw`` keeps every posterior parameter)."""
        known = set(self.names) | ({POSTERIOR_FACTOR} if self.from_posterior else set())
        unknown = [name for name in names if name not in known]
        if unknown:
            raise KeyError(
                f"{unknown} are not uncertain parameters of {self.source}; choose from "
                f"{sorted(known)}"
            )
        wanted = set(names)
        keep_posterior = POSTERIOR_FACTOR in wanted or any(
            p.name in wanted for p in self.from_posterior
        )
        kept = tuple(
            p
            for p in self.parameters
            if p.name in wanted or (p.distribution == "posterior" and keep_posterior)
        )
        return ResolvedSpec(
            kept,
            self.posterior if keep_posterior else None,
            self.posterior_path if keep_posterior else None,
            self.held,
            self.source,
        )

    def table(self) -> pd.DataFrame:
        """The parameters as a table (name, distribution, settings, source, origin)."""
        return pd.DataFrame(
            [
                {
                    "name": p.name,
                    "distribution": p.describe(),
                    "origin": p.origin,
                    "source": p.source,
                }
                for p in self.parameters
            ]
        )


# ---------------------------------------------------------------- reading


def _error_text(path: str, exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message += f" (field {error['loc'][-1]!r})"
    elif not isinstance(error.get("input"), dict):
        message += f" (got {error.get('input')!r})"
    return f"{path}: {where}: {message}"


def parse_spec(data, source: str = "<memory>") -> UncertaintySpec:
    """Validate specification data already read (a dict).

    Parameters
    ----------
    data : dict
        ``description``, ``assumptions``, ``posterior`` and ``parameters`` (all optional).
    source : str
        Where the data came from (for messages and relative paths).

    Returns
    -------
    UncertaintySpec

    Raises
    ------
    UncertaintySpecError
        Naming the source, the dotted field, the problem and what is allowed.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UncertaintySpecError(
            f"{source}: the file must be a mapping with description, assumptions, posterior "
            f"and parameters (got {type(data).__name__})"
        )
    try:
        return UncertaintySpec.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise UncertaintySpecError(_error_text(source, exc)) from None


def load_spec(path: str | Path = SPEC_FILE) -> UncertaintySpec:
    """Read and validate an uncertainty specification file (YAML).

    Parameters
    ----------
    path : str or Path
        The file (default ``scenarios/registry/uncertainty.yaml``).

    Returns
    -------
    UncertaintySpec

    Raises
    ------
    UncertaintySpecError
        A missing file, malformed YAML, an unknown field or distribution, missing or
        inconsistent shape fields; the message names the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise UncertaintySpecError(f"{path}: uncertainty specification not found")
    try:
        data = read_yaml_file(path)
    except UserError as exc:
        raise UncertaintySpecError(str(exc)) from None
    return parse_spec(data, str(path))


def read_posterior(path: str | Path) -> pd.DataFrame:
    """Posterior draws (``.parquet`` or ``.csv``): numeric columns named by Vensim constant.

    The ``log_probability`` column, if any, is dropped.

    Raises
    ------
    UncertaintySpecError
        When the file is missing, empty, or holds non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise UncertaintySpecError(f"{path}: posterior draws not found (run the calibration)")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    frame = frame.drop(columns=["log_probability"], errors="ignore")
    if frame.empty or frame.shape[1] == 0:
        raise UncertaintySpecError(f"{path}: no posterior draws")
    values = frame.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise UncertaintySpecError(f"{path}: posterior draws must be finite numbers")
    return frame.astype(float).reset_index(drop=True)


def _posterior_path(spec: UncertaintySpec) -> Path | None:
    base = Path(spec.source).parent if spec.source != "<memory>" else SPEC_FILE.parent
    path = (base / spec.posterior.path).resolve()
    for candidate in (path, path.with_suffix(".csv")):
        if candidate.is_file():
            return candidate
    return None


def _check_constant(spec: UncertaintySpec, where: str, name: str, constants: dict) -> None:
    if name not in constants:
        close = difflib.get_close_matches(name, list(constants), n=3, cutoff=0.6)
        raise UncertaintySpecError(
            f"{spec.source}: {where}: {name!r} is not a constant of the model"
            + (f" (close matches: {close})" if close else "")
        )


def resolve_spec(
    spec: UncertaintySpec,
    constants: dict,
    scenario_sets: frozenset | set = frozenset(),
    lever_constants: frozenset | set = frozenset(),
) -> ResolvedSpec:
    """Resolve a specification into the parameters to sample.

    Order of precedence, lowest first: the register rows (``assumptions``), the posterior
    (every column of the draws; when it exists and ``posterior.use`` is not ``never``), the
    explicit ``parameters`` of the file.

    Register rows are taken when their distribution is not ``fixed``, their range is not a
    point, their category is in ``assumptions.categories`` and their name is not in
    ``assumptions.exclude``. Rows the scenario sets (``scenario_sets``) and lever constants are
    left at the scenario's value (the scenario's choice, not an uncertainty); so are posterior
    columns the scenario sets. Explicit ``parameters`` are always sampled.

    Parameters
    ----------
    spec : UncertaintySpec
    constants : dict
        The model's settable constants (Vensim name -> default), to check names and shapes.
    scenario_sets : set of str
        Constants the scenario sets explicitly.
    lever_constants : set of str
        Constants that are policy levers.

    Returns
    -------
    ResolvedSpec

    Raises
    ------
    UncertaintySpecError
        Unknown constants, a ``scale_vector`` on a scalar (or a subscripted constant without
        it), a ``posterior`` parameter with no draws.
    """
    from ningbo_sd.plan.assumptions import ASSUMPTIONS_FILE, AssumptionsError, load_assumptions

    chosen: dict[str, UncertainParameter] = {}
    held: list[str] = []
    if spec.assumptions.include:
        register_path = Path(spec.assumptions.path or ASSUMPTIONS_FILE)
        if spec.assumptions.path and not register_path.is_absolute() and spec.source != "<memory>":
            register_path = Path(spec.source).parent / register_path
        try:
            register = load_assumptions(register_path)
        except AssumptionsError as exc:
            raise UncertaintySpecError(f"{spec.source}: assumptions.path: {exc}") from None
        unknown = [name for name in spec.assumptions.exclude if name not in register]
        if unknown:
            raise UncertaintySpecError(
                f"{spec.source}: assumptions.exclude: {unknown} are not rows of {register_path}"
            )
        for row in register.values():
            if (
                row.distribution == "fixed"
                or not row.high > row.low
                or row.category not in spec.assumptions.categories
                or row.name in spec.assumptions.exclude
            ):
                continue
            if row.name in scenario_sets or row.name in lever_constants:
                held.append(row.name)
                continue
            _check_constant(spec, f"register line {row.line}", row.name, constants)
            chosen[row.name] = UncertainParameter(
                row.name,
                "uniform",
                {"low": row.low, "high": row.high},
                scale_vector=row.scaled,
                source=row.source,
                origin=f"register line {row.line}",
                spread_vector=row.spread,
            )
    posterior, posterior_path = None, _posterior_path(spec)
    if spec.posterior.use == "always" and posterior_path is None:
        raise UncertaintySpecError(
            f"{spec.source}: posterior.path: {spec.posterior.path!r} not found and "
            "posterior.use is 'always' (use 'auto' to fall back to the register's ranges)"
        )
    if spec.posterior.use != "never" and posterior_path is not None:
        posterior = read_posterior(posterior_path)
        for name in posterior.columns:
            if name in spec.assumptions.exclude:
                continue
            if name in scenario_sets:
                held.append(name)
                continue
            _check_constant(spec, f"posterior column ({posterior_path})", name, constants)
            chosen[name] = UncertainParameter(
                name,
                "posterior",
                scale_vector=np.ndim(constants[name]) > 0,
                source=f"calibration posterior {posterior_path.name}",
                origin="posterior",
            )
    for name, entry in spec.parameters.items():
        where = f"parameters.{name}"
        _check_constant(spec, where, name, constants)
        if entry.distribution == "posterior" and (posterior is None or name not in posterior):
            found = "no posterior file" if posterior is None else f"no column {name!r}"
            raise UncertaintySpecError(
                f"{spec.source}: {where}.distribution: 'posterior' but there is {found} "
                f"(posterior.path {spec.posterior.path!r}, use {spec.posterior.use!r})"
            )
        settings = {k: getattr(entry, k) for k in _SHAPE_FIELDS if getattr(entry, k) is not None}
        chosen[name] = UncertainParameter(
            name, entry.distribution, settings, entry.scale_vector, entry.source, "spec"
        )
    for name, parameter in chosen.items():
        vector = np.ndim(constants[name]) > 0
        if parameter.scale_vector != vector:
            what = "a subscripted constant" if vector else "a scalar constant"
            raise UncertaintySpecError(
                f"{spec.source}: parameters.{name}.scale_vector: {name!r} is {what}; "
                f"scale_vector must be {str(vector).lower()} (a subscripted constant is "
                "sampled as a common factor on its whole vector)"
            )
    used = [p.name for p in chosen.values() if p.distribution == "posterior"]
    ordered = tuple(p for p in chosen.values() if p.distribution != "posterior") + tuple(
        chosen[name] for name in used
    )
    return ResolvedSpec(
        ordered,
        posterior[used].copy() if used else None,
        str(posterior_path) if used else None,
        tuple(held),
        spec.source,
    )
