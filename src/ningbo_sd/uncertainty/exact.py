"""Exact, order-independent arithmetic for streamed summaries (integers only, no float sums).

A floating-point sum depends on how its terms are grouped, so a mean accumulated chunk by
chunk would change with the chunk size and the number of workers. The functions here add
*integers* instead, whose sums are associative: the result is the same whatever the
grouping, to the last bit.

- :func:`order_keys` maps float64 values to uint64 keys with the same order (a fixed-bin
  histogram over the keys needs no range known in advance); :func:`from_keys` inverts it.
- :func:`fixed_point` turns weights into integers, multiples of :data:`WEIGHT_UNIT`.
- :func:`exact_sum` is the exact sum of ``w_i * x_i`` (integer weights, float values) as a
  Python integer in units of :data:`TINY` (the smallest subnormal, 2**-1074): every float64
  is an integer multiple of it.
- :func:`int_sum` and :func:`int_dot` are exact sums of int64 arrays (no overflow).
- :func:`linear_quantile` reproduces ``numpy.quantile``'s default (linear, Hyndman and Fan's
  method 7) from the two order statistics it interpolates, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

#: Every float64 is an integer multiple of this (the smallest subnormal).
TINY_EXPONENT = -1074
TINY = 2.0**TINY_EXPONENT
#: Weights are stored as integers in units of 2**-WEIGHT_BITS.
WEIGHT_BITS = 32
WEIGHT_UNIT = 2.0**-WEIGHT_BITS
#: Weights must be below this (their fixed-point integers fit an int64).
WEIGHT_LIMIT = 2.0 ** (62 - WEIGHT_BITS)
#: Rows per slice: keeps every partial sum below 2**53 (float-exact) or 2**63 (int64).
_SLICE = 2**20
_SIGN_FLIP = np.uint64(2**63)
_MAGNITUDE = np.int64(2**63 - 1)
_LIMB = 21
_LIMB_MASK = np.int64(2**_LIMB - 1)


def order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys ordered as the float64 values are (NaN excluded by the caller).

    ``-0.0`` is mapped with ``0.0`` (they compare equal); ``-inf`` has the smallest key and
    ``inf`` the largest.
    """
    bits = (np.asarray(values, dtype=np.float64) + 0.0).view(np.int64)  # -0.0 + 0.0 = 0.0
    ordered = bits ^ ((bits >> np.int64(63)) & _MAGNITUDE)
    return ordered.view(np.uint64) ^ _SIGN_FLIP


def from_keys(keys) -> np.ndarray:
    """The float64 values of keys from :func:`order_keys`."""
    ordered = (np.asarray(keys, dtype=np.uint64) ^ _SIGN_FLIP).view(np.int64)
    bits = ordered ^ ((ordered >> np.int64(63)) & _MAGNITUDE)
    return bits.view(np.float64)


def fixed_point(weights) -> np.ndarray:
    """Weights as int64 multiples of :data:`WEIGHT_UNIT` (``round(w * 2**32)``).

    The rounding is per value, so it does not depend on the grouping; a weight below half a
    unit (1.2e-10) becomes zero. Normalise weights so that the largest possible is about 1
    (for example a likelihood divided by that of a perfect fit).

    Raises
    ------
    ValueError
        For a NaN, negative, infinite or too large (:data:`WEIGHT_LIMIT`) weight.
    """
    weights = np.asarray(weights, dtype=np.float64)
    bad = ~((weights >= 0) & (weights < WEIGHT_LIMIT))
    if bad.any():
        value = weights[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"sample weights must be finite, at least 0 and below {WEIGHT_LIMIT:.0e} "
            f"(got {value!r})"
        )
    return np.rint(np.ldexp(weights, WEIGHT_BITS)).astype(np.int64)


def int_sum(values: np.ndarray) -> int:
    """Exact sum of a non-negative int64 array (below 2**63 each) as a Python int."""
    values = np.asarray(values, dtype=np.int64)
    high = int(np.sum(values >> np.int64(32), dtype=np.int64))  # < 2**31 each
    low = int(np.sum(values & np.int64(2**32 - 1), dtype=np.int64))  # < 2**32 each
    return (high << 32) + low


def _limbs(values: np.ndarray, count: int) -> list[np.ndarray]:
    """Split int64 values into ``count`` limbs of 21 bits (the last one carries the sign)."""
    parts = []
    for _ in range(count - 1):
        parts.append(values & _LIMB_MASK)
        values = values >> np.int64(_LIMB)
    parts.append(values)
    return parts


def int_dot(a: np.ndarray, b: np.ndarray) -> int:
    """Exact ``sum(a * b)`` of int64 arrays (``|a|, |b| < 2**63``) as a Python int."""
    total = 0
    for start in range(0, len(a), _SLICE):
        left = _limbs(np.asarray(a[start : start + _SLICE], dtype=np.int64), 3)
        right = _limbs(np.asarray(b[start : start + _SLICE], dtype=np.int64), 3)
        for i, x in enumerate(left):
            for j, y in enumerate(right):  # |x * y| < 2**42, 2**20 of them < 2**62
                total += int(np.sum(x * y, dtype=np.int64)) << (_LIMB * (i + j))
    return total


def exact_sum(values: np.ndarray, weights: np.ndarray | None = None) -> int:
    """Exact ``sum(weights * values)`` in units of :data:`TINY`, as a Python int.

    Parameters
    ----------
    values : numpy.ndarray
        Finite float64 values (the caller drops NaN and infinities).
    weights : numpy.ndarray, optional
        Non-negative int64 weights (:func:`fixed_point`); none: every weight is 1.

    Returns
    -------
    int
        ``round(sum / TINY)``, which is exact: no rounding happens anywhere. Two groupings of
        the same terms give the same integer; ``total * TINY`` divided by the weight total
        (as integers, :func:`ratio`) is the correctly rounded mean.
    """
    values = np.asarray(values, dtype=np.float64)
    total = 0
    for start in range(0, len(values), _SLICE):
        part = values[start : start + _SLICE]
        mantissa, exponent = np.frexp(part)  # part = mantissa * 2**exponent, |mantissa| < 1
        digits = np.ldexp(mantissa, 53).astype(np.int64)  # an integer below 2**53
        shift = exponent.astype(np.int64) - 53 - TINY_EXPONENT
        # a subnormal has fewer digits: its low bits are zeros, shifted out exactly
        digits = np.where(shift < 0, digits >> np.maximum(-shift, 0), digits)
        shift = np.maximum(shift, 0)
        if weights is None:
            total += _grouped_sum(shift, [(digits >> np.int64(26), 26), (digits & (2**26 - 1), 0)])
        else:
            w = _limbs(np.asarray(weights[start : start + _SLICE], dtype=np.int64), 3)
            d = _limbs(digits, 3)
            terms = [(x * y, _LIMB * (i + j)) for i, x in enumerate(w) for j, y in enumerate(d)]
            total += _grouped_sum(shift, terms)
    return total


def _grouped_sum(shift: np.ndarray, terms: list[tuple[np.ndarray, int]]) -> int:
    """``sum(term * 2**(bits + shift))`` over rows, grouping the rows by ``shift``.

    Each term is below 2**43 in magnitude and there are at most 2**20 rows, so the int64 sum
    of a group cannot overflow.
    """
    if not len(shift):
        return 0
    order = np.argsort(shift, kind="stable")
    shift = shift[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(shift)) + 1])
    total = 0
    for term, bits in terms:
        sums = np.add.reduceat(term[order], starts)
        for value, exponent in zip(sums.tolist(), shift[starts].tolist(), strict=True):
            if value:
                total += value << (exponent + bits)
    return total


def ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` correctly rounded (NaN when the denominator is 0)."""
    return numerator / denominator if denominator else math.nan


def exact_mean(values: np.ndarray) -> float:
    """The correctly rounded mean of the non-NaN values (NaN if none, or with ±inf as numpy)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return math.nan
    finite = np.isfinite(values)
    if not finite.all():
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, as numpy's mean
            return float(np.sum(values[~finite]) / len(values))
    return ratio(exact_sum(values), len(values) << -TINY_EXPONENT)


def linear_quantile(count: int, q: float) -> tuple[int, int, float]:
    """The order statistics and the weight of ``numpy.quantile``'s linear method.

    Parameters
    ----------
    count : int
        Values (NaN excluded, as ``numpy.nanquantile`` does).
    q : float
        The probability.

    Returns
    -------
    (int, int, float)
        The 0-based ranks ``below`` and ``above`` whose values :func:`interpolate` combines
        with the weight ``gamma`` (numpy's own arithmetic, so the result is bit-identical).
    """
    virtual = (count - 1) * np.float64(q)
    below = math.floor(virtual)
    if virtual >= count - 1:  # numpy takes the last value for both, with gamma = index + 1
        return count - 1, count - 1, float(virtual - (-1))
    return below, below + 1, float(virtual - below)


def interpolate(low: float, high: float, gamma: float) -> float:
    """numpy's ``_lerp``: ``low + (high - low) * gamma``, from the upper end when gamma >= 0.5."""
    low, high, gamma = np.float64(low), np.float64(high), np.float64(gamma)
    with np.errstate(invalid="ignore"):
        difference = high - low
        if gamma >= 0.5:
            return float(high - difference * (1 - gamma))
        return float(low + difference * gamma)
