"""A generic batch engine for Vensim models: PySD's abstract model -> IR -> numba/numpy kernels.

It knows nothing of Ningbo and imports nothing else from ``ningbo_sd``
(``tests/test_layers.py`` checks it). :func:`compile_model` compiles a ``.mdl`` once; the
compiled model runs many samples fast. See ``docs/engine.md``.
"""

from __future__ import annotations

import importlib

__all__ = [
    "CompiledModel",
    "UnsupportedConstructError",
    "VariableMeta",
    "compile_model",
    "run_default",
]


def __getattr__(name: str):
    """Import :mod:`.engine` (pandas and numpy) only when its names are used."""
    if name in __all__:
        return getattr(importlib.import_module(".engine", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
