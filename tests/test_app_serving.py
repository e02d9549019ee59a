"""How the app is served (issue 19): websockets without Nagle's delay, ``--num-procs``.

* In process: every websocket route of :func:`ningbo_sd.app.serve.make_server` turns
  ``TCP_NODELAY`` on when a connection opens.
* A real server (``ningbo-sd app --num-procs 2`` in a subprocess, marked ``slow``): two
  worker processes answer the page and a websocket, and stop once their parent is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from servers import free_port
from servers import served as serve_app

REPO = Path(__file__).resolve().parents[1]


def websocket_handlers(server) -> list[type]:
    """The handler classes of a Bokeh server's websocket routes."""
    from tornado.websocket import WebSocketHandler

    found, routers = [], [server._tornado.default_router, server._tornado.wildcard_router]
    for router in routers:
        for rule in getattr(router, "rules", []):
            if isinstance(rule.target, type) and issubclass(rule.target, WebSocketHandler):
                found.append(rule.target)
            elif hasattr(rule.target, "rules") and rule.target not in routers:
                routers.append(rule.target)
    return found


def test_every_websocket_opens_without_nagles_delay(monkeypatch):
    import panel as pn

    from ningbo_sd.app.serve import allowed_hosts, make_server

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    port = free_port()
    server = make_server(
        lambda: pn.pane.Markdown("x"),
        port=port,
        address="127.0.0.1",
        hosts=allowed_hosts("127.0.0.1", port),
        title="t",
    )
    try:
        handlers = websocket_handlers(server)
        assert handlers  # Bokeh's /ws
        calls: list[tuple] = []
        for handler in handlers:
            calls.clear()
            monkeypatch.setattr(handler.__mro__[1], "open", lambda self, *a: calls.append(a))
            connection = object.__new__(handler)  # no request: only open() is called
            connection.set_nodelay = lambda value: calls.append(("nodelay", value))
            handler.open(connection, "token")
            # TCP_NODELAY first, then the route's own open
            assert calls == [("nodelay", True), ("token",)]
    finally:
        server.stop()
        asyncio.set_event_loop(None)
        loop.close()


def workers_of(pid: int) -> list[int]:
    """The forked workers of ``pid``: its children with its command line (not, say, the
    numba compile the warm-up may start)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    children = [int(child) for child in path.read_text().split()] if path.exists() else []
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    found = []
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() == command:
                found.append(child)
        except OSError:
            continue
    return found


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (IPv4 and IPv6, from ``/proc/net``)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            count += local_port == port and fields[3] == "0A"  # 0A: LISTEN
    return count


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_two_worker_processes_serve_and_stop_with_their_parent(tmp_path):
    from test_app_security import http_status, websocket_status

    port = free_port()
    command = [sys.executable, "-m", "ningbo_sd", "app", "--port", str(port)]
    command += ["--save-dir", str(tmp_path), "--num-procs", "2"]
    with serve_app(command, port, tmp_path / "server.log", REPO) as server:
        deadline = time.monotonic() + 60
        while len(workers_of(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        workers = workers_of(server.pid)
        assert len(workers) == 2, (tmp_path / "server.log").read_text()
        # each worker listens on a socket of its own (SO_REUSEPORT: the kernel spreads the
        # connections), not on one socket bound before the fork
        assert listening_sockets(port) == 2
        for _ in range(4):  # whichever worker accepts
            assert http_status(port) == 200
            host = f"127.0.0.1:{port}"
            assert websocket_status(port, host, f"http://{host}") == 101
            assert http_status(port, headers={"Host": f"evil.example:{port}"}) == 403
    # the parent was terminated; its workers notice within their check period
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [pid for pid in workers if running(pid)]
    for pid in left:  # never leave a worker serving the port
        os.kill(pid, signal.SIGKILL)
    assert not left


# ---------------------------------------------------------------- the run queue
class _Context:
    """What the run queue uses of a served session's context."""

    def __init__(self) -> None:
        self._session = object()  # a session exists: the page is served
        self.destroyed = False

    async def with_locked_document(self, func) -> None:
        func(self.document)


def _served_document():
    from bokeh.document import Document

    doc, context = Document(), _Context()
    context.document = doc
    doc._session_context = lambda: context  # Bokeh keeps a weak reference
    return doc


def test_queued_runs_go_one_at_a_time_in_order_and_once_per_waiting_session():
    from panel.io.state import set_curdoc

    from ningbo_sd.app.runqueue import RunQueue

    done: list[str] = []
    first, second, third = _served_document(), _served_document(), _served_document()

    def run_a():
        done.append("a")

    def run_b():
        raise RuntimeError("b failed")  # reported; the queue goes on

    def run_c():
        done.append("c")

    async def moves() -> None:
        queue = RunQueue()
        for doc, run in ((first, run_a), (first, run_a), (second, run_b), (third, run_c)):
            with set_curdoc(doc):
                queue.submit(run)
        assert done == [] and len(queue) == 3  # nothing runs inside the move's callback
        third.session_context.destroyed = True  # closed before its turn: skipped
        await queue._worker
        assert done == ["a"] and queue.runs == 2 and len(queue) == 0

    import panel as pn

    reported = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pn.config, "exception_handler", reported.append)
        asyncio.run(moves())
    assert [str(exc) for exc in reported] == ["b failed"]


def test_without_a_served_session_a_run_happens_at_once():
    from ningbo_sd.app.runqueue import RunQueue

    done = []
    RunQueue().submit(lambda: done.append(1))
    assert done == [1]
