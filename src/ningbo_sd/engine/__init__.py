"""Ningbo manufacturing system-dynamics model package.

The batch engine compiles the Vensim model (``model/ningbo.mdl``) into a
vectorised simulator; see :mod:`ningbo_sd.engine.engine`.
"""

from .engine import (
    CompiledModel,
    UnsupportedConstructError,
    VariableMeta,
    compile_model,
    run_default,
)

__all__ = [
    "CompiledModel",
    "UnsupportedConstructError",
    "VariableMeta",
    "compile_model",
    "run_default",
]
