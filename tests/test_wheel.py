"""The wheel carries everything: installed into a fresh environment, it runs from anywhere.

Builds the wheel from this checkout, installs it (without its dependencies, which the
environment running the tests already has) into a new virtual environment, and runs the
commands a new user runs first from a folder outside the repository.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from external import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("ningbo_sd-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A virtual environment with the wheel installed; the test environment's packages seen."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",  # the checkout's editable install is visible: not enough
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    work = tmp_path_factory.mktemp("elsewhere")  # not the repository
    env = {**os.environ, "PYTHONPATH": ""}
    return {"bin": root / "bin", "python": python, "cwd": work, "env": env}


def _run(installed, *args, timeout=600):
    return subprocess.run(
        [str(installed["bin"] / "ningbo-sd"), *args],
        cwd=installed["cwd"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_wheel_holds_one_package_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"ningbo_sd"}
    for data in (
        "ningbo_sd/data/model/ningbo.mdl",
        "ningbo_sd/data/model/outputs.yaml",
        "ningbo_sd/data/model/loops.yaml",
        "ningbo_sd/data/calibration/hindcast/calibrated.yaml",
        "ningbo_sd/data/calibration/ceiling/calibrated.yaml",
        "ningbo_sd/data/calibration/data/actuals.csv",
        "ningbo_sd/data/scenarios/baseline.yaml",
        "ningbo_sd/data/scenarios/registry/levers.yaml",
        "ningbo_sd/data/calibration/calibrated.yaml",
        "ningbo_sd/data/calibration/posterior.parquet",
        "ningbo_sd/data/calibration/data/observations.csv",
    ):
        assert data in names, data


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    where = subprocess.run(
        [str(installed["python"]), "-c", "import ningbo_sd; print(ningbo_sd.__file__)"],
        cwd=installed["cwd"],
        env=installed["env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed["bin"].parent), where


def test_run_mc_and_scorecard_from_outside_the_repository(installed):
    run = _run(installed, "run", "-o", "baseline.csv")
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(installed["cwd"] / "baseline.csv", index_col="year")
    assert frame.index.min() == 2015 and frame.index.max() == 2035
    mc = _run(installed, "mc", "baseline", "-n", "1000", "-o", "mc.parquet")
    assert mc.returncode == 0, mc.stderr
    assert len(pd.read_parquet(installed["cwd"] / "mc.parquet")) == 1000
    score = _run(installed, "scorecard", "plan_2025")
    assert score.returncode == 0, score.stderr
    assert "gross_output_2035" in score.stdout


def test_the_app_serves_from_the_installed_package(installed):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(installed["bin"] / "ningbo-sd"), "app", "--port", str(port)],
        cwd=installed["cwd"],
        env=installed["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, status = time.monotonic() + 180, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as reply:
                    status = reply.status
                    page = reply.read().decode("utf-8", "replace")
                break
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"no page (server exit code {server.poll()})"
        assert "bokeh" in page.lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
