"""Parameter tables for a run: parse them per constant and write them into a state.

A run's parameters come as a DataFrame (one row per sample), a Series or a dict of
scalars or arrays, labelled by any spelling of a constant's name, or ``"Name[elem,...]"``
for one element of a subscripted constant. :func:`parse_params` turns them into one
``(samples or 1, size)`` array per constant; :func:`fill_constants` writes a slice of
samples into a runtime's state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .subscripts import key

__all__ = ["fill_constants", "parse_params"]


def _items(params) -> tuple[list[tuple[str, object]], int | None]:
    """``(label, values)`` pairs and the sample count a DataFrame fixes (else None)."""
    if params is None:
        return [], None
    if isinstance(params, pd.DataFrame):
        return [(str(c), params[c].to_numpy(dtype=float)) for c in params.columns], len(params)
    if isinstance(params, pd.Series):
        return [(str(k), v) for k, v in params.items()], None
    return [(str(k), v) for k, v in dict(params).items()], None


def parse_params(
    params, parse_label: Callable[[str], tuple[str, tuple | None]], variables: dict
) -> tuple[dict[str, np.ndarray], int]:
    """One ``(samples or 1, size)`` array per constant, and the number of samples.

    Parameters
    ----------
    params : DataFrame, Series, dict or None
        Values by label: a scalar, an array over samples, or ``(samples, size)``.
    parse_label : callable
        Label -> ``(constant, element keys or None)``; raises ``KeyError`` for a name
        that is not a settable constant.
    variables : dict
        The model's variables (:class:`~ningbo_sd.engine.ir.ModelIR` ``variables``).

    Returns
    -------
    (dict, int)

    Raises
    ------
    ValueError
        Arrays of different sample counts, or of the wrong number of elements.
    KeyError
        An unknown element of a subscripted constant.
    """
    items, n = _items(params)
    values: dict[str, np.ndarray] = {}
    elementwise: list[tuple[str, tuple, np.ndarray]] = []
    for label, val in items:
        name, elems = parse_label(label)
        if elems is not None:
            elementwise.append((name, elems, np.asarray(val, dtype=float)))
        else:
            values[name] = np.asarray(val, dtype=float)
    sizes = {a.shape[0] for a in values.values() if a.ndim >= 1}
    sizes |= {a.shape[0] for _, _, a in elementwise if a.ndim >= 1}
    if n is None:
        if len(sizes) > 1:
            raise ValueError(f"parameter arrays have different sample counts: {sizes}")
        n = sizes.pop() if sizes else 1
    out: dict[str, np.ndarray] = {}
    for name, a in values.items():
        v = variables[name]
        if a.ndim == 0:
            a = np.broadcast_to(a, (1, v.size))
        elif a.ndim == 1:
            a = a[:, None] * np.ones((1, v.size))
        else:
            a = a.reshape(a.shape[0], -1)
            if a.shape[1] != v.size:
                raise ValueError(f"{name!r}: expected {v.size} elements, got {a.shape[1]}")
        out[name] = a
    for name, elems, a in elementwise:
        v = variables[name]
        look = [{key(e): i for i, e in enumerate(c)} for c in v.coords]
        try:
            flat = int(
                np.ravel_multi_index(tuple(look[i][e] for i, e in enumerate(elems)), v.shape)
            )
        except (KeyError, IndexError, ValueError):
            raise KeyError(f"unknown element {elems} of {name!r}") from None
        base = out.get(name)
        if base is None:
            base = np.broadcast_to(v.default, (1, v.size))
        base = np.array(np.broadcast_to(base, (max(n, base.shape[0]), v.size)))
        base[:, flat] = a
        out[name] = base
    for name, a in out.items():
        if a.shape[0] not in (1, n):
            raise ValueError(f"{name!r}: {a.shape[0]} samples, expected {n}")
    return out, n


def fill_constants(X: np.ndarray, values: dict, variables: dict, lo: int, hi: int) -> None:
    """Write samples ``lo:hi`` of the given constants into a state ``X`` (``(n_rows, ...)``).

    ``X``'s trailing axes hold the samples (``(n)`` or a runtime's ``(groups, group)``);
    slots past ``hi - lo`` get copies of the last sample.
    """
    lanes = X.shape[1:]
    slots = int(np.prod(lanes))
    for name, a in values.items():
        v = variables[name]
        if a.shape[0] == 1:
            block = a.T.reshape(v.size, *(1,) * len(lanes))
        else:
            block = a[lo:hi]
            if block.shape[0] < slots:
                block = np.concatenate([block, np.repeat(block[-1:], slots - len(block), 0)])
            block = block.T.reshape(v.size, *lanes)
        X[v.offset : v.offset + v.size] = block
