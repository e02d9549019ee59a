"""Peak client memory of ``ningbo-sd mc`` as the sample count grows (issue 19: bounded memory).

Usage::

    python bench/bench_mc_memory.py [--samples 10000,100000,1000000] [--reps 3]
                                    [--indicators default] [--years all] [--json out.json]

Each run is a fresh ``python -m ningbo_sd mc baseline -n N --seed 1 -o FILE`` child process;
its peak resident set size is read from ``os.wait4`` (that child's own ``ru_maxrss``, so a
large run does not mask the later small ones, as ``RUSAGE_CHILDREN``'s running maximum
would). One warm-up run first fills the engine's kernel cache (``$NINGBO_SD_ENGINE_CACHE``,
or ``--cache``), so the peaks measure the run, not numba's compiler. Reports, per N, the
median peak RSS of ``--reps`` runs, its ratio to the smallest N's, the wall time and the size
of the results file. Flat memory means ratios near 1 while N grows a hundredfold.

Bar (issue 19): 10,000,000 samples under 1.5 GB of client RSS; issue 18: 1,000,000 under 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def peak_rss(arguments: list[str], env: dict) -> tuple[float, float]:
    """Run a child; return (its peak RSS in MiB, wall seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen(arguments, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{stderr.decode(errors='replace')}")
    return usage.ru_maxrss / 1024, elapsed  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="10000,100000,1000000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--indicators", default="default")
    parser.add_argument("--years", default="all")
    parser.add_argument("--cache", help="engine cache folder (default: the environment's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = sorted(int(float(part)) for part in args.samples.split(","))
    env = dict(os.environ)
    if args.cache:
        env["NINGBO_SD_ENGINE_CACHE"] = args.cache
    report = {"samples": {}, "reps": args.reps, "indicators": args.indicators, "years": args.years}
    with tempfile.TemporaryDirectory(prefix="bench-mc-memory-") as folder:
        output = Path(folder) / "mc.parquet"
        command = [sys.executable, "-m", "ningbo_sd", "mc", "baseline", "--seed", "1"]
        command += ["--indicators", args.indicators, "--years", args.years, "-o", str(output)]
        peak_rss([*command, "-n", "1000"], env)  # warm-up: compile or load the kernels
        for n in counts:
            runs = [peak_rss([*command, "-n", str(n)], env) for _ in range(args.reps)]
            rss = statistics.median(r for r, _ in runs)
            report["samples"][n] = {
                "peak_rss_mib": round(rss, 1),
                "runs_mib": [round(r, 1) for r, _ in runs],
                "wall_s": round(statistics.median(t for _, t in runs), 1),
                "file_mb": round(output.stat().st_size / 1e6, 1),
            }
            print(n, report["samples"][n], flush=True)
    smallest = report["samples"][counts[0]]["peak_rss_mib"]
    for n in counts:
        report["samples"][n]["ratio"] = round(report["samples"][n]["peak_rss_mib"] / smallest, 3)
    report["load_average"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
