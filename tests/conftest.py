"""Shared fixtures: paths to the plan text and the external test models; app sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from external import PLAN_TEXT, REPO, SKIP_PREFIX, WHERE, in_ci, missing


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def plan_text() -> str:
    """The plan's Chinese text (``../shared/source``; see ``tests/external.py``)."""
    reason = missing("plan")
    if reason:
        pytest.skip(reason)
    return PLAN_TEXT.read_text(encoding="utf-8")


def pytest_sessionstart(session):
    """Under CI, missing external data fails the run instead of skipping tests."""
    absent = [reason for kind in WHERE if (reason := missing(kind))]
    if absent and in_ci():
        pytest.exit("CI run without the external test data: " + "; ".join(absent), returncode=1)


def pytest_terminal_summary(terminalreporter):
    """One line saying which tests were skipped for missing external data, and where to get it."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {
        str(report.longrepr[2]).removeprefix("Skipped: ")
        for report in skipped
        if isinstance(report.longrepr, tuple) and SKIP_PREFIX in str(report.longrepr[2])
    }
    count = sum(
        1
        for report in skipped
        if isinstance(report.longrepr, tuple) and SKIP_PREFIX in str(report.longrepr[2])
    )
    if count:
        terminalreporter.write_line(
            f"{count} tests skipped, {'; '.join(sorted(reasons))}", yellow=True
        )


@pytest.fixture(scope="session", autouse=True)
def _engine_cache(tmp_path_factory):
    """Point the batch engine's IR/kernel cache at a temp dir for the whole session.

    Session-scoped (so one pytest session compiles each kernel once) and set
    before any module-scoped fixture compiles a model; restored afterwards.
    """
    old = os.environ.get("NINGBO_SD_ENGINE_CACHE")
    os.environ["NINGBO_SD_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engine-cache"))
    yield
    if old is None:
        os.environ.pop("NINGBO_SD_ENGINE_CACHE", None)
    else:
        os.environ["NINGBO_SD_ENGINE_CACHE"] = old


@pytest.fixture(scope="session")
def warm_engine():
    """Compile the engine once, outside any deep call stack."""
    from ningbo_sd.app.main import warm_up

    warm_up()


@pytest.fixture()
def app(warm_engine, tmp_path):
    """A fresh session (saves go to ``tmp_path``)."""
    from ningbo_sd.app.main import App
    from ningbo_sd.scenarios.schema import SCENARIO_DIR

    return App(scenario_dirs=(SCENARIO_DIR, tmp_path))


@pytest.fixture(scope="module")
def baseline(warm_engine):
    """The baseline scenario run directly through ``ningbo_sd.scenarios.run``."""
    from ningbo_sd.scenarios.run import run_scenario

    return run_scenario("baseline")
