"""Server capacity of the Panel app: page requests at once, and what they leave behind.

Usage::

    python bench/bench_app_capacity.py [--sessions 1,10,25,50] [--reps 3]
                                       [--browser-sessions 0] [--json out.json]

Serves the app as a subprocess (``python -m ningbo_sd app``) on a free port of 127.0.0.1
and reads the server's resident set size from ``/proc/PID/status``. It reports:

- the reference, measured in the same run: one page request alone (time to first byte,
  median of five) and the server's RSS once the first page was served;
- for each N of ``--sessions``: N plain GETs of ``/`` at once (no websocket, as crawlers,
  health checks and ``curl`` send them), their p50 and p95 time to first byte, as such and
  as a multiple of the single request's, and the server's RSS growth per request; medians
  over ``--reps`` bursts;
- after every burst, the server's RSS once the sessions have expired (the app discards a
  session without a websocket after ``UNUSED_SESSION_LIFETIME_MS``), against the
  reference;
- with ``--browser-sessions K`` (needs Playwright and ``/usr/bin/chromium``): K real
  sessions in headless Chromium pages, each waited for until its first run is drawn; the
  time to that point (p50, p95) and the server's RSS growth per connected session.

Bars (issue 19): 25 sessions at p50 <= 300 ms; <= 30 MB per session; RSS back near the
reference once GET-only sessions expire.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ningbo_sd.app.serve import (  # noqa: E402
    CHECK_UNUSED_SESSIONS_MS,
    UNUSED_SESSION_LIFETIME_MS,
)

CHROMIUM = "/usr/bin/chromium"
READY_JS = """() => {
  if (!window.Bokeh || !Bokeh.documents.length) return false;
  const cds = Bokeh.documents[0].get_model_by_name('current-run');
  return cds !== null && cds.data.gross_output.length > 0;
}"""
BARS = {"p50_ms_25": 300.0, "mb_per_session": 30.0, "expired_ratio": 1.10}


def free_port() -> int:
    """A free TCP port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """The resident set size of process ``pid`` in MB (``VmRSS``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def first_byte_s(port: int) -> float:
    """Seconds from sending ``GET /`` to the response's first byte (the body is read)."""
    start = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        elapsed = time.perf_counter() - start
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET / answered {response.status}")
    finally:
        connection.close()
    return elapsed


def burst(port: int, n: int) -> list[float]:
    """``n`` GETs sent at once from ``n`` threads; each one's time to first byte (s)."""
    times: list[float] = [0.0] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            barrier.wait()
            times[i] = first_byte_s(port)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} requests failed: {errors[0]!r}")
    return times


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1), linear between ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wait_for_expiry() -> float:
    """Sleep until every session without a websocket has been discarded; the seconds."""
    seconds = (UNUSED_SESSION_LIFETIME_MS + 2 * CHECK_UNUSED_SESSIONS_MS) / 1000 + 2
    time.sleep(seconds)
    return seconds


def start_server(
    folder: Path, extra: list[str] | tuple[str, ...] = ()
) -> tuple[subprocess.Popen, int, object]:
    """``ningbo-sd app`` on a free port (with the options ``extra``), once it accepts
    connections."""
    port = free_port()
    log = (folder / "server.log").open("w")
    command = [sys.executable, "-m", "ningbo_sd", "app", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--save-dir", str(folder), *extra],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, port, log
        time.sleep(0.5)
    server.kill()
    raise RuntimeError((folder / "server.log").read_text())


def browser_sessions(port: int, pid: int, k: int) -> dict:
    """``k`` real sessions in headless Chromium: time to the first drawn run, RSS each."""
    import asyncio

    from playwright.async_api import async_playwright

    async def run() -> dict:
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            before = rss_mb(pid)

            async def one() -> float:
                page = await browser.new_page()
                start = time.perf_counter()
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.wait_for_function(READY_JS, timeout=300_000)
                return time.perf_counter() - start

            times = await asyncio.gather(*(one() for _ in range(k)))
            await asyncio.sleep(2)
            after = rss_mb(pid)
            await browser.close()
        return {
            "sessions": k,
            "ready_p50_ms": 1000 * percentile(list(times), 0.5),
            "ready_p95_ms": 1000 * percentile(list(times), 0.95),
            "mb_per_session": (after - before) / k,
        }

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its table; returns the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,10,25,50", help="comma-separated N")
    parser.add_argument("--reps", type=int, default=3, help="bursts per N (medians)")
    parser.add_argument("--browser-sessions", type=int, default=0, help="real sessions (K)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sessions.split(",") if n.strip()]

    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        server, port, log = start_server(Path(tmp))
        try:
            first_byte_s(port)  # the first page (and Panel's first render)
            time.sleep(1)
            single = statistics.median(first_byte_s(port) for _ in range(5))
            wait_for_expiry()
            reference = rss_mb(server.pid)
            print(f"reference: one GET {1000 * single:.0f} ms; RSS {reference:.0f} MB")
            rows = []
            for n in sizes:
                runs = []
                for _ in range(args.reps):
                    before = rss_mb(server.pid)
                    times = burst(port, n)
                    grown = rss_mb(server.pid) - before
                    wait_for_expiry()
                    runs.append(
                        {
                            "p50": percentile(times, 0.5),
                            "p95": percentile(times, 0.95),
                            "mb_per_get": grown / n,
                            "expired_mb": rss_mb(server.pid),
                        }
                    )
                row = {
                    "sessions": n,
                    "p50_ms": 1000 * statistics.median(r["p50"] for r in runs),
                    "p95_ms": 1000 * statistics.median(r["p95"] for r in runs),
                    "mb_per_get": statistics.median(r["mb_per_get"] for r in runs),
                    "expired_mb": statistics.median(r["expired_mb"] for r in runs),
                }
                row["p50_x_single"] = row["p50_ms"] / (1000 * single)
                row["p95_x_single"] = row["p95_ms"] / (1000 * single)
                row["expired_x_reference"] = row["expired_mb"] / reference
                rows.append(row)
                print(
                    f"N={n:3d}: p50 {row['p50_ms']:7.0f} ms ({row['p50_x_single']:.1f}x), "
                    f"p95 {row['p95_ms']:7.0f} ms ({row['p95_x_single']:.1f}x), "
                    f"{row['mb_per_get']:5.2f} MB per GET, after expiry "
                    f"{row['expired_mb']:.0f} MB ({row['expired_x_reference']:.2f}x)"
                )
            browser = None
            if args.browser_sessions:
                browser = browser_sessions(port, server.pid, args.browser_sessions)
                print(
                    f"browser sessions K={browser['sessions']}: ready p50 "
                    f"{browser['ready_p50_ms']:.0f} ms, p95 {browser['ready_p95_ms']:.0f} ms, "
                    f"{browser['mb_per_session']:.1f} MB per session"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    figures = {
        "single_ms": 1000 * single,
        "reference_mb": reference,
        "rows": rows,
        "browser": browser,
        "bars": BARS,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
