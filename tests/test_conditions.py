"""What has to hold: a target's probability by tercile of each input (analytic truths)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ningbo_sd.uncertainty.conditions import ConditionsError, tercile_probabilities, what_holds
from ningbo_sd.uncertainty.results import LOG_WEIGHT_COLUMN, METADATA_KEY


def _results(path, columns: dict, targets=("t",)) -> None:
    table = pa.table(columns)
    metadata = {METADATA_KEY: json.dumps({"targets": list(targets)}).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_terciles_of_six_samples():
    values = np.arange(1.0, 7.0)
    met = np.array([0, 0, 0, 1, 1, 1], dtype=float)
    probabilities, edges = tercile_probabilities(values, met, np.ones(6))
    assert edges == [2.0, 4.0]  # {1, 2}, {3, 4}, {5, 6}
    assert probabilities == [0.0, 0.5, 1.0]


def test_weights_move_the_edges_and_the_shares():
    values = np.arange(1.0, 7.0)
    met = np.array([0, 1, 0, 1, 1, 1], dtype=float)
    weights = np.array([4.0, 1, 1, 1, 1, 1])  # the first sample is a third of the weight
    probabilities, edges = tercile_probabilities(values, met, weights)
    # cumulative weight 4, 5, 6, 7, 8, 9 of 9: a third is reached at 1, two thirds at 3
    assert edges == [1.0, 3.0]  # {1}, {2, 3}, {4, 5, 6}
    assert probabilities == [0.0, 0.5, 1.0]


def test_the_decisive_input_comes_first(tmp_path):
    rng = np.random.default_rng(7)
    n = 30_000
    x = rng.uniform(0, 1, n)
    noise = rng.uniform(0, 1, n)
    met = x > 0.5  # met exactly when x is in its upper half
    path = tmp_path / "mc.parquet"
    _results(path, {
        "sample": np.arange(n),
        "param:noise": noise,
        "param:x": x,
        "param:held": np.full(n, 3.0),
        "param:posterior_draw": rng.integers(0, 500, n),  # a draw's index, not an input
        "target:t:met": pa.array(met, type=pa.bool_()),
    })  # fmt: skip
    table = what_holds(path, "t")
    assert list(table["input"]) == ["x", "noise"]  # the held input and the draw are left out
    row = table.iloc[0]
    assert row["low"] == 0.0 and row["high"] == 1.0
    assert row["middle"] == pytest.approx(0.5, abs=0.02)
    assert abs(table.iloc[1]["spread"]) < 0.03
    assert table.attrs["probability"] == pytest.approx(met.mean(), rel=1e-12)
    assert table.attrs["ess"] == pytest.approx(n)


def test_weights_and_undefined_samples(tmp_path):
    rng = np.random.default_rng(8)
    n = 9_000
    x = rng.uniform(0, 1, n)
    log_weight = np.where(x < 0.5, np.log(3.0), 0.0)  # the lower half weighs three times more
    met = pa.array([bool(v > 0.9) if i % 10 else None for i, v in enumerate(x)], type=pa.bool_())
    path = tmp_path / "mc.parquet"
    _results(path, {"sample": np.arange(n), "param:x": x, "target:t:met": met,
                    LOG_WEIGHT_COLUMN: log_weight})  # fmt: skip
    table = what_holds(path, "t")
    defined = np.arange(n) % 10 != 0
    w = np.exp(log_weight)[defined]
    expected = (w * (x[defined] > 0.9)).sum() / w.sum()
    assert table.attrs["probability"] == pytest.approx(expected, rel=1e-12)
    assert table.attrs["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    # the weighted terciles split the weight, not the count: the lower edge lies below 1/3
    assert table.iloc[0]["edge_low"] < 0.3 and table.iloc[0]["low"] == 0.0


def test_unknown_target_lists_the_file_s_targets(tmp_path):
    path = tmp_path / "mc.parquet"
    _results(path, {"sample": [0, 1], "param:x": [1.0, 2.0],
                    "target:t:met": pa.array([True, False])})  # fmt: skip
    with pytest.raises(ConditionsError, match=r"target 'u' is not in the file; it has: t"):
        what_holds(path, "u")


def test_a_parquet_file_without_metadata_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"a": [1.0]}), path)
    with pytest.raises(ConditionsError, match="not a Monte Carlo results file"):
        what_holds(path, "t")


def test_prim_finds_the_box_that_makes_the_target_safe(tmp_path):
    """met exactly when x > 0.6 and y < 0.5: PRIM restricts x and y, and leaves z alone."""
    from ningbo_sd.uncertainty.discovery import box_table, discover, peel

    rng = np.random.default_rng(11)
    n = 40_000
    x, y, z = (rng.uniform(0, 1, n) for _ in range(3))
    met = (x > 0.6) & (y < 0.5)
    path = tmp_path / "mc.parquet"
    _results(path, {"sample": np.arange(n), "param:x": x, "param:y": y, "param:z": z,
                    "target:t:met": pa.array(met, type=pa.bool_())})  # fmt: skip
    box, reached, whole = discover(path, "t", density=0.95)
    assert reached and box.density >= 0.95
    assert whole.density == pytest.approx(met.mean(), rel=1e-12) and whole.mass == 1.0
    table = box_table(box, whole).set_index("input")
    assert set(table.index) == {"x", "y"}
    assert table.loc["x", "from"] == pytest.approx(0.6, abs=0.03)
    assert table.loc["y", "to"] == pytest.approx(0.5, abs=0.03)
    assert box.coverage > 0.85  # the box holds most of the runs that meet the target
    # the trajectory: each peel leaves a smaller box, down to the minimum mass
    trajectory = peel({"x": x, "y": y, "z": z}, met.astype(float), np.ones(n))
    masses = [b.mass for b in trajectory]
    assert masses[0] == 1.0 and all(np.diff(masses) < 0) and masses[-1] <= 0.05 + 1e-9


def test_prim_is_weighted(tmp_path):
    """Samples outside x > 0.5 weigh nothing: the whole ensemble already meets the target."""
    from ningbo_sd.uncertainty.discovery import peel

    rng = np.random.default_rng(12)
    x = rng.uniform(0, 1, 5_000)
    met = (x > 0.5).astype(float)
    trajectory = peel({"x": x}, met, np.where(x > 0.5, 1.0, 0.0))
    assert trajectory[0].density == 1.0 and trajectory[0].limits["x"][0] > 0.5


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5])
def test_prim_refuses_a_density_outside_zero_one(tmp_path, density):
    from ningbo_sd.uncertainty.discovery import discover

    with pytest.raises(ConditionsError, match=r"--density .*: give a share in \(0, 1\]"):
        discover(tmp_path / "none.parquet", "t", density=density)


def test_predictive_reading_is_the_discrepancy_probability(tmp_path):
    """--predictive: each run counts with its probability that the published figure meets
    the target, so the thirds are softer than the runs' shares and the whole matches `mc`."""
    from ningbo_sd.uncertainty.discrepancy import Discrepancy
    from ningbo_sd.uncertainty.summary import target_readings

    target = "gross_output_2035"  # a real target: its reading comes from the plan's table
    reading = target_readings([target])[target]
    rng = np.random.default_rng(13)
    n = 20_000
    change = rng.uniform(40.0, 160.0, n)  # % change of gross output 2020-2035
    path = tmp_path / "mc.parquet"
    _results(path, {
        "sample": np.arange(n),
        "param:x": change / 100,
        f"target:{target}:met": pa.array(change >= 100.0, type=pa.bool_()),
        f"target:{target}:value": change,
    }, targets=(target,))  # fmt: skip
    discrepancy = Discrepancy(sd=0.08, correlation=0.5)
    predictive = what_holds(path, target, discrepancy)
    expected = discrepancy.probability(
        change, reading.measure, reading.span, reading.op, reading.value
    ).mean()
    assert predictive.attrs["probability"] == pytest.approx(expected, rel=1e-12)
    runs = what_holds(path, target)
    assert runs.iloc[0]["low"] == 0.0 < predictive.iloc[0]["low"]
    assert predictive.iloc[0]["high"] < runs.iloc[0]["high"] == 1.0


def test_predictive_needs_a_target_with_a_reading(tmp_path):
    from ningbo_sd.uncertainty.discrepancy import Discrepancy

    path = tmp_path / "mc.parquet"
    _results(path, {"sample": [0, 1], "param:x": [1.0, 2.0], "target:t:met": [True, False],
                    "target:t:value": [1.0, 2.0]})  # fmt: skip
    with pytest.raises(ConditionsError, match="has no predictive reading"):
        what_holds(path, "t", Discrepancy(sd=0.08, correlation=0.5))
