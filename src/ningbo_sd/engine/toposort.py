"""Evaluation order and memory layout of a :class:`~ningbo_sd.engine.ir.ModelIR`."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

import numpy as np

from .ir import (
    Assign,
    BinOp,
    Func,
    LookupCall,
    ModelIR,
    Num,
    Phase,
    Reduce,
    Ref,
    TimeNode,
    UnsupportedConstructError,
    VarInfo,
    node_deps,
    walk,
)

__all__ = ["hoist_static", "isolate_powers", "order_model"]

_STATE_KINDS = ("stock", "discrete")


def _toposort(graph: dict[str, set[str]], what: str) -> list[str]:
    # sorted dependencies: the order (hence generated code and its cache key)
    # must not depend on the per-process string hash seed
    ts = TopologicalSorter({k: sorted(d for d in v if d in graph) for k, v in graph.items()})
    try:
        return list(ts.static_order())
    except CycleError as err:
        cyc = [c for c in err.args[1] if not c.startswith("~")] or err.args[1]
        raise UnsupportedConstructError(f"{what}: circular definition involving {cyc}") from None


def order_model(model: ModelIR, hoist: bool = True) -> None:
    """Order the model; with ``hoist`` precompute time-invariant sub-expressions."""
    _order(model)
    if hoist:
        hoist_static(model)
        _order(model)
        if isolate_powers(model):
            _order(model)


def _order(model: ModelIR) -> None:
    """Assign buffer rows, phases, the initial-value order and the step order.

    Modifies ``model`` in place.

    Raises
    ------
    UnsupportedConstructError
        On circular definitions or a time grid that depends on the simulation.
    """
    row = 0
    for v in model.variables.values():
        if v.kind == "lookup":
            continue
        v.offset, row = row, row + v.size
    model.n_rows = row
    assigns = model.assigns

    # -------- initialisation: every non-constant variable, in dependency order
    init_graph: dict[str, set[str]] = {}
    for name, v in model.variables.items():
        if v.kind in ("lookup", "constant"):
            continue
        if v.kind in _STATE_KINDS:
            init_graph[name] = {model.stock_init[name]}
        else:
            init_graph[name] = set().union(*(a.deps_init for a in assigns.get(name, [])))
    model.init_order = _toposort(init_graph, "initial values")

    # -------- dynamic variables
    dynamic: set[str] = set()
    states = {n for n, v in model.variables.items() if v.kind in _STATE_KINDS}
    candidates = {
        n: v for n, v in model.variables.items() if v.kind in ("aux", "internal", "control")
    }
    own_time = {
        n
        for n in candidates
        if any(isinstance(x, (TimeNode, Phase)) for a in assigns.get(n, []) for x in walk(a.expr))
    }
    changed = True
    while changed:
        changed = False
        for n in candidates:
            if n in dynamic:
                continue
            deps = set().union(*(a.deps_run for a in assigns.get(n, [])))
            if n in own_time or deps & (states | dynamic):
                dynamic.add(n)
                changed = True
    for n in dynamic:
        if model.variables[n].kind == "control":
            raise UnsupportedConstructError(
                f"variable '{n}': time-varying control variable (FINAL TIME, TIME STEP, ...)"
            )
    for n, v in model.variables.items():
        if v.kind in _STATE_KINDS:
            v.phase = "state"
        elif n in dynamic:
            v.phase = "dynamic"
        elif v.kind == "initial":
            v.phase = "init"
        else:
            v.phase = "static"
    # insertion order follows the declaration order (not the per-process set order)
    run_graph = {
        n: set().union(*(a.deps_run for a in assigns.get(n, []))) & dynamic
        for n in model.variables
        if n in dynamic
    }
    model.run_order = _toposort(run_graph, "model equations")
    # what the end-of-step update reads, and everything upstream of it; the rest only reports
    needed = {f for _, f in model.stocks} | {f for _, f in model.discrete}
    for name in reversed(model.run_order):
        if name in needed:
            needed |= run_graph[name]
    model.report_only = frozenset(n for n in model.run_order if n not in needed)


def _rewrite_children(node, fn):
    """Replace every sub-expression ``c`` of ``node`` by ``fn(c)``, in place; return ``node``.

    A lookup's table is data, not a sub-expression: only its argument is rewritten.
    """
    for attr in ("left", "right", "arg", "cond", "a", "b", "run", "init", "which"):
        if hasattr(node, attr) and not (isinstance(node, LookupCall) and attr != "arg"):
            setattr(node, attr, fn(getattr(node, attr)))
    if hasattr(node, "args"):
        node.args = tuple(fn(c) for c in node.args)
    if hasattr(node, "options"):
        node.options = tuple(fn(c) for c in node.options)
    return node


def hoist_static(model: ModelIR) -> None:
    """Precompute time-invariant sub-expressions of dynamic equations.

    Every maximal sub-tree of a dynamic equation that reads only static or
    initial-phase variables (and not time) becomes an internal variable computed
    once during initialisation.  Modifies ``model`` in place (call before
    :func:`order_model`'s layout is used).
    """
    const = {
        n
        for n, v in model.variables.items()
        if v.phase in ("static", "init") and v.kind != "lookup"
    }
    counter = 0

    def is_static(node) -> bool:
        if isinstance(node, (TimeNode, Phase)):
            return False
        if isinstance(node, (Ref, Reduce)):
            return node.var in const
        return all(is_static(c) for c in node.children())

    def rewrite(node, n):
        nonlocal counter
        if isinstance(node, (Num, Ref, TimeNode)):
            return node
        if is_static(node):
            counter += 1
            name = f"~hoist~{counter}"
            model.variables[name] = VarInfo(
                name=name, py_name=name, kind="internal", size=n, phase="static"
            )
            deps = frozenset(node_deps(node, "init"))
            model.assigns[name] = [Assign(name, np.arange(n, dtype=np.int64), node, deps, deps)]
            return Ref(name, np.arange(n, dtype=np.int64))
        return _rewrite_children(node, lambda child: rewrite(child, n))

    for name in list(model.run_order):
        for a in model.assigns.get(name, []):
            a.expr = rewrite(a.expr, len(a.target))
    for assigns in model.assigns.values():  # nodes may be shared between equations
        for a in assigns:
            a.deps_run = frozenset(node_deps(a.expr, "run"))
            a.deps_init = frozenset(node_deps(a.expr, "init"))


def isolate_powers(model: ModelIR) -> int:
    """Give every ``^`` and ``EXP`` of a dynamic equation an equation of its own.

    ``a ^ b`` inside a dynamic equation becomes ``~pow~N = A ^ B`` (and
    ``EXP(x)`` becomes ``~exp~N = EXP(X)``) with the operands in internal
    variables (unless they are already plain references or numbers), so that
    the numba runtime can compute the function in a vectorised loop and
    recompute only the rare lanes outside the fast path (see :mod:`ningbo_sd.engine.vpow`).
    Values are unchanged: the same operations run in the same order.  Functions
    inside ``Phase`` nodes (initial-only arguments) are left alone.  Modifies
    ``model`` in place (call :func:`_order` again afterwards); returns the
    number of functions isolated.
    """
    count = 0

    def new_var(tag: str, expr, n: int) -> Ref:
        nonlocal count
        count += 1
        name = f"~{tag}~{count}"
        model.variables[name] = VarInfo(name=name, py_name=name, kind="internal", size=n)
        target = np.arange(n, dtype=np.int64)
        model.assigns[name] = [
            Assign(name, target, expr, node_deps(expr, "run"), node_deps(expr, "init"))
        ]
        return Ref(name, target.copy())

    def operand(node, n: int):
        return node if isinstance(node, (Ref, Num)) else new_var("powarg", node, n)

    def rewrite(node, n: int, top: bool):
        if isinstance(node, (Num, Ref, TimeNode, Phase)):
            return node
        _rewrite_children(node, lambda child: rewrite(child, n, False))
        if isinstance(node, BinOp) and node.op == "^":
            node = BinOp("^", operand(node.left, n), operand(node.right, n))
            return node if top else new_var("pow", node, n)
        if isinstance(node, Func) and node.name == "exp":
            node = Func("exp", (operand(node.args[0], n),))
            return node if top else new_var("exp", node, n)
        return node

    for name in list(model.run_order):
        for a in model.assigns.get(name, []):
            a.expr = rewrite(a.expr, len(a.target), True)
            a.deps_run = frozenset(node_deps(a.expr, "run"))
            a.deps_init = frozenset(node_deps(a.expr, "init"))
    return count
