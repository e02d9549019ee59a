"""Compile a model's numba kernel into the on-disk cache: ``python -m ningbo_sd.engine.warm M.mdl``.

Run by :meth:`~ningbo_sd.engine.engine.CompiledModel.compile_in_background` so that a first
start answers on the numpy runtime while this process pays for numba's compile. Given
``--parent PID`` (as the background compile passes it), the process ends as soon as that
parent is gone, however it ended: a server killed with SIGKILL, whose ``atexit`` never ran,
does not leave a compile behind.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .engine import compile_model

#: Seconds between two checks that the parent is still alive.
PARENT_CHECK_S = 0.5


def exit_with_parent(parent: int, period: float = PARENT_CHECK_S) -> None:
    """End this process (exit code 0) once its parent ``parent`` has gone.

    A child whose parent dies is re-parented (to init or a subreaper), so its parent id
    changes; a daemon thread checks it every ``period`` seconds.
    """
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period)
        os._exit(0)  # no cleanup to do: the cache is written atomically

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    """Compile (or load) the kernel of each model file named; 0 when all are cached."""
    if argv[:1] == ["--parent"]:
        exit_with_parent(int(argv[1]))
        argv = argv[2:]
    for path in argv:
        model = compile_model(path, backend="numba")
        runtime = model._runtime(None)
        runtime.prepare()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
