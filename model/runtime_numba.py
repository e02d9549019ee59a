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
which LLVM vectorises.  No fast-math flags are used, so every lane performs
exactly the operations of a scalar run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

import numba  # noqa: F401  (ImportError here selects the numpy fallback)
import numpy as np

from .compiler import cache_dir
from .ir import (
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
from .runtime_numpy import NumpyRuntime

__all__ = ["NumbaRuntime", "cache_dir"]

_TEMPLATE = """\
import math
import numpy as np
from numba import njit

_INF = np.inf
_NAN = np.nan
_SMALL = 1e-6
_J = dict(cache=True, nogil=True, error_model="numpy")
NC = __NC__


@njit(**_J)
def _lk(LX, LY, st, n, x, mode):
    if n == 1:
        return LY[st]
    for q in range(n):
        if LX[st + q] == x:
            return LY[st + q]
    if x > LX[st + n - 1]:
        if mode == 2:
            x0 = LX[st + n - 2]
            x1 = LX[st + n - 1]
            y0 = LY[st + n - 2]
            y1 = LY[st + n - 1]
            return y1 + (y1 - y0) / (x1 - x0) * (x - x1)
        return LY[st + n - 1]
    if x < LX[st]:
        if mode == 2:
            return LY[st] + (LY[st + 1] - LY[st]) / (LX[st + 1] - LX[st]) * (x - LX[st])
        return LY[st]
    j = 0
    while j < n - 2 and LX[st + j + 1] <= x:
        j += 1
    if mode == 1:
        return LY[st + j]
    x0 = LX[st + j]
    y0 = LY[st + j]
    return (LY[st + j + 1] - y0) / (LX[st + j + 1] - x0) * (x - x0) + y0


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


@njit(**_J)
def _zidz(a, b):
    if abs(b) < _SMALL:
        return 0.0
    return a / b


@njit(**_J)
def _xidz(a, b, x):
    if abs(b) < _SMALL:
        return x
    return a / b


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
def run_loop(XG, W, I, F, LX, LY, LS, LN, times, save, keep, R, dt, SR, FR, DR, NR):
    nt = times.shape[0]
    for g in range(XG.shape[0]):
        X = XG[g]
        isave = 0
        for it in range(nt):
            t = times[it]
__BODY__
            if save[it]:
                for q in range(keep.shape[0]):
                    v0 = keep[q] * NC
                    for s in range(NC):
                        R[g, isave, q, s] = X[v0 + s]
                isave += 1
            if it < nt - 1:
                for q in range(SR.shape[0]):
                    v0 = SR[q] * NC
                    v1 = FR[q] * NC
                    for s in range(NC):
                        X[v0 + s] = X[v0 + s] + X[v1 + s] * dt
                for q in range(DR.shape[0]):
                    v0 = DR[q] * NC
                    v1 = NR[q] * NC
                    for s in range(NC):
                        X[v0 + s] = X[v1 + s]
"""

_FUNCS = {
    "abs": "abs({0})",
    "exp": "math.exp({0})",
    "ln": "math.log({0})",
    "sqrt": "math.sqrt({0})",
    "integer": "np.trunc({0})",
    "sin": "math.sin({0})",
    "cos": "math.cos({0})",
    "tan": "math.tan({0})",
    "arcsin": "math.asin({0})",
    "arccos": "math.acos({0})",
    "arctan": "math.atan({0})",
    "sinh": "math.sinh({0})",
    "cosh": "math.cosh({0})",
    "tanh": "math.tanh({0})",
    "min": "_min({0}, {1})",
    "max": "_max({0}, {1})",
    "log": "(math.log({0}) / math.log({1}))",
    "quantum": "_quantum({0}, {1})",
    "modulo": "({0} - _quantum({0}, {1}))",
    "zidz": "_zidz({0}, {1})",
    "xidz": "_xidz({0}, {1}, {2})",
    "step": "_step({0}, {1}, {2}, {3})",
    "ramp": "_ramp({0}, {1}, {2}, {3})",
    "pulse": "_pulse({0}, {1}, {2}, {3})",
    "pulse_train": "_pulse_train({0}, {1}, {2}, {3}, {4}, {5})",
    "delay_order": "_delay_order({0}, {1}, {2})",
}
_ARITH = {"+": "+", "-": "-", "*": "*", "/": "/"}
_CMP = {"=": "==", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_MODES = {"interpolate": 0, "hold_backward": 1, "extrapolate": 2}


def _num(x: float) -> str:
    x = float(x)
    if np.isnan(x):
        return "_NAN"
    if np.isinf(x):
        return "_INF" if x > 0 else "(-_INF)"
    return repr(x)


class _Gen:
    """Generate the body of ``run_loop``; collects the integer and float tables.

    Layout: the state of a group of ``nc`` samples is one flat vector, row ``r``
    of sample ``s`` at ``r * nc + s``; every equation is a loop over ``s``
    innermost (with a compile-time trip count, so LLVM vectorises it and knows
    that distinct rows never overlap).  Consecutive scalar equations share one
    sample loop and pass values through locals; subscripted equations loop over
    their points ``k`` outside the sample loop.
    """

    def __init__(
        self, model: ModelIR, nc: int, phase: str = "run", indent: int = 12, block_limit: int = 48
    ) -> None:
        self.model = model
        self.phase = phase
        self.ind = indent
        self.nc = nc
        self.block_limit = block_limit
        self.ints: list[np.ndarray] = []
        self.n_int = 0
        self.floats: list[np.ndarray] = []
        self.n_float = 0
        self.n_scratch = 0
        self.tmp = 0
        self.lines: list[str] = []
        self.block: list[str] = []  # statements of the pending fused sample loop
        self.local: dict[int, str] = {}  # row -> local holding it in the pending block
        self.n_eq = 0

    # ------------------------------------------------------------ helpers
    def _int_table(self, arr: np.ndarray) -> int:
        base = self.n_int
        arr = np.asarray(arr, dtype=np.int64).ravel()
        self.ints.append(arr)
        self.n_int += arr.size
        return base

    def _float_table(self, arr: np.ndarray) -> int:
        base = self.n_float
        arr = np.asarray(arr, dtype=float).ravel()
        self.floats.append(arr)
        self.n_float += arr.size
        return base

    def _new(self) -> str:
        self.tmp += 1
        return f"v{self.tmp}"

    def _scratch(self) -> int:
        self.n_scratch += 1
        return (self.n_scratch - 1) * self.nc

    def _emit(self, indent: int, lines: list[str]) -> None:
        self.lines.extend(" " * (self.ind + indent) + x for x in lines)

    def flush(self) -> None:
        """Close the pending fused sample loop."""
        if self.block:
            self._emit(0, ["for s in range(NC):"])
            self._emit(4, self.block)
        self.block, self.local, self.n_eq = [], {}, 0

    # ------------------------------------------------------------ equations
    def assign(self, var: str, target: np.ndarray, expr) -> None:
        """Append the code of ``var[target] = expr``."""
        rows = self.model.variables[var].offset + np.asarray(target, dtype=np.int64)
        if len(rows) == 1 or _k_invariant(expr, self.phase):
            self._scalar_assign(rows, expr)
        else:
            self._loop_assign(rows, expr)

    def _scalar_assign(self, rows: np.ndarray, expr) -> None:
        has_lookup = any(isinstance(x, LookupCall) for x in _walk_phase(expr, self.phase))
        if has_lookup or self.n_eq >= self.block_limit:
            self.flush()  # lookups (searching loops) get a sample loop of their own
        pre: list[str] = []
        code = self.expr(expr, pre, None)
        val = self._new()
        self.block.extend(pre)
        self.block.append(f"{val} = {code}")
        for r in np.unique(rows):
            self.block.append(f"X[{int(r) * self.nc} + s] = {val}")
            self.local[int(r)] = val
        self.n_eq += 1
        if has_lookup:
            self.flush()

    def _loop_assign(self, rows: np.ndarray, expr) -> None:
        self.flush()
        hoist: list[str] = []
        pre_k: list[str] = []
        pre_s: list[str] = []
        code = self.expr(expr, pre_s, (pre_k, hoist))
        if hoist:
            self._emit(0, ["for s in range(NC):"])
            self._emit(4, hoist)
        dst = self._row_offset(rows, pre_k)
        self._emit(0, [f"for k in range({len(rows)}):"])
        self._emit(4, pre_k)
        self._emit(4, ["for s in range(NC):"])
        self._emit(8, pre_s)
        self._emit(8, [f"X[{dst} + s] = {code}"])

    def _row_offset(self, rows: np.ndarray, pre_k: list[str] | None) -> str:
        """Expression of ``rows[k] * NC`` (a literal when constant)."""
        rows = np.asarray(rows, dtype=np.int64)
        if pre_k is None or np.all(rows == rows[0]):
            return str(int(rows[0]) * self.nc)
        name = self._new()
        if np.array_equal(rows, rows[0] + np.arange(rows.size)):
            pre_k.append(f"{name} = ({int(rows[0])} + k) * NC")
        else:
            pre_k.append(f"{name} = I[{self._int_table(rows)} + k] * NC")
        return name

    # ------------------------------------------------------------ expressions
    def expr(self, node, pre: list[str], loop) -> str:
        """Code of ``node`` inside a sample loop.

        ``pre`` receives statements to run before the value is used (inside
        the sample loop); ``loop`` is ``None`` for a scalar equation, else
        ``(pre_k, hoist)``: statements per point ``k`` (outside the sample
        loop) and sample loops run once before the point loop.
        """
        if (
            loop is not None
            and not isinstance(node, (Num, Ref, TimeNode))
            and _k_invariant(node, self.phase)
        ):
            # same value at every point: compute once into a scratch row
            row = self._scratch()
            hpre: list[str] = []
            code = self.expr(node, hpre, None)
            loop[1].extend(hpre)
            loop[1].append(f"W[{row} + s] = {code}")
            return f"W[{row} + s]"
        if isinstance(node, Num):
            if np.ndim(node.value) == 0:
                return _num(node.value)
            if loop is None or np.all(node.value == node.value[0]):
                return _num(node.value[0])
            name = self._new()
            loop[0].append(f"{name} = F[{self._float_table(node.value)} + k]")
            return name
        if isinstance(node, TimeNode):
            return "t"
        if isinstance(node, Ref):
            rows = self.model.variables[node.var].offset + np.asarray(node.idx)
            if loop is None or np.all(rows == rows[0]):
                r = int(rows[0])
                if loop is None and r in self.local:
                    return self.local[r]
                return f"X[{r * self.nc} + s]"
            return f"X[{self._row_offset(rows, loop[0])} + s]"
        if isinstance(node, Reduce):
            return self._reduce(node, pre, loop)
        if isinstance(node, Phase):
            return self.expr(node.run if self.phase == "run" else node.init, pre, loop)
        if isinstance(node, BinOp):
            a = self.expr(node.left, pre, loop)
            b = self.expr(node.right, pre, loop)
            if node.op in _ARITH:
                return f"({a} {_ARITH[node.op]} {b})"
            if node.op == "^":
                return f"({a} ** {b})"
            if node.op in _CMP:
                return f"(1.0 if {a} {_CMP[node.op]} {b} else 0.0)"
            if node.op == "and":
                return f"(1.0 if ({a} != 0.0 and {b} != 0.0) else 0.0)"
            if node.op == "or":
                return f"(1.0 if ({a} != 0.0 or {b} != 0.0) else 0.0)"
            raise ValueError(f"operator {node.op!r}")
        if isinstance(node, UnOp):
            a = self.expr(node.arg, pre, loop)
            return f"(-{a})" if node.op == "neg" else f"(1.0 if {a} == 0.0 else 0.0)"
        if isinstance(node, IfElse):
            c, a, b = (self.expr(x, pre, loop) for x in (node.cond, node.a, node.b))
            return f"({a} if {c} != 0.0 else {b})"
        if isinstance(node, Func):
            args = [self.expr(x, pre, loop) for x in node.args]
            return _FUNCS[node.name].format(*args)
        if isinstance(node, LookupCall):
            x = self.expr(node.arg, pre, loop)
            tables = np.asarray(node.table, dtype=np.int64)
            if loop is None or np.all(tables == tables[0]):
                tab = int(tables[0])
                st = int(sum(len(tb[0]) for tb in self.model.tables[:tab]))
                n = len(self.model.tables[tab][0])
                return f"_lk(LX, LY, {st}, {n}, {x}, {_MODES[node.mode]})"
            tid = self._new()
            loop[0].append(f"{tid} = I[{self._int_table(tables)} + k]")
            return f"_lk(LX, LY, LS[{tid}], LN[{tid}], {x}, {_MODES[node.mode]})"
        if isinstance(node, Select):
            w = self.expr(node.which, pre, loop)
            opts = [self.expr(x, pre, loop) for x in node.options]
            out = opts[-1]
            for k in range(len(opts) - 2, -1, -1):
                out = f"({opts[k]} if {w} == {float(k + 1)!r} else {out})"
            return out
        raise TypeError(f"unknown IR node {type(node).__name__}")

    def _reduce(self, node: Reduce, pre: list[str], loop) -> str:
        idx = self.model.variables[node.var].offset + np.asarray(node.idx, dtype=np.int64)
        init = {"sum": "0.0", "prod": "1.0", "max": "(-_INF)", "min": "_INF"}[node.op]

        def update(acc: str, el: str) -> str:
            return {
                "sum": f"{acc} + {el}",
                "prod": f"{acc} * {el}",
                "max": f"_max({acc}, {el})",
                "min": f"_min({acc}, {el})",
            }[node.op]

        if loop is None or np.all(idx == idx[0]):
            # one set of rows: unrolled, straight-line (vectorisable)
            acc = self._new()
            pre.append(f"{acc} = {init}")
            for r in idx[0]:
                el = self.local.get(int(r)) if loop is None else None
                pre.append(f"{acc} = {update(acc, el or f'X[{int(r) * self.nc} + s]')}")
            return acc
        # per point: accumulate into a scratch row, one sample loop per term
        row = self._scratch()
        base = self._int_table(idx)
        nr = idx.shape[1]
        rj = self._new()
        loop[0].extend(
            [
                "for s in range(NC):",
                f"    W[{row} + s] = {init}",
                f"for j in range({nr}):",
                f"    {rj} = I[{base} + k * {nr} + j] * NC",
                "    for s in range(NC):",
                f"        W[{row} + s] = {update(f'W[{row} + s]', f'X[{rj} + s]')}",
            ]
        )
        return f"W[{row} + s]"


def _walk_phase(node, phase: str):
    """Nodes of ``node`` as evaluated in ``phase`` (``run`` or ``init``)."""
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, Phase):
            stack.append(x.run if phase == "run" else x.init)
            continue
        yield x
        stack.extend(x.children())


def _k_invariant(node, phase: str = "run") -> bool:
    """True when ``node`` has the same value at every loop point (in ``phase``)."""
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, Num) and np.ndim(x.value) > 0:
            return False
        if isinstance(x, Ref) and np.any(x.idx != x.idx[0]):
            return False
        if isinstance(x, Reduce) and np.any(x.idx != x.idx[0]):
            return False
        if isinstance(x, LookupCall) and np.any(x.table != x.table[0]):
            return False
        if isinstance(x, Phase):
            stack.append(x.run if phase == "run" else x.init)
            continue
        stack.extend(x.children())
    return True


class NumbaRuntime:
    """JIT-compiled runtime with the same interface as :class:`NumpyRuntime`.

    Parameters
    ----------
    model : ModelIR
        The compiled model.
    """

    #: samples integrated together (the vector width of every generated loop)
    group = 16

    def __init__(self, model: ModelIR, group: int | None = None) -> None:
        self.model = model
        self.group = int(group or self.group)
        self._numpy = NumpyRuntime(model)
        gen = _Gen(model, self.group, phase="init", indent=8)
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
        gen.lines, gen.phase, gen.ind = [], "run", 12  # same tables, scratch and names
        for name in model.run_order:
            for a in model.assigns.get(name, []):
                gen.assign(name, a.target, a.expr)
        gen.flush()
        body = "\n".join(gen.lines) if gen.lines else "            pass"
        self.source = (
            _TEMPLATE.replace("__NC__", str(self.group))
            .replace("__INIT__", init_body)
            .replace("__BODY__", body)
        )
        self.n_scratch = max(gen.n_scratch, 1)
        self.I = np.concatenate(gen.ints) if gen.ints else np.zeros(1, dtype=np.int64)
        self.F = np.concatenate(gen.floats) if gen.floats else np.zeros(1)
        tabs = model.tables
        self.LX = np.concatenate([t[0] for t in tabs]) if tabs else np.zeros(1)
        self.LY = np.concatenate([t[1] for t in tabs]) if tabs else np.zeros(1)
        self.LN = np.array([len(t[0]) for t in tabs] or [1], dtype=np.int64)
        self.LS = np.concatenate([[0], np.cumsum(self.LN)[:-1]]).astype(np.int64)
        rt = self._numpy
        self._rows = tuple(
            np.ascontiguousarray(r, dtype=np.int64)
            for r in (rt.stock_rows, rt.flow_rows, rt.disc_rows, rt.next_rows)
        )
        self._fn = None

    def _kernel(self):
        if self._fn is None:
            digest = hashlib.sha256(self.source.encode()).hexdigest()[:24]
            modname = f"ningbo_sd_kernel_{digest}"
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
        if fn.signatures:
            fn(*args)
            return
        limit = sys.getrecursionlimit()  # the first call compiles; numba recurses
        sys.setrecursionlimit(max(limit, 20000))  # deeply over long expressions
        try:
            fn(*args)
        finally:
            sys.setrecursionlimit(limit)

    def prepare(self) -> None:
        """Make sure the kernels are compiled or loaded (call before using threads)."""
        mod = self._kernel()
        if not (mod.run_loop.signatures and mod.init_loop.signatures):
            self.warmup()

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

        Samples are padded to a multiple of :attr:`group` (copies of the last
        sample; every lane is computed by the same operations, so a sample's
        result does not depend on its neighbours or position).
        """
        mod = self._kernel()
        n_rows, n = X.shape
        nc = self.group
        m = -(-n // nc)
        if m * nc != n:
            X = np.concatenate([X, np.repeat(X[:, -1:], m * nc - n, axis=1)], axis=1)
        XG = np.ascontiguousarray(X.reshape(n_rows, m, nc).transpose(1, 0, 2)).reshape(m, -1)
        W = np.empty(self.n_scratch * nc)
        tables = (self.I, self.F, self.LX, self.LY, self.LS, self.LN)
        if init:
            self._call(mod.init_loop, XG, W, *tables, float(times[0]))
        n_saved = int(np.count_nonzero(save))
        R = np.empty((m, n_saved, len(keep_rows), nc))
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
            *self._rows,
        )
        return R.transpose(1, 2, 0, 3).reshape(n_saved, len(keep_rows), m * nc)[:, :, :n]
