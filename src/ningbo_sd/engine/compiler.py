"""Compile PySD's AbstractModel of a Vensim ``.mdl`` file into the plain IR.

The semantics reproduced here are those of PySD's Python builder
(``pysd/builders/python``) and backend (``pysd/py_backend``): Euler
integration, stateful objects (SMOOTH, DELAY, TREND, INITIAL, ...) expanded into
ordinary stocks, and lookups interpolated/clamped as PySD does.  Nothing read
from the model file is ever evaluated as code.  Parsing a file and caching what is
built from it is :mod:`ningbo_sd.engine.loading`'s.
"""

from __future__ import annotations

import itertools

import numpy as np

from . import ir
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
    TimeNode,
    UnOp,
    UnsupportedConstructError,
    VarInfo,
)
from .statefuls import StatefulLowering
from .subscripts import Frame, Subscripts, key
from .toposort import order_model

__all__ = ["build_ir"]

_NUMBER = (int, float, np.integer, np.floating, bool, np.bool_)
_SIMPLE_FUNCS = {
    "abs",
    "exp",
    "ln",
    "sqrt",
    "integer",
    "sin",
    "cos",
    "tan",
    "arcsin",
    "arccos",
    "arctan",
    "sinh",
    "cosh",
    "tanh",
    "min",
    "max",
    "log",
    "modulo",
    "quantum",
    "zidz",
    "xidz",
}
_REDUCERS = {"sum": "sum", "prod": "prod", "vmax": "max", "vmin": "min"}
_CONTROL = {
    "initial_time": "initial_time",
    "final_time": "final_time",
    "time_step": "time_step",
    "saveper": "saveper",
}


def build_ir(abstract_model) -> ModelIR:
    """Build the :class:`~ningbo_sd.engine.ir.ModelIR` of a parsed model.

    Parameters
    ----------
    abstract_model : AbstractModel
        As returned by :func:`load_abstract_model`.

    Returns
    -------
    ModelIR

    Raises
    ------
    UnsupportedConstructError
        If the model uses a construct the engine does not implement.
    """
    return _Builder(abstract_model).build()


def _cls(obj) -> str:
    return type(obj).__name__


class _Builder(StatefulLowering):
    def __init__(self, am) -> None:
        if len(am.sections) != 1 or am.sections[0].type != "main":
            names = [s.name for s in am.sections if s.type != "main"]
            raise UnsupportedConstructError(f"MACRO definitions are not supported: {names}")
        self.section = am.sections[0]
        self.subs = Subscripts(self.section.subscripts)
        self.ir = ModelIR()
        self.vars = self.ir.variables
        self.by_key: dict[str, str] = {}
        self.lookup_ids: dict[str, np.ndarray] = {}
        self.counter = itertools.count(1)
        self.cur = ""  # variable being lowered (for messages)

    # ------------------------------------------------------------------
    def build(self) -> ModelIR:
        from pysd.builders.python.namespace import NamespaceManager

        ns = NamespaceManager()
        elements = list(self.section.elements)
        for el in elements:
            ns.add_to_namespace(el.name)
            self._declare(el, ns.namespace[el.name])
        for kk in _CONTROL:
            if kk not in self.by_key:
                raise UnsupportedConstructError(f"missing control variable '{kk}'")
            self.ir.control[_CONTROL[kk]] = self.by_key[kk]
        # lookups first: calls resolve their tables while lowering the others
        for el in sorted(elements, key=lambda e: self.vars[e.name].kind != "lookup"):
            self.cur = el.name
            self._lower_element(el)
        order_model(self.ir)
        return self.ir

    # ------------------------------------------------------------------ declare
    def _declare(self, el, py_name: str) -> None:
        comps = list(el.components)
        cls = {_cls(c) for c in comps}
        if "AbstractData" in cls:
            raise UnsupportedConstructError(f"variable '{el.name}': DATA variables")
        asts = [c.ast for c in comps]
        for a in asts:
            if _cls(a) in ("GetConstantsStructure", "GetLookupsStructure", "GetDataStructure"):
                raise UnsupportedConstructError(
                    f"variable '{el.name}': {_cls(a)[:-9].upper()} (external data)"
                )
        if _cls(el) == "AbstractControlElement":
            kind = "control"
        elif "AbstractLookup" in cls:
            kind = "lookup"
        elif any(_cls(a) == "IntegStructure" for a in asts):
            if not all(_cls(a) == "IntegStructure" for a in asts):
                raise UnsupportedConstructError(
                    f"variable '{el.name}': mixed INTEG / non-INTEG definitions"
                )
            kind = "stock"
        elif all(isinstance(a, (*_NUMBER, np.ndarray)) for a in asts):
            kind = "constant"
        else:
            kind = "aux"
        nsub = {len(c.subscripts[0]) for c in comps}
        if len(nsub) != 1:
            raise UnsupportedConstructError(
                f"variable '{el.name}': inconsistent number of subscripts"
            )
        dims, coords = [], []
        for pos in range(nsub.pop()):
            union: list[str] = []
            hints = []
            for c in comps:
                s = c.subscripts[0][pos]
                if self.subs.is_range(s):
                    hints.append(key(s))
                for e in self.subs.members(s):
                    if e not in union:
                        union.append(e)
            rk = self.subs.choose_range(union, hints)
            dims.append(self.subs.original[rk])
            coords.append(
                tuple(self.subs.original[e] for e in self.subs.elements[rk] if e in union)
            )
        limits = tuple(
            None if (x is None or (isinstance(x, float) and np.isnan(x))) else float(x)
            for x in (el.limits or (None, None))
        )
        v = VarInfo(
            name=el.name,
            py_name=py_name,
            kind=kind,
            dims=tuple(dims),
            coords=tuple(coords),
            units=el.units or "",
            limits=limits,
            documentation=(el.documentation or "").strip(),
        )
        v.size = int(np.prod(v.shape)) if v.dims else 1
        if key(el.name) in self.by_key:
            raise UnsupportedConstructError(f"variable '{el.name}' defined twice")
        self.by_key[key(el.name)] = el.name
        self.vars[el.name] = v

    def _new_var(self, tag: str, size: int, kind: str = "internal") -> str:
        name = f"~{tag}~{self.cur}~{next(self.counter)}"
        self.vars[name] = VarInfo(name=name, py_name=name, kind=kind, size=size)
        return name

    def _ident(self, name: str, n: int) -> Ref:
        return Ref(name, np.arange(n, dtype=np.int64))

    def _assign(self, var: str, target: np.ndarray, expr: ir.Node) -> None:
        self.ir.assigns.setdefault(var, []).append(
            Assign(
                var,
                np.asarray(target, dtype=np.int64),
                expr,
                frozenset(ir.node_deps(expr, "run")),
                frozenset(ir.node_deps(expr, "init")),
            )
        )

    # ------------------------------------------------------------------ elements
    def _lower_element(self, el) -> None:
        v = self.vars[el.name]
        for comp in el.components:
            frame = self.subs.lhs_frame(comp.subscripts[0], comp.subscripts[1])
            target = self._target(v, frame)
            ast = comp.ast
            if v.kind == "lookup":
                self._lookup_component(v, ast, target)
            elif v.kind == "stock":
                flow = self._internal_for(v, "flow", "internal")
                init = self._internal_for(v, "init", "initial")
                self._assign(flow, target, self.lower(ast.flow, frame))
                self._assign(init, target, self.lower(ast.initial, frame))
                if ast.non_negative:
                    raise UnsupportedConstructError(f"variable '{el.name}': non-negative INTEG")
            else:
                self._assign(el.name, target, self.lower(ast, frame))
        if v.kind == "constant":
            v.default = np.full(v.size, np.nan)
            for a in self.ir.assigns[el.name]:
                val = a.expr.value
                v.default[a.target] = val
        if v.kind == "lookup":
            self.vars[el.name].size = 0

    def _internal_for(self, v: VarInfo, tag: str, kind: str) -> str:
        name = f"~{tag}~{v.name}"
        if name not in self.vars:
            self.vars[name] = VarInfo(name=name, py_name=name, kind=kind, size=v.size)
            if tag == "flow":
                self.ir.stocks.append((v.name, name))
            else:
                self.ir.stock_init[v.name] = name
        return name

    def _target(self, v: VarInfo, frame: Frame) -> np.ndarray:
        if not v.dims:
            return np.zeros(1, dtype=np.int64)
        lookup = [{key(e): i for i, e in enumerate(c)} for c in v.coords]
        idx = [[lookup[i][p[i]] for p in frame.points] for i in range(len(v.dims))]
        return np.ravel_multi_index(tuple(np.array(x, dtype=np.int64) for x in idx), v.shape)

    # ------------------------------------------------------------------ lookups
    def _table(self, ls, where: str) -> int:
        if _cls(ls) != "LookupsStructure":
            raise UnsupportedConstructError(f"variable '{where}': {_cls(ls)} lookup definition")
        x = np.asarray(ls.x, dtype=float)
        y = np.asarray(ls.y, dtype=float)
        if x.ndim != 1 or x.shape != y.shape or len(np.unique(x)) != len(x):
            raise UnsupportedConstructError(f"variable '{where}': malformed lookup table")
        order = np.argsort(x, kind="stable")
        if ls.type not in ("interpolate", "hold_backward", "extrapolate"):
            raise UnsupportedConstructError(f"variable '{where}': lookup type '{ls.type}'")
        self.ir.tables.append((x[order], y[order], ls.type))
        return len(self.ir.tables) - 1

    def _lookup_component(self, v: VarInfo, ast, target: np.ndarray) -> None:
        ids = self.lookup_ids.setdefault(v.name, np.full(v.size, -1, dtype=np.int64))
        ids[target] = self._table(ast, v.name)

    # ------------------------------------------------------------------ expressions
    def lower(self, ast, frame: Frame) -> ir.Node:
        """Lower one PySD abstract-syntax node evaluated over ``frame``."""
        if isinstance(ast, _NUMBER):
            return Num(float(ast))
        if isinstance(ast, np.ndarray):
            flat = np.asarray(ast, dtype=float).ravel()
            if flat.size == 1:
                return Num(float(flat[0]))
            if flat.size != frame.n:
                raise UnsupportedConstructError(
                    f"variable '{self.cur}': array constant does not match its subscripts"
                )
            return Num(flat)
        name = _cls(ast)
        handler = getattr(self, f"_l_{name.lower()}", None)
        if handler is None:
            label = name.replace("Structure", "").upper()
            raise UnsupportedConstructError(f"variable '{self.cur}': {label} is not supported")
        return handler(ast, frame)

    def _l_arithmeticstructure(self, ast, frame):
        args = [self.lower(a, frame) for a in ast.arguments]
        ops = list(ast.operators)
        if ops == ["negative"]:
            return UnOp("neg", args[0])
        if len(ops) != len(args) - 1 or "negative" in ops:
            raise UnsupportedConstructError(f"variable '{self.cur}': unexpected arithmetic form")
        if all(o == "^" for o in ops):  # right-associative, as Python's **
            out = args[-1]
            for raw, a in zip(reversed(ast.arguments[:-1]), reversed(args[:-1]), strict=True):
                if isinstance(raw, _NUMBER) and raw < 0:
                    # PySD writes "-2**x", which Python reads as -(2**x)
                    out = UnOp("neg", BinOp("^", Num(-float(raw)), out))
                else:
                    out = BinOp("^", a, out)
            return out
        out = args[0]
        for o, a in zip(ops, args[1:], strict=True):
            out = BinOp(o, out, a)
        return out

    def _l_logicstructure(self, ast, frame):
        args = [self.lower(a, frame) for a in ast.arguments]
        ops = [o.lower() for o in ast.operators]
        if ops == [":not:"]:
            return UnOp("not", args[0])
        if len(ops) > 1 and any(o not in (":and:", ":or:") for o in ops):
            raise UnsupportedConstructError(
                f"variable '{self.cur}': chained comparison {ast.operators}"
            )
        out = args[-1]
        for o, a in zip(reversed(ops), reversed(args[:-1]), strict=True):
            out = BinOp({":and:": "and", ":or:": "or"}.get(o, o), a, out)
        return out

    def _l_referencestructure(self, ast, frame):
        rk = key(ast.reference)
        subs = list(getattr(ast.subscripts, "subscripts", None) or [])
        if rk == "time":
            return TimeNode()
        if rk in self.by_key:
            target = self.vars[self.by_key[rk]]
            if target.kind == "lookup":
                raise UnsupportedConstructError(
                    f"variable '{self.cur}': lookup '{target.name}' used as a value"
                )
            return Ref(target.name, self.subs.gather(target, subs, frame, self.cur))
        if rk in self.subs.elements:
            return Num(self.subs.range_position_values(rk, frame, self.cur))
        raise UnsupportedConstructError(
            f"variable '{self.cur}': unknown reference '{ast.reference}'"
        )

    def _dt(self) -> Ref:
        return Ref(self.ir.control["time_step"], np.zeros(1, dtype=np.int64))

    def _bc(self, node_ref: Ref, n: int) -> Ref:
        return Ref(node_ref.var, np.zeros(n, dtype=np.int64))

    def _l_callstructure(self, ast, frame):
        fk = key(ast.function.reference)
        fname = fk
        args = list(ast.arguments)
        if fk in self.by_key and self.vars[self.by_key[fk]].kind == "lookup":
            lv = self.vars[self.by_key[fk]]
            subs = list(getattr(ast.function.subscripts, "subscripts", None) or [])
            if len(args) != 1:
                raise UnsupportedConstructError(
                    f"variable '{self.cur}': lookup '{lv.name}' called with {len(args)} args"
                )
            rows = self.subs.gather(lv, subs, frame, self.cur)
            ids = self.lookup_ids[lv.name][rows]
            if np.any(ids < 0):
                raise UnsupportedConstructError(
                    f"variable '{self.cur}': undefined element of lookup '{lv.name}'"
                )
            modes = {self.ir.tables[i][2] for i in ids}
            if len(modes) != 1:
                raise UnsupportedConstructError(
                    f"variable '{self.cur}': lookup '{lv.name}' mixes interpolation types"
                )
            return LookupCall(ids, self.lower(args[0], frame), modes.pop())
        n = frame.n
        label = fname.upper().replace("_", " ")
        if fname == "if_then_else":
            c, a, b = (self.lower(x, frame) for x in args)
            return IfElse(c, a, b)
        if fname in _REDUCERS:
            return self._reduce(_REDUCERS[fname], args, frame)
        if fname == "active_initial":
            return Phase(self.lower(args[0], frame), self.lower(args[1], frame))
        if fname == "power":
            return BinOp("^", self.lower(args[0], frame), self.lower(args[1], frame))
        if fname == "pi" and not args:
            return Num(float(np.pi))
        if fname == "elmcount" and len(args) == 1 and _cls(args[0]) == "ReferenceStructure":
            return Num(float(len(self.subs.members(args[0].reference))))
        lowered = [self.lower(x, frame) for x in args]
        nargs = len(lowered)
        t, dt = TimeNode(), self._bc(self._dt(), n)
        if fname in _SIMPLE_FUNCS and ir.FUNC_ARITY[fname] == nargs:
            return Func(fname, tuple(lowered))
        if fname == "step" and nargs == 2:
            return Func("step", (*lowered, t, dt))
        if fname == "ramp" and nargs in (2, 3):
            finish = lowered[2] if nargs == 3 else Num(np.inf)
            return Func("ramp", (lowered[0], lowered[1], finish, t))
        if fname == "pulse" and nargs == 2:
            return Func("pulse", (*lowered, t, dt))
        if fname == "pulse_train" and nargs == 4:
            return Func("pulse_train", (*lowered, t, dt))
        raise UnsupportedConstructError(
            f"variable '{self.cur}': function {label} ({nargs} args) is not supported"
        )

    def _reduce(self, op: str, args, frame: Frame) -> ir.Node:
        if len(args) != 1:
            raise UnsupportedConstructError(
                f"variable '{self.cur}': vector function with {len(args)} arguments"
            )
        reduced: list[str] = []
        stack = [args[0]]
        while stack:
            a = stack.pop()
            if _cls(a) == "ReferenceStructure":
                for s in getattr(a.subscripts, "subscripts", None) or []:
                    if str(s).endswith("!") and str(s)[:-1] not in reduced:
                        reduced.append(str(s)[:-1])
            elif hasattr(a, "__dataclass_fields__"):
                for f in a.__dataclass_fields__:
                    val = getattr(a, f)
                    stack.extend(val if isinstance(val, (list, tuple)) else [val])
        if not reduced:
            raise UnsupportedConstructError(
                f"variable '{self.cur}': vector function without a '!' subscript"
            )
        inner = self.subs.inner_frame(frame, reduced)
        nr = inner.n // max(frame.n, 1)
        arg = self.lower(args[0], inner)
        if isinstance(arg, Ref):
            return Reduce(op, arg.var, arg.idx.reshape(frame.n, nr))
        narrow = ir.first_block(arg, frame.n, nr) if frame.n > 1 else None
        if narrow is not None:
            # the argument does not depend on the outer point (e.g. a share's
            # denominator SUM(w[c!] * s[c!]) inside an equation over c): build
            # it once over the reduced range, not once per outer point
            tmp = self._new_var("vec", nr)
            self._assign(tmp, np.arange(nr), narrow)
            return Reduce(op, tmp, np.tile(np.arange(nr, dtype=np.int64), (frame.n, 1)))
        tmp = self._new_var("vec", inner.n)
        self._assign(tmp, np.arange(inner.n), arg)
        return Reduce(op, tmp, np.arange(inner.n, dtype=np.int64).reshape(frame.n, nr))

    def _l_inlinelookupsstructure(self, ast, frame):
        tid = self._table(ast.lookups, self.cur)
        return LookupCall(
            np.full(frame.n, tid, dtype=np.int64),
            self.lower(ast.argument, frame),
            self.ir.tables[tid][2],
        )
