"""Calibration: payoff, recovery on synthetic data, reproducibility, reports, bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ningbo_sd.calibration.fit import calibrate
from ningbo_sd.calibration.observations import (
    STATUS_FITTED,
    STATUS_NOT_MODELLED,
    ObservationMapError,
    ObservationTerm,
    actual_terms,
    build_terms,
    load_observation_map,
    measure_values,
    window_actual,
)
from ningbo_sd.calibration.posterior import (
    identifiability,
    read_draws,
    sample_posterior,
    strong_pairs,
)
from ningbo_sd.calibration.problem import load_problem
from ningbo_sd.calibration.report import (
    SIGNIFICANT_DIGITS,
    bound_side,
    fit_table,
    parameter_table,
    parameters_at_bound,
    write_outputs,
)
from ningbo_sd.cli import main
from ningbo_sd.plan.assumptions import AssumptionsError, calibration_candidates, load_assumptions
from ningbo_sd.plan.data import OBSERVATIONS_PATH, load_observations
from ningbo_sd.resources import calibrated_file, calibration_data_dir, calibration_dir

REPO = Path(__file__).resolve().parents[1]
CALIBRATED = calibrated_file()
POSTERIOR = calibration_dir() / "posterior.parquet"
#: Parameters the 2015-2020 data pin down well: the synthetic-recovery subset.
RECOVERABLE = [
    "Investment Growth 2016 2020",
    "VA Deflator Wedge",
    "Wage 2015",
    "Patent Yield",
    "Peer Certification Effect",
    "Firm Revenue Elasticity",
    "New Product Knowledge Elasticity",
]
SMALL_RUN = ["--starts", "1", "--draws", "200", "--walkers", "160", "--burn-in", "10"]


@pytest.fixture(scope="module")
def problem():
    """The full calibration problem (every calibrate=true parameter, bundled data)."""
    return load_problem()


@pytest.fixture(scope="module")
def point_fit(problem):
    """One least-squares start from the register defaults."""
    return calibrate(problem, n_starts=0, seed=1)


@pytest.fixture(scope="module")
def subset_problem():
    """A problem that fits only the well-identified subset."""
    return load_problem(parameters=RECOVERABLE)


# ---------------------------------------------------------------- measures and mapping


def _term(measure: str, year_start: int | None, year: int) -> ObservationTerm:
    return ObservationTerm(
        id="x",
        indicator="x",
        measure=measure,
        year_start=year_start,
        year=year,
        value=0.0,
        tolerance=1.0,
        unit="",
        basis="nominal",
        column="gross_output",
        scale=1.0,
        status=STATUS_FITTED,
        reason="",
    )


def test_measures_are_computed_from_the_annual_run_between_the_years():
    years = np.arange(2015, 2021)
    rng = np.random.default_rng(7)
    series = rng.uniform(50.0, 150.0, size=(3, years.size))
    first, last = series[:, 1], series[:, 5]  # 2016 and 2020
    np.testing.assert_allclose(measure_values(series, _term("level", None, 2020), years), last)
    np.testing.assert_allclose(
        measure_values(series, _term("change_pct", 2016, 2020), years), 100 * (last / first - 1)
    )
    np.testing.assert_allclose(
        measure_values(series, _term("change_pp", 2016, 2020), years), last - first
    )
    np.testing.assert_allclose(
        measure_values(series, _term("cagr_pct", 2016, 2020), years),
        100 * ((last / first) ** (1 / 4) - 1),
    )
    np.testing.assert_allclose(
        measure_values(series, _term("cumulative", 2016, 2020), years), series[:, 1:].sum(axis=1)
    )


def test_nominal_and_real_figures_map_to_different_columns(problem):
    by_id = {term.id: term for term in problem.terms}
    assert by_id["value_added_2020"].column == "value_added"
    assert by_id["value_added_real_cagr_2015_2020"].column == "value_added_real"
    real_cluster_growth = by_id["cluster246_value_added_growth_2020"]
    assert real_cluster_growth.basis == "real"
    assert real_cluster_growth.status == STATUS_NOT_MODELLED
    assert "current prices" in real_cluster_growth.reason


def default_fit_ids() -> list[str]:
    """The default calibration's terms: the plan's figures, then the window's published ones."""
    window = [term.id for term in actual_terms() if window_actual(term)]
    # of the 2020 cluster outputs only the automobile cluster's, whose share is a parameter
    assert window == ["high_tech_firms_new_2015", "cluster_scale_2020__auto"]
    return list(load_observations()["id"]) + window


def test_every_observation_gets_a_status_and_unmodelled_ones_a_reason(problem):
    assert [term.id for term in problem.terms] == default_fit_ids()
    for term in problem.terms:
        if term.status != STATUS_FITTED:
            assert term.reason, term.id
    before_start = [t for t in problem.terms if t.year_start is not None and t.year_start < 2015]
    assert before_start and all(t.status == STATUS_NOT_MODELLED for t in before_start)


def test_a_vector_spread_row_is_fitted_as_the_monte_carlo_draws_it(problem):
    """Relative Value Added Rate is calibrated as an exponent u on its vector (base ** u)."""
    from ningbo_sd.uncertainty.sampling import engine_columns

    name = "Relative Value Added Rate"
    entry = load_assumptions()[name]
    assert entry.spread and entry.calibrate and name in problem.names
    base = np.asarray(entry.value, dtype=float)
    np.testing.assert_allclose(entry.model_value(1.1), base**1.1)
    assert entry.range_value(entry.model_value(0.9)) == pytest.approx(0.9, rel=1e-12)
    theta = problem.from_unit(problem.default_unit)[None, :].copy()
    theta[0, problem.names.index(name)] = 1.1
    np.testing.assert_allclose(problem.parameter_table(theta)[name][0], base**1.1)
    elements = [str(i) for i in range(len(base))]
    frame = engine_columns(pd.DataFrame({name: [1.1]}), {name: (elements, tuple(base), "spread")})
    np.testing.assert_allclose(frame.iloc[0].to_numpy(), base**1.1)


def test_an_indicator_missing_from_the_map_is_named(tmp_path):
    mapping = yaml.safe_load((calibration_dir() / "observation_map.yaml").read_text("utf-8"))
    del mapping["indicators"]["firms"]
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ObservationMapError, match=r"map\.yaml.*'firms'"):
        build_terms(load_observations(), load_observation_map(path))


def test_an_indicator_wide_not_fitted_reason_covers_its_rows_unless_a_row_decides(tmp_path):
    mapping = yaml.safe_load((calibration_dir() / "observation_map.yaml").read_text("utf-8"))
    mapping["indicators"]["firms"]["not_fitted"] = "a test reason"
    mapping["rows"]["firms_2020"] = {"not_modelled": "the row's own decision"}
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    terms = {t.id: t for t in build_terms(load_observations(), load_observation_map(path))}
    firms = [t for t in terms.values() if t.indicator == "firms"]
    assert len(firms) >= 3
    assert terms["firms_2020"].status == STATUS_NOT_MODELLED
    assert terms["firms_2020"].reason == "the row's own decision"
    others = [t for t in firms if t.id != "firms_2020" and t.status != STATUS_NOT_MODELLED]
    assert others and all(t.status == "not fitted" and t.reason == "a test reason" for t in others)
    mapping["indicators"]["firms"]["not_fited"] = "typo"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ObservationMapError, match=r"indicators\.firms.*not_fited.*not_fitted"):
        load_observation_map(path)


@pytest.mark.parametrize(
    ("fitted", "expected"),
    [
        (
            {"autos": "Auto Value Added Share 2015"},
            r"fitted_clusters: autos is not a cluster.*auto",
        ),
        (["auto"], r"fitted_clusters: \['auto'\]; allowed: a mapping"),
    ],
)
def test_fitted_clusters_must_name_clusters_of_the_model(tmp_path, fitted, expected):
    """A misspelt cluster would exempt nothing, silently: it is refused with the allowed names."""
    from ningbo_sd.calibration.observations import ACTUALS_MAP

    mapping = yaml.safe_load(Path(ACTUALS_MAP).read_text("utf-8"))
    assert mapping["indicators"]["cluster_scale"]["fitted_clusters"] == {
        "auto": "Auto Value Added Share 2015"
    }
    mapping["indicators"]["cluster_scale"]["fitted_clusters"] = fitted
    path = tmp_path / "map.yaml"
    path.write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ObservationMapError, match=expected):
        load_observation_map(path)


# ---------------------------------------------------------------- fit and report


def test_fit_improves_on_the_register_defaults(problem, point_fit):
    start = problem.residuals(problem.default_unit[None, :])[0]
    assert point_fit.cost < 0.5 * float(np.sum(start**2))
    assert np.all(point_fit.theta >= problem.lower) and np.all(point_fit.theta <= problem.upper)


def test_fit_table_covers_every_observation(point_fit):
    table = fit_table(point_fit)
    observations = load_observations()
    assert list(table["id"]) == default_fit_ids()
    plan = table.iloc[: len(observations)]
    np.testing.assert_array_equal(plan["observed"], observations["value"])
    computed = table["simulated"].notna()
    assert set(table.loc[computed, "within"]) <= {"within", "outside"}
    assert (table.loc[~computed, "within"] == "").all()
    inside = (table["simulated"] - table["observed"]).abs() <= table["tolerance"]
    assert ((table["within"] == "within") == (inside & computed)).all()


def test_residuals_are_scaled_by_the_tolerance(problem, point_fit):
    table = fit_table(point_fit).set_index("id")
    term = problem.fitted[0]
    row = table.loc[term.id]
    assert row["residual"] == pytest.approx((row["simulated"] - term.value) / term.tolerance)
    assert point_fit.residuals[0] == pytest.approx(row["residual"])


# ---------------------------------------------------------------- synthetic recovery


def test_known_parameters_are_recovered_within_their_intervals(subset_problem):
    rng = np.random.default_rng(20240611)
    truth_unit = rng.uniform(0.25, 0.75, subset_problem.n_parameters)
    truth = subset_problem.from_unit(truth_unit)
    clean = subset_problem.simulate(truth[None, :])[0]
    fitted_index = [subset_problem.computable.index(t) for t in subset_problem.fitted]
    noise = rng.standard_normal(len(fitted_index)) * subset_problem.tolerance
    synthetic = subset_problem.with_observed(clean[fitted_index] + noise)
    fit = calibrate(synthetic, n_starts=3, seed=5)
    low, high = fit.interval(0.99)
    for name, value, lo, hi in zip(synthetic.names, truth, low, high, strict=True):
        assert lo <= value <= hi, f"{name}: true {value:.6g} outside [{lo:.6g}, {hi:.6g}]"
    prior_sd = np.array([p.prior_sd for p in synthetic.parameters])
    assert np.all(fit.sd < prior_sd)  # the data, not the prior, set these intervals
    posterior = sample_posterior(fit, n_draws=2000, walkers=32, burn_in=100, thin=2, seed=9)
    ident = identifiability(posterior)
    for name, value in zip(synthetic.names, truth, strict=True):
        draws = posterior.draws[name]
        lo, hi = np.quantile(draws, [0.001, 0.999])
        assert lo <= value <= hi, f"{name}: true {value:.6g} outside posterior [{lo}, {hi}]"
    assert set(ident["verdict"]) == {"constrained"}


# ---------------------------------------------------------------- reproducibility


def test_seeded_calibrations_reproduce_exactly(subset_problem):
    first = calibrate(subset_problem, n_starts=2, seed=11)
    second = calibrate(subset_problem, n_starts=2, seed=11)
    np.testing.assert_array_equal(first.theta, second.theta)
    np.testing.assert_array_equal(
        np.array([s.start for s in first.starts]), np.array([s.start for s in second.starts])
    )
    other = calibrate(subset_problem, n_starts=2, seed=12)
    assert not np.array_equal(
        np.array([s.start for s in first.starts]), np.array([s.start for s in other.starts])
    )
    draws = [
        sample_posterior(first, n_draws=300, walkers=16, burn_in=5, thin=1, seed=s).draws
        for s in (3, 3, 4)
    ]
    pd.testing.assert_frame_equal(draws[0], draws[1])
    assert not draws[0].equals(draws[2])


# ---------------------------------------------------------------- identifiability


def test_identifiability_flags_parameters_the_data_do_not_reach(problem, point_fit):
    posterior = sample_posterior(point_fit, n_draws=1500, walkers=160, burn_in=600, thin=1, seed=2)
    ident = identifiability(posterior)
    # Land does not bind in 2015-2020, so the control line's share reaches the fitted figures
    # only where a draw makes land tight. A chain this short shrinks every sd somewhat, so
    # compare it with a parameter the data reach; the verdict itself is read from the
    # committed 20,000-draw report.
    assert ident.loc["Patent Yield", "verdict"] == "constrained"
    ratio_of = ident["sd_ratio"]
    assert ratio_of["Industrial Land Control Share"] > 2 * ratio_of["Patent Yield"]
    report = json.loads((calibration_dir() / "calibration_report.json").read_text(encoding="utf-8"))
    verdicts = {row["parameter"]: row["verdict"] for row in report["parameters"]}
    assert verdicts["Industrial Land Control Share"] != "constrained"
    assert verdicts["Patent Yield"] == "constrained"
    ratio = ident["posterior_sd"] / ident["prior_sd"]
    np.testing.assert_allclose(ident["sd_ratio"], ratio)
    pairs = strong_pairs(posterior.draws[problem.names].corr(), threshold=0.5)
    assert (pairs["correlation"].abs() >= 0.5).all()


# ---------------------------------------------------------------- the command


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_calibrate_command_writes_yaml_json_csv_and_draws(tmp_path, capsys):
    output = tmp_path / "out" / "calibrated.yaml"
    assert main(["calibrate", "--output", str(output), *SMALL_RUN]) == 0
    folder = output.parent
    assert _files(folder) == {
        "calibrated.yaml",
        "calibration_report.json",
        "calibration_report.csv",
        "posterior.parquet",
    }
    calibrated = yaml.safe_load(output.read_text(encoding="utf-8"))
    candidates = calibration_candidates(load_assumptions())
    assert list(calibrated["parameters"]) == [a.name for a in candidates]
    report = json.loads((folder / "calibration_report.json").read_text(encoding="utf-8"))
    assert len(report["fit_table"]) == len(default_fit_ids())
    assert (
        report["summary"]["fitted"]
        == report["summary"]["fitted_within"] + report["summary"]["fitted_outside"]
    )
    csv = pd.read_csv(folder / "calibration_report.csv")
    assert list(csv["id"]) == default_fit_ids()
    draws = read_draws(folder / "posterior.parquet")
    assert len(draws) == 200 and set(calibrated["parameters"]) <= set(draws.columns)
    assert "wrote calibrated" in capsys.readouterr().out


def test_runs_start_from_the_calibrated_file(tmp_path, point_fit):
    from ningbo_sd.scenarios.run import base_parameters, run_scenario

    written = write_outputs(point_fit, None, tmp_path / "calibrated.yaml", {"seed": 1})
    params = base_parameters(written["calibrated"])
    assert list(params) == point_fit.problem.names
    run = run_scenario(calibrated=written["calibrated"])
    table = fit_table(point_fit).set_index("id")
    assert run.loc[2020, "gross_output"] == pytest.approx(
        table.loc["gross_output_2020", "simulated"], rel=1e-5
    )
    default_run = run_scenario(calibrated=None)
    assert default_run.loc[2020, "gross_output"] != pytest.approx(
        run.loc[2020, "gross_output"], rel=1e-6
    )


def _broken_copy(tmp_path: Path, edit) -> Path:
    frame = pd.read_csv(OBSERVATIONS_PATH, dtype=str, keep_default_na=False)
    frame = edit(frame)
    path = tmp_path / "observations.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda f: f.drop(columns=["tolerance"]), r"header.*column 'tolerance'.*missing"),
        (
            lambda f: f.assign(indicator=f["indicator"].where(f.index != 3, "gdp_per_unicorn")),
            r"data row 4 \(CSV line 5\), column 'indicator'.*gdp_per_unicorn",
        ),
        (
            lambda f: f.assign(value=f["value"].where(f.index != 6, "lots")),
            r"data row 7 \(CSV line 8\), column 'value'.*'lots'",
        ),
    ],
    ids=["missing-column", "unknown-indicator", "wrong-type"],
)
def test_bad_observation_files_get_one_clear_line(tmp_path, capsys, edit, expected):
    path = _broken_copy(tmp_path, edit)
    output = tmp_path / "out" / "calibrated.yaml"
    code = main(["calibrate", "--observations", str(path), "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err
    assert not list(tmp_path.glob("out/*"))
    assert re.search(expected, err), err


def test_bad_assumptions_register_names_line_and_column(tmp_path, capsys):
    text = (calibration_data_dir() / "assumptions.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    fields = lines[2].split(",")
    fields[2] = "low-ish"  # column 'low' of the second data row (line 3)
    lines[2] = ",".join(fields)
    path = tmp_path / "assumptions.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(AssumptionsError, match=r"line 3 .*column 'low'.*'low-ish'"):
        load_assumptions(path)
    code = main(["calibrate", "--assumptions", str(path), "--output", str(tmp_path / "c.yaml")])
    assert code == 2
    assert "column 'low'" in capsys.readouterr().err
    assert not (tmp_path / "c.yaml").exists()


def test_bad_settings_are_refused(tmp_path, capsys):
    code = main(["calibrate", "--thin", "0", "--output", str(tmp_path / "c.yaml")])
    assert code == 2
    assert "--thin 0" in capsys.readouterr().err


# ---------------------------------------------------------------- committed results


def test_committed_calibration_matches_the_register():
    if not CALIBRATED.is_file():
        pytest.skip("calibration/calibrated.yaml not written yet")
    document = yaml.safe_load(CALIBRATED.read_text(encoding="utf-8"))
    register = load_assumptions()
    candidates = [a.name for a in calibration_candidates(register)]
    assert list(document["parameters"]) == candidates
    for name, value in document["parameters"].items():
        entry = register[name]
        if entry.scaled:  # a vector row holds base ** u (or u * base), each element rounded
            factor = entry.range_value(value)
            rounding = 10.0 ** (1 - SIGNIFICANT_DIGITS)  # what u recovered from them can carry
            assert entry.low - rounding <= factor <= entry.high + rounding, name
            np.testing.assert_allclose(entry.model_value(factor), value, rtol=rounding)
        else:
            assert entry.low <= value <= entry.high, name
    draws = read_draws(POSTERIOR)
    assert len(draws) <= 5000
    for name in candidates:
        assert draws[name].between(register[name].low, register[name].high).all(), name
        assert math.isfinite(draws[name].std())


def test_parameter_table_reports_intervals_around_the_fit(point_fit):
    table = parameter_table(point_fit)
    assert (table["laplace_q025"] <= table["calibrated"]).all()
    assert (table["calibrated"] <= table["laplace_q975"]).all()
    assert (table["laplace_sd"] > 0).all()


@pytest.mark.parametrize(
    ("value", "low", "high", "side"),
    [
        (0.35, 0.35, 0.45, "lower"),
        (1.2, 0.8, 1.2, "upper"),
        (1e-30, 0.0, 0.01, "lower"),
        (0.35005, 0.35, 0.45, "lower"),  # within a thousandth of the width
        (0.3511, 0.35, 0.45, ""),
        (0.4, 0.35, 0.45, ""),
        (5.0, 5.0, 5.0, ""),  # no range: nothing to sit at
    ],
)
def test_a_parameter_at_an_end_of_its_range_is_named(value, low, high, side):
    assert bound_side(value, low, high) == side


def test_parameters_at_bound_are_read_from_the_report_beside_the_calibration(tmp_path, point_fit):
    assert parameters_at_bound(tmp_path / "calibrated.yaml").empty  # no report: none
    write_outputs(point_fit, None, tmp_path / "calibrated.yaml", {"seed": 1})
    table = parameter_table(point_fit)
    expected = table.index[table["at_bound"] != ""].tolist()
    bounded = parameters_at_bound(tmp_path / "calibrated.yaml")
    assert bounded["parameter"].tolist() == expected
    report = json.loads((tmp_path / "calibration_report.json").read_text(encoding="utf-8"))
    assert report["summary"]["at_bound"] == expected
    for row in bounded.itertuples():
        end = row.low if row.side == "lower" else row.high
        assert abs(row.calibrated - end) <= 1e-3 * (row.high - row.low)


def test_outputs_are_not_left_half_written(tmp_path, point_fit):
    bad = tmp_path / "calibrated.txt"
    with pytest.raises(ValueError, match="yaml"):
        write_outputs(point_fit, None, bad, {})
    assert list(tmp_path.iterdir()) == []


def test_a_register_row_with_a_stray_comma_is_refused(tmp_path):
    """csv.DictReader would spill the extra field into a None key and carry on."""
    text = (calibration_data_dir() / "assumptions.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    lines[3] = lines[3] + ",stray"
    path = tmp_path / "assumptions.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(AssumptionsError, match=r"line 4 .*11 fields; allowed: 10"):
        load_assumptions(path)


def test_a_policy_lever_is_never_calibrated():
    """A lever is a scenario's choice: the register cannot mark it calibrate = true."""
    import dataclasses

    from ningbo_sd.calibration.problem import parameter_specs

    register = load_assumptions()
    assert not register["New Construction Land"].calibrate
    marked = dict(register)
    marked["New Construction Land"] = dataclasses.replace(
        register["New Construction Land"], calibrate=True
    )
    with pytest.raises(ValueError, match=r"\['New Construction Land'\] are policy levers"):
        parameter_specs(marked)
    assert "New Construction Land" not in [spec.name for spec in parameter_specs(register)]


@pytest.mark.parametrize("name", ["Price Inflation Future", "Initial Energy Intensity"])
def test_a_calibrated_row_no_fitted_figure_depends_on_is_refused(tmp_path, capsys, name):
    """A rate that acts after the window, or a level every fitted figure cancels, is refused.

    Its posterior could only echo its prior, and the sampler's noise in it reached the
    probability of doubling (issue 18): the Monte Carlo draws such a row from its range.
    """
    text = (calibration_data_dir() / "assumptions.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    line = next(i for i, row in enumerate(lines) if row.startswith(f"{name},"))
    fields = lines[line].split(",")
    assert fields[7] == "false"
    fields[7] = "true"
    lines[line] = ",".join(fields)
    path = tmp_path / "assumptions.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "c.yaml"
    code = main(["calibrate", "--assumptions", str(path), "--output", str(output)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"line {line + 1} ({name})" in err and "calibrate false" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not output.exists()
