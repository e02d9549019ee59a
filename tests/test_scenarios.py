"""Bundled scenarios validate and run; every schema error names file, field and what is allowed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from ningbo_sd.cli import main
from ningbo_sd.scenarios.levers import load_levers
from ningbo_sd.scenarios.run import resolve_parameters, run_raw, run_scenario
from ningbo_sd.scenarios.schema import (
    ScenarioError,
    bundled_scenarios,
    dump_scenario,
    load_scenario,
    parse_scenario,
    scenario_parameters,
)

REQUIRED_SCENARIOS = {
    "baseline",
    "plan_2025",
    "double_2035",
    "energy_tight",
    "land_tight",
    "rd_push",
}
HEADER = {"title": {"en": "Test", "zh": "测试"}, "description": {"en": "A test", "zh": "测试用"}}


@pytest.fixture(scope="module")
def runs() -> dict[str, pd.DataFrame]:
    """Each bundled scenario run once (the batch engine's single-run path)."""
    return {name: run_scenario(name) for name in bundled_scenarios()}


def write_scenario(tmp_path, data, name: str = "scenario.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_the_required_scenarios_are_bundled():
    assert REQUIRED_SCENARIOS <= set(bundled_scenarios())
    assert "levers" not in bundled_scenarios() and "targets" not in bundled_scenarios()


@pytest.mark.parametrize("name", sorted(REQUIRED_SCENARIOS))
def test_bundled_scenario_validates_with_both_languages(name):
    scenario = load_scenario(name)
    for text in (scenario.title, scenario.description):
        assert text.en.strip() and text.zh.strip()
        assert any("\u4e00" <= char <= "\u9fff" for char in text.zh)
    assert scenario.levers, f"{name} sets no lever"
    params = scenario_parameters(scenario)
    levers = load_levers()
    for lever_id, setting in scenario.levers.items():
        lever = levers[lever_id]
        if lever.kind == "path":
            for period in setting:
                assert lever.constant_name(period) in params


@pytest.mark.parametrize("name", sorted(REQUIRED_SCENARIOS))
def test_bundled_scenario_runs_and_keeps_the_2015_2020_history(name, runs):
    frame = runs[name]
    assert list(frame.index) == list(range(2015, 2036))
    numeric = frame.select_dtypes("number")
    assert np.isfinite(numeric.to_numpy()).all()
    assert (numeric.drop(columns=[c for c in numeric if "growth" in c]) >= 0).all().all()
    # scenarios act from 2021: the calibration window is the same in all of them
    history = runs["baseline"].loc[2015:2020]
    pd.testing.assert_frame_equal(frame.loc[2015:2020], history, rtol=1e-10)


def test_scenarios_do_what_their_titles_say(runs):
    plan, base = runs["plan_2025"], runs["baseline"]
    assert plan.at[2025, "rd_intensity"] == pytest.approx(2.5)
    assert runs["rd_push"].at[2025, "rd_intensity"] >= 3.0
    tight = runs["energy_tight"]
    assert tight.at[2035, "energy_quota"] == pytest.approx(tight.at[2021, "energy_quota"], rel=0.01)
    assert (tight["energy_use"] <= tight["energy_quota"] * (1 + 1e-9)).all()
    # the frozen quota presses energy intensity down faster than under the plan
    assert tight.at[2035, "energy_intensity"] < plan.at[2035, "energy_intensity"]
    assert runs["land_tight"].at[2035, "industrial_land"] < plan.at[2035, "industrial_land"] - 50
    double = runs["double_2035"]
    assert double.at[2035, "gross_output"] >= 2 * double.at[2020, "gross_output"]
    plan_growth = plan.at[2025, "industrial_investment"] / plan.at[2020, "industrial_investment"]
    base_growth = base.at[2025, "industrial_investment"] / base.at[2020, "industrial_investment"]
    assert plan_growth > base_growth


@pytest.mark.parametrize("name", sorted(REQUIRED_SCENARIOS))
def test_dump_round_trips(name):
    scenario = load_scenario(name)
    again = parse_scenario(yaml.safe_load(dump_scenario(scenario)), source="dumped")
    first, second = scenario_parameters(scenario), scenario_parameters(again)
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert again.title == scenario.title and again.targets == scenario.targets


def test_a_scenario_target_for_a_target_without_a_number_is_kept(tmp_path):
    path = write_scenario(tmp_path, {**HEADER, "targets": {"energy_intensity_2021_2025": -16}})
    assert load_scenario(path).targets == {"energy_intensity_2021_2025": -16.0}


def test_resolve_parameters_uses_the_scenario_values():
    params = resolve_parameters("plan_2025", calibrated=None)
    assert params["Investment Growth 2021 2025"] == pytest.approx(0.13)
    assert params["RD Intensity Shape 2021 2025"] == 1.0  # ramp


@pytest.mark.parametrize("name", ["baseline", "energy_tight", "land_tight"])
def test_headline_frame_reads_each_column_from_its_variable(name):
    from ningbo_sd.model.outputs import (
        binding_label,
        headline_frame,
        output_columns,
        required_variables,
    )

    raw = run_raw(resolve_parameters(name), columns=required_variables())
    table = headline_frame(raw)
    assert table.index.tolist() == list(range(2015, 2036))
    years = np.arange(2015, 2036)
    for column in output_columns():  # reference: one column at a time, straight from raw
        # a flow over year Y is read at mid-year, a year-end stock on the next 1 January
        at = years + (1.0 if column.timing == "stock" else 0.5)
        values = raw[column.variable].loc[at].to_numpy(dtype=float)
        if column.name == "binding_constraint":
            assert table[column.name].tolist() == [binding_label(v) for v in values]
        else:
            np.testing.assert_array_equal(table[column.name].to_numpy(), values * column.scale)
    with pytest.raises(KeyError, match="lack the variables"):
        headline_frame(raw.drop(columns=raw.columns[0]))


LEVER = {"investment_growth": {"2021-2025": 0.1}}
CASES = [
    # (levers or whole-data change, expected fragments of the message)
    ({"levers": {"invest": 0.1}}, ["levers.invest", "unknown lever", "investment_growth"]),
    (
        {"levers": {"investment_growth": {"2021-2025": 0.9}}},
        ["levers.investment_growth.2021-2025", "0.9", "[-0.3, 0.5]"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2025": True}}},
        ["levers.investment_growth.2021-2025", "true", "expected a number in [-0.3, 0.5]"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2025": "13%"}}},
        ["levers.investment_growth.2021-2025", "'13%' (text)", "expected a number"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2030": 0.1}}},
        ["levers.investment_growth.2021-2030", "overlaps 2021-2025 and 2026-2035", "allowed"],
    ),
    (
        {"levers": {"investment_growth": {"2024-2027": 0.1}}},
        ["levers.investment_growth.2024-2027", "overlaps", "2021-2025, 2026-2035"],
    ),
    (
        {"levers": {"investment_growth": {"2036-2040": 0.1}}},
        ["2036-2040", "outside the scenario years", "2021-2025, 2026-2035"],
    ),
    (
        {"levers": {"investment_growth": {"2025-2021": 0.1}}},
        ["2025-2021", "ends before it starts"],
    ),
    (
        {"levers": {"investment_growth": {"soon": 0.1}}},
        ["investment_growth.soon", "unknown period"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2025": {"value": 0.1, "shape": "linear"}}}},
        ["investment_growth.2021-2025.shape", "'linear'", "step, ramp"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2025": {"valu": 0.1}}}},
        ["investment_growth.2021-2025.valu", "unknown field", "value, shape"],
    ),
    (
        {"levers": {"investment_growth": {"2021-2025": {"shape": "ramp"}}}},
        ["investment_growth.2021-2025.value", "missing"],
    ),
    (
        {"levers": {"investment_growth": [0.1, 0.2]}},
        ["levers.investment_growth", "a list of 2", "mapping of periods"],
    ),
    (
        {"levers": {"new_construction_land": {"2021-2025": 10}}},
        ["levers.new_construction_land", "one number in [0, 50]", "no periods"],
    ),
    (
        {"levers": {"cluster_priority_weight": {"cars": 2}}},
        ["cluster_priority_weight.cars", "unknown cluster", "auto"],
    ),
    (
        {"levers": {"cluster_priority_weight": {"auto": 9}}},
        ["cluster_priority_weight.auto", "9", "[0, 5]"],
    ),
    ({"levers": LEVER, "extra": 1}, ["extra", "unknown field", "title, description, levers"]),
    ({"title": "Test"}, ["title", "'Test' (text)", "'en' and 'zh'"]),
    ({"title": {"en": "Test", "zh": ""}}, ["title.zh", "non-empty text"]),
    ({"parameters": {"Gross Output": 1}}, ["parameters.Gross Output", "not a constant"]),
    ({"parameters": {"Capital Elasticity": 2}}, ["parameters.Capital Elasticity", "[0.1, 0.8]"]),
    (
        {"parameters": {"Relative Energy Intensity": [1, 2]}},
        ["parameters.Relative Energy Intensity", "expected 13 value(s)", "got 2"],
    ),
    (
        {"targets": {"rd_intensity_2025": 3}},
        ["targets.rd_intensity_2025", "without a number", "energy_intensity_2021_2025"],
    ),
    ({"targets": {"energy_intensity_2021_2025": "less"}}, ["targets.energy", "'less' (text)"]),
]


@pytest.mark.parametrize(("change", "fragments"), CASES, ids=[c[1][0] for c in CASES])
def test_schema_errors_name_file_field_and_what_is_allowed(tmp_path, change, fragments):
    data = {**HEADER, "levers": LEVER, **change}
    path = write_scenario(tmp_path, data, "bad.yaml")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_title_is_reported(tmp_path):
    path = write_scenario(tmp_path, {"description": HEADER["description"]})
    with pytest.raises(ScenarioError, match=r"title: missing"):
        load_scenario(path)


def test_not_a_finite_number(tmp_path):
    path = tmp_path / "nan.yaml"
    path.write_text(
        "title: {en: a, zh: 中}\ndescription: {en: a, zh: 中}\n"
        "levers: {investment_growth: {'2021-2025': .nan}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match=r"investment_growth\.2021-2025: expected a number"):
        load_scenario(path)


def test_a_key_written_twice_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(
        "title: {en: a, zh: 中}\ndescription: {en: a, zh: 中}\nlevers:\n"
        "  investment_growth: {'2021-2025': 0.1}\n  investment_growth: {'2021-2025': 0.2}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match=r"twice.yaml: malformed YAML at line 5.*appears twice"):
        load_scenario(path)


def test_malformed_yaml_and_missing_or_binary_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("title: [unclosed\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken.yaml: malformed YAML at line \d+"):
        load_scenario(broken)
    with pytest.raises(ScenarioError, match=r"nothere.yaml: scenario file not found.*baseline"):
        load_scenario(tmp_path / "nothere.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00title")
    with pytest.raises(ScenarioError, match=r"binary.yaml: not a UTF-8 text file"):
        load_scenario(binary)
    with pytest.raises(ScenarioError, match=r"expected a mapping"):
        parse_scenario(["not", "a", "mapping"], source="list")


def test_cli_reports_a_bad_scenario_in_one_line(tmp_path, capsys):
    path = write_scenario(tmp_path, {**HEADER, "levers": {"rd_intensity": {"2021-2030": 0.03}}})
    assert main(["scorecard", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "levers.rd_intensity.2021-2030" in err and "overlaps" in err
