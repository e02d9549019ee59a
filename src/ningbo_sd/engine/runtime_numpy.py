"""Pure-numpy reference runtime of the IR.

The state is one float64 buffer ``X`` of shape ``(n_rows, n_samples)``; each
equation is turned into a closure evaluating its expression on ``(n_points,
n_samples)`` arrays.  Used as the reference path (and fallback when numba is
not installed); :mod:`ningbo_sd.engine.runtime_numba` generates the fast equivalent.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import libm
from .ir import (
    Assign,
    BinOp,
    Func,
    IfElse,
    LookupCall,
    ModelIR,
    Num,
    Phase,
    Reduce,
    Ref,
    Select,
    TimeNode,
    UnOp,
)
from .vpow import exp_numpy, pow_numpy

__all__ = ["NumpyRuntime", "lookup_numpy"]

SMALL_VENSIM = 1e-6


def _rows(offset: int, idx: np.ndarray):
    """A slice when ``offset + idx`` is contiguous, else an index array."""
    rows = offset + np.asarray(idx, dtype=np.int64)
    if rows.size and np.array_equal(rows, np.arange(rows[0], rows[0] + rows.size)):
        return slice(int(rows[0]), int(rows[0]) + rows.size)
    if rows.size > 1 and np.all(rows == rows[0]):
        return slice(int(rows[0]), int(rows[0]) + 1)  # broadcast (1, S)
    return rows


def _integer(x):
    return np.trunc(x)


def _quantum(a, b):
    return np.where(b < SMALL_VENSIM, a, b * _integer(a / b))


def _func(name: str, a: list):
    """Numpy implementation of builtin ``name`` on evaluated arguments ``a``."""
    f = {
        "abs": lambda: np.abs(a[0]),
        "exp": lambda: exp_numpy(a[0]),
        "ln": lambda: libm.call("log", a[0]),
        "sqrt": lambda: np.sqrt(a[0]),
        "integer": lambda: _integer(a[0]),
        "sin": lambda: libm.call("sin", a[0]),
        "cos": lambda: libm.call("cos", a[0]),
        "tan": lambda: libm.call("tan", a[0]),
        "arcsin": lambda: libm.call("asin", a[0]),
        "arccos": lambda: libm.call("acos", a[0]),
        "arctan": lambda: libm.call("atan", a[0]),
        "sinh": lambda: libm.call("sinh", a[0]),
        "cosh": lambda: libm.call("cosh", a[0]),
        "tanh": lambda: libm.call("tanh", a[0]),
        "min": lambda: np.minimum(a[0], a[1]),
        "max": lambda: np.maximum(a[0], a[1]),
        "log": lambda: libm.call("log", a[0]) / libm.call("log", a[1]),
        "quantum": lambda: _quantum(a[0], a[1]),
        "modulo": lambda: a[0] - _quantum(a[0], a[1]),
        "zidz": lambda: np.where(np.abs(a[1]) < SMALL_VENSIM, 0.0, a[0] / a[1]),
        "xidz": lambda: np.where(np.abs(a[1]) < SMALL_VENSIM, a[2], a[0] / a[1]),
        # step(value, tstep, time, dt)
        "step": lambda: a[0] * (a[2] + a[3] / 2 > a[1]),
        # ramp(slope, start, finish, time)
        "ramp": lambda: (a[3] + SMALL_VENSIM > a[1]) * a[0] * (np.minimum(a[2], a[3]) - a[1]),
        # pulse(start, width, time, dt)
        "pulse": lambda: np.where((a[0] - SMALL_VENSIM <= a[2]) & (a[2] < a[0] + a[1]), 1.0, 0.0),
        "pulse_train": lambda: _pulse_train(*a),
        "delay_order": lambda: _delay_order(*a),
    }[name]
    return f()


def _pulse_train(start, repeat, width, end, t, dt):
    single = (start - SMALL_VENSIM <= t) & (t < start + width)
    with np.errstate(all="ignore"):
        train = (start <= t) & (t < end) & (np.mod(t - start + SMALL_VENSIM, repeat) < width)
    return np.where(repeat == 0, single, train).astype(float)


def _delay_order(order, min_tau, dt):
    m = np.broadcast_to(np.asarray(order, dtype=float), np.shape(min_tau)).copy()
    for _ in range(int(np.max(order))):
        m = np.where(m * dt > min_tau, m - 1, m)
    return m


def lookup_numpy(xs: np.ndarray, ys: np.ndarray, mode: str, x: np.ndarray) -> np.ndarray:
    """Evaluate one lookup table as PySD does (clamped, hold-backward or extrapolated).

    Parameters
    ----------
    xs, ys : ndarray
        Sorted table abscissae and ordinates.
    mode : str
        ``interpolate``, ``hold_backward`` or ``extrapolate``.
    x : ndarray
        Arguments.

    Returns
    -------
    ndarray
    """
    x = np.asarray(x, dtype=float)
    n = len(xs)
    if n == 1:
        return np.full(x.shape, ys[0])
    j = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, n - 2)
    x0, x1, y0, y1 = xs[j], xs[j + 1], ys[j], ys[j + 1]
    if mode == "hold_backward":
        out = np.where(x >= x1, y1, y0)
    else:
        out = (y1 - y0) / (x1 - x0) * (x - x0) + y0
    if mode != "extrapolate":
        out = np.where(x <= xs[0], ys[0], np.where(x >= xs[-1], ys[-1], out))
    exact = np.searchsorted(xs, x)
    hit = (exact < n) & (xs[np.minimum(exact, n - 1)] == x)
    return np.where(hit, ys[np.minimum(exact, n - 1)], out)


class NumpyRuntime:
    """Closure-compiled numpy evaluator of a :class:`ModelIR`.

    Parameters
    ----------
    model : ModelIR
        The compiled model.
    """

    def __init__(self, model: ModelIR) -> None:
        self.model = model
        v = model.variables
        self.init_fns = []
        for name in model.init_order:
            kind = v[name].kind
            if kind in ("stock", "discrete"):
                src = v[model.stock_init[name]]
                self.init_fns.append(self._copy(v[name].offset, src.offset, src.size))
            else:
                self.init_fns.extend(self._assign(a, "init") for a in model.assigns.get(name, []))
        self.run_fns = [
            self._assign(a, "run") for name in model.run_order for a in model.assigns.get(name, [])
        ]

        def rows(names) -> np.ndarray:
            """Buffer rows of the variables ``names``, concatenated."""
            blocks = [np.arange(v[n].offset, v[n].offset + v[n].size) for n in names]
            return np.concatenate(blocks or [np.zeros(0, dtype=np.int64)])

        self.stock_rows = rows(s for s, _ in model.stocks)
        self.flow_rows = rows(f for _, f in model.stocks)
        self.disc_rows = rows(s for s, _ in model.discrete)
        self.next_rows = rows(f for _, f in model.discrete)

    # ------------------------------------------------------------------
    @staticmethod
    def _copy(dst: int, src: int, size: int) -> Callable:
        def fn(X, t):
            X[dst : dst + size] = X[src : src + size]

        return fn

    def _assign(self, a: Assign, phase: str) -> Callable:
        var = self.model.variables[a.var]
        rows = _rows(var.offset, a.target)
        n = len(a.target)
        expr = self._node(a.expr, phase)

        def fn(X, t):
            X[rows] = np.broadcast_to(expr(X, t), (n, X.shape[1]))

        return fn

    def _node(self, node, phase: str) -> Callable:
        if isinstance(node, Num):
            val = node.value if np.ndim(node.value) == 0 else node.value[:, None]
            return lambda X, t: val
        if isinstance(node, TimeNode):
            return lambda X, t: t
        if isinstance(node, Ref):
            rows = _rows(self.model.variables[node.var].offset, node.idx)
            return lambda X, t: X[rows]
        if isinstance(node, Reduce):
            rows = self.model.variables[node.var].offset + node.idx
            if node.op in ("sum", "prod"):
                # left to right from 0 (or 1), term by term, as the numba kernel adds:
                # np.sum's pairwise order rounds differently (an ulp in 13-term sums)
                step, start = (np.add, 0.0) if node.op == "sum" else (np.multiply, 1.0)

                def fold(X, t, rows=rows, step=step, start=start):
                    terms = X[rows]
                    acc = step(start, terms[:, 0])
                    for k in range(1, terms.shape[1]):
                        acc = step(acc, terms[:, k])
                    return acc

                return fold
            red = {"max": np.max, "min": np.min}[node.op]
            return lambda X, t: red(X[rows], axis=1)
        if isinstance(node, Phase):
            return self._node(node.run if phase == "run" else node.init, phase)
        kids = [self._node(c, phase) for c in node.children()]
        if isinstance(node, BinOp):
            op = _BINOPS[node.op]
            fa, fb = kids
            return lambda X, t: op(fa(X, t), fb(X, t))
        if isinstance(node, UnOp):
            (fa,) = kids
            if node.op == "neg":
                return lambda X, t: -fa(X, t)
            return lambda X, t: np.logical_not(fa(X, t)).astype(float)
        if isinstance(node, IfElse):
            fc, fa, fb = kids
            return lambda X, t: np.where(fc(X, t) != 0, fa(X, t), fb(X, t))
        if isinstance(node, Func):
            name = node.name
            return lambda X, t: _func(name, [k(X, t) for k in kids])
        if isinstance(node, LookupCall):
            return self._lookup(node, kids[0])
        if isinstance(node, Select):
            fw, opts = kids[0], kids[1:]

            def sel(X, t):
                w = fw(X, t)
                out = opts[-1](X, t)
                for k in range(len(opts) - 2, -1, -1):
                    out = np.where(w == k + 1, opts[k](X, t), out)
                return out

            return sel
        raise TypeError(f"unknown IR node {type(node).__name__}")

    def _lookup(self, node: LookupCall, farg: Callable) -> Callable:
        tables = self.model.tables
        ids = np.asarray(node.table)
        uniq = np.unique(ids)
        mode = node.mode

        def fn(X, t):
            x = np.asarray(farg(X, t), dtype=float)
            x = (
                np.broadcast_to(x, (len(ids), X.shape[1]))
                if x.ndim
                else np.full((len(ids), X.shape[1]), x)
            )
            if len(uniq) == 1:
                xs, ys, _ = tables[uniq[0]]
                return lookup_numpy(xs, ys, mode, x)
            out = np.empty_like(x)
            for u in uniq:
                sel = ids == u
                xs, ys, _ = tables[u]
                out[sel] = lookup_numpy(xs, ys, mode, x[sel])
            return out

        return fn

    # ------------------------------------------------------------------
    def allocate(self, n: int, fill: np.ndarray) -> np.ndarray:
        """State ``(n_rows, n)`` for ``n`` samples, each set to ``fill`` (one value per row)."""
        state = np.empty((self.model.n_rows, n))
        state[:] = np.asarray(fill, dtype=float)[:, None]
        return state

    def run(
        self, X: np.ndarray, times: np.ndarray, save: np.ndarray, keep_rows: np.ndarray, dt: float
    ) -> np.ndarray:
        """Initialise and integrate; return records ``(len(keep_rows), n_saved, S)``.

        ``X`` must hold the constants (per sample); it is overwritten.
        """
        n_saved = int(np.count_nonzero(save))
        out = np.empty((len(keep_rows), n_saved, X.shape[1]))
        with np.errstate(all="ignore"):
            for fn in self.init_fns:
                fn(X, times[0])
            isave = 0
            for i, t in enumerate(times):
                for fn in self.run_fns:
                    fn(X, t)
                if save[i]:
                    out[:, isave] = X[keep_rows]
                    isave += 1
                if i < len(times) - 1:
                    X[self.stock_rows] += X[self.flow_rows] * dt
                    X[self.disc_rows] = X[self.next_rows]
        return out


_BINOPS = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "^": pow_numpy,
    "=": lambda a, b: np.equal(a, b) * 1.0,
    "<>": lambda a, b: np.not_equal(a, b) * 1.0,
    "<": lambda a, b: np.less(a, b) * 1.0,
    "<=": lambda a, b: np.less_equal(a, b) * 1.0,
    ">": lambda a, b: np.greater(a, b) * 1.0,
    ">=": lambda a, b: np.greater_equal(a, b) * 1.0,
    "and": lambda a, b: np.logical_and(a, b) * 1.0,
    "or": lambda a, b: np.logical_or(a, b) * 1.0,
}
