"""The external data some tests read, found in one place.

Two things live outside the repository, in ``../shared/`` beside the checkout (or under
``$NINGBO_SD_SHARED``): the SDXorg Vensim test suite (``test-models/``, MIT,
https://github.com/SDXorg/test-models) and the plan's Chinese text (``source/``). Outside
CI a test that needs a missing one is skipped, and the run's summary says what was skipped
and where to get it; under CI (``CI=true``) a missing one fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NINGBO_SD_SHARED") or REPO.parent / "shared")
SUITE = SHARED / "test-models" / "tests"
PLAN_TEXT = SHARED / "source" / "ningbo-manufacturing-plan-2021-2025.txt"
SKIP_PREFIX = "external data missing"
WHERE = {
    "suite": (SUITE, "the SDXorg Vensim suite: clone https://github.com/SDXorg/test-models"),
    "plan": (PLAN_TEXT, "the plan text (宁波市推动制造业高质量发展“十四五”规划)"),
}


def in_ci() -> bool:
    """Whether this is a CI run (``CI`` set to a true value)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(kind: str) -> str | None:
    """Why the external data ``kind`` (``suite`` or ``plan``) is unusable, or None."""
    path, where = WHERE[kind]
    if path.exists():
        return None
    return f"{SKIP_PREFIX}: {path} ({where}; or set NINGBO_SD_SHARED)"


def needs(kind: str) -> pytest.MarkDecorator:
    """Mark a test or module as needing ``kind``: skipped where it is absent (failed in CI)."""
    reason = missing(kind)
    return pytest.mark.skipif(reason is not None, reason=reason or "")
