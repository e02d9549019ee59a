"""``ningbo-sd mc --scheduler`` on a real dask cluster that loses a worker mid-run.

A scheduler and two workers run as separate processes (``python -m dask scheduler`` and
``python -m dask worker``, no nanny, so a killed worker stays dead), bound to 127.0.0.1 and
started and stopped by the test. The command runs as a process too; once it has written some
chunks and the victim holds a task, the victim gets SIGKILL. Dask reruns the lost tasks on
the other worker, and the file is byte for byte the one a single process writes.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from ningbo_sd.cli import main

pytestmark = pytest.mark.slow

N_SAMPLES = 60_000
CHUNK = 1_500
RUN = ["baseline", "-n", str(N_SAMPLES), "--seed", "5", "--chunk-size", str(CHUNK)]
RUN += ["--indicators", "gross_output,capital_stock", "--years", "2020,2025,2035"]
SCHEDULER = ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
WORKER = ["--nthreads", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"]
WORKER += ["--death-timeout", "60", "--local-directory"]


def _start(arguments: list[str], log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *arguments], stdout=log, stderr=subprocess.STDOUT, text=True
    )


def _wait(condition, timeout: float, what: str, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def compiled():
    """The engine's kernels in the session's cache, which the workers load (not compile)."""
    from ningbo_sd.scenarios.run import run_batch

    run_batch()


@pytest.fixture()
def cluster(compiled, tmp_path):
    """A scheduler and workers ``survivor`` and ``victim``: (address, {name: process})."""
    from distributed import Client

    processes = {}
    address = None
    log = (tmp_path / "cluster.log").open("w", encoding="utf-8")
    scheduler_file = tmp_path / "scheduler.json"
    try:
        processes["scheduler"] = _start(
            [*SCHEDULER, "--scheduler-file", str(scheduler_file)],
            log,
        )
        _wait(scheduler_file.exists, 60, "the scheduler's address")
        address = _wait(
            lambda: json.loads(scheduler_file.read_text() or "{}").get("address"), 10, "address"
        )
        for name in ("survivor", "victim"):
            processes[name] = _start(
                ["dask", "worker", address, "--name", name, *WORKER, str(tmp_path / name)],
                log,
            )
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, processes
    finally:
        if "scheduler" in processes and processes["scheduler"].poll() is None:
            with contextlib.suppress(Exception), Client(address, timeout="10s") as client:
                client.shutdown()  # the scheduler and its workers, cleanly
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_a_killed_worker_does_not_change_the_results_file(tmp_path, cluster):
    from distributed import Client

    address, processes = cluster
    local = tmp_path / "local.parquet"
    assert main(["mc", *RUN, "-o", str(local)]) == 0  # one process, the reference
    distributed = tmp_path / "cluster.parquet"
    command = _start(
        ["ningbo_sd", "mc", *RUN, "-o", str(distributed), "--scheduler", address, "--progress"],
        subprocess.PIPE,
    )
    done = [0]
    output: list[str] = []

    def follow():  # tqdm's counter on stderr (merged into stdout here), "12000/60000"
        for line in iter(lambda: command.stdout.read(64), ""):
            output.append(line)
            counts = re.findall(rf"(\d+)/{N_SAMPLES}", "".join(output[-4:]))
            if counts:
                done[0] = int(counts[-1])

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        with Client(address, timeout="30s") as client:

            def victim_busy():
                names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
                busy = [names.get(a) for a, keys in client.processing().items() if keys]
                return "victim" in busy and 0 < done[0] <= N_SAMPLES // 2

            _wait(victim_busy, 120, "the victim to hold a task mid-run", step=0.05)
            written = done[0]
            processes["victim"].send_signal(signal.SIGKILL)
            processes["victim"].wait(timeout=10)
            assert command.poll() is None, "the run ended before the kill"
            assert command.wait(timeout=120) == 0, "".join(output)
            workers = client.scheduler_info()["workers"].values()
            assert [w["name"] for w in workers] == ["survivor"]
    finally:
        if command.poll() is None:
            command.kill()
        command.wait()
        reader.join(timeout=10)
        command.stdout.close()
    assert 0 < written < N_SAMPLES
    assert f"wrote {N_SAMPLES:,} samples to" in "".join(output)
    assert distributed.read_bytes() == local.read_bytes()
    assert processes["survivor"].poll() is None  # it ran the lost chunks again, and lives
