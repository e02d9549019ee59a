"""Benchmark the scenario tools: scorecard and compare (bar: < 1 s), goal-seek (bar: < 5 s).

Usage::

    python bench/bench_scenarios.py [--reps 5] [--cold]

Prints JSON with medians over ``--reps`` repetitions, after one warm-up run (the batch
engine's compile and kernel load are reported separately as ``first_run_s``). Each
timing is end to end through the public functions, including the model runs:

- ``scorecard_s``: ``scorecard(run_scenario("plan_2025"))``;
- ``compare_s``: three scenarios run, compared side by side and their differing targets
  listed (what ``ningbo-sd compare baseline plan_2025 rd_push`` does);
- ``goal_seek_s``: the R&D intensity 2026-2035 that doubles gross output by 2035 in
  plan_2025 (coarse grid of 17 in one batch, then brentq on single runs), with its runs;
- ``frontier_s``: the same against four values of land revitalisation;
- ``reference_s``: one ``run_scenario`` (the engine's single-run path) measured in the
  same process, and every timing's ratio to it, for comparisons on a noisy machine;
- ``cold_cli_s`` (with ``--cold``): a fresh ``ningbo-sd scorecard plan_2025`` process,
  which includes imports, compiling the model and loading (or JIT-compiling) the kernel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ningbo_sd.scenarios.compare import (  # noqa: E402
    compare_results,
    run_scenarios,
    scorecards,
    target_differences,
)
from ningbo_sd.scenarios.goal import frontier, goal_seek  # noqa: E402
from ningbo_sd.scenarios.run import run_scenario  # noqa: E402
from ningbo_sd.scenarios.scorecard import scorecard  # noqa: E402

SCORECARD_BAR_S = 1.0
COMPARE_BAR_S = 1.0
GOAL_BAR_S = 5.0
DOUBLING = "gross_output[2035] >= 2 * gross_output[2020]"


def median_time(function, reps: int) -> tuple[float, list[float], object]:
    """Median wall time over ``reps`` calls, all times, and the last result."""
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def run_compare():
    """Run three scenarios, compare them and list the targets that differ."""
    runs = run_scenarios(["baseline", "plan_2025", "rd_push"])
    table = compare_results({name: frame for name, (_, frame) in runs.items()})
    return table, target_differences(scorecards(runs))


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per timing")
    parser.add_argument("--cold", action="store_true", help="also time a fresh CLI process")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    run_scenario("plan_2025")
    first_run = time.perf_counter() - start

    reference, _, _ = median_time(lambda: run_scenario("plan_2025"), args.reps)
    card_s, card_all, card = median_time(lambda: scorecard(run_scenario("plan_2025")), args.reps)
    compare_s, compare_all, _ = median_time(run_compare, args.reps)
    goal_s, goal_all, result = median_time(
        lambda: goal_seek("plan_2025", DOUBLING, "rd_intensity.2026-2035"), args.reps
    )
    frontier_s, frontier_all, table = median_time(
        lambda: frontier(
            "plan_2025", DOUBLING, "rd_intensity.2026-2035", "land_revitalisation.2026-2035",
            frontier_values=[2.0, 5.33, 8.0, 12.0],
        ),
        max(1, args.reps // 2),
    )  # fmt: skip
    summary = {
        "reps": args.reps,
        "first_run_s": round(first_run, 3),
        "reference_s": round(reference, 4),
        "scorecard_s": round(card_s, 4),
        "scorecard_all_s": [round(t, 4) for t in card_all],
        "scorecard_rows": len(card),
        "compare_s": round(compare_s, 4),
        "compare_all_s": [round(t, 4) for t in compare_all],
        "goal_seek_s": round(goal_s, 4),
        "goal_seek_all_s": [round(t, 4) for t in goal_all],
        "goal_seek_runs": result.runs,
        "goal_seek_answer": result.value,
        "frontier_s": round(frontier_s, 4),
        "frontier_all_s": [round(t, 4) for t in frontier_all],
        "frontier_rows": len(table),
        "ratios_to_reference": {
            "scorecard": round(card_s / reference, 2),
            "compare": round(compare_s / reference, 2),
            "goal_seek": round(goal_s / reference, 2),
            "frontier": round(frontier_s / reference, 2),
        },
        "bars_met": {
            "scorecard_under_1s": card_s < SCORECARD_BAR_S,
            "compare_under_1s": compare_s < COMPARE_BAR_S,
            "goal_seek_under_5s": goal_s < GOAL_BAR_S,
        },
    }
    if args.cold:
        start = time.perf_counter()
        command = "import sys, cli; sys.exit(cli.main(['scorecard', 'plan_2025']))"
        subprocess.run([sys.executable, "-c", command], cwd=REPO, check=True, capture_output=True)
        summary["cold_cli_s"] = round(time.perf_counter() - start, 2)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
