"""Process wall times of the commands a user runs, before and after a change, in one run.

Usage::

    python bench/bench_startup.py [--before REV] [--reps 5] [--app-reps 2]

``REV`` (default: the commit before the ``ningbo_sd`` package, 46889d8) is unpacked with
``git archive`` into a temporary folder and run from there with the interpreter running
this script; the current checkout runs as installed. Each command runs once to warm the
caches, then ``--reps`` times; the medians are printed as JSON, with each bar of issue 15:

- ``help``: ``ningbo-sd --help`` (bar 0.3 s);
- ``run``: ``ningbo-sd run -o x.csv``, the baseline (bar 1 s);
- ``mc``: ``ningbo-sd mc baseline -n 100000 -o x.parquet``, end to end (bar 3 s);
- ``app_empty_cache``: spawn to the first HTTP 200 of the app with an empty engine
  cache (a new machine), ``--app-reps`` times (bar 10 s).

The machine is shared: compare the two columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE = "46889d8"
BARS = {"help": 0.3, "run": 1.0, "mc": 3.0, "app_empty_cache": 10.0}


def unpack(rev: str, into: Path) -> Path:
    """The tree of ``rev`` in ``into`` (no checkout, no history)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def cli_command(version: dict, *args: str) -> list[str]:
    """The ``ningbo-sd`` command line of one version (the same launcher for both)."""
    module = version["cli_module"]
    launcher = f"import sys; from {module} import main; sys.exit(main())"
    return [sys.executable, "-c", launcher, *args]


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command[3:]} failed: {done.stderr.strip()[-400:]}")
    return elapsed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def app_ready(version: dict, work: Path, env: dict, timeout: float = 300) -> float:
    """Seconds from spawning the app, with an empty engine cache, to its first page."""
    port = free_port()
    cache = Path(tempfile.mkdtemp(prefix="bench-empty-cache-"))
    env = {**env, "NINGBO_SD_ENGINE_CACHE": str(cache)}
    command = version["app"](port)
    start = time.perf_counter()
    server = subprocess.Popen(
        command,
        cwd=version["cwd"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the background compile dies with it
    )
    try:
        while time.perf_counter() - start < timeout:
            if server.poll() is not None:
                raise RuntimeError(f"app exited with {server.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as reply:
                    if reply.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("app not ready in time")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def measure(version: dict, work: Path, env: dict, reps: int, app_reps: int) -> dict:
    commands = {
        "help": ["--help"],
        "run": ["run", "-o", str(work / "x.csv")],
        "mc": ["mc", "baseline", "-n", "100000", "-o", str(work / "x.parquet")],
    }
    result = {}
    for name, args in commands.items():
        command = cli_command(version, *args)
        timed(command, version["cwd"], env)  # warm the caches
        times = [timed(command, version["cwd"], env) for _ in range(reps)]
        result[name] = {"median_s": round(statistics.median(times), 3), "all_s": times}
    times = [app_ready(version, work, env) for _ in range(app_reps)]
    result["app_empty_cache"] = {"median_s": round(statistics.median(times), 2), "all_s": times}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--app-reps", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    old = unpack(args.before, work / "before")
    env = {k: v for k, v in os.environ.items() if k != "NINGBO_SD_ENGINE_CACHE"}
    versions = {
        "before": {
            "cli_module": "cli",
            "cwd": old,
            "app": lambda port: [sys.executable, "app.py", "--port", str(port)],
        },
        "after": {
            "cli_module": "ningbo_sd.cli",
            "cwd": work,
            "app": lambda port: [sys.executable, "-m", "ningbo_sd", "app", "--port", str(port)],
        },
    }
    report = {"load_start": os.getloadavg(), "before_rev": args.before, "reps": args.reps}
    for name, version in versions.items():
        version_env = dict(env)
        if name == "before":  # the old top-level modules, from the unpacked tree
            version_env["PYTHONPATH"] = str(old)
        report[name] = measure(version, work, version_env, args.reps, args.app_reps)
    report["ratio_after_before"] = {
        key: round(report["after"][key]["median_s"] / report["before"][key]["median_s"], 3)
        for key in BARS
    }
    report["bar_met"] = {key: report["after"][key]["median_s"] <= bar for key, bar in BARS.items()}
    report["load_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
