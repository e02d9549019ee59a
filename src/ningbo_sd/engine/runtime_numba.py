"""Numba runtime: generate and JIT-compile a step loop from the IR.

Security: the generated source contains only identifiers created here and
numbers (integers we computed, floats parsed from the model via ``repr``);
no name, string or expression text from the model file reaches the source.
The generated module is written once to the cache directory under a name
that is the hash of its text, so numba's ``cache=True`` finds the compiled
code again in the next process (the text must therefore be deterministic).

Two jitted functions: ``init_loop`` (initial values) and ``run_loop`` (the
time loop: dynamic equations, recording and Euler updates).  Samples are
processed in groups of ``NC`` with the sample axis innermost: every equation
is a loop over the ``NC`` samples of a group with a compile-time trip count,
which LLVM unrolls and its SLP pass turns into vector instructions.  Powers
use :mod:`ningbo_sd.engine.vpow` (vectorisable ``exp(b log a)``).  No fast-math flags
are used, so every lane performs exactly the operations of a scalar run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading

import numba  # ImportError here selects the numpy fallback
import numba.core.config
import numpy as np

from .codegen import KernelGenerator, update_source
from .ir import ModelIR, Ref
from .loading import cache_dir
from .runtime_numpy import NumpyRuntime
from .vpow import NUMBA_SOURCE as _POW_SOURCE

__all__ = ["NumbaRuntime", "cache_dir"]

_TEMPLATE = """\
# compiled with LLVM's SLP vectoriser on (see NumbaRuntime._call)
import math
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_INF = np.inf
_NAN = np.nan
_SMALL = 1e-6
_J = dict(cache=True, nogil=True, error_model="numpy")
NC = __NC__


@njit(**_J)
def _lk(LX, LY, st, n, x, mode):
    if n == 1:
        return LY[st]
    if x != x:  # NaN: held at the first point, or interpolated to NaN
        if mode == 1:
            return LY[st]
        return (LY[st + 1] - LY[st]) / (LX[st + 1] - LX[st]) * (x - LX[st]) + LY[st]
    lo = 0  # binary search: the first point at or after x
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if LX[st + mid] < x:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and LX[st + lo] == x:  # on a point: its value (the first of equal ones)
        return LY[st + lo]
    if lo == n:
        if mode == 2:
            x0 = LX[st + n - 2]
            x1 = LX[st + n - 1]
            y0 = LY[st + n - 2]
            y1 = LY[st + n - 1]
            return y1 + (y1 - y0) / (x1 - x0) * (x - x1)
        return LY[st + n - 1]
    if lo == 0:
        if mode == 2:
            return LY[st] + (LY[st + 1] - LY[st]) / (LX[st + 1] - LX[st]) * (x - LX[st])
        return LY[st]
    j = lo - 1
    if mode == 1:
        return LY[st + j]
    x0 = LX[st + j]
    y0 = LY[st + j]
    return (LY[st + j + 1] - y0) / (LX[st + j + 1] - x0) * (x - x0) + y0


__POW__


@njit(**_J)
def _min(a, b):
    if a != a or b != b:
        return _NAN
    return a if a <= b else b


@njit(**_J)
def _max(a, b):
    if a != a or b != b:
        return _NAN
    return a if a >= b else b


@njit(**_J)
def _quantum(a, b):
    if b < _SMALL:
        return a
    return b * np.trunc(a / b)


# ZIDZ / XIDZ as selects, not branches, so that a sample loop of them vectorises:
# the division always runs (by 1.0 where b is small) and its result is discarded there
@njit(**_J)
def _zidz(a, b):
    small = abs(b) < _SMALL
    q = a / (1.0 if small else b)
    return 0.0 if small else q


@njit(**_J)
def _xidz(a, b, x):
    small = abs(b) < _SMALL
    q = a / (1.0 if small else b)
    return x if small else q


@njit(**_J)
def _step(v, ts, t, dt):
    return v if t + dt / 2 > ts else 0.0


@njit(**_J)
def _ramp(slope, start, finish, t):
    if t + _SMALL > start:
        return slope * (min(finish, t) - start)
    return 0.0


@njit(**_J)
def _pulse(start, width, t, dt):
    return 1.0 if (start - _SMALL <= t and t < start + width) else 0.0


@njit(**_J)
def _pulse_train(start, rep, width, end, t, dt):
    if rep == 0:
        return 1.0 if (start - _SMALL <= t and t < start + width) else 0.0
    if start <= t and t < end:
        r = (t - start + _SMALL) % rep
        return 1.0 if r < width else 0.0
    return 0.0


@njit(**_J)
def _delay_order(order, min_tau, dt):
    m = order
    for q in range(int(order)):
        if m * dt > min_tau:
            m = m - 1.0
    return m


@njit(**_J)
def init_loop(XG, W, I, F, LX, LY, LS, LN, t):
    for g in range(XG.shape[0]):
        X = XG[g]
__INIT__


@njit(**_J)
def run_loop(XG, W, I, F, LX, LY, LS, LN, times, save, keep, R, dt):
    nt = times.shape[0]
    for g in range(XG.shape[0]):
        X = XG[g]
        isave = 0
        for it in range(nt):
            t = times[it]
__BODY__
            if save[it]:
__REPORT__
                for q in range(keep.shape[0]):
                    v0 = keep[q] * NC
                    for s in range(NC):
                        R[q, isave, g * NC + s] = X[v0 + s]
                isave += 1
            if it < nt - 1:
__UPDATE__
"""


def _equations(gen: KernelGenerator, names: list[str], indent: int) -> str:
    """The generated code of the equations of ``names``, in order (``pass`` when none)."""
    gen.lines, gen.ind = [], indent
    for name in names:
        for a in gen.model.assigns.get(name, []):
            gen.assign(name, a.target, a.expr)
    gen.flush()
    return "\n".join(gen.lines) if gen.lines else " " * indent + "pass"


class NumbaRuntime:
    """JIT-compiled runtime with the same interface as :class:`NumpyRuntime`.

    Parameters
    ----------
    model : ModelIR
        The compiled model.
    """

    #: samples integrated together (the trip count of every generated sample
    #: loop): one AVX2 vector, and a group's whole state (~800 rows x 32 bytes)
    #: stays in the 32 KB L1 cache; 8 and 16 were 1.2x and 1.7x slower
    group = 4

    def __init__(self, model: ModelIR, group: int | None = None) -> None:
        self.model = model
        self.group = int(group or self.group)
        self._numpy = NumpyRuntime(model)
        gen = KernelGenerator(model, self.group, phase="init", indent=8)
        for name in model.init_order:
            v = model.variables[name]
            if v.kind in ("stock", "discrete"):
                src = np.arange(v.size, dtype=np.int64)
                gen.assign(name, src, Ref(model.stock_init[name], src))
            else:
                for a in model.assigns.get(name, []):
                    gen.assign(name, a.target, a.expr)
        gen.flush()
        init_body = "\n".join(gen.lines) if gen.lines else "        pass"
        # every step computes what the state update reads; the variables that only
        # report are computed at the saved steps (same operations on the same values)
        gen.phase = "run"  # same tables, scratch and names
        core = [name for name in model.run_order if name not in model.report_only]
        body = _equations(gen, core, indent=12)
        report = [name for name in model.run_order if name in model.report_only]
        report = _equations(gen, report, indent=16)
        rt = self._numpy
        state_rows = (rt.stock_rows, rt.flow_rows, rt.disc_rows, rt.next_rows)
        self.source = (
            _TEMPLATE.replace("__NC__", str(self.group))
            .replace("__POW__", _POW_SOURCE.strip())
            .replace("__INIT__", init_body)
            .replace("__BODY__", body)
            .replace("__REPORT__", report)
            .replace("__UPDATE__", update_source(*state_rows, self.group, indent=16))
        )
        self.n_scratch = max(gen.n_scratch, 1)
        self.I = np.concatenate(gen.ints) if gen.ints else np.zeros(1, dtype=np.int64)
        self.F = np.concatenate(gen.floats) if gen.floats else np.zeros(1)
        tabs = model.tables
        self.LX = np.concatenate([t[0] for t in tabs]) if tabs else np.zeros(1)
        self.LY = np.concatenate([t[1] for t in tabs]) if tabs else np.zeros(1)
        self.LN = np.array([len(t[0]) for t in tabs] or [1], dtype=np.int64)
        self.LS = np.concatenate([[0], np.cumsum(self.LN)[:-1]]).astype(np.int64)
        self._fn = None
        self._lock = threading.Lock()

    def _module_name(self) -> str:
        return f"ningbo_sd_kernel_{hashlib.sha256(self.source.encode()).hexdigest()[:24]}"

    @classmethod
    def is_cached(cls, model: ModelIR) -> bool:
        """Whether numba's on-disk cache holds this model's kernels (both loops)."""
        name = cls(model)._module_name()
        folder = cache_dir() / "__pycache__"
        return all(any(folder.glob(f"{name}.{loop}-*.nbi")) for loop in ("init_loop", "run_loop"))

    def _kernel(self):
        if self._fn is None:
            modname = self._module_name()
            if modname in sys.modules:
                self._fn = sys.modules[modname]
                return self._fn
            # numba's cache is keyed by the file's path and timestamp: write the
            # file once (named by its content hash) and never touch it again
            path = cache_dir() / f"{modname}.py"
            if not path.exists() or path.read_text() != self.source:
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(self.source)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(modname, path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            sys.modules[modname] = mod
            self._fn = mod
        return self._fn

    @staticmethod
    def _call(fn, *args) -> None:
        """Call a kernel; the first call compiles it (or loads it from the cache).

        Compilation runs with LLVM's SLP vectoriser on: the sample loops have
        a compile-time trip count, LLVM unrolls them fully, and only the SLP
        pass turns the unrolled lanes back into AVX2 instructions (numba
        leaves it off by default; it reads the flag per compilation, so it
        is set here and restored).  The kernel source says so in its first
        line, so kernels cached under the other setting are never reused.
        """
        if fn.signatures:
            fn(*args)
            return
        limit = sys.getrecursionlimit()  # the first call compiles; numba recurses
        sys.setrecursionlimit(max(limit, 20000))  # deeply over long expressions
        slp = numba.core.config.SLP_VECTORIZE
        numba.core.config.SLP_VECTORIZE = 1
        try:
            fn(*args)
        finally:
            numba.core.config.SLP_VECTORIZE = slp
            sys.setrecursionlimit(limit)

    def prepare(self) -> None:
        """Make sure the kernels are compiled or loaded (call before using threads).

        Safe to call from several threads at once: one compiles, the others wait.
        """
        with self._lock:
            mod = self._kernel()
            if not (mod.run_loop.signatures and mod.init_loop.signatures):
                self.warmup()

    def allocate(self, n: int, fill: np.ndarray) -> np.ndarray:
        """State for ``n`` samples in the kernel's layout, as an ``(n_rows, groups, group)`` view.

        Every sample starts as ``fill`` (one value per row).  Writing rows into
        the view (samples padded to whole groups) and passing it to :meth:`run`
        saves a copy into the grouped layout.
        """
        m = -(-n // self.group)
        state = np.empty((m, self.model.n_rows, self.group))
        state[:] = np.repeat(np.asarray(fill, dtype=float)[:, None], self.group, axis=1)
        return state.transpose(1, 0, 2)

    def warmup(self) -> None:
        """Compile (or load from the on-disk cache) the kernels now."""
        X = np.ones((self.model.n_rows, 1))
        with np.errstate(all="ignore"):
            self.run(
                X, np.array([0.0, 1.0]), np.array([True, True]), np.zeros(0, dtype=np.int64), 1.0
            )

    def run(
        self,
        X: np.ndarray,
        times: np.ndarray,
        save: np.ndarray,
        keep_rows: np.ndarray,
        dt: float,
        init: bool = True,
    ) -> np.ndarray:
        """Initialise and integrate (both jitted); see :meth:`NumpyRuntime.run`.

        ``X`` is either ``(n_rows, S)`` or the ``(n_rows, groups, group)`` view
        that :meth:`allocate` returns (no copy then).  ``(n_rows, S)`` samples
        are padded to a multiple of :attr:`group` (copies of the last sample;
        every lane is computed by the same operations, so a sample's result
        does not depend on its neighbours or position).
        """
        mod = self._kernel()
        nc = self.group
        if X.ndim == 3:
            n_rows, m, n = X.shape[0], X.shape[1], X.shape[1] * X.shape[2]
            XG = X.transpose(1, 0, 2).reshape(m, -1)
            if not np.may_share_memory(XG, X):  # reshape copied: not an allocate() view
                raise ValueError("X must be the view returned by allocate()")
        else:
            n_rows, n = X.shape
            m = -(-n // nc)
            if m * nc != n:
                X = np.concatenate([X, np.repeat(X[:, -1:], m * nc - n, axis=1)], axis=1)
            XG = np.ascontiguousarray(X.reshape(n_rows, m, nc).transpose(1, 0, 2)).reshape(m, -1)
        W = np.empty(self.n_scratch * nc)
        tables = (self.I, self.F, self.LX, self.LY, self.LS, self.LN)
        if init:
            self._call(mod.init_loop, XG, W, *tables, float(times[0]))
        n_saved = int(np.count_nonzero(save))
        R = np.empty((len(keep_rows), n_saved, m * nc))
        self._call(
            mod.run_loop,
            XG,
            W,
            *tables,
            np.asarray(times, float),
            np.asarray(save, dtype=np.bool_),
            np.asarray(keep_rows, dtype=np.int64),
            R,
            float(dt),
        )
        return R[:, :, :n]
