"""Monte Carlo conditioned on history: importance weights per sample, independent of chunking."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from ningbo_sd.calibration.history import effective_sample_size, history_likelihood
from ningbo_sd.uncertainty.montecarlo import prepare, run_monte_carlo, run_samples
from ningbo_sd.uncertainty.sampling import POSTERIOR_COLUMN, sample_table

N, SEED = 300, 5


@pytest.mark.slow
def test_weighted_runs_are_the_same_whatever_the_chunking(tmp_path):
    runs = {
        chunk: run_monte_carlo(
            "baseline", N, SEED, output=tmp_path / f"{chunk}.parquet", chunk_size=chunk,
            condition=history_likelihood,
        )
        for chunk in (37, N)
    }  # fmt: skip
    tables = {chunk: pq.read_table(tmp_path / f"{chunk}.parquet") for chunk in runs}
    assert tables[37].equals(tables[N])
    log_weight = tables[N]["log_weight"].to_numpy()
    np.testing.assert_array_equal(tables[N]["weight"].to_numpy(), np.exp(log_weight))
    # the summary's effective sample size is the file's weights'
    assert runs[N].effective_samples == pytest.approx(effective_sample_size(log_weight), rel=1e-6)
    assert runs[37].effective_samples == runs[N].effective_samples
    # conditioning does something, and does not collapse onto a handful of samples
    assert 10 < runs[N].effective_samples < N


@pytest.mark.slow
def test_a_sample_as_good_as_its_posterior_draw_weighs_one():
    """The weight is the likelihood ratio against the sample's own posterior draw."""
    prepared = prepare("baseline", targets=False)
    history = history_likelihood(prepared)
    table = sample_table(prepared.spec, 20, SEED)
    # strip everything but the posterior draw: no noise, vectors not drawn from the posterior
    # at their defaults (a calibrated vector factor, such as the value-added-rate spread, is
    # part of the draw)
    drawn = {parameter.name for parameter in prepared.spec.from_posterior}
    draws_only = table[[c for c in prepared.spec.names if c in table] + [POSTERIOR_COLUMN]]
    prior_vectors = [v for v in prepared.context.vectors if v in draws_only and v not in drawn]
    draws_only = draws_only.drop(columns=prior_vectors)
    results = run_samples(draws_only, prepared.context)
    log_weights = history.log_weights(results, table[POSTERIOR_COLUMN].to_numpy())
    np.testing.assert_allclose(log_weights, 0.0, atol=1e-9)


@pytest.mark.slow
def test_a_weighted_file_read_back_gives_the_runs_weighted_figures(tmp_path):
    """read_results uses the stored log weights: the same probabilities and quantiles."""
    from ningbo_sd.uncertainty.results import read_results

    summary = run_monte_carlo(
        "baseline", N, SEED, output=tmp_path / "w.parquet", condition=history_likelihood
    )
    back = read_results(summary.output)
    assert back.log_weights is not None and len(back.log_weights) == N
    streamed = summary.probabilities
    read = back.probabilities()
    np.testing.assert_allclose(
        read["probability"].to_numpy(dtype=float),
        streamed["probability"].to_numpy(dtype=float),
        atol=1e-9,
    )
    quantiles = back.quantiles().loc[("gross_output", 2035)]
    expected = summary.quantiles.loc[("gross_output", 2035)]
    for name in ("q05", "q50", "q95"):
        assert quantiles[name] == pytest.approx(expected[name], rel=1e-12), name
    assert quantiles["mean"] == pytest.approx(expected["mean"], rel=1e-9)
    fan = back.fan("gross_output")
    assert fan.loc[2035, "q95"] == pytest.approx(expected["q95"], rel=1e-12)
    unweighted = run_monte_carlo("baseline", N, SEED, output=tmp_path / "u.parquet")
    assert read_results(unweighted.output).log_weights is None
