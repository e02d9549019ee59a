"""Lowering of PySD's stateful structures (INITIAL, SMOOTH, DELAY, TREND, ...) to IR stocks.

A mixin of :class:`ningbo_sd.engine.compiler._Builder`: each ``_l_<structure>`` method
turns one stateful call into internal stocks (or discrete states) with their
flows and initial values, following PySD's definitions (``pysd.py_backend
.statefuls``), and returns the expression that reads its output.
"""

from __future__ import annotations

import numpy as np

from . import ir
from .ir import BinOp, Func, IfElse, Num, Reduce, Ref, Select, UnsupportedConstructError
from .subscripts import key

__all__ = ["StatefulLowering"]

_NUMBER = (int, float, np.integer, np.floating, bool, np.bool_)


def _cls(obj) -> str:
    return type(obj).__name__


class StatefulLowering:
    """Stateful structures as stocks; needs the builder's ``lower``, ``_new_var``, ``_assign``."""

    def _initial_var(self, expr: ir.Node, n: int, tag: str = "initial") -> str:
        name = self._new_var(tag, n, "initial")
        self._assign(name, np.arange(n), expr)
        return name

    def _internal_expr(self, tag: str, expr: ir.Node, n: int) -> Ref:
        """A reference to a new internal variable computing ``expr`` (computed once per step)."""
        name = self._new_var(tag, n)
        self._assign(name, np.arange(n), expr)
        return self._ident(name, n)

    def _l_initialstructure(self, ast, frame):
        return self._ident(self._initial_var(self.lower(ast.initial, frame), frame.n), frame.n)

    def _order(self, order, what: str) -> int:
        if _cls(order) == "ReferenceStructure" and key(order.reference) in self.by_key:
            # a constant order is structural (number of stocks): freeze its default
            cv = self.vars[self.by_key[key(order.reference)]]
            comps = [c for el in self.section.elements if el.name == cv.name for c in el.components]
            if cv.kind == "constant" and not cv.dims and len(comps) == 1:
                order = comps[0].ast
                self.ir.structural.add(cv.name)
        if not isinstance(order, _NUMBER) or int(order) != order or int(order) < 1:
            raise UnsupportedConstructError(
                f"variable '{self.cur}': {what} with a non-literal or non-integer order"
            )
        return int(order)

    def _smooth(self, ast, frame, order):
        n = frame.n
        inp = self.lower(ast.input, frame)
        tau = self.lower(ast.smooth_time, frame)
        init = self._initial_var(self.lower(ast.initial, frame), n)
        prev = inp
        stage = None
        # stock k: d/dt = (target_k - s_k) * order / smooth_time
        names = [self._new_var("smooth", n, "stock") for _ in range(order)]
        for st in names:
            fl = self._new_var("smooth-flow", n)
            me = self._ident(st, n)
            self._assign(
                fl,
                np.arange(n),
                BinOp("/", BinOp("*", BinOp("-", prev, me), Num(float(order))), tau),
            )
            self.ir.stocks.append((st, fl))
            self.ir.stock_init[st] = init
            prev = stage = me
        return stage

    def _l_smoothstructure(self, ast, frame):
        return self._smooth(ast, frame, self._order(ast.order, "SMOOTH"))

    def _l_smoothnstructure(self, ast, frame):
        return self._smooth(ast, frame, self._order(ast.order, "SMOOTH N"))

    def _delay_order(self, order: int, tau: ir.Node, n: int) -> tuple[Ref, str]:
        """Per-sample effective order (PySD lowers it while order*dt > min(delay))."""
        t0 = self._initial_var(tau, n, "delaytime")
        m = self._new_var("delayorder", 1, "initial")
        self._assign(
            m,
            np.zeros(1),
            Func(
                "delay_order",
                (
                    Num(float(order)),
                    Reduce("min", t0, np.arange(n, dtype=np.int64).reshape(1, n)),
                    self._dt(),
                ),
            ),
        )
        return Ref(m, np.zeros(n, dtype=np.int64)), t0

    def _l_delaystructure(self, ast, frame):
        order = self._order(ast.order, "DELAY")
        inp = self.lower(ast.input, frame)
        tau = self.lower(ast.delay_time, frame)
        return self._delay_stages(order, inp, tau, self.lower(ast.initial, frame), frame.n)

    def _fixed_in_a_run(self, node: ir.Node) -> bool:
        """Whether ``node`` reads only constants: no time, nothing that changes during a run."""
        for x in ir.walk(node):
            if isinstance(x, ir.TimeNode | ir.Phase):
                return False
            if isinstance(x, Ref) and self.vars[x.var].kind != "constant":
                return False
        return True

    def _delay_stages(self, order: int, inp: ir.Node, tau: ir.Node, initial: ir.Node, n: int):
        """PySD's DELAY: ``order`` stages, each emptying at ``stage / tau`` times the order."""
        m, _ = self._delay_order(order, tau, n)
        init = self._initial_var(BinOp("*", initial, tau), n)
        names = [self._new_var("delay", n, "stock") for _ in range(order)]
        # each stage's outflow once, read by the next stage's flow and the output
        outs = [
            self._internal_expr("delay-out", BinOp("/", self._ident(s, n), tau), n) for s in names
        ]
        for k, st in enumerate(names):
            inflow = inp if k == 0 else outs[k - 1]
            fl = self._new_var("delay-flow", n)
            self._assign(fl, np.arange(n), BinOp("*", BinOp("-", inflow, outs[k]), m))
            self.ir.stocks.append((st, fl))
            self.ir.stock_init[st] = init
        return outs[0] if order == 1 else Select(m, tuple(outs))

    def _l_delaynstructure(self, ast, frame):
        n = frame.n
        order = self._order(ast.order, "DELAY N")
        inp = self.lower(ast.input, frame)
        tau = self.lower(ast.delay_time, frame)
        if self._fixed_in_a_run(tau):
            # every stage's clock then holds the same delay time all run long, and DELAY N
            # is DELAY's chain of stages, the same operations without the per-stage clocks
            return self._delay_stages(order, inp, tau, self.lower(ast.initial, frame), n)
        m, t0 = self._delay_order(order, tau, n)
        init = self._initial_var(BinOp("*", self.lower(ast.initial, frame), tau), n)
        states = [self._new_var("delayn", n, "stock") for _ in range(order)]
        times = [self._new_var("delayn-time", n, "discrete") for _ in range(order)]
        nexts = []
        for k, tm in enumerate(times):
            nx = self._new_var("delayn-nexttime", n)
            self._assign(nx, np.arange(n), tau if k == 0 else self._ident(times[k - 1], n))
            self.ir.discrete.append((tm, nx))
            self.ir.stock_init[tm] = t0
            nexts.append(self._ident(nx, n))
        outs = [
            self._internal_expr("delayn-out", BinOp("/", self._ident(s, n), nexts[k]), n)
            for k, s in enumerate(states)
        ]
        for k, st in enumerate(states):
            inflow = inp if k == 0 else outs[k - 1]
            fl = self._new_var("delayn-flow", n)
            self._assign(fl, np.arange(n), BinOp("*", BinOp("-", inflow, outs[k]), m))
            self.ir.stocks.append((st, fl))
            self.ir.stock_init[st] = init
        first = self._ident(times[0], n)
        res = [BinOp("/", self._ident(s, n), first) for s in states]
        return res[0] if order == 1 else Select(m, tuple(res))

    def _l_trendstructure(self, ast, frame):
        n = frame.n
        inp = self.lower(ast.input, frame)
        avg = self.lower(ast.average_time, frame)
        init = self._initial_var(
            BinOp(
                "/",
                inp,
                BinOp("+", Num(1.0), BinOp("*", self.lower(ast.initial_trend, frame), avg)),
            ),
            n,
        )
        st = self._new_var("trend", n, "stock")
        fl = self._new_var("trend-flow", n)
        me = self._ident(st, n)
        self._assign(fl, np.arange(n), BinOp("/", BinOp("-", inp, me), avg))
        self.ir.stocks.append((st, fl))
        self.ir.stock_init[st] = init
        return Func("zidz", (BinOp("-", inp, me), BinOp("*", avg, Func("abs", (me,)))))

    def _l_sampleiftruestructure(self, ast, frame):
        n = frame.n
        cond = self.lower(ast.condition, frame)
        inp = self.lower(ast.input, frame)
        init = self._initial_var(self.lower(ast.initial, frame), n)
        st = self._new_var("sample", n, "discrete")
        nx = self._new_var("sample-next", n)
        out = IfElse(cond, inp, self._ident(st, n))
        self._assign(nx, np.arange(n), out)
        self.ir.discrete.append((st, nx))
        self.ir.stock_init[st] = init
        return out

    def _l_integstructure(self, ast, frame):
        raise UnsupportedConstructError(f"variable '{self.cur}': INTEG inside an expression")
