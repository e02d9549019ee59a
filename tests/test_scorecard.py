"""The scorecard: every row computed from the run, checked by hand, shared with batches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from ningbo_sd.cli import main
from ningbo_sd.model.outputs import output_columns
from ningbo_sd.plan.data import load_targets
from ningbo_sd.scenarios.run import run_batch, run_scenario
from ningbo_sd.scenarios.schema import parse_scenario
from ningbo_sd.scenarios.scorecard import (
    TARGETS_MAPPING_FILE,
    TargetMappingError,
    load_target_specs,
    results_dataset,
    scorecard,
    scorecard_outcomes,
    target_met,
)

# A scenario that moves every lever away from the baseline, so that every computed row
# must differ between the two runs.
CONTRAST = {
    "title": {"en": "Contrast", "zh": "对照"},
    "description": {"en": "Every lever moved", "zh": "所有政策变量均调整"},
    "levers": {
        "investment_growth": {"2021-2025": 0.12, "2026-2035": 0.08},
        "rd_intensity": {"2021-2025": {"value": 0.03, "shape": "ramp"}, "2026-2035": 0.04},
        "tech_upgrade_share": {"2021-2025": 0.6, "2026-2035": 0.6},
        "labour_growth": {"2021-2025": 0.01, "2026-2035": 0.005},
        "industrial_land_share": {"2021-2025": 0.5, "2026-2035": 0.5},
        "land_revitalisation": {"2021-2025": 9, "2026-2035": 9},
        "energy_quota_growth": {"2021-2025": 0.0, "2026-2035": 0.0},
        "intensity_reduction_effort": {"2021-2025": 0.02, "2026-2035": 0.02},
        "cluster_priority_weight": {
            "petrochem": 0.5, "auto": 1.6, "equipment": 1.7, "new_materials": 0.9,
            "electronics": 2.0, "software": 2.5, "basic_parts": 1.4, "appliances": 1.3,
            "textiles": 0.4, "biomedicine": 2.2, "stationery_sports": 0.5, "green_tech": 1.8,
            "other": 0.5,
        },
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return run_scenario("baseline")


@pytest.fixture(scope="module")
def contrast() -> pd.DataFrame:
    return run_scenario(parse_scenario(CONTRAST, source="contrast"))


@pytest.fixture(scope="module")
def card(baseline) -> pd.DataFrame:
    return scorecard(baseline).set_index("id")


def test_the_scorecard_lists_the_plan_targets_the_brief_names():
    targets = load_targets().set_index("id")
    mapped = {spec.id for spec in load_target_specs()}
    required = set(targets.index[targets["source"].eq("表3-1")]) | set(
        targets.index[targets["modelled"]]
    )
    required |= {"gross_output_2035", "industrial_land_area_2025", "tax_per_mu_2025"}
    required |= {"va_per_mu_2025"} | {i for i in targets.index if i.startswith("cluster_scale__")}
    assert required - mapped == set()


def test_every_modelled_row_reads_an_existing_headline_column():
    columns = {column.name for column in output_columns()}
    targets = load_targets().set_index("id")
    for spec in load_target_specs():
        if spec.modelled:
            assert spec.column in columns, spec.id
            basis = targets.at[spec.id, "basis"]
            if basis == "nominal":  # nominal targets never read a real (2020-price) column
                assert not spec.column.endswith("_real"), spec.id
        else:
            assert spec.reading.startswith("not computable from the run"), spec.id
        assert spec.reading and spec.label_en and spec.label_zh


def test_scorecard_has_one_row_per_target_with_the_required_columns(card):
    specs = load_target_specs()
    assert list(card.index) == [spec.id for spec in specs]
    for column in ("label_en", "label_zh", "simulated", "target", "op", "unit", "met", "reading"):
        assert column in card.columns
    assert str(card["met"].dtype) == "boolean"
    unmodelled = card[~card["modelled"]]
    assert unmodelled["met"].isna().all() and unmodelled["simulated"].isna().all()
    modelled = card[card["modelled"]]
    assert modelled["simulated"].notna().all() and modelled["met"].notna().all()


def test_rows_match_hand_computations(baseline, card):
    b = baseline
    hand = {
        "rd_intensity_2025": b.at[2025, "rd_intensity"],
        "value_added_cagr_2021_2025": 100 * ((b.at[2025, "value_added"] / b.at[2020, "value_added"])
                                             ** (1 / 5) - 1),
        "gross_output_2035": 100 * (b.at[2035, "gross_output"] / b.at[2020, "gross_output"] - 1),
        "energy_intensity_2021_2025": 100 * (b.at[2025, "energy_intensity"]
                                             / b.at[2020, "energy_intensity"] - 1),
        "effective_patents_increase_2021_2025": b.at[2025, "effective_patents"]
        - b.at[2020, "effective_patents"],
        "cluster_scale__auto": b.at[2025, "gross_output_auto"],
        "industrial_land_area_2025": b.at[2025, "industrial_land"],
        "software_revenue_cagr_2021_2025": 100 * ((b.at[2025, "gross_output_software"]
                                                   / b.at[2020, "gross_output_software"])
                                                  ** (1 / 5) - 1),
        "industrial_land_share_of_construction_land_2025": b.at[2025, "industrial_land_share"],
        "land_revitalised_2021_2025": b.loc[2021:2025, "land_revitalised"].sum(),
    }  # fmt: skip
    for target_id, value in hand.items():
        assert card.at[target_id, "simulated"] == pytest.approx(value, rel=1e-12), target_id
    tolerances = {spec.id: spec.tolerance for spec in load_target_specs()}
    for target_id, row in card[card["modelled"]].iterrows():
        if row["op"] == "~":  # "about": within the registry's tolerance
            expected = abs(row["simulated"] - row["target"]) <= tolerances[target_id]
        elif row["op"] == ">=":
            expected = row["simulated"] >= row["target"]
        else:
            expected = row["simulated"] <= row["target"]
        assert bool(row["met"]) == expected, target_id


def test_every_modelled_row_is_computed_from_the_run(baseline, card):
    for spec in load_target_specs():
        if not spec.modelled:
            continue
        perturbed = baseline.copy()
        perturbed.loc[spec.year, spec.column] *= 1.37
        changed = scorecard(perturbed).set_index("id").at[spec.id, "simulated"]
        assert changed != pytest.approx(card.at[spec.id, "simulated"], rel=1e-9), spec.id


def test_no_row_is_the_same_in_two_different_scenarios_unless_na(card, contrast):
    other = scorecard(contrast).set_index("id")
    for target_id, row in card.iterrows():
        if row["modelled"]:
            assert other.at[target_id, "simulated"] != pytest.approx(row["simulated"], rel=1e-9), (
                target_id
            )
        else:
            assert pd.isna(other.at[target_id, "simulated"]) and pd.isna(row["simulated"])


def test_batch_outcomes_equal_single_run_scorecards():
    growth = np.array([0.02, 0.09, 0.16])
    samples = pd.DataFrame({"Investment Growth 2021 2025": growth})
    outcomes = scorecard_outcomes(run_batch(samples, scenario="plan_2025"))
    assert outcomes["value"].dims == ("sample", "target")
    for i, value in enumerate(growth):
        single = run_scenario("plan_2025", overrides={"Investment Growth 2021 2025": value})
        card = scorecard(single)
        np.testing.assert_allclose(
            outcomes["value"].isel(sample=i).to_numpy(), card["simulated"].to_numpy(),
            rtol=1e-9, equal_nan=True,
        )  # fmt: skip
        met = card["met"].astype("float").to_numpy()
        np.testing.assert_array_equal(outcomes["met"].isel(sample=i).to_numpy(), met)
    investment = outcomes["value"].sel(target="industrial_investment_cagr_2021_2025").to_numpy()
    assert np.all(np.diff(investment) > 0)
    probability = outcomes["met"].mean("sample")
    assert probability.sel(target="informatization_index_2025").isnull()


def test_outcomes_accept_a_time_dimension_and_a_single_run(baseline):
    dataset = results_dataset(baseline).rename(year="time")
    dataset = dataset.assign_coords(time=dataset["time"].astype(float))
    outcome = scorecard_outcomes(dataset)
    expected = scorecard(baseline)["simulated"].to_numpy()
    np.testing.assert_allclose(outcome["value"].isel(sample=0), expected, equal_nan=True)
    with pytest.raises(TypeError, match=r"xarray\.Dataset"):
        scorecard_outcomes(baseline)
    with pytest.raises(KeyError, match="lack the column 'gross_output'"):
        scorecard_outcomes(results_dataset(baseline).drop_vars("gross_output"))


def test_target_without_a_number_uses_the_assumption_or_the_scenario_value(baseline, card):
    row = card.loc["energy_intensity_2021_2025"]
    assert row["op"] == "<=" and row["target"] == pytest.approx(-13.5)
    assert "assumption" in row["reading"]
    strict = scorecard(baseline, assumed={"energy_intensity_2021_2025": -60}).set_index("id")
    assert strict.at["energy_intensity_2021_2025", "target"] == -60
    assert not strict.at["energy_intensity_2021_2025", "met"]
    with pytest.raises(TargetMappingError, match=r"rd_intensity_2025.*energy_intensity_2021_2025"):
        scorecard(baseline, assumed={"rd_intensity_2025": 3})


def test_target_met_handles_ops_and_missing_values():
    values = np.array([1.0, 2.0, np.nan])
    np.testing.assert_array_equal(target_met(values, ">=", 2), [0, 1, np.nan])
    np.testing.assert_array_equal(target_met(values, "<=", 1), [1, 0, np.nan])
    np.testing.assert_array_equal(target_met(values, "~", 1.5, 0.5), [1, 1, np.nan])
    assert np.isnan(target_met(values, "done", np.nan)).all()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"no_such_target": {"column": "gross_output"}}, "no_such_target: not an id"),
        ({"rd_intensity_2025": {"column": "rd_intensity", "colour": 1}}, "colour: unknown field"),
        ({"rd_intensity_2025": {"note": "x"}}, "give `column`"),
        ({"energy_intensity_2021_2025": {"column": "energy_intensity"}}, "add `assumed`"),
        (
            {"rd_intensity_2025": {"column": "rd_intensity", "assumed": {"op": ">=", "value": 1}}},
            "only for targets without a number",
        ),
    ],
)
def test_mapping_errors_name_the_file_and_target(tmp_path, entry, message):
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(entry), encoding="utf-8")
    with pytest.raises(TargetMappingError, match=message) as caught:
        load_target_specs(path)
    assert str(path) in str(caught.value)


def test_the_mapping_file_is_the_default():
    assert TARGETS_MAPPING_FILE.name == "targets.yaml" and TARGETS_MAPPING_FILE.is_file()


def test_cli_scorecard_formats(tmp_path, capsys):
    assert main(["scorecard", "plan_2025", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"] == "plan_2025"
    rows = {row["id"]: row for row in data["targets"]}
    assert len(rows) == len(load_target_specs())
    assert rows["informatization_index_2025"]["met"] is None
    assert rows["rd_intensity_2025"]["met"] is True
    output = tmp_path / "card.csv"
    assert main(["scorecard", "plan_2025", "--format", "csv", "--output", str(output)]) == 0
    frame = pd.read_csv(output)
    assert set(frame["met"].dropna()) <= {"met", "NOT MET"} and len(frame) == len(rows)
    assert [p.name for p in tmp_path.iterdir()] == ["card.csv"]  # no temporary left behind
    assert main(["scorecard", "plan_2025"]) == 0
    table = capsys.readouterr().out
    assert "NOT MET" in table and " met" in table and "n/a" in table
    assert "gross_output_2035" in table


def test_dataset_round_trip_keeps_years(baseline):
    dataset = results_dataset(baseline)
    assert isinstance(dataset, xr.Dataset)
    assert list(dataset["year"].to_numpy()) == list(range(2015, 2036))
    assert "binding_constraint" not in dataset  # text columns are left out
