"""Screening: every input the Monte Carlo samples must move at least one output.

Morris elementary effects (SALib's trajectory design, our own effects over *every* headline
column in every year, not one summary output): an input whose largest mean absolute
effect, relative to the output's level, stays below :data:`THRESHOLD` does nothing and is
refused (``ningbo-sd check``, section ``screening``). A common factor on a vector that the
model divides by its own average, for instance, cancels exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.uncertainty.sampling import SPEC_FILE, transform

#: The smallest relative effect that counts as moving an output (exact no-ops give ~1e-16).
THRESHOLD = 1e-9
TRAJECTORIES = 8
SEED = 1


def screen_inputs(
    scenario: str | None = "baseline",
    spec: str | Path = SPEC_FILE,
    trajectories: int = TRAJECTORIES,
    seed: int = SEED,
    threshold: float = THRESHOLD,
) -> pd.DataFrame:
    """Each sampled factor's largest Morris effect on any headline output in any year.

    Parameters
    ----------
    scenario : str or None
        A bundled scenario (the inputs it sets are not uncertain there).
    spec : path
        The uncertainty specification.
    trajectories, seed : int
        The Morris design: ``trajectories * (factors + 1)`` runs.
    threshold : float
        Relative effect below which a factor does nothing.

    Returns
    -------
    pandas.DataFrame
        One row per factor: ``factor``, ``effect`` (the largest over outputs of the mean
        absolute elementary effect over one grid step, relative to the output's mean
        level), ``output`` (where it is largest) and ``status`` (``pass`` or ``fail``).
    """
    from ningbo_sd.uncertainty.montecarlo import prepare, run_samples
    from ningbo_sd.uncertainty.sensitivity import design, salib_problem

    # every register input on its own range: the posterior draw would hide a no-op among
    # the calibrated parameters it moves together
    prepared = prepare(scenario, spec, targets=False, use_posterior=False)
    problem = salib_problem(prepared.spec)
    unit = design("morris", problem, trajectories, seed)
    results = run_samples(transform(prepared.spec, unit), prepared.context)
    names, blocks = [], []
    for name, variable in results.data_vars.items():
        if name == "binding_constraint":
            continue
        values = variable.transpose("sample", "year").to_numpy()
        blocks.append(values)
        names += [f"{name}:{year}" for year in results["year"].to_numpy()]
    outputs = np.concatenate(blocks, axis=1)
    scale = np.abs(outputs).mean(axis=0) + 1e-300
    n_factors = len(problem["names"])
    effects = np.zeros((n_factors, outputs.shape[1]))
    counts = np.zeros(n_factors)
    for start in range(0, len(unit), n_factors + 1):
        rows = slice(start, start + n_factors + 1)
        steps = np.diff(unit[rows], axis=0)
        changes = np.diff(outputs[rows], axis=0)
        for step, change in zip(steps, changes, strict=True):
            factor = int(np.argmax(np.abs(step)))
            effects[factor] += np.abs(change) / scale
            counts[factor] += 1
    effects /= np.maximum(counts, 1)[:, None]
    with np.errstate(invalid="ignore"):
        effects = np.nan_to_num(effects, nan=0.0)
    largest = effects.argmax(axis=1)
    return pd.DataFrame(
        {
            "factor": problem["names"],
            "effect": effects.max(axis=1),
            "output": [names[i] for i in largest],
            "status": np.where(effects.max(axis=1) > threshold, "pass", "fail"),
        }
    )
