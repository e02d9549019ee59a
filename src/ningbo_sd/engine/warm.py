"""Compile a model's numba kernel into the on-disk cache: ``python -m ningbo_sd.engine.warm M.mdl``.

Run by :meth:`~ningbo_sd.engine.engine.CompiledModel.compile_in_background` so that a first
start answers on the numpy runtime while this process pays for numba's compile.
"""

from __future__ import annotations

import sys

from .engine import compile_model


def main(argv: list[str]) -> int:
    """Compile (or load) the kernel of each model file named; 0 when all are cached."""
    for path in argv:
        model = compile_model(path, backend="numba")
        runtime = model._runtime(None)
        runtime.prepare()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
