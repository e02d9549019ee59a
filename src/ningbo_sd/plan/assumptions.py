"""The assumptions register: every model constant the plan does not give directly.

``calibration/data/assumptions.csv`` has one row per constant: its model default, a
plausible range, how Monte Carlo samples it (``uniform``, ``fixed`` or ``vector_scale``),
its category and whether it is a candidate for fitting to the 2015-2020 data
(``calibrate``). This module reads and checks it; every error names the file, the line,
the column, the value found and what is allowed.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ningbo_sd.io import UserError, not_utf8
from ningbo_sd.resources import calibration_data_dir

ASSUMPTIONS_FILE = calibration_data_dir() / "assumptions.csv"
ASSUMPTION_COLUMNS = (
    "name",
    "value",
    "low",
    "high",
    "distribution",
    "unit",
    "category",
    "calibrate",
    "rationale",
    "source",
)
DISTRIBUTIONS = ("uniform", "fixed", "vector_scale", "vector_spread")
CATEGORIES = ("plan", "derived", "assumption", "lever", "definition")
BOOLEAN_TEXT = {"true": True, "false": False}


class AssumptionsError(UserError):
    """The assumptions register is malformed; the message names file, line and column."""


@dataclass(frozen=True)
class Assumption:
    """One row of the assumptions register.

    Attributes
    ----------
    name : str
        Vensim constant name.
    value : float or numpy.ndarray
        Model default (an array over the subscript for subscripted constants).
    low, high : float
        Plausible range; for ``vector_scale`` the range of the common factor.
    distribution : str
        ``uniform``, ``fixed`` or ``vector_scale``.
    unit, category, rationale, source : str
        Documentation fields.
    calibrate : bool
        Whether the constant is a candidate for fitting to 2015-2020.
    line : int
        Line of the row in the file (for messages).
    """

    name: str
    value: float | np.ndarray
    low: float
    high: float
    distribution: str
    unit: str
    category: str
    calibrate: bool
    rationale: str
    source: str
    line: int

    @property
    def is_vector(self) -> bool:
        """True for a subscripted constant (a ``;``-joined list of values)."""
        return isinstance(self.value, np.ndarray)

    @property
    def scaled(self) -> bool:
        """True when the range is one number for the whole vector (``vector_*``)."""
        return self.distribution in ("vector_scale", "vector_spread")

    @property
    def spread(self) -> bool:
        """True when the number is an exponent on the vector's values (``vector_spread``).

        ``vector_scale`` multiplies every element by a common factor, which cancels where
        the model divides the vector by its own average; ``vector_spread`` raises every
        element to a power, so it widens or narrows the differences between elements.
        """
        return self.distribution == "vector_spread"

    @property
    def centre(self) -> float:
        """The default on the scale the range is given in (1 for a vector factor)."""
        return 1.0 if self.scaled else float(np.mean(self.value))

    def model_value(self, factor_or_value: float) -> float | np.ndarray:
        """Turn a value on the range's scale into the model constant's value.

        Parameters
        ----------
        factor_or_value : float or numpy.ndarray
            The constant itself, the common factor of a ``vector_scale`` row, or the
            exponent of a ``vector_spread`` row; an array of them gives one row each.

        Returns
        -------
        float or numpy.ndarray
            For a vector row ``(elements,)``, or ``(n, elements)`` for ``n`` factors.
        """
        if not self.scaled:
            return float(factor_or_value) if np.ndim(factor_or_value) == 0 else factor_or_value
        base = np.asarray(self.value, dtype=float)
        factor = np.asarray(factor_or_value, dtype=float)[..., None]  # (…, 1) against (elements,)
        # vector_spread: an exponent on every element (as the Monte Carlo applies it)
        return np.power(base, factor) if self.spread else factor * base

    def range_value(self, model_value) -> float:
        """The inverse of :meth:`model_value`: the number on the range's scale.

        Parameters
        ----------
        model_value : float or sequence of float
            The model constant (a list for a vector row, as ``calibrated.yaml`` holds it).

        Returns
        -------
        float
            The constant, the common factor (``vector_scale``) or the exponent
            (``vector_spread``), from the elements the factor moves (the median of them, so
            the rounding of one element does not decide it).
        """
        if not self.scaled:
            return float(model_value)
        value = np.asarray(model_value, dtype=float)
        base = np.asarray(self.value, dtype=float)
        if self.spread:
            moved = np.abs(np.log(base)) > 1e-3  # an element of 1 stays 1 whatever u is
            return float(np.median(np.log(value[moved]) / np.log(base[moved])))
        moved = base != 0
        return float(np.median(value[moved] / base[moved]))


def _where(path: Path, line: int, column: str, name: str | None = None) -> str:
    row = f" ({name})" if name else ""
    return f"{path}: line {line}{row}, column {column!r}"


def _number(path: Path, line: int, column: str, text: str, name: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise AssumptionsError(
            f"{_where(path, line, column, name)}: {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise AssumptionsError(
            f"{_where(path, line, column, name)}: {text!r} is not a finite number"
        )
    return value


def _value(path: Path, line: int, text: str, name: str) -> float | np.ndarray:
    parts = [part.strip() for part in (text or "").split(";")]
    numbers = [_number(path, line, "value", part, name) for part in parts]
    return np.asarray(numbers) if len(numbers) > 1 else numbers[0]


def _parse_row(path: Path, line: int, row: dict) -> Assumption:
    name = (row.get("name") or "").strip()
    if not name:
        raise AssumptionsError(f"{_where(path, line, 'name')}: empty; give a Vensim constant name")
    value = _value(path, line, row["value"], name)
    low = _number(path, line, "low", row["low"], name)
    high = _number(path, line, "high", row["high"], name)
    distribution = (row.get("distribution") or "").strip()
    if distribution not in DISTRIBUTIONS:
        raise AssumptionsError(
            f"{_where(path, line, 'distribution', name)}: {distribution!r} is not one of "
            f"{', '.join(DISTRIBUTIONS)}"
        )
    category = (row.get("category") or "").strip()
    if category not in CATEGORIES:
        raise AssumptionsError(
            f"{_where(path, line, 'category', name)}: {category!r} is not one of "
            f"{', '.join(CATEGORIES)}"
        )
    calibrate_text = (row.get("calibrate") or "").strip().lower()
    if calibrate_text not in BOOLEAN_TEXT:
        raise AssumptionsError(
            f"{_where(path, line, 'calibrate', name)}: {row.get('calibrate')!r} is not "
            "true or false"
        )
    if low > high:
        raise AssumptionsError(
            f"{_where(path, line, 'low', name)}: low {low:g} is above high {high:g}"
        )
    centre = 1.0 if distribution in ("vector_scale", "vector_spread") else value
    if distribution == "uniform" and isinstance(value, np.ndarray):
        raise AssumptionsError(
            f"{_where(path, line, 'distribution', name)}: 'uniform' needs one value; a "
            "subscripted constant is sampled as 'vector_scale', 'vector_spread' or kept 'fixed'"
        )
    if not isinstance(centre, np.ndarray) and not low <= centre <= high:
        what = "the factor 1" if distribution.startswith("vector_") else f"the value {centre:g}"
        raise AssumptionsError(
            f"{_where(path, line, 'value', name)}: {what} lies outside [low, high] = "
            f"[{low:g}, {high:g}]"
        )
    return Assumption(
        name=name,
        value=value,
        low=low,
        high=high,
        distribution=distribution,
        unit=(row.get("unit") or "").strip(),
        category=category,
        calibrate=BOOLEAN_TEXT[calibrate_text],
        rationale=(row.get("rationale") or "").strip(),
        source=(row.get("source") or "").strip(),
        line=line,
    )


def load_assumptions(path: str | Path = ASSUMPTIONS_FILE) -> dict[str, Assumption]:
    """Read and check the assumptions register.

    Parameters
    ----------
    path : str or Path
        The CSV file (default: ``calibration/data/assumptions.csv``).

    Returns
    -------
    dict
        Vensim name -> :class:`Assumption`, in file order.

    Raises
    ------
    AssumptionsError
        A missing file or column, a value of the wrong type, an unknown distribution or
        category, a range that does not hold the default, or a duplicated name; the
        message names the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise AssumptionsError(f"{path}: assumptions register not found")
    problem = not_utf8(path.read_bytes())
    if problem:
        raise AssumptionsError(f"{path}: {problem}; allowed: a UTF-8 CSV file")
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        header = reader.fieldnames or []
        missing = [column for column in ASSUMPTION_COLUMNS if column not in header]
        if missing:
            raise AssumptionsError(
                f"{path}: line 1, missing column(s) {missing}; the header must have "
                f"{', '.join(ASSUMPTION_COLUMNS)}"
            )
        register: dict[str, Assumption] = {}
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():  # DictReader's spill-over: a stray comma
                count = len(header) + len(row.get(None) or []) - list(row.values()).count(None)
                raise AssumptionsError(
                    f"{path}: line {line} ({row.get('name')}): {count} fields; allowed: "
                    f"{len(header)} ({', '.join(header)}); quote a text that holds a comma"
                )
            entry = _parse_row(path, line, row)
            if entry.name in register:
                raise AssumptionsError(
                    f"{_where(path, line, 'name', entry.name)}: duplicated (first on line "
                    f"{register[entry.name].line})"
                )
            register[entry.name] = entry
    if not register:
        raise AssumptionsError(f"{path}: no rows")
    return register


def calibration_candidates(register: dict[str, Assumption]) -> list[Assumption]:
    """Rows marked ``calibrate = true`` whose range is not a single point.

    Parameters
    ----------
    register : dict
        From :func:`load_assumptions`.

    Returns
    -------
    list of Assumption
    """
    return [entry for entry in register.values() if entry.calibrate and entry.high > entry.low]
