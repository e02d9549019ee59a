"""Intermediate representation (IR) of a compiled system-dynamics model.

The IR is deliberately plain: a list of variables laid out in one flat state
vector (``offset`` .. ``offset + size`` rows of a ``(rows, samples)`` buffer),
and ordered assignments whose right-hand sides are small expression trees.

Every reference in an expression carries a *gather index*: for each point of
the assignment's loop space, the flat row (relative to the referenced
variable's offset) to read.  Subscript matching, subranges, mappings and
element selection are therefore all resolved at compile time and the runtimes
(:mod:`ningbo_sd.engine.runtime_numpy`, :mod:`ningbo_sd.engine.runtime_numba`) only see integer
index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Assign",
    "BinOp",
    "Func",
    "IfElse",
    "LookupCall",
    "ModelIR",
    "Node",
    "Num",
    "Phase",
    "Reduce",
    "Ref",
    "Select",
    "TimeNode",
    "UnOp",
    "UnsupportedConstructError",
    "VarInfo",
    "VariableMeta",
    "first_block",
    "node_deps",
    "walk",
]


class UnsupportedConstructError(Exception):
    """Raised at compile time for a Vensim construct the engine cannot run."""


# --------------------------------------------------------------------------
# expression nodes
# --------------------------------------------------------------------------
class Node:
    """Base class of expression nodes."""

    __slots__ = ()

    def children(self) -> tuple[Node, ...]:
        """Return the direct sub-expressions."""
        return ()


@dataclass(eq=False)
class Num(Node):
    """A number, or one number per loop point (``value`` 1-D array)."""

    value: float | np.ndarray


@dataclass(eq=False)
class TimeNode(Node):
    """The current simulation time."""


@dataclass(eq=False)
class Ref(Node):
    """Read variable ``var`` at rows ``idx`` (one per loop point)."""

    var: str
    idx: np.ndarray


@dataclass(eq=False)
class Reduce(Node):
    """Reduce ``var`` over the second axis of ``idx`` (n_points, n_reduced)."""

    op: str  # sum | prod | max | min
    var: str
    idx: np.ndarray


@dataclass(eq=False)
class BinOp(Node):
    """Binary arithmetic, comparison or logical operation."""

    op: str  # + - * / ^ = <> < <= > >= and or
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


@dataclass(eq=False)
class UnOp(Node):
    """Unary operation: ``neg`` or ``not``."""

    op: str
    arg: Node

    def children(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(eq=False)
class Func(Node):
    """Elementwise builtin function (see ``FUNC_ARITY``)."""

    name: str
    args: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(eq=False)
class IfElse(Node):
    """``IF THEN ELSE(cond, a, b)``."""

    cond: Node
    a: Node
    b: Node

    def children(self) -> tuple[Node, ...]:
        return (self.cond, self.a, self.b)


@dataclass(eq=False)
class LookupCall(Node):
    """Piecewise-linear table lookup.

    ``table`` is the index into :attr:`ModelIR.tables` per loop point.
    ``mode`` is ``interpolate`` (clamped), ``hold_backward`` or ``extrapolate``.
    """

    table: np.ndarray
    arg: Node
    mode: str = "interpolate"

    def children(self) -> tuple[Node, ...]:
        return (self.arg,)


@dataclass(eq=False)
class Phase(Node):
    """Evaluate ``init`` during initialisation and ``run`` afterwards."""

    run: Node
    init: Node

    def children(self) -> tuple[Node, ...]:
        return (self.run, self.init)


@dataclass(eq=False)
class Select(Node):
    """Pick ``options[int(which) - 1]`` (``which`` is 1-based, per sample)."""

    which: Node
    options: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        return (self.which, *self.options)


#: builtin name -> number of arguments
FUNC_ARITY = {
    "abs": 1,
    "exp": 1,
    "ln": 1,
    "log10": 1,
    "sqrt": 1,
    "integer": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "arcsin": 1,
    "arccos": 1,
    "arctan": 1,
    "sinh": 1,
    "cosh": 1,
    "tanh": 1,
    "min": 2,
    "max": 2,
    "log": 2,
    "modulo": 2,
    "quantum": 2,
    "zidz": 2,
    "xidz": 3,
    "step": 2,
    "ramp": 3,
    "pulse": 2,
    "pulse_train": 4,
    "delay_order": 2,
}


# --------------------------------------------------------------------------
# variables and assignments
# --------------------------------------------------------------------------
@dataclass(eq=False)
class VarInfo:
    """One model variable (user-visible or internal) in the flat state vector.

    Attributes
    ----------
    name : str
        Vensim name (internal variables start with ``_``).
    py_name : str
        Python-safe identifier (as PySD would name it).
    kind : str
        ``constant``, ``aux``, ``stock``, ``lookup``, ``control``, ``initial``
        or ``internal``.
    dims : tuple of str
        Subscript range names (empty for scalars).
    coords : tuple of tuple of str
        Elements of each dimension.
    offset, size : int
        Rows of the flat buffer holding this variable.
    """

    name: str
    py_name: str
    kind: str
    dims: tuple[str, ...] = ()
    coords: tuple[tuple[str, ...], ...] = ()
    units: str = ""
    limits: tuple = (None, None)
    documentation: str = ""
    offset: int = -1
    size: int = 1
    default: np.ndarray | None = None  # constants: default values (flat)
    phase: str = "static"  # static | init | dynamic | state

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample of the variable."""
        return tuple(len(c) for c in self.coords)


@dataclass(eq=False)
class Assign:
    """``var[target] = expr`` evaluated over ``len(target)`` loop points."""

    var: str
    target: np.ndarray
    expr: Node
    deps_run: frozenset = frozenset()
    deps_init: frozenset = frozenset()


@dataclass(eq=False)
class ModelIR:
    """The whole compiled model.

    Attributes
    ----------
    variables : dict
        Name -> :class:`VarInfo`, in declaration order.
    assigns : dict
        Variable name -> list of :class:`Assign` that define it.
    init_order : list of str
        Order in which all non-state variables (and stock initial values)
        are computed at initial time.
    run_order : list of str
        Order of the dynamic variables recomputed every step.
    report_only : frozenset of str
        Dynamic variables that no state update reads, directly or through other
        variables (reporting variables such as shares and per-unit ratios): a
        runtime may compute them only at the steps it saves.
    stocks : list of tuple
        ``(stock, flow_var)``: Euler update ``stock += flow * dt``.
    discrete : list of tuple
        ``(state, next_var)``: ``state = next_var`` at the end of a step.
    stock_init : dict
        Stock name -> variable holding its initial value.
    tables : list of tuple
        ``(x, y)`` float arrays of the lookup tables.
    n_rows : int
        Rows of the flat buffer.
    control : dict
        ``initial_time``/``final_time``/``time_step``/``saveper`` -> variable name.
    structural : set
        Constants that fix the model structure (e.g. a DELAY N order); they
        cannot be changed per run.
    """

    variables: dict = field(default_factory=dict)
    assigns: dict = field(default_factory=dict)
    init_order: list = field(default_factory=list)
    run_order: list = field(default_factory=list)
    report_only: frozenset = frozenset()
    stocks: list = field(default_factory=list)
    discrete: list = field(default_factory=list)
    stock_init: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)
    n_rows: int = 0
    control: dict = field(default_factory=dict)
    structural: set = field(default_factory=set)  # constants frozen at compile time


def walk(node: Node):
    """Yield ``node`` and all its descendants (pre-order)."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        stack.extend(reversed(cur.children()))


def node_deps(node: Node, phase: str) -> set[str]:
    """Variables read by ``node`` in phase ``"run"`` or ``"init"``."""
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (Ref, Reduce)):
            out.add(cur.var)
        elif isinstance(cur, Phase):
            stack.append(cur.run if phase == "run" else cur.init)
            continue
        stack.extend(cur.children())
    return out


def first_block(node: Node, n_outer: int, n_inner: int) -> Node | None:
    """``node`` restricted to its first ``n_inner`` points, if every block is the same.

    ``node`` is evaluated over ``n_outer * n_inner`` points (outer-major).  When
    every per-point array (numbers, gather indices, lookup tables) repeats the
    same values in each of the ``n_outer`` blocks, return a copy over one block;
    otherwise ``None``.
    """

    def same(arr: np.ndarray) -> np.ndarray | None:
        arr = np.asarray(arr)
        blocks = arr.reshape(n_outer, n_inner, *arr.shape[1:])
        return blocks[0].copy() if (blocks == blocks[0]).all() else None

    def cut(x: Node) -> Node | None:
        if isinstance(x, Num):
            if np.ndim(x.value) == 0:
                return Num(x.value)
            v = same(x.value)
            return None if v is None else Num(v)
        if isinstance(x, (Ref, Reduce)):
            idx = same(x.idx)
            if idx is None:
                return None
            return Ref(x.var, idx) if isinstance(x, Ref) else Reduce(x.op, x.var, idx)
        if isinstance(x, TimeNode):
            return TimeNode()
        if isinstance(x, LookupCall):
            table, arg = same(x.table), cut(x.arg)
            return None if table is None or arg is None else LookupCall(table, arg, x.mode)
        kids = [cut(c) for c in x.children()]
        if any(k is None for k in kids):
            return None
        if isinstance(x, BinOp):
            return BinOp(x.op, *kids)
        if isinstance(x, UnOp):
            return UnOp(x.op, kids[0])
        if isinstance(x, Func):
            return Func(x.name, tuple(kids))
        if isinstance(x, IfElse):
            return IfElse(*kids)
        if isinstance(x, Phase):
            return Phase(*kids)
        if isinstance(x, Select):
            return Select(kids[0], tuple(kids[1:]))
        return None  # an unknown node: keep the full loop space

    return cut(node)


@dataclass(frozen=True)
class VariableMeta:
    """Metadata of one model variable.

    Attributes
    ----------
    name : str
        Vensim name.
    py_name : str
        Python-safe name (as PySD names it).
    kind : str
        ``constant``, ``stock``, ``aux``, ``lookup`` or ``control``.
    units, documentation : str
    limits : tuple
        ``(min, max)``, ``None`` where unset.
    dims : tuple of str
        Subscript range names.
    coords : tuple of tuple of str
        Elements of each dimension.
    """

    name: str
    py_name: str
    kind: str
    units: str
    limits: tuple
    documentation: str
    dims: tuple
    coords: tuple

    @property
    def subscripts(self) -> tuple:
        """Alias of :attr:`dims`."""
        return self.dims
