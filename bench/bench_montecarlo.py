"""Benchmark the Monte Carlo and the global sensitivity analysis (ningbo_sd.uncertainty.montecarlo).

Usage::

    python bench/bench_montecarlo.py [--samples 100000] [--reps 3] [--million 1000000]
                                     [--sobol-base 4096] [--json out.json]

Reports medians of ``--reps`` repetitions, after one warm-up run (the engine's JIT):

- ``engine_s``: the reference, measured in the same run: ``ningbo_sd.scenarios.run.run_batch``
  on the same 100,000-row parameter table in the same chunks (``DEFAULT_CHUNK_SIZE``), one at a
  time, headline variables only (no sampling, no scoring, no output).
- ``mc_s``: ``run_monte_carlo`` of the baseline, 100,000 samples, 2015-2035, with scorecard
  outcomes and quantiles, in-process, no output file; ``mc_file_s``: the same writing the
  Parquet file (default indicators); ``overhead``: ``mc_s / engine_s``.
- ``mc_weighted_s``: the same as ``mc_s`` conditioned on history (importance weights, the
  reference runs of the posterior draws included) with the predictive probabilities of the
  model discrepancy, as ``ningbo-sd mc`` runs by default; ``weighted_overhead`` against
  ``engine_s`` (issue 18's bar: 100,000 samples with noise and weights in <= 3 s). The
  engine reference and the two runs are timed back to back in each repetition; the
  overheads are medians of the per-repetition ratios.
- ``million_peak_rss_mib``: peak RSS of a child process that runs 1,000,000 samples and
  streams them to a Parquet file (``resource.getrusage``, including any JIT compilation), and
  ``million_run_peak_rss_mib``: the peak of the run alone (``VmHWM`` reset after a warm-up).
- ``sobol_s``: ``run_sensitivity`` with Sobol, 10 parameters and 4,096 base samples
  (49,152 runs), in-process.

Bars (issue 6): 100,000 samples < 3 s; 1,000,000 samples < 2 GB peak RSS; Sobol < 30 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOBOL_PARAMETERS = [
    "Knowledge Elasticity",
    "Price Inflation Future",
    "Capital Elasticity",
    "Depreciation Rate",
    "Land Productivity Headroom",
    "Construction Delay",
    "Initial Capital Stock",
    "Value Added Rate Ceiling",
    "Investment Profit Elasticity",
    "Autonomous Efficiency Gain",
]


def median_time(function, reps: int) -> float:
    """Median wall time of ``reps`` calls."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def high_water_mark_mib() -> float | None:
    """Peak RSS since the last reset (``VmHWM``), or None where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_high_water_mark() -> bool:
    """Reset ``VmHWM`` (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def million_child(n: int, chunk_size: int | None) -> None:
    """Run ``n`` samples to a temporary Parquet file; print wall time and peak RSS (MiB).

    ``peak_rss_mib`` is the whole process's peak (``getrusage``), which includes the engine's
    JIT compilation when its kernel cache is cold; ``run_peak_rss_mib`` is the peak of the run
    itself, after a small warm-up run and a reset of the high-water mark.
    """
    from ningbo_sd.uncertainty.montecarlo import run_monte_carlo

    with tempfile.TemporaryDirectory() as folder:
        run_monte_carlo("baseline", 1000, 0, output=Path(folder) / "warm.parquet")
        reset = reset_high_water_mark()
        start = time.perf_counter()
        run_monte_carlo("baseline", n, 1, output=Path(folder) / "m.parquet", chunk_size=chunk_size)
        wall = time.perf_counter() - start
        size = (Path(folder) / "m.parquet").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"wall_s": wall, "peak_rss_mib": peak, "file_mib": size / 2**20}
    result["run_peak_rss_mib"] = high_water_mark_mib() if reset else None
    print(json.dumps(result))


def main(argv=None) -> dict:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--million", type=int, default=1_000_000, help="0 skips it")
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--sobol-base", type=int, default=4096, help="0 skips it")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--million-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.million_child:
        million_child(args.million, args.chunk_size)
        return {}

    from ningbo_sd.calibration.history import history_likelihood
    from ningbo_sd.scenarios.run import compiled_model, run_batch
    from ningbo_sd.uncertainty.discrepancy import load_discrepancy
    from ningbo_sd.uncertainty.montecarlo import DEFAULT_CHUNK_SIZE, prepare, run_monte_carlo
    from ningbo_sd.uncertainty.sampling import engine_columns, sample_table
    from ningbo_sd.uncertainty.sensitivity import run_sensitivity

    out: dict = {"samples": args.samples, "reps": args.reps, "backend": compiled_model().backend}
    start = time.perf_counter()
    run_monte_carlo("baseline", 1000, 0)  # warm-up: compile, JIT, caches
    out["warmup_s"] = time.perf_counter() - start

    prepared = prepare("baseline")
    table = engine_columns(sample_table(prepared.spec, args.samples, 1), prepared.context.vectors)
    chunk = args.chunk_size or DEFAULT_CHUNK_SIZE

    def engine_only():
        for start in range(0, args.samples, chunk):
            piece = table.iloc[start : start + chunk]
            run_batch(piece, overrides=prepared.context.parameters, calibrated=None)

    def plain():
        run_monte_carlo("baseline", args.samples, 1, chunk_size=chunk)

    def weighted():
        run_monte_carlo(
            "baseline", args.samples, 1, chunk_size=chunk, condition=history_likelihood,
            discrepancy=load_discrepancy(),
        )  # fmt: skip

    # interleaved: each repetition times the reference and both runs back to back, so a
    # change of load on a shared machine moves all three; the overheads are the medians of
    # the per-repetition ratios
    times: dict[str, list[float]] = {"engine_s": [], "mc_s": [], "mc_weighted_s": []}
    for _ in range(args.reps):
        for name, function in (("engine_s", engine_only), ("mc_s", plain),
                               ("mc_weighted_s", weighted)):  # fmt: skip
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        out[name] = statistics.median(values)
    ratios = {
        key: statistics.median(a / b for a, b in zip(times[run], times["engine_s"], strict=True))
        for key, run in (("overhead", "mc_s"), ("weighted_overhead", "mc_weighted_s"))
    }
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "mc.parquet"
        out["mc_file_s"] = median_time(
            lambda: run_monte_carlo("baseline", args.samples, 1, output=output, chunk_size=chunk),
            args.reps,
        )
    out["engine_samples_per_s"] = args.samples / out["engine_s"]
    out["mc_samples_per_s"] = args.samples / out["mc_s"]
    out.update(ratios)
    print(json.dumps(out), flush=True)

    if args.sobol_base:
        out["sobol_runs"] = args.sobol_base * (len(SOBOL_PARAMETERS) + 2)
        out["sobol_s"] = median_time(
            lambda: run_sensitivity(
                "baseline", "sobol", args.sobol_base, seed=1, parameters=SOBOL_PARAMETERS
            ),
            args.reps,
        )
        print(json.dumps({k: out[k] for k in ("sobol_runs", "sobol_s")}), flush=True)

    if args.million:
        command = [sys.executable, __file__, "--million-child", "--million", str(args.million)]
        if args.chunk_size:
            command += ["--chunk-size", str(args.chunk_size)]
        child = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        out["million"] = args.million
        out["million_wall_s"] = result["wall_s"]
        out["million_peak_rss_mib"] = result["peak_rss_mib"]
        out["million_run_peak_rss_mib"] = result["run_peak_rss_mib"]
        out["million_file_mib"] = result["file_mib"]

    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
