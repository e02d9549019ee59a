"""Global sensitivity: the SALib wrapper against analytic truth, and runs on the model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from ningbo_sd.cli import main
from ningbo_sd.uncertainty.sampling import transform
from ningbo_sd.uncertainty.sensitivity import (
    INDEX_COLUMNS,
    analyse,
    design,
    run_sensitivity,
    salib_problem,
    write_indices,
)
from ningbo_sd.uncertainty.spec import ResolvedSpec, UncertainParameter


def uniform_spec(*ranges) -> ResolvedSpec:
    return ResolvedSpec(
        tuple(
            UncertainParameter(name, "uniform", {"low": low, "high": high})
            for name, (low, high) in zip("abc", ranges, strict=False)
        )
    )


def indices(frame: pd.DataFrame, output: str, index: str) -> pd.Series:
    rows = frame[(frame["output"] == output) & (frame["index"] == index)]
    return rows.set_index("parameter")["value"]


def evaluate(spec: ResolvedSpec, method: str, n: int, function) -> tuple[dict, pd.DataFrame]:
    problem = salib_problem(spec)
    unit = design(method, problem, n, seed=1)
    values = transform(spec, unit)
    outputs = pd.DataFrame({"y": function(values["a"], values["b"], values["c"])})
    return problem, analyse(method, problem, unit, outputs, seed=2)


def test_sobol_indices_of_an_additive_function_are_its_variance_shares():
    spec = uniform_spec((0, 1), (0, 1), (0, 1))
    _, frame = evaluate(spec, "sobol", 4096, lambda a, b, c: a + 2 * b + 3 * c)
    truth = np.array([1, 4, 9]) / 14
    np.testing.assert_allclose(indices(frame, "y", "S1")[list("abc")], truth, atol=0.04)
    np.testing.assert_allclose(indices(frame, "y", "ST")[list("abc")], truth, atol=0.04)
    conf = frame[frame["index"] == "S1"]["conf"]
    assert (conf > 0).all() and (conf < 0.1).all()
    assert list(frame.columns) == list(INDEX_COLUMNS)


def test_sobol_separates_first_order_and_total_effects_of_an_interaction():
    spec = uniform_spec((0, 1), (0, 1), (0, 1))
    _, frame = evaluate(spec, "sobol", 4096, lambda a, b, c: a * b + 0 * c)
    # Var(ab) = 7/144, Var(E[ab|a]) = 1/48: S1 = 3/7 and ST = 4/7 for a and b; c has none.
    first, total = indices(frame, "y", "S1"), indices(frame, "y", "ST")
    np.testing.assert_allclose(first[["a", "b"]], [3 / 7, 3 / 7], atol=0.05)
    np.testing.assert_allclose(total[["a", "b"]], [4 / 7, 4 / 7], atol=0.05)
    assert abs(first["c"]) < 0.01 and abs(total["c"]) < 0.01


def test_morris_effects_of_a_linear_function_are_slope_times_range():
    spec = uniform_spec((0, 2), (1, 3), (-1, 1))
    _, frame = evaluate(spec, "morris", 20, lambda a, b, c: a + 2 * b - 3 * c)
    # per unit of the probability scale: slope x range
    np.testing.assert_allclose(indices(frame, "y", "mu_star")[list("abc")], [2, 4, 6], rtol=1e-9)
    np.testing.assert_allclose(indices(frame, "y", "mu")[list("abc")], [2, 4, -6], rtol=1e-9)
    np.testing.assert_allclose(indices(frame, "y", "sigma"), 0, atol=1e-9)


def test_a_constant_output_gets_a_note_not_a_warning():
    spec = uniform_spec((0, 1), (0, 1))
    problem = salib_problem(spec)
    unit = design("sobol", problem, 64, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = analyse("sobol", problem, unit, pd.DataFrame({"flat": np.ones(len(unit))}))
    assert frame["value"].isna().all()
    assert frame["note"].str.startswith("constant (1)").all()


@pytest.mark.parametrize(
    ("method", "n", "message"),
    [
        ("sobol", 1000, "power of 2"),
        ("sobol", 1, "power of 2"),
        ("morris", 1, "at least 2"),
        ("fast", 64, "--method 'fast' is not one of sobol, morris"),
    ],
)
def test_bad_designs_are_refused(method, n, message):
    problem = salib_problem(uniform_spec((0, 1), (0, 1)))
    with pytest.raises(ValueError, match=message):
        design(method, problem, n, seed=0)


def test_an_empty_specification_is_refused():
    with pytest.raises(ValueError, match="no uncertain parameters"):
        salib_problem(ResolvedSpec((), source="spec.yaml"))


# not calibrated, so sampled from the register whether or not a posterior exists
PARAMETERS = ["Price Inflation Future", "Construction Delay", "Land Intensity Decline"]


@pytest.fixture(scope="module")
def model_sobol():
    return run_sensitivity("baseline", "sobol", 16, seed=3, parameters=PARAMETERS)


def test_sobol_on_the_model_gives_a_tidy_table_for_each_output(model_sobol):
    frame = model_sobol.to_frame()
    assert model_sobol.n_runs == 16 * (len(PARAMETERS) + 2)
    assert list(frame.columns) == list(INDEX_COLUMNS)
    outputs = ["gross_output_2035", "gross_output_ratio_2035_2020", "gross_output_2035:met"]
    assert list(frame["output"].unique()) == outputs
    assert set(frame["parameter"]) == set(PARAMETERS)
    assert set(frame["index"]) == {"S1", "ST"}
    assert len(frame) == len(outputs) * len(PARAMETERS) * 2
    continuous = frame[frame["output"] != "gross_output_2035:met"]
    assert np.isfinite(continuous["value"]).all()
    met = model_sobol.outputs["gross_output_2035:met"]
    assert set(met.unique()) <= {0.0, 1.0}
    ratio = model_sobol.outputs["gross_output_ratio_2035_2020"]
    np.testing.assert_array_equal(met, (ratio >= 2).astype(float))
    assert "Sobol sensitivity of baseline" in model_sobol.report()


def test_sensitivity_does_not_depend_on_chunking(model_sobol):
    again = run_sensitivity("baseline", "sobol", 16, seed=3, parameters=PARAMETERS, chunk_size=7)
    pd.testing.assert_frame_equal(again.outputs, model_sobol.outputs)
    pd.testing.assert_frame_equal(again.indices, model_sobol.indices)


def test_unknown_parameters_and_targets_are_refused():
    with pytest.raises(KeyError, match="Knowlege Elasticity"):
        run_sensitivity("baseline", "morris", 2, parameters=["Knowlege Elasticity"])
    with pytest.raises(ValueError, match="not modelled scorecard targets"):
        run_sensitivity("baseline", "morris", 2, parameters=PARAMETERS, targets=("moon_2035",))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_indices_are_written_in_the_format_of_the_suffix(tmp_path, model_sobol, suffix):
    path = write_indices(model_sobol.indices, tmp_path / f"indices{suffix}")
    if suffix == ".csv":
        back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    elif suffix == ".parquet":
        back = pd.read_parquet(path)
    else:
        back = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    assert list(back.columns) == list(INDEX_COLUMNS)
    np.testing.assert_allclose(
        back["value"].astype(float),
        model_sobol.indices["value"],
        rtol=1e-12,
        atol=1e-14,  # JSON keeps 15 decimals
        equal_nan=True,
    )
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_bad_suffix_is_refused_and_nothing_is_written(tmp_path, model_sobol):
    with pytest.raises(ValueError, match=r"must end in \.csv, \.parquet, \.json"):
        write_indices(model_sobol.indices, tmp_path / "indices.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_cli_morris_writes_the_indices(tmp_path, capsys):
    output = tmp_path / "morris.csv"
    arguments = ["sensitivity", "baseline", "--method", "morris", "-n", "4", "-o", str(output)]
    assert main([*arguments, "--parameters", ",".join(PARAMETERS)]) == 0
    frame = pd.read_csv(output)
    assert set(frame["index"]) == {"mu", "mu_star", "sigma"}
    assert "Morris sensitivity of baseline" in capsys.readouterr().out
    bad = tmp_path / "sobol.csv"
    assert main(["sensitivity", "baseline", "--method", "sobol", "-n", "100", "-o", str(bad)]) == 2
    assert "power of 2" in capsys.readouterr().err
    assert not bad.exists()


def test_the_default_seed_0_gives_the_same_indices_and_confidence_intervals(tmp_path):
    """SALib's Sobol analysis takes a seed of 0 for no seed; the bootstrap gets seed + 1."""
    outputs = []
    for run in ("first", "second"):
        output = tmp_path / f"{run}.csv"
        args = ["sensitivity", "baseline", "-n", "16", "--parameters", ",".join(PARAMETERS)]
        assert main([*args, "-o", str(output)]) == 0
        outputs.append(pd.read_csv(output))
    first, second = outputs
    assert first["conf"].notna().any() and (first["conf"] > 0).any()
    pd.testing.assert_frame_equal(first, second)
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "second.csv").read_bytes()


def test_the_bootstrap_seed_is_the_users_seed_plus_one():
    spec = uniform_spec((0, 1), (0, 1), (0, 1))
    problem = salib_problem(spec)
    unit = design("sobol", problem, 64, seed=0)
    values = transform(spec, unit)
    outputs = pd.DataFrame({"y": values["a"] + 2 * values["b"] * values["c"]})
    seed0 = analyse("sobol", problem, unit, outputs, seed=0)
    again = analyse("sobol", problem, unit, outputs, seed=0)
    pd.testing.assert_frame_equal(seed0, again)
    from SALib.analyze import sobol

    direct = sobol.analyze(
        problem, outputs["y"].to_numpy(), calc_second_order=False, num_resamples=100, seed=1
    )
    s1_conf = seed0[seed0["index"] == "S1"]["conf"].to_numpy()
    np.testing.assert_allclose(s1_conf, direct["S1_conf"])
