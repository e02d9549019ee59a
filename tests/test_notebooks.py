"""Every notebook in notebooks/ runs top to bottom (executed in a temporary copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: Seconds a single cell may take before the run is declared hung.
CELL_TIMEOUT = 300


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(notebook: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    copy = tmp_path / notebook.name
    shutil.copy(notebook, copy)
    document = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        document,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        output
        for cell in document.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    code_cells = [cell for cell in document.cells if cell.cell_type == "code"]
    assert all(cell.get("execution_count") for cell in code_cells)


def test_committed_notebooks_have_no_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    for notebook in NOTEBOOKS:
        document = nbformat.read(notebook, as_version=4)
        for cell in document.cells:
            if cell.cell_type == "code":
                assert cell.get("outputs", []) == [], f"{notebook.name}: outputs not stripped"
                assert cell.get("execution_count") is None, f"{notebook.name}: run counts kept"
