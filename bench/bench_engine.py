"""Benchmark the batch engine (ningbo_sd.engine.engine) against PySD on one model.

Usage::

    python bench/bench_engine.py [--model model/ningbo.mdl] [--samples 10000] [--reps 3]

Reports medians of several repetitions: compile time, kernel JIT time, single-run
latency, batch throughput (samples/s), speed-up per sample over PySD measured in
the same run, and peak memory of a 100,000-sample batch keeping 15 variables at
the model's own SAVEPER (half-yearly for the Ningbo model since its calendar reads flows at
mid-year and stocks at year-end; ``--saveper 1`` for the old annual figures), measured in a
child process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ningbo_sd.engine.engine import compile_model  # noqa: E402


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _draws(cm, n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        k: np.asarray(v) * rng.uniform(0.8, 1.2, size=(n, *np.shape(v)))
        for k, v in cm.constants.items()
    }


def _headline(cm, k: int = 15) -> list[str]:
    names = [n for n, m in cm.variables.items() if m.kind in ("stock", "aux")]
    return names[:k]


def memory_child(model: str, n: int, saveper: float | None = None) -> None:
    """Run ``n`` samples keeping 15 variables at SAVEPER; print peak RSS (MiB)."""
    cm = compile_model(model)
    cm._runtime().warmup() if cm.backend == "numba" else None
    ds = cm.run(_draws(cm, n), keep=_headline(cm), saveper=saveper)
    assert ds.sizes["sample"] == n
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


_PROCESS_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from ningbo_sd.engine.engine import compile_model
t1 = time.perf_counter()
cm = compile_model(sys.argv[1])
t2 = time.perf_counter()
cm.run_one()
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "compile_s": t2 - t1, "first_run_s": t3 - t2,
                  "load_and_first_run_s": t3 - t1}))
"""


def _fresh_process(model: str, cache: str) -> dict:
    """Time import, compile and first run in a new interpreter using ``cache``."""
    env = {**os.environ, "NINGBO_SD_ENGINE_CACHE": cache, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS_PROBE, model],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> dict:
    """Run the benchmark and print a JSON summary."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "model" / "ningbo.mdl"))
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--memory-samples", type=int, default=100_000)
    ap.add_argument("--pysd-reps", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold-cache processes")
    ap.add_argument(
        "--saveper", type=float, default=None, help="recording interval (default: the model's)"
    )
    ap.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child:
        memory_child(args.model, args.memory_samples, args.saveper)
        return {}
    out: dict = {
        "model": args.model,
        "saveper": args.saveper,
        "cpus": os.cpu_count(),
        "load_start": _load(),
    }

    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as cache:
            out["process_cold"] = _fresh_process(args.model, cache)  # parse + JIT
            out["process_warm"] = _fresh_process(args.model, cache)  # both from disk
    from ningbo_sd.engine.compiler import build_ir
    from ningbo_sd.engine.loading import load_abstract_model

    out["compile_cold_s"] = _median_time(
        lambda: build_ir(load_abstract_model(args.model)), args.reps
    )
    out["compile_warm_s"] = _median_time(lambda: compile_model(args.model), args.reps)
    cm = compile_model(args.model)
    t0 = time.perf_counter()
    out["backend"] = cm.backend
    if cm.backend == "numba":
        cm._runtime().warmup()
    out["jit_or_cache_load_s"] = time.perf_counter() - t0
    cm.run_one()
    out["single_run_ms"] = 1e3 * _median_time(cm.run_one, max(args.reps, 20))
    keep = _headline(cm)
    params = _draws(cm, args.samples)
    cm.run(params, keep=keep, saveper=args.saveper)  # warm
    cpu0, wall0 = time.process_time(), time.perf_counter()
    batch = _median_time(lambda: cm.run(params, keep=keep, saveper=args.saveper), args.reps)
    out["cpu_share_during_batch"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    out["batch_samples"] = args.samples
    out["samples_per_s"] = args.samples / batch
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out["samples_per_s_1thread"] = args.samples / _median_time(
        lambda: cm.run(params, keep=keep, saveper=args.saveper, threads=1), args.reps
    )
    out["cpu_share_1thread"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)

    import pysd

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / Path(args.model).name
        shutil.copy(args.model, path)
        pm = pysd.read_vensim(str(path))
        pm.run()
        pysd_s = _median_time(lambda: (pm.reload(), pm.run()), args.pysd_reps)
    out["pysd_run_s"] = pysd_s
    out["pysd_runs_per_s"] = 1 / pysd_s
    out["speedup_per_sample"] = out["samples_per_s"] * pysd_s

    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--model",
            args.model,
            "--memory-child",
            "--memory-samples",
            str(args.memory_samples),
            *(["--saveper", str(args.saveper)] if args.saveper is not None else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out["memory_samples"] = args.memory_samples
    out.update(json.loads(child.stdout.strip().splitlines()[-1]))
    out["load_end"] = _load()
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
