"""Server capacity of the Panel app: N live sessions moving a lever at once, without browsers.

Usage::

    python bench/bench_app_moves.py [--sessions 1,10,25,50] [--reps 3] [--moves 6]
                                    [--num-procs 1,2] [--think 0,2] [--lever NAME]
                                    [--json out.json]

Serves the app as a subprocess (``python -m ningbo_sd app``, as
``bench/bench_app_capacity.py`` does) on a free port of 127.0.0.1, once per value of
``--num-procs``. Each session is a raw Bokeh websocket (the protocol ``bokeh.client``
speaks, without building the document's models in this process, so that 50 clients cost
the machine little CPU next to the server): it connects to ``ws://127.0.0.1:PORT/ws``
with a new session id (``Origin: http://127.0.0.1:PORT``, a host the app allows), pulls
the document (the page's frame), sends Bokeh's ``document_ready`` event, as a browser
does (Panel builds the app then and sends it as updates), and finds the lever's ``Slider``
(by its tag) and the ``current-run`` ``ColumnDataSource`` in those updates.

A move sets the slider's ``value`` (a ``PATCH-DOC`` message, what the browser sends while
a slider is dragged) and ends when a ``PATCH-DOC`` from the server changes
``current-run``. In each of ``--moves`` rounds every session moves at once (the value
alternates between the default and the default plus ten steps) and the round ends when
all have their update: a worst case, N users letting go of a slider at the same moment.
With ``--think T`` each session instead moves ``--moves`` times on its own, after pauses
drawn uniformly from 0 to 2T seconds (N users working at their own pace).

For each N of ``--sessions`` it reports, as medians over ``--reps``:

- p50 and p95 of the moves' latencies, as such and as a multiple of N = 1's (measured in
  the same run, first);
- the server's RSS growth per connected idle session (``VmRSS`` of the server and its
  forked children from ``/proc``, before connecting and 3 s after the last session
  pulled its document), also against the server's RSS before its first session (the
  memory of expired sessions is reused by the next ones, so the first figure falls from
  rep to rep); and the bytes the server sent per move;
- the server's CPU seconds per move (``utime + stime`` of the server processes over the
  rounds, divided by the moves).

The sessions are closed after each rep, and the bench waits until the server has
discarded them. Bars (issue 19): 25 sessions at p50 <= 300 ms; <= 30 MB per idle session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app_capacity import percentile, start_server, wait_for_expiry

BARS = {"p50_ms_25": 300.0, "mb_per_session": 30.0}
LEVER = "tech_upgrade_share_2021_2025"
SOURCE = "current-run"
TIMEOUT_S = 300.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- server processes
def server_pids(pid: int) -> list[int]:
    """``pid`` and the workers ``--num-procs`` forked from it (children with its command
    line: not the numba compile a warm-up may start)."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pids
    for child in children:
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() == command:
                pids.append(int(child))
        except OSError:
            continue
    return pids


def total_rss_mb(pid: int) -> float:
    """The summed ``VmRSS`` (MB) of ``pid`` and its children."""
    total = 0.0
    for each in server_pids(pid):
        try:
            with open(f"/proc/{each}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` and its children so far."""
    total = 0.0
    for each in server_pids(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total


# ---------------------------------------------------------------- one session
def find_ids(doc: dict, lever: str) -> tuple[str, float, float, str]:
    """The lever slider's id, value and step, and the id of the ``current-run`` source."""
    slider = source = None
    stack: list = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            attributes = item.get("attributes") or {}
            if item.get("type") == "object" and isinstance(attributes, dict):
                if item.get("name") == "Slider" and lever in (attributes.get("tags") or []):
                    slider = item
                if attributes.get("name") == SOURCE:
                    source = item
            stack.extend(item.values())
    if slider is None or source is None:
        raise RuntimeError(f"no slider tagged {lever!r} or no {SOURCE!r} source in the document")
    values = slider["attributes"]
    return slider["id"], float(values["value"]), float(values.get("step", 0.1)), source["id"]


@dataclass
class Session:
    """One websocket session: its connection, ids and the times of its updates."""

    port: int
    lever: str
    socket: object = None
    slider_id: str = ""
    value: float = 0.0
    step: float = 0.1
    source_id: str = ""
    updated: asyncio.Event = field(default_factory=asyncio.Event)
    received_bytes: int = 0
    reader: asyncio.Task | None = None

    async def send(self, msgtype: str, content: dict) -> None:
        """One Bokeh protocol message: header, metadata and content frames, no buffers."""
        header = {"msgid": uuid.uuid4().hex, "msgtype": msgtype}
        for part in (header, {}, content):
            await self.socket.write_message(json.dumps(part))

    async def receive(self):
        """The next whole message (``bokeh.protocol.Receiver`` assembles the frames)."""
        while True:
            fragment = await self.socket.read_message()
            if fragment is None:
                raise ConnectionError("the server closed the websocket")
            self.received_bytes += len(fragment)
            message = await self.receiver.consume(fragment)
            if message is not None:
                return message

    async def open(self) -> None:
        """Connect, pull the document, find the ids and send ``document_ready``."""
        from bokeh.protocol import Protocol
        from bokeh.protocol.receiver import Receiver
        from bokeh.util.token import generate_jwt_token, generate_session_id
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        origin = f"http://127.0.0.1:{self.port}"
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.port}/ws",
            headers={"Origin": origin},
            connect_timeout=TIMEOUT_S,  # N sessions are built one after the other
            request_timeout=TIMEOUT_S,
        )
        token = generate_jwt_token(generate_session_id())
        self.socket = await websocket_connect(
            request, subprotocols=["bokeh", token], max_message_size=200 * 2**20
        )
        self.socket.protocol.set_nodelay(True)  # as browsers do (TCP_NODELAY)
        self.receiver = Receiver(Protocol())
        ack = await self.receive()
        if ack.msgtype != "ACK":
            raise RuntimeError(f"expected ACK, got {ack.msgtype}")
        await self.send("PULL-DOC-REQ", {})
        while (reply := await self.receive()).msgtype != "PULL-DOC-REPLY":
            pass
        ready = {"type": "event", "name": "document_ready", "values": {"type": "map"}}
        event = {"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": ready}
        await self.send("PATCH-DOC", {"events": [event]})
        # the page is a frame; the app arrives in the updates that follow document_ready
        seen = [reply.content["doc"]]
        while True:
            try:
                ids = find_ids(seen, self.lever)
                break
            except RuntimeError:
                message = await asyncio.wait_for(self.receive(), TIMEOUT_S)
                if message.msgtype == "PATCH-DOC":
                    seen.append(message.content)
        self.slider_id, self.value, self.step, self.source_id = ids
        self.reader = asyncio.create_task(self.read_updates())

    def changes_source(self, content: dict) -> bool:
        """Whether a ``PATCH-DOC`` content changes the ``current-run`` source."""
        for event in content.get("events", []):
            target = event.get("model") or event.get("column_source") or {}
            if isinstance(target, dict) and target.get("id") == self.source_id:
                return True
        return False

    async def read_updates(self) -> None:
        """Read the server's messages until closed; flag each update of the source."""
        try:
            while True:
                message = await self.receive()
                if message.msgtype == "PATCH-DOC" and self.changes_source(message.content):
                    self.updated.set()
        except (ConnectionError, asyncio.CancelledError):
            return
        except Exception:  # a closed socket mid-message
            return

    async def move(self, value: float) -> float:
        """Set the slider to ``value``; seconds until the source's update arrives."""
        self.updated.clear()
        start = time.perf_counter()
        event = {"kind": "ModelChanged", "model": {"id": self.slider_id}, "attr": "value"}
        await self.send("PATCH-DOC", {"events": [{**event, "new": value}]})
        await asyncio.wait_for(self.updated.wait(), TIMEOUT_S)
        return time.perf_counter() - start

    async def close(self) -> None:
        """Close the websocket and stop reading."""
        if self.socket is not None:
            self.socket.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)


# ---------------------------------------------------------------- one rep
async def paced_moves(session: Session, moves: int, think: float, seed: int) -> list[float]:
    """``moves`` moves of one session, each after a pause drawn from 0 to ``2 * think``."""
    pauses = random.Random(seed)
    times = []
    for k in range(moves):
        await asyncio.sleep(pauses.uniform(0.0, 2.0 * think))
        times.append(await session.move(session.value + (10 * session.step if k % 2 == 0 else 0)))
    return times


async def one_rep(
    port: int, pid: int, n: int, moves: int, lever: str, think: float = 0.0, seed: int = 0
) -> dict:
    """Open ``n`` sessions, move in ``moves`` rounds (or paced by ``think``), close them;
    the rep's figures."""
    before = total_rss_mb(pid)
    sessions = [Session(port=port, lever=lever) for _ in range(n)]
    try:
        await asyncio.gather(*(session.open() for session in sessions))
        await asyncio.sleep(3)  # the sessions' first URL write, then idle
        idle = total_rss_mb(pid)
        sent_before = sum(session.received_bytes for session in sessions)
        cpu_before = cpu_seconds(pid)
        times: list[float] = []
        if think > 0:
            paced = [paced_moves(s, moves, think, seed + i) for i, s in enumerate(sessions)]
            for batch in await asyncio.gather(*paced):
                times += batch
        for round_ in range(moves if think <= 0 else 0):
            targets = [s.value + (10 * s.step if round_ % 2 == 0 else 0.0) for s in sessions]
            times += await asyncio.gather(
                *(s.move(t) for s, t in zip(sessions, targets, strict=True))
            )
        cpu = cpu_seconds(pid) - cpu_before
        sent = sum(session.received_bytes for session in sessions) - sent_before
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    return {
        "p50": percentile(times, 0.5),
        "p95": percentile(times, 0.95),
        "mb_per_session": (idle - before) / n,
        "rss_before_mb": before,
        "rss_idle_mb": idle,
        "cpu_ms_per_move": 1000 * cpu / (n * moves),
        "kb_per_move": sent / 1024 / (n * moves),
    }


def measure(
    num_procs: int, sizes: list[int], reps: int, moves: int, lever: str, think: float = 0.0
) -> list[dict]:
    """Serve the app with ``num_procs`` processes and measure every N; one row per N."""
    extra = ["--num-procs", str(num_procs)] if num_procs != 1 else []
    with tempfile.TemporaryDirectory(prefix="bench-moves-") as tmp:
        server, port, log = start_server(Path(tmp), extra)
        try:
            time.sleep(3)  # the forked workers start
            rows = []
            for n in sizes:
                runs = []
                for _ in range(reps):
                    rep = one_rep(port, server.pid, n, moves, lever, think, seed=len(runs))
                    runs.append(asyncio.run(rep))
                    wait_for_expiry()
                row = {"num_procs": num_procs, "sessions": n, "think_s": think, "runs": runs}
                for key in ("p50", "p95"):
                    row[f"{key}_ms"] = 1000 * statistics.median(r[key] for r in runs)
                for key in ("mb_per_session", "cpu_ms_per_move", "kb_per_move"):
                    row[key] = statistics.median(r[key] for r in runs)
                row["rss_before_mb"] = runs[0]["rss_before_mb"]
                rows.append(row)
                reference = rows[0]
                # expired sessions leave their memory to the next ones: against the
                # server before its first session, the growth is not hidden by reuse
                base = reference["runs"][0]["rss_before_mb"]
                idle = statistics.median(r["rss_idle_mb"] for r in runs)
                row["mb_per_session_vs_fresh"] = (idle - base) / n
                row["p50_x_1"] = row["p50_ms"] / reference["p50_ms"]
                row["p95_x_1"] = row["p95_ms"] / reference["p50_ms"]
                print(
                    f"procs={num_procs} think={think:g} N={n:3d}: p50 {row['p50_ms']:7.0f} ms "
                    f"({row['p50_x_1']:.1f}x), p95 {row['p95_ms']:7.0f} ms "
                    f"({row['p95_x_1']:.1f}x), {row['mb_per_session']:5.1f} MB/session "
                    f"({row['mb_per_session_vs_fresh']:.1f} against the fresh server), "
                    f"server CPU {row['cpu_ms_per_move']:.0f} ms/move, "
                    f"{row['kb_per_move']:.0f} kB/move",
                    flush=True,
                )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except Exception:
                server.kill()
            log.close()
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its table; returns the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,25,50", help="comma-separated N")
    parser.add_argument("--reps", type=int, default=3, help="reps per N (medians)")
    parser.add_argument("--moves", type=int, default=6, help="rounds of moves per rep")
    parser.add_argument("--num-procs", default="1,2", help="server processes, comma-separated")
    parser.add_argument("--lever", default=LEVER, help="the setting whose slider moves")
    parser.add_argument(
        "--think",
        default="0",
        help="comma-separated mean pauses (s) between a session's moves; 0: rounds at once",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sessions.split(",") if n.strip()]
    if sizes[0] != 1:
        sizes.insert(0, 1)  # the reference
    rows = []
    for procs in (int(p) for p in args.num_procs.split(",") if p.strip()):
        for think in (float(t) for t in args.think.split(",") if t.strip()):
            rows += measure(procs, sizes, args.reps, args.moves, args.lever, think)
    figures = {"rows": rows, "bars": BARS, "moves": args.moves, "reps": args.reps}
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
