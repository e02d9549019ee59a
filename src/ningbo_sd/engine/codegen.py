"""Code generation of the numba kernel's equations from the IR.

:class:`KernelGenerator` emits the body of ``init_loop`` and ``run_loop``
(:mod:`ningbo_sd.engine.runtime_numba` holds the template around it).  Security: it emits
only identifiers it creates and numbers (integers it computed, floats parsed
from the model, written with ``repr``); no name, string or expression text from
the model file reaches the source.
"""

from __future__ import annotations

import numpy as np

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

__all__ = ["KernelGenerator", "update_source"]

_FUNCS = {
    "abs": "abs({0})",
    "exp": "_exp({0})",
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


class KernelGenerator:
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
        if self.phase == "run" and _isolated(expr):
            self._pow_assign(rows, expr)
        elif len(rows) == 1 or _k_invariant(expr, self.phase):
            self._scalar_assign(rows, expr)
        else:
            self._loop_assign(rows, expr)

    def _scalar_assign(self, rows: np.ndarray, expr) -> None:
        scalar_only = any(_scalar_only(x) for x in _walk_phase(expr, self.phase))
        if scalar_only or self.n_eq >= self.block_limit:
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
        if scalar_only:
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

    def _pow_assign(self, rows: np.ndarray, expr) -> None:
        """``rows = a ^ b`` or ``rows = EXP(a)`` as vectorised ``_powf``/``_expf``, then the fix-up.

        The fix-up recomputes with ``**`` / ``math.exp`` the lanes where the fast
        version gave NaN (outside its ordinary case).
        :func:`ningbo_sd.engine.toposort.isolate_powers` made the operands plain
        references or numbers, so their code has no statements of its own.
        """
        self.flush()
        pre_k: list[str] = []
        uniform = len(rows) == 1 or _k_invariant(expr, self.phase)
        loop = None if uniform else (pre_k, [])
        if isinstance(expr, BinOp):
            a, b = (self.expr(x, [], loop) for x in (expr.left, expr.right))
            fast, exact = f"_powf({a}, {b})", f"{a} ** {b}"
        else:
            a = self.expr(expr.args[0], [], loop)
            fast, exact = f"_expf({a})", f"math.exp({a})"
        dsts = [str(int(r) * self.nc) for r in np.unique(rows)] if uniform else None
        if dsts is None:
            dsts = [self._row_offset(rows, pre_k)]
            self._emit(0, [f"for k in range({len(rows)}):"])
            self._emit(4, pre_k)
        pad = 0 if uniform else 4
        for dst in dsts:
            self._emit(pad, ["for s in range(NC):", f"    X[{dst} + s] = {fast}"])
            # one vectorised test of the lanes; the scalar fix-up only when one is NaN
            flag = self._new()
            self._emit(
                pad,
                [
                    f"{flag} = False",
                    "for s in range(NC):",
                    f"    {flag} = {flag} | (X[{dst} + s] != X[{dst} + s])",
                    f"if {flag}:",
                    "    for s in range(NC):",
                    f"        if X[{dst} + s] != X[{dst} + s]:",
                    f"            X[{dst} + s] = {exact}",
                ],
            )

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
                return f"_pow({a}, {b})"
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


def _isolated(expr) -> bool:
    """A power or an exponential that has an equation of its own (see ``isolate_powers``)."""
    if isinstance(expr, BinOp):
        return expr.op == "^"
    return isinstance(expr, Func) and expr.name == "exp"


_LIBM = frozenset(
    ("exp", "ln", "log", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh")
)


def _scalar_only(node) -> bool:
    """True for nodes LLVM cannot vectorise (lookup searches, libm calls, ``^``).

    An equation holding one gets a sample loop of its own, so that one call
    does not keep the arithmetic of the equations fused with it scalar.
    """
    if isinstance(node, LookupCall):
        return True
    if isinstance(node, BinOp):
        return node.op == "^"
    return isinstance(node, Func) and node.name in _LIBM


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


def _runs(dst: np.ndarray, src: np.ndarray) -> list[tuple[int, int, int]]:
    """``(first dst row, first src row, length)`` of runs where both rows count up by one."""
    runs: list[tuple[int, int, int]] = []
    for d, r in zip(dst.tolist(), src.tolist(), strict=True):
        if runs and d == runs[-1][0] + runs[-1][2] and r == runs[-1][1] + runs[-1][2]:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((d, r, 1))
    return runs


def update_source(
    stock_rows: np.ndarray,
    flow_rows: np.ndarray,
    disc_rows: np.ndarray,
    next_rows: np.ndarray,
    nc: int,
    indent: int,
) -> str:
    """The end of a time step: Euler updates of the stocks, then the discrete states.

    Same operations as :meth:`ningbo_sd.engine.runtime_numpy.NumpyRuntime.run`
    (``X[stock] += X[flow] * dt``; ``X[disc] = X[next]``), written with the
    rows as literals, one loop per run of consecutive rows, so LLVM sees
    constant, non-overlapping offsets and vectorises the sample loops (a
    loop over row tables was scalar and about 10% of the run time).

    Raises
    ------
    ValueError
        If a row written is also read by the update (numpy gathers all rows
        before writing, a sequence of loops would not); the compiler never
        produces such a model.
    """
    pad = " " * indent
    lines: list[str] = []
    for dst, src, integrate in ((stock_rows, flow_rows, True), (disc_rows, next_rows, False)):
        dst, src = np.asarray(dst, dtype=np.int64), np.asarray(src, dtype=np.int64)
        if np.intersect1d(dst, src).size:
            raise ValueError("a state row is read by the update of another state row")
        for d, r, n in _runs(dst, src):
            if n == 1:
                a, b, head = f"{d * nc}", f"{r * nc}", []
            else:
                a, b = "u0", "u1"
                head = [f"for k in range({n}):", f"    u0 = ({d} + k) * NC"]
                head.append(f"    u1 = ({r} + k) * NC")
            value = f"X[{a} + s] + X[{b} + s] * dt" if integrate else f"X[{b} + s]"
            inner = " " * (4 if head else 0)
            lines += [*head, f"{inner}for s in range(NC):", f"{inner}    X[{a} + s] = {value}"]
    return "\n".join(pad + line for line in lines) if lines else pad + "pass"
