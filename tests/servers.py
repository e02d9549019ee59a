"""One way for tests to start the app in a subprocess and wait for it: a free local port and
a served process that is always stopped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A port nothing listens on at 127.0.0.1 (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None, timeout: float) -> bool:
    """Whether something accepts connections on ``port`` before ``timeout`` seconds (or the
    process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1 if process is None else 0.5)
    return False


@contextlib.contextmanager
def served(command: list[str], port: int, log: Path, cwd: Path, env=None, timeout: float = 240):
    """Run ``command`` (an app server on ``port``) until the block ends; its output goes to
    ``log``. Fails with the log when the server dies or never listens."""
    with log.open("w") as sink:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, server, timeout)
            assert server.poll() is None, log.read_text()
            yield server
        finally:
            server.terminate()
            server.wait(timeout=30)
