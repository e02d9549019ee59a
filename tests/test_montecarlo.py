"""Monte Carlo: sampling, uncertainty specifications, chunked runs, output and the CLI."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
from SALib.sample import latin
from scipy import stats

from ningbo_sd.cli import main
from ningbo_sd.uncertainty import montecarlo
from ningbo_sd.uncertainty.noise import is_noise_column, noise_columns
from ningbo_sd.uncertainty.results import read_results
from ningbo_sd.uncertainty.sampling import (
    BLOCK_SIZE,
    POSTERIOR_COLUMN,
    engine_columns,
    latin_unit,
    sample_table,
    unit_rows,
)
from ningbo_sd.uncertainty.spec import (
    SPEC_FILE,
    ResolvedSpec,
    UncertainParameter,
    UncertaintySpecError,
    load_spec,
    resolve_spec,
)

PINNED_SEED = 20240601


def four_parameters() -> ResolvedSpec:
    """One parameter of each ppf distribution (names are real model constants)."""
    return ResolvedSpec(
        (
            UncertainParameter("Depreciation Rate", "uniform", {"low": 0.05, "high": 0.1}),
            UncertainParameter(
                "Knowledge Elasticity", "triangular", {"low": 0.1, "mode": 0.3, "high": 0.45}
            ),
            UncertainParameter(
                "Price Inflation Future",
                "normal",
                {"mean": 0.015, "sd": 0.005, "low": 0.0, "high": 0.03},
            ),
            UncertainParameter("Construction Delay", "lognormal", {"median": 1.5, "sigma": 0.3}),
        )
    )


# ---------------------------------------------------------------- designs


@pytest.mark.parametrize("seed", [0, 7, np.random.SeedSequence(PINNED_SEED, spawn_key=(3,))])
def test_latin_unit_is_salibs_latin_hypercube(seed):
    problem = {"num_vars": 4, "names": list("abcd"), "bounds": [[0.0, 1.0]] * 4}
    expected = latin.sample(problem, 50, seed=seed)
    np.testing.assert_array_equal(latin_unit(50, 4, np.random.default_rng(seed)), expected)
    block = unit_rows(4, 50, PINNED_SEED, 0, 50)  # block 0 of a seed: SeedSequence(seed, (0,))
    salib_block = latin.sample(
        problem, 50, seed=np.random.SeedSequence(PINNED_SEED, spawn_key=(0,))
    )
    np.testing.assert_array_equal(block, salib_block)


def test_latin_unit_puts_one_sample_in_each_stratum():
    design = latin_unit(64, 3, np.random.default_rng(1))
    strata = np.sort(np.floor(design * 64).astype(int), axis=0)
    np.testing.assert_array_equal(strata, np.repeat(np.arange(64)[:, None], 3, axis=1))


@pytest.mark.parametrize("design", ["lhs", "random"])
def test_rows_do_not_depend_on_how_the_range_is_cut(design):
    n = 2 * BLOCK_SIZE + 123
    whole = unit_rows(3, n, 5, 0, n, design)
    cuts = [0, 17, BLOCK_SIZE - 1, BLOCK_SIZE + 400, 2 * BLOCK_SIZE + 1, n]
    pieces = [unit_rows(3, n, 5, lo, hi, design) for lo, hi in itertools.pairwise(cuts)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert not np.array_equal(unit_rows(3, n, 6, 0, 10, design), whole[:10])


def test_pinned_sample_table_for_a_seed():
    table = sample_table(four_parameters(), 10, PINNED_SEED)
    assert list(table.index) == list(range(10))
    pinned = [
        [0.08114567351785618, 0.2984471970972723, 0.01941512581788745, 1.0795757376728778],
        [0.06541148564824414, 0.19229878008837126, 0.01052242092181813, 2.12901205961988],
        [0.06245751604272523, 0.4167134918642158, 0.01602963931077938, 1.624106211245938],
    ]
    np.testing.assert_allclose(table.iloc[[0, 4, 9]].to_numpy(), pinned, rtol=1e-13)
    random = sample_table(four_parameters(), 10, PINNED_SEED, design="random")
    np.testing.assert_allclose(
        random.iloc[[0, 9]].to_numpy(),
        [
            [0.08579935468564226, 0.18674493206664555, 0.02248021160071301, 2.2544299063841144],
            [0.08734916945364382, 0.34473881893719655, 0.02202443536856177, 1.5442698927428529],
        ],
        rtol=1e-13,
    )


def test_uniform_mean_and_quantiles_are_right_within_sampling_error():
    spec = ResolvedSpec(
        (UncertainParameter("Depreciation Rate", "uniform", {"low": 2, "high": 5}),)
    )
    n = 200_000
    values = sample_table(spec, n, 3, design="random")["Depreciation Rate"].to_numpy()
    assert values.min() >= 2 and values.max() < 5
    assert abs(values.mean() - 3.5) < 4 * 3 / np.sqrt(12 * n)
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        standard_error = np.sqrt(q * (1 - q) / n) * 3  # density 1/3
        assert abs(np.quantile(values, q) - (2 + 3 * q)) < 4 * standard_error
    lhs = sample_table(spec, n, 3)["Depreciation Rate"].to_numpy()
    assert abs(lhs.mean() - 3.5) < 3 / np.sqrt(12 * n) / 10  # stratification: far tighter


def test_each_distribution_follows_its_scipy_law():
    table = sample_table(four_parameters(), 20_000, 4, design="random")
    laws = {
        "Depreciation Rate": stats.uniform(0.05, 0.05),
        "Knowledge Elasticity": stats.triang((0.3 - 0.1) / 0.35, loc=0.1, scale=0.35),
        "Price Inflation Future": stats.truncnorm(-3, 3, loc=0.015, scale=0.005),
        "Construction Delay": stats.lognorm(0.3, scale=1.5),
    }
    for name, law in laws.items():
        assert stats.kstest(table[name], law.cdf).pvalue > 1e-3, name
    assert table["Price Inflation Future"].between(0.0, 0.03).all()


# ---------------------------------------------------------------- specifications


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_posterior_rows_are_drawn_jointly_and_evenly(tmp_path):
    draws = pd.DataFrame(
        {
            "Depreciation Rate": [0.06, 0.07, 0.08, 0.09],
            "Knowledge Elasticity": [0.2, 0.25, 0.3, 0.35],
            "log_probability": [-1.0, -2.0, -1.5, -1.2],
        }
    )
    draws.to_csv(tmp_path / "posterior.csv", index=False)
    spec_file = write(
        tmp_path / "spec.yaml",
        "assumptions: {include: false}\nposterior: {path: posterior.csv, use: always}\n",
    )
    constants = {"Depreciation Rate": 0.07, "Knowledge Elasticity": 0.3}
    spec = resolve_spec(load_spec(spec_file), constants)
    assert [p.distribution for p in spec.parameters] == ["posterior", "posterior"]
    table = sample_table(spec, 40, 9)
    rows = table[POSTERIOR_COLUMN].to_numpy()
    np.testing.assert_array_equal(np.bincount(rows, minlength=4), [10, 10, 10, 10])
    expected = draws.iloc[rows][["Depreciation Rate", "Knowledge Elasticity"]].to_numpy()
    np.testing.assert_array_equal(table[["Depreciation Rate", "Knowledge Elasticity"]], expected)
    assert "log_probability" not in engine_columns(table, {}).columns
    assert POSTERIOR_COLUMN not in engine_columns(table, {}).columns


def test_vector_factor_scales_the_whole_vector():
    table = pd.DataFrame({"Relative Energy Intensity": [0.5, 2.0]})
    vectors = {"Relative Energy Intensity": (("a", "b"), (3.0, 0.25), "scale")}
    columns = engine_columns(table, vectors)
    assert list(columns.columns) == ["Relative Energy Intensity[a]", "Relative Energy Intensity[b]"]
    np.testing.assert_array_equal(columns.to_numpy(), [[1.5, 0.125], [6.0, 0.5]])


def test_vector_spread_raises_every_element_to_the_factor():
    """A spread changes the differences between elements; a common factor would cancel."""
    table = pd.DataFrame({"Relative Energy Intensity": [0.5, 2.0]})
    vectors = {"Relative Energy Intensity": (("a", "b"), (4.0, 0.25), "spread")}
    columns = engine_columns(table, vectors).to_numpy()
    np.testing.assert_array_equal(columns, [[2.0, 0.5], [16.0, 0.0625]])
    ratios = columns[:, 0] / columns[:, 1]
    assert ratios[0] != ratios[1]  # the relative pattern moves, so normalising cannot undo it


BAD_SPECS = [
    (
        "parameters:\n  Depreciation Rate: {distribution: beta, low: 0, high: 1, source: x}\n",
        ["parameters.Depreciation Rate.distribution", "'uniform'", "'posterior'", "'beta'"],
    ),
    (
        "parameters:\n  Depreciation Rate: {distribution: uniform, low: 0.1, source: x}\n",
        ["parameters.Depreciation Rate", "missing ['high']"],
    ),
    (
        "parameters:\n  Depreciation Rate:\n"
        "    {distribution: uniform, low: 0.2, high: 0.1, source: x}\n",
        ["parameters.Depreciation Rate", "low (0.2) must be below high (0.1)"],
    ),
    (
        "parameters:\n  Depreciation Rate:\n    {distribution: triangular, low: 0, mode: 2, "
        "high: 1, source: x}\n",
        ["parameters.Depreciation Rate", "mode (2) must lie in [low, high]"],
    ),
    (
        "parameters:\n  Depreciation Rate: {distribution: normal, mean: 0, sd: -1, source: x}\n",
        ["parameters.Depreciation Rate", "sd must be positive"],
    ),
    (
        "parameters:\n  Depreciation Rate: {distribution: uniform, low: 0, high: 1}\n",
        ["parameters.Depreciation Rate.source", "Field required"],
    ),
    (
        "parameters:\n  Depreciation Rate:\n    {distribution: uniform, low: 0, high: 1, "
        "mean: 3, source: x}\n",
        ["parameters.Depreciation Rate", "remove ['mean']"],
    ),
    ("colour: blue\n", ["colour", "Extra inputs are not permitted"]),
    ("assumptions: {categories: [guess]}\n", ["assumptions.categories.0", "'definition'"]),
    ("posterior: {use: sometimes}\n", ["posterior.use", "'auto'", "'always'", "'never'"]),
    ("- a\n- b\n", ["must be a mapping"]),
    ("parameters: [\n", ["malformed YAML at line"]),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_SPECS)
def test_bad_spec_files_name_the_file_the_field_and_what_is_allowed(tmp_path, text, fragments):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(UncertaintySpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, message


def test_spec_that_names_no_model_constant_or_the_wrong_shape_is_refused(tmp_path):
    constants = {"Depreciation Rate": 0.07, "Relative Energy Intensity": np.ones(13)}
    unknown = write(
        tmp_path / "a.yaml",
        "assumptions: {include: false}\nposterior: {use: never}\nparameters:\n"
        "  Depreciaton Rate: {distribution: uniform, low: 0, high: 1, source: x}\n",
    )
    with pytest.raises(UncertaintySpecError, match=r"'Depreciaton Rate' is not a constant.*"
                       r"close matches: \['Depreciation Rate'\]"):  # fmt: skip
        resolve_spec(load_spec(unknown), constants)
    vector = write(
        tmp_path / "b.yaml",
        "assumptions: {include: false}\nposterior: {use: never}\nparameters:\n"
        "  Relative Energy Intensity: {distribution: uniform, low: 0.9, high: 1.1, source: x}\n",
    )
    with pytest.raises(UncertaintySpecError, match="scale_vector must be true"):
        resolve_spec(load_spec(vector), constants)
    posterior = write(
        tmp_path / "c.yaml",
        "assumptions: {include: false}\nposterior: {path: none.parquet, use: always}\n",
    )
    with pytest.raises(UncertaintySpecError, match=r"posterior\.path: 'none\.parquet' not found"):
        resolve_spec(load_spec(posterior), constants)
    with pytest.raises(UncertaintySpecError, match=r"x\.yaml: uncertainty specification not found"):
        load_spec(tmp_path / "x.yaml")


@pytest.fixture(scope="module")
def constants():
    from ningbo_sd.scenarios.run import compiled_model

    return compiled_model().constants


def test_default_spec_samples_every_uncertain_register_row_but_the_levers(constants):
    from ningbo_sd.plan.assumptions import load_assumptions

    spec = load_spec(SPEC_FILE)
    spec.posterior.use = "never"  # the register alone (the posterior may not exist yet)
    levers = {"New Construction Land", "Cluster Priority Weight"}
    resolved = resolve_spec(spec, constants, set(), levers)
    register = load_assumptions()
    expected = [
        row.name
        for row in register.values()
        if row.distribution != "fixed"
        and row.high > row.low
        and row.category in ("plan", "derived", "assumption")
        and row.name not in levers
    ]
    assert resolved.names == expected
    assert resolved.held == ("New Construction Land",)
    for parameter in resolved.parameters:
        row = register[parameter.name]
        assert parameter.settings == {"low": row.low, "high": row.high}
        assert parameter.scale_vector == row.distribution.startswith("vector_")
        assert parameter.spread_vector == (row.distribution == "vector_spread")
        assert parameter.source == row.source
    held = resolve_spec(spec, constants, {"Depreciation Rate"}, levers)
    assert "Depreciation Rate" not in held.names and "Depreciation Rate" in held.held


# ---------------------------------------------------------------- ensembles on the model

N_SAMPLES = 240
SEED = 11


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mc")
    whole = montecarlo.run_monte_carlo(
        "baseline", N_SAMPLES, SEED, output=folder / "whole.parquet", chunk_size=N_SAMPLES
    )
    chunked = montecarlo.run_monte_carlo(
        "baseline", N_SAMPLES, SEED, output=folder / "chunked.parquet", chunk_size=57
    )
    return folder, whole, chunked


def test_same_seed_gives_identical_outputs_whatever_the_chunk_size(ensemble):
    folder, whole, chunked = ensemble
    a = pd.read_parquet(folder / "whole.parquet")
    b = pd.read_parquet(folder / "chunked.parquet")
    assert len(a) == N_SAMPLES and list(a["sample"]) == list(range(N_SAMPLES))
    pd.testing.assert_frame_equal(a, b)
    for table in ("quantiles", "probabilities", "binding"):  # to the last bit
        pd.testing.assert_frame_equal(
            getattr(whole, table), getattr(chunked, table), check_exact=True
        )


def test_chunks_in_flight_do_not_change_the_results(ensemble, tmp_path, monkeypatch):
    """In-process chunks overlap (two in flight); one at a time gives the same file."""
    folder, _, _ = ensemble
    monkeypatch.setattr(montecarlo, "LOCAL_IN_FLIGHT", 1)
    montecarlo.run_monte_carlo(
        "baseline", N_SAMPLES, SEED, output=tmp_path / "serial.parquet", chunk_size=57
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "serial.parquet"), pd.read_parquet(folder / "chunked.parquet")
    )


def test_the_file_holds_the_seeds_sample_table_and_its_description(ensemble):
    folder, _, _ = ensemble
    results = read_results(folder / "whole.parquet")
    spec = montecarlo.prepare("baseline").spec
    expected = sample_table(spec, N_SAMPLES, SEED)
    # the process-noise paths are redrawn from the seed, not stored
    noise = [c for c in expected.columns if is_noise_column(c, spec.noise)]
    assert len(noise) == 3 * 15  # three channels, knots 2021-2035
    expected = expected.drop(columns=noise)
    pd.testing.assert_frame_equal(results.samples, expected, check_names=False)
    assert results.metadata["seed"] == SEED and results.metadata["n_samples"] == N_SAMPLES
    assert [p["name"] for p in results.metadata["parameters"]] == spec.names
    other = sample_table(spec, N_SAMPLES, SEED + 1).drop(columns=noise)
    assert not np.allclose(other.to_numpy(), expected.to_numpy())


def test_a_row_equals_a_single_run_with_its_parameters(ensemble):
    from ningbo_sd.scenarios.run import run_scenario

    folder, _, _ = ensemble
    results = read_results(folder / "whole.parquet")
    prepared = montecarlo.prepare("baseline")
    row = 37
    overrides = {}
    for name, value in results.samples.iloc[row].items():
        if name in prepared.context.vectors:
            _, base, mode = prepared.context.vectors[name]
            base = np.asarray(base)
            overrides[name] = base**value if mode == "spread" else base * value
        elif name != POSTERIOR_COLUMN:
            overrides[name] = float(value)
    # the row's process noise, redrawn from the seed (the file does not store it)
    noise = noise_columns(prepared.spec.noise, N_SAMPLES, SEED, row, row + 1, BLOCK_SIZE)
    for channel in prepared.spec.noise:
        overrides[channel.path] = noise[channel.columns()].to_numpy()[0]
    assert any(np.any(v != 0) for k, v in overrides.items() if k.endswith("Shock Path"))
    single = run_scenario("baseline", overrides=overrides)
    for indicator in ("gross_output", "energy_use", "industrial_land"):
        simulated = results.indicators[indicator].isel(sample=row).to_numpy()
        np.testing.assert_allclose(simulated, single[indicator].to_numpy(), rtol=1e-9)


def test_probabilities_are_the_means_of_the_per_sample_outcomes(ensemble):
    folder, whole, _ = ensemble
    results = read_results(folder / "whole.parquet")
    probability = whole.probabilities["probability"]
    assert probability.between(0, 1).all()
    means = results.met.astype(float).mean()
    np.testing.assert_allclose(probability.to_numpy(), means.to_numpy())
    pd.testing.assert_frame_equal(results.probabilities(), whole.probabilities)
    doubled = results.indicators["gross_output"].sel(year=2035) >= 2 * results.indicators[
        "gross_output"
    ].sel(year=2020)
    assert probability["gross_output_2035"] == pytest.approx(float(doubled.mean()))


def test_quantiles_are_those_of_the_written_samples(ensemble):
    """Streamed out of core, yet numpy's quantiles of the whole columns, bit for bit."""
    from fractions import Fraction

    folder, whole, _ = ensemble
    frame = pd.read_parquet(folder / "whole.parquet")
    for indicator in ("gross_output", "value_added", "rd_intensity", "energy_use"):
        for year in (2025, 2035):
            values = frame[f"{indicator}:{year}"].to_numpy()
            levels = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
            row = whole.quantiles.loc[(indicator, year)]
            np.testing.assert_array_equal(row[["q05", "q25", "q50", "q75", "q95"]], levels)
            assert row["mean"] == float(sum(map(Fraction, values)) / len(values))
    assert whole.binding.sum(axis=1).to_numpy() == pytest.approx([1.0, 1.0])
    pd.testing.assert_frame_equal(
        read_results(folder / "whole.parquet").quantiles(), whole.quantiles, check_exact=True
    )
    assert whole.effective_samples == N_SAMPLES


def test_without_an_output_file_the_summary_is_the_same_and_nothing_is_left(
    ensemble, tmp_path, monkeypatch
):
    """The quantiles' second pass reads a scratch file of the summary columns, then deletes it."""
    import tempfile

    _, whole, _ = ensemble
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    unsaved = montecarlo.run_monte_carlo("baseline", N_SAMPLES, SEED, chunk_size=100)
    assert unsaved.output is None
    for table in ("quantiles", "probabilities", "binding"):
        pd.testing.assert_frame_equal(
            getattr(unsaved, table), getattr(whole, table), check_exact=True
        )
    assert list(tmp_path.iterdir()) == []


def test_a_crash_leaves_no_output_file(tmp_path, monkeypatch):
    calls = []
    original = montecarlo.run_chunk

    def failing(samples, context):
        calls.append(len(samples))
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return original(samples, context)

    monkeypatch.setattr(montecarlo, "run_chunk", failing)
    output = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError, match="worker lost"):
        montecarlo.run_monte_carlo("baseline", 30, 1, output=output, chunk_size=10)
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"workers": 2, "scheduler": "tcp://127.0.0.1:1"}, "either --workers"),
        ({"chunk_size": 0}, "--chunk-size must be at least 1"),
        ({"n_samples": 0}, "--samples must be at least 1"),
        ({"seed": -1}, "--seed must be a non-negative"),
        ({"design": "sobol"}, "--design 'sobol' is not one of lhs, random"),
        ({"output": "out.csv"}, "must be a .parquet file"),
        ({"years": (2020, 2025)}, "--years must include the summary years [2025, 2035]"),
        ({"years": (2014, 2025, 2035)}, "years [2014] are outside the model's 2015-2035"),
        ({"indicators": ("gdp",)}, "indicators ['gdp'] are not headline columns"),
    ],
)
def test_bad_arguments_are_refused_before_running(tmp_path, arguments, message):
    settings = {"n_samples": 5, "seed": 0, "output": tmp_path / "x.parquet"} | arguments
    if isinstance(settings["output"], str):
        settings["output"] = tmp_path / settings["output"]
    n, seed = settings.pop("n_samples"), settings.pop("seed")
    with pytest.raises(ValueError, match=re.escape(message)):
        montecarlo.run_monte_carlo("baseline", n, seed, **settings)
    assert list(tmp_path.iterdir()) == []


def test_chosen_indicators_and_years_are_the_only_ones_written(tmp_path):
    output = tmp_path / "few.parquet"
    montecarlo.run_monte_carlo(
        "baseline", 20, 1, output=output, indicators=("capital_stock",), years=(2020, 2025, 2035)
    )
    columns = [
        c for c in pd.read_parquet(output).columns if not c.startswith(("param:", "target:"))
    ]
    expected = [
        f"{name}:{year}"
        for name in (*montecarlo.SUMMARY_INDICATORS, "capital_stock")
        for year in (2020, 2025, 2035)
    ]
    assert columns == ["sample", *expected]
    assert list(read_results(output).indicators["year"].to_numpy()) == [2020, 2025, 2035]


def test_cli_prints_quantiles_and_probabilities(tmp_path, capsys):
    output = tmp_path / "r.parquet"
    assert main(["mc", "baseline", "-n", "60", "--seed", "2", "-o", str(output)]) == 0
    text = capsys.readouterr().out
    for indicator in (
        "gross_output",
        "value_added",
        "rd_intensity",
        "energy_use",
        "industrial_land",
    ):
        assert indicator in text
    assert "2025" in text and "2035" in text
    assert "Probability of meeting each target" in text and "gross_output_2035" in text
    assert len(pd.read_parquet(output)) == 60


def test_cli_bad_spec_is_one_line_with_exit_code_2(tmp_path, capsys):
    spec = write(tmp_path / "spec.yaml", "parameters: {X: {distribution: beta}}\n")
    output = tmp_path / "r.parquet"
    code = main(["mc", "baseline", "-n", "5", "--spec", str(spec), "-o", str(output)])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert len(error.splitlines()) == 1 and str(spec) in error and "distribution" in error
    assert not output.exists()


@pytest.mark.slow
def test_a_two_worker_local_cluster_gives_identical_results(ensemble, tmp_path):
    folder, whole, _ = ensemble
    distributed = montecarlo.run_monte_carlo(
        "baseline", N_SAMPLES, SEED, output=tmp_path / "dask.parquet", chunk_size=50, workers=2
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask.parquet"), pd.read_parquet(folder / "whole.parquet")
    )
    for table in ("quantiles", "probabilities", "binding"):
        pd.testing.assert_frame_equal(
            getattr(distributed, table), getattr(whole, table), check_exact=True
        )
