"""The screening section: no input the Monte Carlo samples is a no-op (gates the build)."""

from __future__ import annotations

from ningbo_sd.uncertainty.screening import THRESHOLD, TRAJECTORIES, screen_inputs
from ningbo_sd.validation import Section


def screening() -> Section:
    """Morris screening of the uncertainty specification's factors on the baseline.

    Returns
    -------
    Section
        One row per sampled factor; a factor whose largest relative effect on any headline
        output is below the threshold fails (a no-op input the ensemble must not carry).
    """
    table = screen_inputs()
    failed = table[table["status"] == "fail"]["factor"].tolist()
    summary = (
        f"{len(table) - len(failed)} of {len(table)} sampled factors move an output "
        f"(Morris, {TRAJECTORIES} trajectories, relative effect > {THRESHOLD:g})"
        + (f"; no-ops: {', '.join(failed)}" if failed else "")
    )
    return Section("screening", "Screening: every sampled input matters", table, summary, True)
