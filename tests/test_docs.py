"""Documents stay portable: no absolute path of a particular machine."""

from __future__ import annotations

import re

import pytest
from external import REPO

DOCUMENTS = sorted(
    [
        *REPO.glob("*.md"),
        *REPO.glob("docs/*.md"),
        *REPO.glob("bench/*.md"),
        *REPO.glob("calibration/data/*.md"),
        *REPO.glob("notebooks/*.ipynb"),
    ]
)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(work|root|home|Users|tmp/pytest-of-)[/\w.-]*")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_names_a_machine_path(path):
    found = MACHINE_PATH.findall(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(REPO)} names machine paths: {found[:3]}"
