"""Validation: the published actuals, the out-of-sample and in-sample tables, loops, check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ningbo_sd.cli import main
from ningbo_sd.plan import actuals as actuals_module
from ningbo_sd.plan.actuals import ACTUALS_PATH, load_actuals
from ningbo_sd.plan.data import DataFileError
from ningbo_sd.validation import evidence, loops

# ---------------------------------------------------------------- the actuals file


def test_the_bundled_actuals_load_with_sources():
    actuals = load_actuals()
    assert len(actuals) >= 40
    years = set(actuals["year"])
    assert {2017, 2018, 2019, 2021, 2022, 2023, 2024} <= years  # 2016: none found (notes)
    assert actuals["id"].is_unique
    assert (actuals["quote"].str.len() > 0).all() and (actuals["publisher"].str.len() > 0).all()
    assert set(actuals["confidence"]) <= {"A", "B", "C"}


def _copy_with(tmp_path, row: int, column: str, value: str):
    frame = pd.read_csv(ACTUALS_PATH, dtype=str, keep_default_na=False)
    frame.loc[row, column] = value
    path = tmp_path / "actuals.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("column", "value", "allowed"),
    [
        ("measure", "levels", "level, change_pct"),
        ("value", "about 5", "a number"),
        ("value", "nan", "a number"),
        ("confidence", "D", "A, B or C"),
        ("published", "May 2021", "YYYY-MM-DD"),
        ("scope", "province", "above_scale"),
        ("year", "1990", "a year"),
        ("quote", "", "the text of the source"),
        ("url", "ftp://x", "http(s)"),
    ],
)
def test_a_bad_actual_names_file_row_column_and_what_is_allowed(tmp_path, column, value, allowed):
    path = _copy_with(tmp_path, 4, column, value)
    with pytest.raises(DataFileError) as error:
        load_actuals(path)
    text = str(error.value)
    assert "actuals.csv" in text and "data row 5" in text and f"'{column}'" in text
    assert allowed in text


def test_a_repeated_actual_id_is_refused(tmp_path):
    first = pd.read_csv(ACTUALS_PATH, dtype=str, keep_default_na=False).loc[0, "id"]
    path = _copy_with(tmp_path, 3, "id", first)
    with pytest.raises(DataFileError, match="repeats data row 1"):
        load_actuals(path)


# ---------------------------------------------------------------- calibration and actuals


def test_the_default_calibration_sees_only_the_actuals_of_2015_and_2020(tmp_path, monkeypatch):
    """Published values of 2016-2025 change --through fits, never the default fit.

    The default fits the plan's figures and the published figures of the window's ends (2015
    and 2020), except those its fixed cluster split cannot fit (no calibration fits them; the
    automobile cluster's share is a parameter, so its levels are fitted); the intermediate
    years stay out of sample.
    """
    from ningbo_sd.calibration.problem import load_problem

    frame = pd.read_csv(ACTUALS_PATH, dtype=str, keep_default_na=False)
    later = ~frame["year"].isin(["2015", "2020"])
    frame.loc[later, "value"] = [str(float(v) * 3 + 7) for v in frame.loc[later, "value"]]
    changed = tmp_path / "actuals.csv"
    frame.to_csv(changed, index=False)

    def problems():
        return load_problem(), load_problem(through=2018)

    before, before_through = problems()
    monkeypatch.setattr(actuals_module, "ACTUALS_PATH", changed)
    after, after_through = problems()
    assert [(t.id, t.value) for t in after.fitted] == [(t.id, t.value) for t in before.fitted]
    theta = before.default_unit
    np.testing.assert_array_equal(before.residuals(theta), after.residuals(theta))
    assert [t.value for t in after_through.fitted] != [t.value for t in before_through.fitted]
    published = set(frame["id"])
    fitted_published = {t.id: t.year for t in before.fitted if t.id in published}
    assert fitted_published == {"high_tech_firms_new_2015": 2015, "cluster_scale_2020__auto": 2020}
    statuses = {t.id: t.status for t in before.terms}
    assert statuses.get("cluster_scale_2020__appliances") is None  # not a term of the default
    # no calibration fits the output of a cluster whose share is fixed: fitting 2017's auto
    # output made the hindcast scale the whole economy up (gross output 2020 +37%); the
    # automobile share is a parameter now, so its levels are fitted, its one-year growth not
    through_terms = {t.id: t for t in before_through.terms}
    clusters = [t for t in through_terms.values() if t.indicator == "cluster_scale"]
    assert {"cluster_scale_2017__auto", "cluster_scale_change_2017__auto"} <= set(through_terms)
    fitted_clusters = {t.id for t in before_through.fitted} & {t.id for t in clusters}
    assert fitted_clusters == {"cluster_scale_2017__auto"}
    assert through_terms["cluster_scale_change_2017__auto"].status == "not fitted"
    assert all(t.status == "not fitted" for t in clusters if not t.id.endswith("__auto"))


# ---------------------------------------------------------------- out of sample, in sample


@pytest.fixture(scope="module")
def out_of_sample_section():
    return evidence.out_of_sample(n_samples=200)


def test_out_of_sample_compares_every_figure_it_can(out_of_sample_section):
    table = out_of_sample_section.table
    compared = table[table["status"] == "compared"]
    assert len(compared) >= 30
    assert compared["model"].notna().all() and (compared["q05"] <= compared["q95"]).all()
    level = compared[compared["measure"] == "level"]
    expected = 100 * (level["model"] - level["observed"]).abs() / level["observed"].abs()
    np.testing.assert_allclose(level["ape_pct"], expected)
    assert "MAPE on levels" in out_of_sample_section.summary
    gross_2021 = compared.set_index("id").loc["gross_output_2021"]
    assert gross_2021["observed"] == 22100 and 15000 < gross_2021["model"] < 22100
    # a published figure the default calibration fits is shown, not counted
    fitted = table.set_index("id").loc["high_tech_firms_new_2015"]
    assert fitted["status"] == "in sample" and "default calibration" in fitted["reason"]
    assert "high_tech_firms_new_2016" in set(compared["id"])


def test_errors_by_indicator_add_up_to_the_overall_figures(out_of_sample_section):
    table = out_of_sample_section.table
    compared = table[table["status"] == "compared"]
    rows = table[table["status"] == evidence.STATUS_BY_INDICATOR].set_index("indicator")
    assert set(rows.index) == set(compared["indicator"])
    for indicator, group in compared.groupby("indicator"):
        assert rows.loc[indicator, "n_figures"] == len(group)
        np.testing.assert_allclose(rows.loc[indicator, "ape_pct"], group["ape_pct"].mean())
    # the overall MAPE is the mean of the indicators' MAPEs weighted by their levels
    with_levels = rows[rows["n_levels"] > 0]
    weights = with_levels["n_levels"]
    overall = (with_levels["ape_pct"] * weights).sum() / weights.sum()
    np.testing.assert_allclose(overall, compared["ape_pct"].mean())
    assert "MAPE on levels by indicator: " in out_of_sample_section.summary


def test_indicator_errors_sort_by_mape_and_keep_growth_only_indicators_last():
    table = pd.DataFrame({
        "indicator": ["a", "a", "b", "c", "b", "d"],
        "status": ["compared", "compared", "compared", "compared", "secondary", "compared"],
        "ape_pct": [10.0, 20.0, 5.0, np.nan, 99.0, 1.0],
        "growth_error_pp": [np.nan, -4.0, np.nan, 2.0, np.nan, np.nan],
        "in_90p": [True, False, True, True, False, None],
    })  # fmt: skip
    errors = evidence.indicator_errors(table).set_index("indicator")
    assert list(errors.index) == ["d", "b", "a", "c"]
    assert errors.loc["a", "mape_pct"] == 15.0 and errors.loc["a", "growth_error_pp"] == 4.0
    assert errors.loc["b", "figures"] == 1 and errors.loc["b", "mape_pct"] == 5.0  # secondary out
    assert errors.loc["a", "cover90p"] == 0.5 and np.isnan(errors.loc["d", "cover90p"])
    assert errors.loc["c", "levels"] == 0 and np.isnan(errors.loc["c", "mape_pct"])


def test_the_mape_guard_fails_when_the_error_grows(tmp_path, monkeypatch):
    record = tmp_path / "validation_record.yaml"
    record.write_text("out_of_sample_mape_pct: 1.0\n", encoding="utf-8")
    monkeypatch.setattr(evidence, "RECORD_FILE", record)
    section = evidence.out_of_sample(n_samples=50)
    assert not section.passed
    guard = section.table.set_index("id").loc["mape_guard"]
    assert guard["status"] == "fail" and "against 1.00%" in guard["reason"]


def test_in_sample_separates_fits_from_replays():
    table = evidence.in_sample().table.set_index("id")
    assert table.loc["gross_output_2020", "status"] in ("fit", "miss")
    assert table.loc["rd_intensity_2020", "status"] == "replay"  # an input path
    assert table.loc["firms_2015", "status"] == "replay"  # the initial state
    fits = table[table["status"] == "fit"]
    assert ((fits["model"] - fits["observed"]).abs() <= fits["tolerance"]).all()


def test_in_sample_names_the_parameters_the_range_holds():
    from ningbo_sd.calibration.report import parameters_at_bound
    from ningbo_sd.resources import calibrated_file

    section = evidence.in_sample()
    rows = section.table[section.table["status"] == "at bound"]
    bounded = parameters_at_bound(calibrated_file())
    assert rows["id"].tolist() == ["parameter__" + name for name in bounded["parameter"]]
    if len(bounded):
        assert f"{len(bounded)} fitted parameters at a bound" in section.summary
    # the figures' counts are unchanged by the parameter rows
    assert (
        not rows["indicator"]
        .isin(section.table.loc[section.table["status"] == "fit", "indicator"])
        .any()
    )


# ---------------------------------------------------------------- loops and the command


def test_a_link_on_no_cycle_is_not_a_loop():
    assert loops.on_a_cycle("RD Spending")
    assert not loops.on_a_cycle("Investment Growth")  # a constant: nothing feeds it


def test_loops_file_errors_are_one_line(tmp_path):
    path = tmp_path / "loops.yaml"
    path.write_text("loops:\n  - {id: x, threshold_pct: -1}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"loop 1 \(x\): missing"):
        loops.load_loops(path)


def test_check_prints_json_and_fails_on_an_unexplained_dead_loop(tmp_path, monkeypatch):
    output = tmp_path / "check.json"
    assert main(["check", "-s", "loops", "-f", "json", "-o", str(output)]) == 0
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["passed"] and report["sections"][0]["name"] == "loops"
    for row in report["sections"][0]["rows"]:  # the share is the effect over the response
        r, effect = row["response_pct"] / 100, row["loop_effect_pct"]
        assert row["share_of_response_pct"] == pytest.approx(effect * (1 + r) / r, rel=1e-9)
    data = yaml.safe_load(loops.LOOPS_FILE.read_text(encoding="utf-8"))
    del data["loops"][1]["known_failure"]  # profit -> investment, inert today
    stripped = tmp_path / "loops.yaml"
    stripped.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(loops, "LOOPS_FILE", stripped)
    assert main(["check", "-s", "loops", "-o", str(tmp_path / "check.txt")]) == 1
    assert "FAIL (loops)" in (tmp_path / "check.txt").read_text(encoding="utf-8")


def test_record_without_the_hindcast_is_refused_before_any_work(capsys):
    from ningbo_sd.validation.evidence import RECORD_FILE

    before = RECORD_FILE.read_bytes()
    assert main(["check", "-s", "out_of_sample", "--record"]) == 2
    assert "--record: run the hindcast section too" in capsys.readouterr().err
    assert RECORD_FILE.read_bytes() == before  # the guard was not half recorded


def test_check_names_an_unknown_section(capsys):
    assert main(["check", "-s", "everything"]) == 2
    assert "allowed: out_of_sample" in capsys.readouterr().err


def test_scorecard_actuals_puts_the_published_outcome_beside_the_model(tmp_path):
    output = tmp_path / "card.csv"
    assert main(["scorecard", "plan_2025", "--actuals", "-f", "csv", "-o", str(output)]) == 0
    card = pd.read_csv(output).set_index("id")
    high_tech = card.loc["high_tech_firms_2025"]
    assert high_tech["published"] == 10000 and high_tech["met_in_fact"] == "met"
    # what the model said, beside what happened
    assert high_tech["met"] == ("met" if high_tech["simulated"] >= 6000 else "NOT MET")
    auto = card.loc["cluster_scale__auto"]
    assert auto["published"] == 4330 and auto["met_in_fact"] == "NOT MET"
    assert pd.isna(card.loc["rd_intensity_2025", "published"])  # nothing published yet


def test_a_calibration_through_2018_runs_everywhere_the_default_does(tmp_path):
    """--calibration: the CLI's run and the app's state start from the file given."""
    from ningbo_sd.app.state import AppState
    from ningbo_sd.validation.hindcast import HINDCAST_FILE

    default, through = tmp_path / "default.csv", tmp_path / "through.csv"
    assert main(["run", "-o", str(default)]) == 0
    assert main(["run", "--calibration", str(HINDCAST_FILE), "-o", str(through)]) == 0
    runs = pd.read_csv(default, index_col="year"), pd.read_csv(through, index_col="year")
    assert runs[0].loc[2020, "gross_output"] != runs[1].loc[2020, "gross_output"]
    state = AppState(calibrated=HINDCAST_FILE)
    assert state.results.loc[2020, "gross_output"] == pytest.approx(
        runs[1].loc[2020, "gross_output"]
    )
    assert main(["run", "--calibration", str(tmp_path / "missing.yaml")]) == 2


def test_an_ensemble_from_another_calibration_is_conditioned_on_what_it_fitted(tmp_path):
    """A calibration through 2018 fits 2016-2018 figures: its ensemble is weighted on those
    (not on the default's 2015-2020 figures, which made `mc --calibration` fail with weights
    of 1e20), and the out-of-sample check counts only the figures it did not fit."""
    from ningbo_sd.calibration.history import fitted_terms
    from ningbo_sd.calibration.problem import load_problem
    from ningbo_sd.validation.hindcast import HINDCAST_FILE, THROUGH

    through = {t.id for t in load_problem(through=THROUGH).terms if t.status == "fitted"}
    assert {t.id for t in fitted_terms(HINDCAST_FILE)} == through
    default = {t.id for t in load_problem().terms if t.status == "fitted"}
    assert {t.id for t in fitted_terms(None)} == default != through
    section = evidence.out_of_sample(calibrated=HINDCAST_FILE, n_samples=200)
    table = section.table.set_index("id")
    assert table.loc["gross_output_2017", "status"] == "in sample"  # the hindcast fits it
    assert HINDCAST_FILE.name in table.loc["gross_output_2017", "reason"]
    assert table.loc["gross_output_2021", "status"] == "compared"
    plan = evidence.in_sample(HINDCAST_FILE).table.set_index("id")
    assert plan.loc["gross_output_2020", "status"] == "not fitted"  # not a miss of this fit
    assert HINDCAST_FILE.name in plan.loc["gross_output_2020", "reason"]
    size = float(section.summary.split("effective sample size ")[1].split(";")[0].replace(",", ""))
    assert size > 50  # of 200: not one sample carrying all the weight
    output = tmp_path / "mc.parquet"
    args = ["mc", "baseline", "-n", "200", "--seed", "1", "-o", str(output)]
    assert main([*args, "--calibration", str(HINDCAST_FILE)]) == 0
    weights = pd.read_parquet(output, columns=["weight"])["weight"]
    assert weights.notna().all() and (weights > 0).sum() > 50
    # the app's ensemble from that calibration is conditioned the same way
    from ningbo_sd.app.uncertainty import prepare_ensemble

    history = prepare_ensemble("baseline", calibrated=HINDCAST_FILE).context.history
    assert {t.id for t in history.terms} == through
