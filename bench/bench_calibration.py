"""Benchmark the calibration: point fit (bar: < 10 s) and 10,000 posterior draws (< 2 min).

Usage::

    python bench/bench_calibration.py [--reps 3] [--starts 8] [--draws 10000]

Prints JSON with medians over ``--reps`` repetitions, after one warm-up (the numba
kernel's compile or cache load is reported separately as ``first_run_s``):

- ``point_fit_s``: ``calibrate(problem, n_starts)`` on the bundled data (all
  ``calibrate = true`` parameters), with its engine calls and model evaluations;
- ``posterior_s``: ``sample_posterior`` for ``--draws`` draws with the command's
  defaults (burn-in 200, thin 10), with its evaluations and effective sample size;
- ``reference_s``: the same run's reference workload, one engine call of 1,000
  parameter vectors through the calibration's payoff, and the ratios of both timings
  to it (machine-independent-ish figures for a noisy shared machine);
- ``bars_met``: whether each median is under its bar.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ningbo_sd.calibration.fit import calibrate  # noqa: E402
from ningbo_sd.calibration.posterior import sample_posterior  # noqa: E402
from ningbo_sd.calibration.problem import load_problem  # noqa: E402

POINT_FIT_BAR_S = 10.0
POSTERIOR_BAR_S = 120.0
REFERENCE_SAMPLES = 1000


def timed(function) -> tuple[float, object]:
    """Wall time of one call and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def median_of(function, reps: int) -> tuple[float, list[float], object]:
    """Median wall time over ``reps`` calls, all times, and the last result."""
    times, result = [], None
    for _ in range(reps):
        elapsed, result = timed(function)
        times.append(elapsed)
    return statistics.median(times), times, result


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20210101)
    args = parser.parse_args(argv)

    out: dict = {"reps": args.reps, "starts": args.starts, "draws": args.draws}
    out["load_problem_s"], problem = timed(load_problem)
    out["parameters"] = problem.n_parameters
    out["fitted_observations"] = len(problem.fitted)
    out["first_run_s"], _ = timed(lambda: problem.residuals(problem.default_unit[None, :]))

    rng = np.random.default_rng(args.seed)
    batch = rng.uniform(0.0, 1.0, (REFERENCE_SAMPLES, problem.n_parameters))
    problem.residuals(batch)  # warm
    out["reference_s"], out["reference_times_s"], _ = median_of(
        lambda: problem.residuals(batch), max(args.reps, 5)
    )
    out["reference_samples_per_s"] = REFERENCE_SAMPLES / out["reference_s"]

    calls, samples = problem.simulator.calls, problem.simulator.samples
    out["point_fit_s"], out["point_fit_times_s"], fit = median_of(
        lambda: calibrate(problem, n_starts=args.starts, seed=args.seed), args.reps
    )
    out["point_fit_engine_calls"] = (problem.simulator.calls - calls) // args.reps
    out["point_fit_evaluations"] = (problem.simulator.samples - samples) // args.reps
    out["point_fit_cost"] = fit.cost
    out["point_fit_over_reference"] = out["point_fit_s"] / out["reference_s"]

    calls, samples = problem.simulator.calls, problem.simulator.samples
    out["posterior_s"], out["posterior_times_s"], posterior = median_of(
        lambda: sample_posterior(fit, n_draws=args.draws, seed=args.seed), args.reps
    )
    out["posterior_engine_calls"] = (problem.simulator.calls - calls) // args.reps
    out["posterior_evaluations"] = (problem.simulator.samples - samples) // args.reps
    out["posterior_draws"] = len(posterior.draws)
    out["posterior_walkers"] = posterior.walkers
    out["posterior_steps"] = posterior.steps
    out["posterior_acceptance"] = posterior.acceptance
    out["posterior_max_autocorrelation_steps"] = float(np.nanmax(posterior.autocorrelation))
    out["posterior_effective_size"] = posterior.effective_size
    out["posterior_over_reference"] = out["posterior_s"] / out["reference_s"]

    out["bars_met"] = {
        f"point_fit < {POINT_FIT_BAR_S:g} s": out["point_fit_s"] < POINT_FIT_BAR_S,
        f"posterior {args.draws} draws < {POSTERIOR_BAR_S:g} s": out["posterior_s"]
        < POSTERIOR_BAR_S,
    }
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
