"""A power function that vectorises: ``a ** b`` as ``exp(b * log(a))`` in plain arithmetic.

LLVM cannot vectorise a loop that calls libm's ``pow`` (numba's pip builds
have no vector math library), so every lane of every sample loop holding a
``^`` made one scalar call, and those calls were about 40% of the batch
engine's time.  Here ``log`` and ``exp`` are written with bit operations,
one select and polynomials only, so the loop stays vectorised.

Two implementations of one algorithm, operation for operation:

- :data:`NUMBA_SOURCE`: scalar code pasted into the generated numba kernel:
  ``_powf`` returns NaN outside the ordinary case (below) and has no call in
  it, so a loop of it vectorises; the kernel then recomputes the NaN lanes
  with ``**`` in a second loop.  ``_pow`` does both for one value;
- :func:`pow_numpy`: the same operations on numpy arrays, for the reference
  runtime, so the two runtimes stay bit-identical (tested).

Both handle the "ordinary" case: a positive, normal, finite base and a
finite product ``b * log(a)`` with ``|b * log(a)| < 708``.  Anything else
(zero or negative base, infinities, NaN, overflow, underflow) is recomputed
with the C library's ``pow`` (numba's ``**``; the numpy twin calls the same
libm function, :mod:`ningbo_sd.engine.libm`), so special values follow IEEE
exactly and both runtimes agree bit for bit.  In the ordinary case the relative error is below
``|b * log(a)| * 2**-52 + 4 * 2**-53`` (tested against ``np.power``);
the engine's differential test against PySD still holds at 1e-9.

Algorithm: ``a = 2**e * m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``;
``log(m) = 2 atanh(f)``, ``f = (m - 1) / (m + 1)``, as ``2f + 2f s p(s)``, ``s = f**2``,
with fdlibm's degree-6 Remez polynomial ``p`` (``|f| < 0.1716``);
``log(a) = e * ln2_hi + (log(m) + e * ln2_lo)``.  Both polynomials are evaluated by
Estrin's scheme (:func:`_estrin`).
``exp(y) = 2**k * exp(r)``, ``k = round(y / ln 2)`` (by the 1.5 * 2**52
trick), ``r = y - k ln2_hi - k ln2_lo``, ``exp(r)`` by Taylor to ``r**13``
(``|r| <= 0.347``), ``2**k`` built from its bits.
"""

from __future__ import annotations

import numpy as np

from . import libm

__all__ = ["NUMBA_SOURCE", "exp_numpy", "pow_numpy"]

_SQRT2 = 1.4142135623730951
_LN2_HI = 6.93147180369123816490e-01  # fdlibm: 32 trailing zero bits, k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_ROUND = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer
_TWO52 = 4503599627370496.0
_EXP_BIAS_BITS = 0x4330000000000000  # bits of 2**52
_MANT = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_LIMIT = 708.0
# fdlibm's e_log.c Lg7..Lg1 (a Remez fit of the atanh series' tail on |f| < 0.1716, error
# below 2**-58.45), halved (exactly) because here the series is 2f + 2f * s * p(s)
_LOG_C = tuple(
    c / 2.0
    for c in (
        1.479819860511658591e-01,
        1.531383769920937332e-01,
        1.818357216161805012e-01,
        2.222219843214978396e-01,
        2.857142874366239149e-01,
        3.999999999940941908e-01,
        6.666666666666735130e-01,
    )
)
# 1/j! for j = 13..2 (the exp series), highest power first
_EXP_C = tuple(1.0 / float(np.prod(np.arange(1, j + 1))) for j in range(13, 1, -1))


class _Code(str):
    """Source text of a float expression; ``+`` and ``*`` build the text of the operation."""

    def __add__(self, other):
        return _Code(f"({self} + {_text(other)})")

    def __radd__(self, other):
        return _Code(f"({_text(other)} + {self})")

    def __mul__(self, other):
        return _Code(f"({self} * {_text(other)})")

    def __rmul__(self, other):
        return _Code(f"({_text(other)} * {self})")


def _text(value) -> str:
    return value if isinstance(value, _Code) else repr(float(value))


def _estrin(x, coefs: tuple):
    """``coefs[0] * x**(n-1) + ... + coefs[-1]`` (highest power first) by Estrin's scheme.

    Pairs of terms are combined with ``x``, pairs of pairs with ``x**2``, then
    ``x**4``, ...: the dependency chain is about ``log2(n)`` multiply-adds deep
    instead of Horner's ``n``, so the CPU overlaps the work.  Written with
    ``+`` and ``*`` only, it runs unchanged on numpy arrays (``pow_numpy``) and
    on :class:`_Code` (the numba source), so both do the same operations.
    """
    terms = list(coefs[::-1])  # lowest power first
    power = x
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] * power for i in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            pairs.append(terms[-1])
        terms = pairs
        power = power * power if len(terms) > 1 else power
    return terms[0]


NUMBA_SOURCE = f"""
@intrinsic
def _f2i(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(inline="always", **_J)
def _expf(y):
    t = y * {_INV_LN2!r} + {_ROUND!r}
    kf = t - {_ROUND!r}
    r = (y - kf * {_LN2_HI!r}) - kf * {_LN2_LO!r}
    q = {_estrin(_Code("r"), _EXP_C)}
    er = 1.0 + r * (1.0 + r * q)
    k = _f2i(t) - {int(np.float64(_ROUND).view(np.int64))}
    scale = _i2f((k + 1023) << 52)
    return er * scale if abs(y) < {_LIMIT!r} else _NAN


@njit(inline="always", **_J)
def _powf(a, b):
    bits = _f2i(a)
    ebits = (bits >> 52) | {_EXP_BIAS_BITS}
    e = _i2f(ebits) - {_TWO52 + 1023.0!r}
    m = _i2f((bits & {_MANT}) | {_ONE_BITS})
    big = m > {_SQRT2!r}
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = {_estrin(_Code("s"), _LOG_C)}
    lg = e * {_LN2_HI!r} + (2.0 * f + 2.0 * f * (s * p) + e * {_LN2_LO!r})
    v = _expf(b * lg)
    return v if a >= 2.2250738585072014e-308 and a < _INF else _NAN


@njit(**_J)
def _exp(x):
    v = _expf(x)
    return v if v == v else math.exp(x)


@njit(**_J)
def _pow(a, b):
    v = _powf(a, b)
    return v if v == v else a ** b
"""


def pow_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a ** b`` elementwise by the operations of :data:`NUMBA_SOURCE`.

    Parameters
    ----------
    a, b : array_like of float
        Base and exponent (broadcast together).

    Returns
    -------
    numpy.ndarray
        Bit-identical to the numba kernel's ``_pow``; equal to ``np.power``
        within the error bound in the module docstring, and exactly libm's
        ``pow`` outside the ordinary case (as numba's ``**``).
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    a = np.ascontiguousarray(a)
    bits = a.view(np.int64)
    ebits = (bits >> 52) | _EXP_BIAS_BITS
    e = ebits.view(np.float64) - (_TWO52 + 1023.0)
    m = ((bits & _MANT) | _ONE_BITS).view(np.float64)
    big = m > _SQRT2
    m = np.where(big, m * 0.5, m)
    e = np.where(big, e + 1.0, e)
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = _estrin(s, _LOG_C)
    lg = e * _LN2_HI + (2.0 * f + 2.0 * f * (s * p) + e * _LN2_LO)
    y = b * lg
    out, fast = _exp_core(y)
    ok = (a >= 2.2250738585072014e-308) & (a < np.inf) & fast
    if not ok.all():
        bad = ~ok  # the C library's pow there, as numba's ``**``
        # broadcast_to is needed: ascontiguousarray made a 0-d base 1-d, so b may be 0-d
        base, exponent = (np.broadcast_to(x, bad.shape)[bad] for x in (a, b))
        out[bad] = libm.call("pow", base, exponent)
    return out


def _exp_core(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``exp(y)`` by the operations of ``_expf``, and where that is the ordinary case."""
    t = np.ascontiguousarray(y * _INV_LN2 + _ROUND)
    kf = t - _ROUND
    r = (y - kf * _LN2_HI) - kf * _LN2_LO
    q = _estrin(r, _EXP_C)
    er = 1.0 + r * (1.0 + r * q)
    k = t.view(np.int64) - np.float64(_ROUND).view(np.int64)
    scale = np.ascontiguousarray((k + 1023) << 52).view(np.float64)
    return er * scale, np.abs(y) < _LIMIT


def exp_numpy(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` elementwise by the operations of the kernel's ``_exp``.

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    numpy.ndarray
        Bit-identical to the numba kernel's ``_exp``; within a few ulp of
        ``np.exp`` for ``|x| < 708``, and exactly libm's ``exp`` elsewhere (overflow,
        underflow, infinities, NaN), as numba's ``math.exp``.
    """
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    out, ok = _exp_core(x)
    if not ok.all():
        out[~ok] = libm.call("exp", x[~ok])  # the C library's, as numba's ``math.exp``
    return out
