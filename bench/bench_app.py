"""Benchmark of the Panel app in headless Chromium: slider latency, page load, concurrency.

Run ``python bench/bench_app.py`` (options: ``--moves``, ``--sessions``, ``--loads``,
``--json FILE``). It serves the app in-process on a free port, drives Debian's Chromium
through Playwright and reports:

- page load: from navigation to the first run drawn (median of ``--loads`` fresh sessions;
  the first one separately);
- slider latency: from a slider's value changing in the browser to the 2035 output figure
  and the chart's data both updated and painted (median and p95 of ``--moves`` moves);
- concurrency: ``--sessions`` sessions moving sliders at once: errors, median/p95 latency,
  and whether every session shows exactly its own settings' run;
- a reference measured in the same run: the in-process time of one engine run of the same
  scenario (``ningbo_sd.scenarios.run.run_scenario``), and the latency as a multiple of it;
- the server's share of a move (medians, wall time in the server thread): ``engine_run``
  (``AppState.run``: model run and headline table), ``rerun_and_views`` (the run, its
  scorecard and the charts', numbers' and table's updates) and ``slider_callback`` (all of
  that plus sending the changes to the browser).

Bars (issue 7): median < 150 ms and p95 < 300 ms per move; page load < 3 s; 10 sessions:
no errors, median < 500 ms, no session sees another's settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import CHROMIUM, CHROMIUM_ARGS

SLIDER = "rd_intensity_2021_2025"  # a lever that moves 2035 output in the baseline
SLIDER_CARD = "Innovation: R&D and talent"
SLIDER_RANGE = (1.0, 5.0)
BARS = {"median_ms": 150.0, "p95_ms": 300.0, "load_s": 3.0, "concurrent_median_ms": 500.0}
READY_JS = """() => {
  if (!window.Bokeh || !Bokeh.documents.length) return false;
  const cds = Bokeh.documents[0].get_model_by_name('current-run');
  return cds !== null && cds.data.gross_output.length > 0;
}"""
MOVE_JS = """async ([name, value, timeoutMs]) => {
  const doc = Bokeh.documents[0];
  const models = [...doc.all_models];
  const slider = models.find(m => m.type === 'Slider' && m.tags.includes(name));
  const big = models.find(m => (m.css_classes || []).includes('big-output'));
  const cds = doc.get_model_by_name('current-run');
  const timeout = new Promise(r => setTimeout(() => r(null), timeoutMs));
  const t0 = performance.now();
  const stamp = (model, signal) =>
    new Promise(r => model.connect(signal, () => r(performance.now())));
  const data = stamp(cds, cds.properties.data.change);
  const text = stamp(big, big.properties.text.change);
  slider.value = value;
  const done = await Promise.race([Promise.all([data, text]), timeout]);
  if (done === null) return null;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const last = cds.data.gross_output[cds.data.gross_output.length - 1];
  return {ms: performance.now() - t0, data_ms: done[0] - t0, text_ms: done[1] - t0, last};
}"""
STATE_JS = """([name]) => {
  const doc = Bokeh.documents[0];
  const slider = [...doc.all_models].find(m => m.type === 'Slider' && m.tags.includes(name));
  const cds = doc.get_model_by_name('current-run');
  return {value: slider.value, last: cds.data.gross_output[cds.data.gross_output.length - 1]};
}"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` (NaN when empty)."""
    return float(np.percentile(values, q)) if values else float("nan")


def instrument_server() -> dict[str, list[float]]:
    """Time the server's steps of a move (wall ms per call), by wrapping their methods.

    Call before the first session is built (the sessions' watchers bind the wrappers).
    """
    from ningbo_sd.app.controls import LeverPanel
    from ningbo_sd.app.state import AppState

    phases: dict[str, list[float]] = {}
    steps = (
        (AppState, "run", "engine_run"),
        (AppState, "recompute", "rerun_and_views"),
        (LeverPanel, "_slider_moved", "slider_callback"),
    )
    for cls, method, phase in steps:
        original, times = getattr(cls, method), phases.setdefault(phase, [])

        def timed(*args, _original=original, _times=times, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                _times.append(1000 * (time.perf_counter() - start))

        setattr(cls, method, timed)
    return phases


def phase_medians(phases: dict[str, list[float]]) -> dict[str, float]:
    """Median of each phase's times (ms), then empty the lists for the next measurement."""
    medians = {name: statistics.median(times) for name, times in phases.items() if times}
    for times in phases.values():
        times.clear()
    return medians


def expected_output(value: float) -> float:
    """2035 gross output of the baseline with the benchmark slider at ``value`` (in-process)."""
    from ningbo_sd.app.main import App

    app = App()
    app.state.apply_settings({SLIDER: value})
    return float(app.state.results.loc[2035, "gross_output"])


def reference_run_ms(repeats: int = 15) -> float:
    """Median in-process time of one engine run of the baseline scenario (ms)."""
    from ningbo_sd.scenarios.run import run_scenario
    from ningbo_sd.scenarios.schema import load_scenario

    scenario = load_scenario("baseline")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_scenario(scenario)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


async def open_session(browser, url: str):
    """A new browser context on the app; returns (context, page, load seconds, errors)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    start = time.perf_counter()
    await page.goto(url, wait_until="load", timeout=180_000)
    await page.wait_for_function(READY_JS, timeout=120_000)
    await page.locator(".big-output").first.wait_for(timeout=120_000)
    seconds = time.perf_counter() - start
    await page.get_by_text(SLIDER_CARD).first.click()  # builds the card's sliders
    await page.wait_for_function(
        "([name]) => [...Bokeh.documents[0].all_models].some("
        "m => m.type === 'Slider' && m.tags.includes(name))",
        arg=[SLIDER],
        timeout=60_000,
    )
    return context, page, seconds, errors


async def move(page, value: float, timeout_ms: float = 20_000):
    """Set the benchmark slider in the browser and time the round trip (None on timeout)."""
    return await page.evaluate(MOVE_JS, [SLIDER, value, timeout_ms])


def move_values(rng: np.random.Generator, n: int, last: float | None = None,
                low: float = SLIDER_RANGE[0], high: float = SLIDER_RANGE[1]):  # fmt: skip
    """``n`` slider values, each different from the one before (the first from ``last``).

    A "move" to the value the slider already has changes nothing, so it would wait for
    the timeout and count as one.
    """
    values = []
    while len(values) < n:
        value = round(float(rng.uniform(low, high)), 1)
        if value != last:
            values.append(value)
            last = value
    return values


async def measure(
    url: str, moves: int, sessions: int, loads: int, seed: int, phases: dict[str, list[float]]
) -> dict:
    from playwright.async_api import async_playwright

    rng = np.random.default_rng(seed)
    report: dict = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        # page loads, one fresh session after another
        load_times, load_errors = [], []
        for _ in range(loads):
            context, _page, seconds, errors = await open_session(browser, url)
            load_times.append(seconds)
            load_errors += errors
            await context.close()
        report["load"] = {
            "first_s": load_times[0],
            "median_s": statistics.median(load_times[1:] or load_times),
            "all_s": load_times,
            "console_errors": load_errors,
        }
        # one session, many moves
        context, page, _, errors = await open_session(browser, url)
        latencies, arrivals, timeouts = [], [], 0
        start_value = (await page.evaluate(STATE_JS, [SLIDER]))["value"]
        phase_medians(phases)
        for value in move_values(rng, moves, start_value):
            result = await move(page, value)
            if result is None:
                timeouts += 1
            else:
                latencies.append(result["ms"])
                arrivals.append(result["data_ms"])
        report["single"] = {
            "moves": moves,
            "median_ms": statistics.median(latencies) if latencies else float("nan"),
            "p95_ms": percentile(latencies, 95),
            "data_median_ms": statistics.median(arrivals) if arrivals else float("nan"),
            "timeouts": timeouts,
            "console_errors": list(errors),
            "server_ms": phase_medians(phases),
        }
        await context.close()
        # many sessions at once, each with its own settings
        # sessions open one after another (the server builds them in turn), then move together
        opened = [await open_session(browser, url) for _ in range(sessions)]

        async def drive(page, values, pace_s, offset_s):
            out = []
            await asyncio.sleep(offset_s)
            for value in values:
                start = time.perf_counter()
                out.append(await move(page, value))
                await asyncio.sleep(max(pace_s - (time.perf_counter() - start), 0.0))
            return out

        pages = [page for _, page, _, _ in opened]
        # paced: every session moves about once a second (people pausing between moves)
        paced_values = [move_values(rng, 8, start_value) for _ in range(sessions)]
        per_session = [move_values(rng, max(moves // 3, 5), v[-1]) for v in paced_values]
        paced = await asyncio.gather(
            *[
                drive(page, values, 1.0, index / sessions)
                for index, (page, values) in enumerate(zip(pages, paced_values, strict=True))
            ]
        )
        paced_ms = [r["ms"] for session in paced for r in session if r is not None]
        report["paced"] = {
            "sessions": sessions,
            "median_ms": statistics.median(paced_ms) if paced_ms else float("nan"),
            "p95_ms": percentile(paced_ms, 95),
            "timeouts": sum(r is None for session in paced for r in session),
        }
        # flat out: every session moves again as soon as its last move is drawn
        phase_medians(phases)
        results = await asyncio.gather(
            *[
                drive(page, values, 0.0, 0.0)
                for page, values in zip(pages, per_session, strict=True)
            ]
        )
        concurrent = [r["ms"] for session in results for r in session if r is not None]
        arrived = [r["data_ms"] for session in results for r in session if r is not None]
        finals = [await page.evaluate(STATE_JS, [SLIDER]) for _, page, _, _ in opened]
        report["concurrent"] = {
            "sessions": sessions,
            "moves": sum(len(v) for v in per_session),
            "median_ms": statistics.median(concurrent) if concurrent else float("nan"),
            "p95_ms": percentile(concurrent, 95),
            "data_median_ms": statistics.median(arrived) if arrived else float("nan"),
            "timeouts": sum(r is None for session in results for r in session),
            "console_errors": [e for _, _, _, errors in opened for e in errors],
            "server_ms": phase_medians(phases),
            "final_values": [f["value"] for f in finals],
            "expected_values": [v[-1] for v in per_session],
            "final_outputs": [f["last"] for f in finals],
        }
        for context, _, _, _ in opened:
            await context.close()
        await browser.close()
    return report


def check_isolation(report: dict) -> bool:
    """Every session ends on its own last value, showing the run of exactly that value."""
    concurrent = report["concurrent"]
    ok = concurrent["final_values"] == concurrent["expected_values"]
    for value, shown in zip(
        concurrent["expected_values"], concurrent["final_outputs"], strict=True
    ):
        ok &= bool(np.isclose(shown, expected_output(value), rtol=1e-9))
    return bool(ok)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary file and a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, default=float)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=40, help="slider moves in one session")
    parser.add_argument("--sessions", type=int, default=10, help="concurrent sessions")
    parser.add_argument("--loads", type=int, default=5, help="page loads to time")
    parser.add_argument("--seed", type=int, default=0, help="seed of the slider values")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    import panel as pn

    from ningbo_sd.app.main import create_app, warm_up

    warm_up()
    reference = reference_run_ms()
    phases = instrument_server()
    load_start = os.getloadavg()
    port = free_port()
    server = pn.serve(
        create_app, address="127.0.0.1", port=port, threaded=True, show=False, title="bench"
    )
    try:
        report = asyncio.run(
            measure(
                f"http://127.0.0.1:{port}/",
                args.moves,
                args.sessions,
                args.loads,
                args.seed,
                phases,
            )
        )
    finally:
        server.stop()
    report["reference"] = {
        "engine_run_ms": reference,
        "median_move_over_run": report["single"]["median_ms"] / reference,
    }
    report["isolated"] = check_isolation(report)
    report["load_average"] = os.getloadavg()
    report["load_average_start"] = load_start
    single, concurrent, load = report["single"], report["concurrent"], report["load"]
    lines = [
        f"reference engine run (in-process)  {reference:8.1f} ms",
        f"slider move, median                {single['median_ms']:8.1f} ms   (bar < 150)",
        f"slider move, p95                   {single['p95_ms']:8.1f} ms   (bar < 300)",
        f"  of which until data in browser   {single['data_median_ms']:8.1f} ms",
        f"  median / engine run              {report['reference']['median_move_over_run']:8.1f} x",
        "  server, median ms per move       "
        + ", ".join(f"{k} {v:.1f}" for k, v in single["server_ms"].items()),
        f"page load, first session           {load['first_s']:8.2f} s",
        f"page load, median                  {load['median_s']:8.2f} s    (bar < 3)",
        f"{concurrent['sessions']} sessions flat out, median      "
        f"{concurrent['median_ms']:8.1f} ms   (bar < 500)",
        f"{concurrent['sessions']} sessions flat out, p95         {concurrent['p95_ms']:8.1f} ms",
        f"{concurrent['sessions']} sessions flat out, data in     "
        f"{concurrent['data_median_ms']:8.1f} ms",
        "  server, median ms per move       "
        + ", ".join(f"{k} {v:.1f}" for k, v in concurrent["server_ms"].items()),
        f"{concurrent['sessions']} sessions 1 move/s, median      "
        f"{report['paced']['median_ms']:8.1f} ms",
        f"{concurrent['sessions']} sessions 1 move/s, p95         "
        f"{report['paced']['p95_ms']:8.1f} ms",
        f"timeouts / console errors          "
        f"{single['timeouts'] + concurrent['timeouts'] + report['paced']['timeouts']} / "
        f"{len(load['console_errors']) + len(single['console_errors'])}"
        f" + {len(concurrent['console_errors'])}",
        f"every session sees its own run     {report['isolated']}",
        f"load average (1 min), start / end  {load_start[0]:.2f} / {report['load_average'][0]:.2f}",
    ]
    print("\n".join(lines))
    if args.json is not None:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
