"""Hold variables of a compiled model on given time paths: the IR transformation behind
:meth:`ningbo_sd.engine.engine.CompiledModel.with_paths` (a loop test's cut link)."""

from __future__ import annotations

import copy

import numpy as np

from .ir import Assign, LookupCall, ModelIR, TimeNode


def hold_on_paths(ir: ModelIR, paths: dict) -> ModelIR:
    """A copy of ``ir`` in which each named auxiliary is a table of time.

    Parameters
    ----------
    ir : ModelIR
    paths : dict
        Vensim name (as in ``ir.variables``) -> ``(times, values)``, values of shape
        ``(len(times),)`` or ``(len(times), n_elements)``.

    Returns
    -------
    ModelIR
        Shares everything with ``ir`` but the assignments and the tables.

    Raises
    ------
    KeyError
        A name that is not a variable.
    ValueError
        Not an auxiliary, or values of the wrong shape.
    """
    model = copy.copy(ir)
    model.assigns = dict(ir.assigns)
    model.tables = list(ir.tables)
    for name, (times, values) in paths.items():
        if name not in model.variables:
            raise KeyError(f"no variable named {name!r} to hold on a path")
        info = model.variables[name]
        if info.kind != "aux":
            raise ValueError(f"{name!r} is a {info.kind}: only auxiliaries can be held")
        times = np.asarray(times, dtype=float)
        values = np.asarray(values, dtype=float).reshape(len(times), -1)
        if values.shape[1] != info.size:
            raise ValueError(
                f"{name!r}: {values.shape[1]} values per time for {info.size} elements"
            )
        first = len(model.tables)
        for element in range(info.size):
            model.tables.append((times, values[:, element].copy(), "interpolate"))
        expr = LookupCall(table=np.arange(first, first + info.size), arg=TimeNode())
        model.assigns[name] = [Assign(name, np.arange(info.size), expr)]
    return model
