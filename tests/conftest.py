"""Shared fixtures: paths to the plan text and the external test models; app sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def plan_text() -> str:
    """The plan's Chinese text (../shared/source, or $NINGBO_PLAN_TEXT)."""
    candidates = [SHARED / "source" / "ningbo-manufacturing-plan-2021-2025.txt"]
    if os.environ.get("NINGBO_PLAN_TEXT"):
        candidates.insert(0, Path(os.environ["NINGBO_PLAN_TEXT"]))
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    pytest.skip("the plan text (../shared/source) is not available")


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
    from app import warm_up

    warm_up()


@pytest.fixture()
def app(warm_engine, tmp_path):
    """A fresh session (saves go to ``tmp_path``)."""
    from app import App
    from scenarios.schema import SCENARIO_DIR

    return App(scenario_dirs=(SCENARIO_DIR, tmp_path))


@pytest.fixture(scope="module")
def baseline(warm_engine):
    """The baseline scenario run directly through ``scenarios.run``."""
    from scenarios.run import run_scenario

    return run_scenario("baseline")
