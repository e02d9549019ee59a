"""The model discrepancy: its algebra, its estimate from the hindcast, and its use in bands."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ningbo_sd.uncertainty.discrepancy import (
    Discrepancy,
    estimate,
    from_log,
    load_discrepancy,
    span_of,
    to_log,
)
from ningbo_sd.uncertainty.results import weighted_quantiles
from ningbo_sd.uncertainty.summary import SummaryAccumulator


@pytest.mark.parametrize(
    ("measure", "span", "expected"),
    [
        ("level", None, 0.2),
        ("cumulative", None, 0.2),
        ("change_pct", 1, 0.2 * math.sqrt(2 * (1 - 0.5))),
        ("change_pct", 3, 0.2 * math.sqrt(2 * (1 - 0.5**3))),
        ("cagr_pct", 5, 0.2 * math.sqrt(2 * (1 - 0.5**5))),
        ("change_pp", 5, math.nan),
        ("change_abs", 5, math.nan),
        ("change_pct", None, math.nan),
    ],
)
def test_log_sd_of_each_measure(measure, span, expected):
    got = Discrepancy(sd=0.2, correlation=0.5).log_sd(measure, span)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, rel=1e-12)


def test_a_long_change_is_two_independent_levels_and_a_short_one_is_small():
    persistent = Discrepancy(sd=0.1, correlation=0.95)
    assert persistent.log_sd("change_pct", 1) < 0.035
    assert persistent.log_sd("change_pct", 400) == pytest.approx(0.1 * math.sqrt(2), rel=1e-9)
    assert Discrepancy(0.1, 0.0).log_sd("change_pct", 1) == pytest.approx(0.1 * math.sqrt(2))


@pytest.mark.parametrize(
    ("measure", "span", "values"),
    [
        ("level", None, [0.5, 1.0, 17887.1]),
        ("cumulative", None, [3.0, 5295.0]),
        ("change_pct", 1, [-18.2, 0.0, 11.9]),
        ("cagr_pct", 5, [-6.7, 0.0, 13.0]),
    ],
)
def test_log_scale_round_trips(measure, span, values):
    values = np.array(values)
    assert from_log(to_log(values, measure, span), measure, span) == pytest.approx(values)


def test_quantiles_of_one_sample_are_its_lognormal_quantiles():
    discrepancy = Discrepancy(0.2, 0.5)
    levels = [0.05, 0.5, 0.95]
    got = discrepancy.quantiles([1000.0], None, levels, "level")
    expected = 1000.0 * np.exp(0.2 * norm.ppf(levels))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    growth = discrepancy.quantiles([8.0], None, levels, "change_pct", 1)
    sd = discrepancy.log_sd("change_pct", 1)
    np.testing.assert_allclose(growth, 100 * (1.08 * np.exp(sd * norm.ppf(levels)) - 1), rtol=1e-12)


def test_quantiles_are_those_of_the_weighted_mixture():
    """Against draws: each sample's value moved by the discrepancy, weights as frequencies."""
    rng = np.random.default_rng(4)
    values = rng.lognormal(np.log(1000), 0.1, 50)
    weights = rng.uniform(0.1, 1, 50)
    discrepancy = Discrepancy(0.15, 0.7)
    levels = [0.05, 0.25, 0.5, 0.75, 0.95]
    got = discrepancy.quantiles(values, np.log(weights), levels, "level")
    picks = rng.choice(50, size=400_000, p=weights / weights.sum())
    draws = values[picks] * np.exp(0.15 * rng.standard_normal(400_000))
    np.testing.assert_allclose(got, np.quantile(draws, levels), rtol=0.01)


def test_a_figure_without_a_log_scale_keeps_the_samples_band():
    discrepancy = Discrepancy(0.3, 0.5)
    values = np.arange(1.0, 101.0)
    got = discrepancy.quantiles(values, None, [0.05, 0.95], "change_pp", 5)
    expected = weighted_quantiles(values[:, None], None, [0.05, 0.95])[:, 0]
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(discrepancy.quantiles([-5.0, 0.0], None, [0.5], "level")).all()


def test_probability_is_one_half_on_the_threshold_and_monotone():
    discrepancy = Discrepancy(0.2, 0.5)
    values = np.array([50.0, 100.0, 150.0, 400.0])
    above = discrepancy.probability(values, "change_pct", 15, ">=", 100.0)
    assert above[1] == pytest.approx(0.5)
    assert np.all(np.diff(above) > 0)
    below = discrepancy.probability(values, "change_pct", 15, "<=", 100.0)
    assert above + below == pytest.approx(np.ones(4))
    assert np.isnan(discrepancy.probability(values, "change_pp", 5, ">=", 1.0)).all()


def test_estimate_recovers_a_known_discrepancy():
    rng = np.random.default_rng(11)
    truth = Discrepancy(0.15, 0.6)
    spans = rng.choice([0, 1, 2, 5], size=6000)
    sds = np.array([truth.log_sd("change_pct", s) if s else truth.sd for s in spans])
    model_variance = np.full(spans.size, 0.02**2)
    errors = rng.normal(0.0, np.sqrt(sds**2 + model_variance))
    found, _ = estimate(errors, spans, model_variance)
    assert found.sd == pytest.approx(truth.sd, rel=0.05)
    assert found.correlation == pytest.approx(truth.correlation, abs=0.06)


def test_estimate_refuses_too_few_errors():
    with pytest.raises(ValueError, match="at least two"):
        estimate([0.1], [0], [0.0])


def test_span_of_a_level_is_none():
    assert span_of("level", 2025, None) is None
    assert span_of("change_pct", 2035, 2020) == 15


def test_recorded_discrepancy_is_the_hindcast_estimate():
    """`ningbo-sd check --record` wrote what the current hindcast estimates."""
    from ningbo_sd.validation.hindcast import estimate_discrepancy, hindcast

    section = hindcast()
    found, n_errors = estimate_discrepancy(section.table)
    recorded = load_discrepancy()
    assert recorded is not None
    assert n_errors >= 30
    assert found.sd == pytest.approx(recorded.sd, rel=1e-5)
    assert found.correlation == pytest.approx(recorded.correlation, rel=1e-5)
    row = section.table.set_index("id").loc["discrepancy"]
    assert row["status"] == "info"
    # the per-indicator rows summarise the errors and are not errors themselves
    table = section.table
    by_indicator = table[table["status"] == "by indicator"]
    compared = table[table["status"] == "compared"]
    assert set(by_indicator["indicator"]) == set(compared["indicator"])
    assert by_indicator["n_figures"].sum() == len(compared)


def test_predictive_band_contains_the_model_band():
    from ningbo_sd.validation.evidence import out_of_sample

    table = out_of_sample(n_samples=200).table
    compared = table[(table["status"] == "compared") & table["p05"].notna()]
    assert len(compared) >= 40
    assert (compared["p05"] <= compared["q05"] + 1e-9 * compared["q05"].abs()).mean() > 0.95
    assert (compared["p95"] >= compared["q95"] - 1e-9 * compared["q95"].abs()).mean() > 0.95
    widths = table[table["id"].str.startswith("band_width_gross_output_")]
    assert len(widths) == 2
    assert (widths["model"] > widths["model_band_pct"]).all()  # predictive: the wider


def _frame(values: np.ndarray, met: np.ndarray, weights=None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "target:gross_output_2035:value": values,
            "target:gross_output_2035:met": pd.array(met, dtype="boolean"),
        }
    )
    if weights is not None:
        frame["weight"] = weights
    return frame


@pytest.mark.parametrize("weighted", [False, True])
def test_predictive_probability_is_exact_in_any_chunking(weighted):
    rng = np.random.default_rng(5)
    values = rng.uniform(50, 200, 1001)
    weights = rng.uniform(0, 1, 1001) if weighted else None
    discrepancy = Discrepancy(0.2, 0.6)
    results = []
    for chunks in ([1001], [1, 500, 500], [7] * 143):
        accumulator = SummaryAccumulator([], [2035], ["gross_output_2035"], discrepancy=discrepancy)
        start = 0
        for size in chunks:
            part = slice(start, start + size)
            accumulator.add(
                _frame(values[part], values[part] >= 100),
                None if weights is None else weights[part],
            )
            start += size
        results.append(accumulator.probabilities().loc["gross_output_2035", "predictive"])
    assert results[0] == results[1] == results[2]
    p = discrepancy.probability(values, "change_pct", 15, ">=", 100.0)
    expected = np.average(p, weights=weights)
    assert results[0] == pytest.approx(expected, abs=1e-8)


def _ensemble(nominal: np.ndarray, real: np.ndarray):
    import xarray as xr

    dims = ("sample", "year")
    return xr.Dataset(
        {"gross_output": (dims, nominal[:, None]), "gross_output_real": (dims, real[:, None])},
        coords={"sample": np.arange(len(nominal)), "year": [2035]},
    )


def test_band_widths_split_off_the_deflator():
    """Only prices vary: the deflator's band is the whole band; only real output: the
    deflator's band is the discrepancy's alone, narrower."""
    from ningbo_sd.validation.evidence import band_widths

    rng = np.random.default_rng(3)
    discrepancy = Discrepancy(sd=0.08, correlation=0.5)
    weights = np.zeros(4000)
    index = np.exp(rng.uniform(0.0, 0.3, 4000))
    real = np.full(4000, 20000.0)
    prices_only = band_widths(_ensemble(real * index, real), weights, discrepancy, 2035)
    assert prices_only["deflator"] == pytest.approx(prices_only["predictive"], rel=1e-9)
    assert prices_only["predictive"] > prices_only["model"] > 25

    real = 20000.0 * np.exp(rng.normal(0.0, 0.1, 4000))
    real_only = band_widths(_ensemble(real * 1.2, real), weights, discrepancy, 2035)
    discrepancy_alone = 100 * (math.exp(1.645 * 0.08) - math.exp(-1.645 * 0.08))
    assert real_only["deflator"] == pytest.approx(discrepancy_alone, rel=0.01)
    assert real_only["deflator"] < real_only["predictive"]
