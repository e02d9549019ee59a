"""Observations and how the model computes them.

``calibration/observation_map.yaml`` says, for each indicator of
``calibration/data/observations.csv``, which headline column computes it (per price basis,
so nominal and real figures never mix) or why the model cannot; per-row decisions keep a
figure out of the payoff with a stated reason. :func:`measure_values` turns the annual
run into the row's measure (level, change_pct, change_pp, cagr_pct, cumulative,
change_abs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.io import UserError, plain_decimal, read_yaml_file
from ningbo_sd.plan.actuals import load_actuals
from ningbo_sd.plan.data import CLUSTERS, tolerance_rule
from ningbo_sd.resources import calibration_dir

MAP_FILE = calibration_dir() / "observation_map.yaml"
ACTUALS_MAP = calibration_dir() / "actuals_map.yaml"
#: Scopes of a published figure a headline column stands for, unless its entry says more.
DEFAULT_SCOPES = ("above_scale", "manufacturing_above_scale")
MODEL_YEARS = range(2015, 2036)
#: Published figures the default calibration fits besides the plan's: those dated at the ends
#: of its window. The years in between (and after 2020) stay out of sample.
WINDOW_ACTUAL_YEARS = (2015, 2020)
STATUS_FITTED = "fitted"
STATUS_SECONDARY = "secondary"
STATUS_NOT_FITTED = "not fitted"
STATUS_NOT_MODELLED = "not modelled"


class ObservationMapError(UserError):
    """The observation map is malformed or does not cover the observations."""


@dataclass(frozen=True)
class ObservationTerm:
    """One observation and how the model computes it.

    Attributes
    ----------
    id, indicator, measure, unit, basis : str
        From ``observations.csv``.
    year_start : int or None
        Base or first year of a change or cumulative measure.
    year : int
        Year (end year) of the figure.
    value, tolerance : float
        Observed value and its absolute tolerance.
    column : str or None
        Headline column that computes it (None when not modelled).
    scale : float
        Factor from the column's unit to the observation's unit.
    status : str
        ``fitted``; ``secondary`` (a duplicate or alternative reading: shown, not
        fitted); ``not fitted`` (computed and shown, kept out of the payoff by a
        decision in the map); or ``not modelled``.
    reason : str
        Why it is not fitted (empty for fitted rows).
    """

    id: str
    indicator: str
    measure: str
    year_start: int | None
    year: int
    value: float
    tolerance: float
    unit: str
    basis: str
    column: str | None
    scale: float
    status: str
    reason: str

    @property
    def computable(self) -> bool:
        """True when the model computes a simulated value for the row."""
        return self.column is not None


INDICATOR_KEYS = frozenset(
    {
        "column",
        "scale",
        "not_modelled",
        "bases_not_modelled",
        "scopes",
        "not_fitted",
        "fitted_clusters",
    }
)
ROW_KEYS = frozenset({"not_modelled", "not_fitted"})


@dataclass(frozen=True)
class ObservationMap:
    """Which headline column computes each indicator, and per-row decisions.

    Attributes
    ----------
    indicators : dict
        Indicator id -> entry (``column``, ``scale``, ``bases_not_modelled`` or
        ``not_modelled``).
    rows : dict
        Observation id -> ``{"not_modelled": reason}`` or ``{"not_fitted": reason}``.
    path : Path
        The file it was read from (for messages).
    """

    indicators: dict
    rows: dict
    path: Path


def _check_entries(path: Path, section: str, entries, allowed: frozenset, needed: set) -> None:
    if not isinstance(entries, dict):
        raise ObservationMapError(f"{path}: '{section}' must be a mapping, not {entries!r}")
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not (needed & set(entry)):
            raise ObservationMapError(
                f"{path}: {section}.{key}: needs one of {sorted(needed)} (got {entry!r})"
            )
        extra = set(entry) - allowed
        if extra:
            raise ObservationMapError(
                f"{path}: {section}.{key}: unknown key(s) {sorted(extra)}; allowed: "
                f"{sorted(allowed)}"
            )
        _check_fitted_clusters(path, f"{section}.{key}", entry.get("fitted_clusters"))


def _check_fitted_clusters(path: Path, where: str, fitted) -> None:
    """``fitted_clusters`` maps clusters of the model to the parameter standing for each."""
    if fitted is None:
        return
    if not isinstance(fitted, dict):
        raise ObservationMapError(
            f"{path}: {where}.fitted_clusters: {fitted!r}; allowed: a mapping cluster -> the "
            "parameter that stands for its share"
        )
    unknown = sorted(str(cluster) for cluster in fitted if cluster not in CLUSTERS)
    if unknown:
        raise ObservationMapError(
            f"{path}: {where}.fitted_clusters: {', '.join(unknown)} is not a cluster; allowed: "
            f"{', '.join(CLUSTERS)}"
        )


def load_observation_map(path: str | Path = MAP_FILE) -> ObservationMap:
    """Read the observation map.

    Parameters
    ----------
    path : str or Path
        The YAML file (``indicators:`` and optional ``rows:`` sections).

    Returns
    -------
    ObservationMap

    Raises
    ------
    ObservationMapError
        A missing file, a missing section or an entry without ``column`` or
        ``not_modelled``; the message names the file and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise ObservationMapError(f"{path}: observation map not found")
    try:
        data = read_yaml_file(path) or {}
    except UserError as exc:
        raise ObservationMapError(str(exc)) from None
    if not isinstance(data, dict) or "indicators" not in data:
        raise ObservationMapError(f"{path}: expected a mapping with an 'indicators' section")
    extra = set(data) - {"indicators", "rows"}
    if extra:
        raise ObservationMapError(f"{path}: unknown section(s) {sorted(extra)}")
    indicators = data["indicators"] or {}
    rows = data.get("rows") or {}
    _check_entries(path, "indicators", indicators, INDICATOR_KEYS, {"column", "not_modelled"})
    _check_entries(path, "rows", rows, ROW_KEYS, set(ROW_KEYS))
    return ObservationMap(indicators=indicators, rows=rows, path=path)


def _resolve_column(entry: dict, row: pd.Series) -> tuple[str | None, str]:
    """Return (column, reason) for one observation row."""
    if "not_modelled" in entry:
        return None, " ".join(str(entry["not_modelled"]).split())
    basis_reasons = entry.get("bases_not_modelled") or {}
    if row["basis"] in basis_reasons:
        return None, " ".join(str(basis_reasons[row["basis"]]).split())
    column = entry["column"]
    if isinstance(column, dict):
        if row["basis"] not in column:
            return None, (
                f"the model computes {row['indicator']} only on the basis "
                f"{' or '.join(column)}, not {row['basis']}"
            )
        column = column[row["basis"]]
    return str(column), ""


def _status(row: pd.Series, column: str | None, reason: str, decision: dict) -> tuple:
    """Return (column, status, reason) after row decisions, model span and primacy."""
    year_start = None if pd.isna(row["year_start"]) else int(row["year_start"])
    if "not_modelled" in decision:
        return None, STATUS_NOT_MODELLED, " ".join(str(decision["not_modelled"]).split())
    if column is not None and year_start is not None and year_start < MODEL_YEARS.start:
        reason = f"base year {year_start} is before the model starts ({MODEL_YEARS.start})"
        return None, STATUS_NOT_MODELLED, reason
    if column is not None and int(row["year"]) >= MODEL_YEARS.stop:
        return None, STATUS_NOT_MODELLED, f"year {row['year']} is after the model ends"
    if column is None:
        return None, STATUS_NOT_MODELLED, reason
    if "not_fitted" in decision:
        return column, STATUS_NOT_FITTED, " ".join(str(decision["not_fitted"]).split())
    if not bool(row.get("primary", True)):
        tags = [tag for tag in row.get("tags", ()) if tag in ("duplicate", "alternative")]
        label = " and ".join(tags) or "secondary"
        return column, STATUS_SECONDARY, f"{label} row: shown, not fitted (the primary is)"
    return column, STATUS_FITTED, ""


def _indicator_decision(entry: dict, observation_id: str) -> dict:
    """An indicator-wide ``not_fitted`` reason as a row decision (a row's own decision wins).

    A figure of a cluster the entry lists under ``fitted_clusters`` (the ``__<cluster>``
    suffix of its id) is exempt: a parameter of the model stands for that cluster's level.
    """
    cluster = observation_id.partition("__")[2]
    if cluster and cluster in (entry.get("fitted_clusters") or {}):
        return {}
    return {"not_fitted": entry["not_fitted"]} if "not_fitted" in entry else {}


def build_terms(observations: pd.DataFrame, observation_map: ObservationMap) -> list:
    """Pair every observation with the column that computes it (or the reason it cannot).

    Parameters
    ----------
    observations : pandas.DataFrame
        From :func:`ningbo_sd.plan.data.load_observations`.
    observation_map : ObservationMap
        From :func:`load_observation_map`.

    Returns
    -------
    list of ObservationTerm
        In file order.

    Raises
    ------
    ObservationMapError
        An indicator the map does not mention, or a row decision for an unknown id.
    """
    path = observation_map.path
    missing = sorted(set(observations["indicator"]) - set(observation_map.indicators))
    if missing:
        raise ObservationMapError(
            f"{path}: no entry for indicator(s) {missing}; add a 'column' or a "
            "'not_modelled' reason"
        )
    stray = sorted(set(observation_map.rows) - set(observations["id"]))
    if stray:
        raise ObservationMapError(f"{path}: rows {stray} are not observation ids")
    terms = []
    for _, row in observations.iterrows():
        entry = observation_map.indicators[row["indicator"]]
        column, reason = _resolve_column(entry, row)
        decision = observation_map.rows.get(row["id"]) or _indicator_decision(entry, row["id"])
        column, status, reason = _status(row, column, reason, decision)
        terms.append(
            ObservationTerm(
                id=str(row["id"]),
                indicator=str(row["indicator"]),
                measure=str(row["measure"]),
                year_start=None if pd.isna(row["year_start"]) else int(row["year_start"]),
                year=int(row["year"]),
                value=float(row["value"]),
                tolerance=float(row["tolerance"]),
                unit=str(row["unit"]),
                basis=str(row["basis"]),
                column=column,
                scale=float(entry.get("scale", 1.0)),
                status=status,
                reason=reason,
            )
        )
    return terms


def measure_values(series: np.ndarray, term: ObservationTerm, years: np.ndarray) -> np.ndarray:
    """Compute an observation's measure from annual values of its column.

    Parameters
    ----------
    series : numpy.ndarray
        ``(samples, years)`` annual values (already in the observation's unit).
    term : ObservationTerm
        The observation (measure, year_start, year).
    years : numpy.ndarray
        The years of ``series``' second axis.

    Returns
    -------
    numpy.ndarray
        ``(samples,)``: ``level`` is the value in ``year``; ``change_pct`` the percentage
        change from ``year_start``; ``change_pp`` and ``change_abs`` the difference;
        ``cagr_pct`` the compound annual growth in percent; ``cumulative`` the sum of the
        annual values from ``year_start`` to ``year`` inclusive (a flow's value at time
        ``t`` is the model's rate for year ``t``).
    """
    position = {int(year): index for index, year in enumerate(years)}
    end = series[:, position[term.year]]
    if term.measure == "level":
        return end
    if term.measure == "cumulative":
        first = term.year if term.year_start is None else term.year_start
        return series[:, position[first] : position[term.year] + 1].sum(axis=1)
    start = series[:, position[term.year_start]]
    with np.errstate(divide="ignore", invalid="ignore"):
        if term.measure == "change_pct":
            return 100.0 * (end / start - 1.0)
        if term.measure in ("change_pp", "change_abs"):
            return end - start
        if term.measure == "cagr_pct":
            span = term.year - term.year_start
            return 100.0 * (np.power(end / start, 1.0 / span) - 1.0)
    raise ValueError(f"observation {term.id}: unknown measure {term.measure!r}")


def window_actual(term: ObservationTerm) -> bool:
    """Whether the default calibration fits this published figure (a fitted one of 2015 or 2020).

    The plan's own figures describe 2015 and 2020; a published figure of the same years (today
    the 2015 count of high-tech certifications) is evidence about the same window, so the
    default calibration fits it too, and the out-of-sample check leaves it out. A figure whose
    indicator or row the actuals map marks ``not_fitted`` (every cluster's output, in any
    year) is not fitted; figures of 2016-2019 and after 2020 never are by default.
    """
    return term.status == STATUS_FITTED and term.year in WINDOW_ACTUAL_YEARS


def actual_terms(actuals: pd.DataFrame | None = None, map_path: Path = ACTUALS_MAP) -> list:
    """Pair every published actual with the column that computes it, or the reason it cannot.

    Parameters
    ----------
    actuals : pandas.DataFrame, optional
        From :func:`ningbo_sd.plan.actuals.load_actuals` (default: the bundled file).
    map_path : Path
        The actuals map (its entries override the observation map's).

    Returns
    -------
    list of ObservationTerm
        In file order; a figure of a scope the column does not stand for is not modelled.
    """
    actuals = load_actuals() if actuals is None else actuals
    base, extra = load_observation_map(), load_observation_map(map_path)
    merged = ObservationMap({**base.indicators, **extra.indicators}, extra.rows, Path(map_path))
    frame = actuals.assign(
        tolerance=[
            tolerance_rule(plain_decimal(value), measure, basis, tags)
            for value, measure, basis, tags in zip(
                actuals["value"], actuals["measure"], actuals["basis"], actuals["tags"], strict=True
            )
        ]
    )
    terms = []
    for term, (_, row) in zip(build_terms(frame, merged), frame.iterrows(), strict=True):
        scopes = merged.indicators[row["indicator"]].get("scopes", DEFAULT_SCOPES)
        if term.column is not None and row["scope"] not in scopes:
            reason = f"scope {row['scope']}; the model's {term.column} is {' or '.join(scopes)}"
            term = replace(term, column=None, status=STATUS_NOT_MODELLED, reason=reason)
        elif term.column is not None and "{cluster}" in term.column:
            term = replace(term, column=term.column.format(cluster=row["id"].partition("__")[2]))
        terms.append(term)
    return terms
