"""The C library's elementary functions on numpy arrays, bit for bit as the numba kernel gets them.

The numba kernel computes ``LN``, ``SIN`` and the other elementary functions (and the
rare lanes of ``^`` and ``EXP`` outside :mod:`ningbo_sd.engine.vpow`'s fast path) with the C
library: numba lowers ``math.log`` to a call of libm's ``log``. NumPy's ufuncs dispatch to
SIMD implementations where the CPU has them (on AVX-512 machines ``np.log``, ``np.exp`` and
``np.power`` differ from libm in the last bit for some arguments), so the numpy runtime calls
libm too, through :mod:`ctypes`, one element at a time. That is slow per element, but the
numpy runtime meets these functions only in single runs, on the fallback lanes, or in models
that use them. Where no C math library can be loaded, numpy's ufuncs stand in.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

__all__ = ["call"]

_UNARY = {
    "log": np.log,
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
}
_BINARY = {"pow": np.power}


def _load() -> dict:
    """libm's functions as numpy ufuncs of Python floats (``np.frompyfunc``), by C name."""
    path = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(path) if path else None
    except OSError:
        lib = None
    if lib is None:
        return {}
    ufuncs = {}
    for name, arity in [*((n, 1) for n in _UNARY), *((n, 2) for n in _BINARY)]:
        function = getattr(lib, name)
        function.restype = ctypes.c_double
        function.argtypes = [ctypes.c_double] * arity
        ufuncs[name] = np.frompyfunc(function, arity, 1)
    return ufuncs


_LIBM = _load()


def call(name: str, *args) -> np.ndarray:
    """libm's ``name`` (a C name: ``log``, ``exp``, ``pow``, ``sin``, ...) elementwise.

    Parameters
    ----------
    name : str
        One of the keys of the unary or binary tables above.
    *args : array_like
        One argument (two for ``pow``), broadcast together.

    Returns
    -------
    numpy.ndarray of float
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in args]
    ufunc = _LIBM.get(name)
    if ufunc is None:
        return (_UNARY.get(name) or _BINARY[name])(*arrays)
    return np.asarray(ufunc(*arrays), dtype=np.float64)
