"""One way for tests to serve the app and look at it: a free local port, a served process
that is always stopped, and headless Chromium (Debian's, driven by Playwright)."""

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


#: Debian's Chromium; never `playwright install` (no internet).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def headless_chromium():
    """A headless Chromium for the block (Playwright's synchronous API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
