"""Out-of-core Monte Carlo summaries: exact, order-independent, bounded (synthetic data).

The accumulator (``ningbo_sd.uncertainty.summary``) folds chunks into integers and refines
quantiles with passes over the results file; these tests compare it, bit for bit, with
numpy on the whole data held in memory, under any chunking and chunk order.
"""

from __future__ import annotations

import itertools
import tracemalloc
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ningbo_sd.uncertainty import exact, summary
from ningbo_sd.uncertainty.results import QUANTILES, ParquetStream, quantile_table
from ningbo_sd.uncertainty.summary import SummaryAccumulator, parquet_reader

COLUMNS = ("gross_output:2025", "gross_output:2035", "rd_intensity:2025", "rd_intensity:2035")


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """A results table with ties, NaN, infinities, a constant column and target flags."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"sample": np.arange(n, dtype=np.int64)})
    frame["gross_output:2025"] = rng.lognormal(10, 0.2, n)
    frame["gross_output:2035"] = np.round(rng.normal(0, 3, n), 1)  # many ties, both signs
    frame.loc[rng.choice(n, n // 50, replace=False), "gross_output:2035"] = np.nan
    frame.loc[rng.choice(n, 2, replace=False), "gross_output:2035"] = [np.inf, -np.inf]
    frame["rd_intensity:2025"] = 2.45  # one value: a bin of a single key
    frame["rd_intensity:2035"] = rng.uniform(-1e-300, 1e300, n)  # over the float range
    frame["binding_constraint:2025"] = rng.integers(0, 3, n).astype(np.int8)
    frame["binding_constraint:2035"] = rng.integers(0, 2, n).astype(np.int8)
    flags = pd.array(rng.random(n) < 0.3, dtype="boolean")
    flags[rng.random(n) < 0.1] = pd.NA
    frame["target:gross_output_2035:met"] = flags
    frame["target:other:met"] = pd.array(rng.random(n) < 0.7, dtype="boolean")
    return frame


def summarise(frame, tmp_path, cuts, order=None, weights=None, name="r.parquet"):
    """Feed ``frame`` cut at ``cuts`` (chunks in ``order``) and finish over a file of it."""
    accumulator = SummaryAccumulator(
        ("gross_output", "rd_intensity", "binding_constraint"),
        (2025, 2035),
        ("gross_output_2035", "other"),
    )
    pieces = [frame.iloc[lo:hi] for lo, hi in itertools.pairwise(cuts)]
    for position in order if order is not None else range(len(pieces)):
        piece = pieces[position]
        w = None if weights is None else weights[piece.index.to_numpy()]
        accumulator.add(piece, w)
    stream = ParquetStream(tmp_path / name, {})
    stream.write(frame[list(COLUMNS)].assign(weight=1.0 if weights is None else weights))
    accumulator.finish(parquet_reader(stream.commit()))
    return accumulator


def tables(accumulator):
    return (
        accumulator.quantiles(),
        accumulator.probabilities(),
        accumulator.binding_shares(),
        accumulator.effective_sample_size(),
    )


def assert_same(a, b):
    for left, right in zip(tables(a)[:3], tables(b)[:3], strict=True):
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    assert tables(a)[3] == tables(b)[3]


@pytest.fixture(params=["collect at once", "refine to single keys"])
def collect_limit(request, monkeypatch):
    """Both paths of the refinement: collect a bin, or histogram it again (down to one key)."""
    if request.param == "refine to single keys":
        monkeypatch.setattr(summary, "COLLECT_LIMIT", 3)
    return request.param


def test_unweighted_summaries_are_numpys_bit_for_bit(tmp_path, collect_limit):
    frame = synthetic(5_000)
    result = summarise(frame, tmp_path, [0, len(frame)])
    expected = quantile_table({c: frame[c].to_numpy() for c in COLUMNS})
    pd.testing.assert_frame_equal(result.quantiles(), expected, check_exact=True)
    for column in COLUMNS:  # numpy's linear method on the non-NaN values, exactly
        values = frame[column].to_numpy()
        with np.errstate(invalid="ignore"):  # inf - inf between the extreme order statistics
            levels = np.nanquantile(values, QUANTILES)
        indicator, year = column.split(":")
        row = result.quantiles().loc[(indicator, int(year))]
        np.testing.assert_array_equal(row[[f"q{round(q * 100):02d}" for q in QUANTILES]], levels)
    finite = frame["gross_output:2025"].to_numpy()
    mean = result.quantiles().loc[("gross_output", 2025), "mean"]
    assert mean == float(sum(Fraction(v) for v in finite) / len(finite))  # correctly rounded
    assert np.isnan(result.quantiles().loc[("gross_output", 2035), "mean"])  # inf and -inf
    assert result.quantiles().loc[("rd_intensity", 2025), "mean"] == 2.45  # np.mean: 2.4499...


def test_the_numbers_do_not_depend_on_the_chunking_or_the_order(tmp_path, collect_limit):
    frame = synthetic(4_000, seed=1)
    whole = summarise(frame, tmp_path, [0, len(frame)], name="a.parquet")
    rng = np.random.default_rng(2)
    cuts = [0, *np.sort(rng.choice(np.arange(1, len(frame)), 40, replace=False)), len(frame)]
    shuffled = summarise(frame, tmp_path, cuts, rng.permutation(41), name="b.parquet")
    assert_same(whole, shuffled)
    flags = frame["target:gross_output_2035:met"]
    probability = shuffled.probabilities().loc["gross_output_2035"]
    assert probability["met"] == flags.sum() and probability["defined"] == flags.notna().sum()
    assert probability["probability"] == flags.sum() / flags.notna().sum()
    shares = frame["binding_constraint:2025"].value_counts(normalize=True).sort_index()
    np.testing.assert_array_equal(shuffled.binding_shares().loc[2025].to_numpy(), shares)


def test_weighted_summaries_are_exact_and_order_independent(tmp_path, collect_limit):
    frame = synthetic(3_000, seed=3)
    rng = np.random.default_rng(4)
    weights = rng.exponential(size=len(frame)) * (rng.random(len(frame)) < 0.9)  # some zero
    whole = summarise(frame, tmp_path, [0, len(frame)], weights=weights, name="a.parquet")
    cuts = [0, 7, 1_000, 1_001, 2_500, len(frame)]
    shuffled = summarise(frame, tmp_path, cuts, [3, 0, 4, 2, 1], weights, name="b.parquet")
    assert_same(whole, shuffled)
    units = exact.fixed_point(weights)  # the weights as summarised: multiples of 2**-32
    w = units * exact.WEIGHT_UNIT
    values = frame["gross_output:2025"].to_numpy()
    levels = np.quantile(values, QUANTILES, weights=w, method="inverted_cdf")
    row = whole.quantiles().loc[("gross_output", 2025)]
    np.testing.assert_array_equal(row[[f"q{round(q * 100):02d}" for q in QUANTILES]], levels)
    numerator = sum(Fraction(v) * int(u) for v, u in zip(values, units, strict=True))
    assert row["mean"] == float(numerator / int(units.sum()))
    assert whole.effective_sample_size() == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert whole.effective_sample_size() < len(frame)
    flags = frame["target:other:met"].to_numpy(dtype=bool)
    probability = whole.probabilities().loc["other"]
    assert probability["probability"] == pytest.approx(w[flags].sum() / w.sum(), rel=1e-12)
    ess = w.sum() ** 2 / (w**2).sum()
    p = probability["probability"]
    assert probability["std_error"] == pytest.approx(np.sqrt(p * (1 - p) / ess), rel=1e-9)


def test_equal_weights_give_the_inverted_cdf_of_the_unweighted_values(tmp_path):
    frame = synthetic(1_000, seed=5)
    weighted = summarise(frame, tmp_path, [0, 500, 1_000], weights=np.full(1_000, 0.5))
    values = frame["gross_output:2025"].to_numpy()
    row = weighted.quantiles().loc[("gross_output", 2025)]
    expected = np.quantile(values, QUANTILES, method="inverted_cdf")
    np.testing.assert_array_equal(row[[f"q{round(q * 100):02d}" for q in QUANTILES]], expected)
    assert weighted.effective_sample_size() == 1_000.0


def test_bad_weights_and_mixed_chunks_are_refused():
    frame = synthetic(10)
    accumulator = SummaryAccumulator(("gross_output",), (2025,), ())
    for bad in (np.nan, -1.0, np.inf, 2.0**40):
        with pytest.raises(ValueError, match="sample weights must be finite, at least 0"):
            accumulator.add(frame, np.full(10, bad))
    accumulator.add(frame, np.ones(10))
    with pytest.raises(ValueError, match="every Monte Carlo chunk carries weights or none"):
        accumulator.add(frame)


def test_a_file_that_differs_from_the_chunks_is_refused(tmp_path):
    frame = synthetic(500)
    accumulator = SummaryAccumulator(("gross_output",), (2025, 2035), ())
    accumulator.add(frame)
    stream = ParquetStream(tmp_path / "other.parquet", {})
    stream.write(synthetic(500, seed=9)[["gross_output:2025", "gross_output:2035"]])
    with pytest.raises(RuntimeError, match="differs from the chunks summarised"):
        accumulator.finish(parquet_reader(stream.commit()))


def test_memory_does_not_grow_with_the_number_of_samples():
    """The accumulator keeps histograms and integers, nothing per sample."""
    rng = np.random.default_rng(6)
    chunk = pd.DataFrame({column: rng.normal(size=50_000) for column in COLUMNS})
    accumulator = SummaryAccumulator(("gross_output", "rd_intensity"), (2025, 2035), ())
    accumulator.add(chunk)
    tracemalloc.start()
    try:
        accumulator.add(chunk)
        held = tracemalloc.get_traced_memory()[0]
        for _ in range(20):  # 1,000,000 more samples: 32 MB as floats
            accumulator.add(chunk)
        grown = tracemalloc.get_traced_memory()[0] - held
    finally:
        tracemalloc.stop()
    assert accumulator.rows == 1_100_000
    assert grown < 100_000, grown


def test_exact_sums_do_not_depend_on_grouping():
    rng = np.random.default_rng(7)
    values = rng.normal(size=10_000) * 10.0 ** rng.integers(-300, 300, 10_000)
    values[:4] = [5e-324, -2.2e-308, 1.7e308, -0.0]  # subnormal, tiny, huge, signed zero
    weights = exact.fixed_point(rng.random(10_000) * 1e3)
    whole = exact.exact_sum(values, weights)
    parts = sum(
        exact.exact_sum(values[i : i + 333], weights[i : i + 333]) for i in range(0, 10_000, 333)
    )
    assert whole == parts
    reference = sum(Fraction(v) * int(w) for v, w in zip(values, weights, strict=True))
    assert Fraction(whole) * Fraction(exact.TINY) == reference
    assert Fraction(exact.exact_sum(values)) * Fraction(exact.TINY) == sum(map(Fraction, values))
    assert exact.int_dot(weights, weights) == sum(int(w) ** 2 for w in weights)
    keys = exact.order_keys(values)
    np.testing.assert_array_equal(
        np.argsort(keys, kind="stable"), np.argsort(values + 0.0, kind="stable")
    )
    np.testing.assert_array_equal(exact.from_keys(keys), values + 0.0)
