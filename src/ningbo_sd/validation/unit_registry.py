"""The project's units: one pint registry of them, and how to read and show a unit.

Only the units declared in :data:`DEFINITIONS` exist (none of pint's own), so a typo is an
error, not a silently different unit. :func:`parse_unit` reads Vensim's spelling
(``CNY100m/Year``, ``Dmnl``) and the outputs table's Chinese names (``亿元``, ``万吨标准煤``);
:func:`format_unit` shows one compactly; :func:`unit_problem` says why two units differ in
dimension or in scale. :mod:`ningbo_sd.validation.units` checks the model's equations with them.
"""

from __future__ import annotations

import math
import re
from functools import cache

import pint
from pint.util import to_units_container

__all__ = ["DEFINITIONS", "format_unit", "parse_unit", "registry", "unit_problem"]

#: The project's units, declared once. Base dimensions are bracketed; aliases follow ``=``.
DEFINITIONS = """
Year = [time] = year = yr = Years = years = 年
CNY = [currency] = yuan = 元
CNY10k = 1e4 * CNY = 万元
CNY100m = 1e8 * CNY = 亿元
CNY10bn = 1e10 * CNY = 百亿元
tce = [coal_equivalent] = 吨标准煤
tce10k = 1e4 * tce = 万吨标准煤 = 万吨标煤
km2 = [area] = sq_km
mu = km2 / 1500 = 亩
person = [population] = persons = people = 人
person10k = 1e4 * person = 万人
patents = [patent] = patent = 件
firms = [firm] = firm = 家
"""

#: Text replaced before pint reads a unit (names pint cannot take as identifiers).
_REWRITES = (("km²", "km2"), ("㎢", "km2"))
_DIMENSIONLESS = re.compile(r"(?i)(?<![\w])(dmnl|dimensionless)(?![\w])")
#: A trailing remark in parentheses: ``亿元 (nominal)``, ``tce/万元 (2020 prices)``.
_REMARK = re.compile(r"\s+\([^()*/^]*\)\s*$")
_REL_TOL = 1e-9


@cache
def registry() -> pint.UnitRegistry:
    """The unit registry: only the project's units (:data:`DEFINITIONS`), none of pint's."""
    ureg = pint.UnitRegistry(None)
    for line in DEFINITIONS.strip().splitlines():
        ureg.define(line)
    return ureg


def parse_unit(text: str) -> pint.Unit:
    """Read a unit written in Vensim's style or with the outputs table's Chinese names.

    Parameters
    ----------
    text : str
        E.g. ``'CNY100m/Year'``, ``'Dmnl'``, ``'CNY10k/(Year*mu)'``, ``'亿元'``, ``'km²'``,
        ``'万吨标准煤'``; a trailing remark in parentheses (``'亿元 (nominal)'``) is ignored.

    Returns
    -------
    pint.Unit
        A unit of :func:`registry`.

    Raises
    ------
    ValueError
        If the text is empty, names a unit the registry does not declare, or is malformed.
    """
    source = str(text)
    cleaned = _REMARK.sub("", source.strip())
    for old, new in _REWRITES:
        cleaned = cleaned.replace(old, new)
    cleaned = _DIMENSIONLESS.sub("1", cleaned)
    if not cleaned:
        raise ValueError("no unit given")
    try:
        return registry().parse_units(cleaned)
    except pint.UndefinedUnitError as exc:
        names = ", ".join(sorted(exc.unit_names)) if exc.unit_names else cleaned
        raise ValueError(f"{source!r}: unit {names!r} is not declared") from None
    except Exception as exc:  # pint and Python's tokenizer raise several kinds
        raise ValueError(f"{source!r}: not a unit expression ({type(exc).__name__})") from None


def format_unit(unit: pint.Unit | None) -> str:
    """Show a unit compactly (``'CNY100m/Year^2'``; ``'Dmnl'`` without units)."""
    if unit is None:
        return "number"
    items = list(to_units_container(unit).items())
    if not items:
        return "Dmnl"

    def product(terms: list[tuple[str, float]]) -> str:
        return "*".join(name if power == 1 else f"{name}^{power:g}" for name, power in terms)

    top = product([(n, p) for n, p in items if p > 0]) or "1"
    bottom = [(n, -p) for n, p in items if p < 0]
    if not bottom:
        return top
    return f"{top}/{product(bottom)}" if len(bottom) == 1 else f"{top}/({product(bottom)})"


def unit_problem(got: pint.Unit, want: pint.Unit) -> str | None:
    """Why ``got`` is not ``want`` (dimension or scale), or None when they agree."""
    if got.dimensionality != want.dimensionality:
        return f"{format_unit(got)} is {_dimension(got)}, {format_unit(want)} is {_dimension(want)}"
    factor = registry().Quantity(1.0, got).to(want).magnitude
    if not math.isclose(factor, 1.0, rel_tol=_REL_TOL):
        big, small, factor = (got, want, factor) if factor > 1 else (want, got, 1 / factor)
        return f"same dimension, but 1 {format_unit(big)} = {factor:.6g} {format_unit(small)}"
    return None


def _dimension(unit: pint.Unit) -> str:
    text = str(unit.dimensionality)
    return "dimensionless" if text == "dimensionless" else text.replace(" ", "")
