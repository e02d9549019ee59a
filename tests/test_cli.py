"""The command-line tool end to end: outputs, columns, and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from external import SUITE, needs

from ningbo_sd.cli import main
from ningbo_sd.model.outputs import CLUSTERS

REQUIRED = [
    "year",
    "gross_output",
    "value_added",
    "value_added_real",
    "industrial_investment",
    "capital_stock",
    "rd_intensity",
    "effective_patents",
    "high_tech_firms",
    "industrial_land",
    "energy_use",
    "energy_quota",
    "binding_constraint",
] + [f"gross_output_{cluster}" for cluster in CLUSTERS]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def baseline_csv(tmp_path_factory) -> pd.DataFrame:
    output = tmp_path_factory.mktemp("cli") / "results.csv"
    assert main(["run", "baseline", "--output", str(output)]) == 0
    return pd.read_csv(output)


def test_run_writes_one_row_per_year_with_the_required_columns(baseline_csv):
    assert list(baseline_csv["year"]) == list(range(2015, 2036))
    assert [c for c in REQUIRED if c not in baseline_csv.columns] == []
    assert set(baseline_csv["binding_constraint"]) <= {"capital", "land", "energy"}
    clusters = baseline_csv[[f"gross_output_{c}" for c in CLUSTERS]].sum(axis=1)
    pd.testing.assert_series_equal(clusters, baseline_csv["gross_output"], check_names=False)


def test_scenario_override_changes_the_result(tmp_path, baseline_csv):
    scenario = write(
        tmp_path / "push.yaml",
        "title: {en: Push, zh: 推进}\ndescription: {en: More R&D, zh: 更多研发}\n"
        "levers:\n  rd_intensity:\n    '2021-2025': {value: 0.04, shape: ramp}\n",
    )
    output = tmp_path / "push.csv"
    assert main(["run", str(scenario), "--output", str(output)]) == 0
    pushed = pd.read_csv(output)
    assert pushed.loc[pushed.year == 2025, "rd_intensity"].item() == pytest.approx(4.0)
    assert (
        pushed.loc[pushed.year == 2035, "effective_patents"].item()
        > baseline_csv.loc[baseline_csv.year == 2035, "effective_patents"].item()
    )


@needs("suite")
def test_any_model_all_variables(tmp_path):
    model = SUITE / "subscript_2d_arrays" / "test_subscript_2d_arrays.mdl"
    output = tmp_path / "out.csv"
    assert main(["run", "--model", str(model), "--all", "--output", str(output)]) == 0
    frame = pd.read_csv(output)
    assert frame.columns[0] == "time"
    assert "Stock A[Entry 1,Column 1]" in frame.columns


BAD_INPUTS = {
    "unknown_lever": (
        "title: {en: a, zh: b}\ndescription: {en: a, zh: b}\nlevers: {warp_drive: 1}\n",
        "levers.warp_drive: unknown lever; allowed:",
    ),
    "out_of_range": (
        "title: {en: a, zh: b}\ndescription: {en: a, zh: b}\n"
        "levers: {investment_growth: {'2021-2025': 0.9}}\n",
        "levers.investment_growth.2021-2025: value 0.9 is outside the allowed range [-0.3, 0.5]",
    ),
    "wrong_type": (
        "title: {en: a, zh: b}\ndescription: {en: a, zh: b}\n"
        "levers: {investment_growth: {'2021-2025': fast}}\n",
        "levers.investment_growth.2021-2025",
    ),
    "malformed_yaml": ("title: [unclosed\n", "malformed YAML at line"),
    "unknown_period": (
        "title: {en: a, zh: b}\ndescription: {en: a, zh: b}\n"
        "levers: {investment_growth: {'2021-2030': 0.1}}\n",
        "allowed: 2021-2025, 2026-2035",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_scenario_exits_2_with_one_line_and_no_output(tmp_path, capsys, case):
    text, expected = BAD_INPUTS[case]
    scenario = write(tmp_path / f"{case}.yaml", text)
    output = tmp_path / "out.csv"
    assert main(["run", str(scenario), "--output", str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert str(scenario) in error and expected in error
    assert list(tmp_path.iterdir()) == [scenario]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "model file not found"), ("{UTF-8}\nx = INTEG(((\n~ ~ |\n", "cannot")],
)
def test_bad_model_exits_2(tmp_path, capsys, content, expected):
    model = tmp_path / "model.mdl"
    if content is not None:
        write(model, content)
    output = tmp_path / "out.csv"
    assert main(["run", "--model", str(model), "--all", "--output", str(output)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "model.mdl" in error and expected in error
    assert not output.exists()


def test_console_script_exit_code(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ningbo_sd.cli import main as m; sys.exit(m())",
            "run",
            "nonexistent",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and "scenario file not found" in completed.stderr
