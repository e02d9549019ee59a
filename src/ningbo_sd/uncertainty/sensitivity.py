"""Global sensitivity analysis (Sobol, Morris) of a scenario through SALib.

Which uncertainties drive 2035 gross output and the doubling goal? The design is drawn on
the unit hypercube by SALib (``SALib.sample.sobol`` - Saltelli's scheme, first-order and
total indices - or ``SALib.sample.morris``), mapped to parameter values with the same ppf
transforms as the Monte Carlo (:mod:`ningbo_sd.uncertainty.sampling`), run through the same chunk
function (:func:`ningbo_sd.uncertainty.montecarlo.run_chunk`, in-process or on dask), and
analysed with ``SALib.analyze.sobol`` / ``SALib.analyze.morris``.

Outputs analysed: ``gross_output_2035`` (亿元), ``gross_output_ratio_2035_2020`` (the
continuous doubling measure) and, for each scorecard target chosen (default
``gross_output_2035``, the doubling goal), ``<target>:met`` (0/1) and, unless it is a linear
transform of the ratio, ``<target>:value``. Morris elementary effects are per unit of the
*probability scale* of each factor (a move across its whole distribution), so factors with
different units compare directly. The calibration posterior, when used, is one factor
(``posterior draw``): the effect of the calibrated parameters jointly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.io import UserError, atomic_write, check_output
from ningbo_sd.scenarios.run import CALIBRATED_FILE
from ningbo_sd.uncertainty.sampling import SPEC_FILE, ResolvedSpec, transform

METHODS = ("sobol", "morris")
DEFAULT_TARGETS = ("gross_output_2035",)
OUTPUT_SUFFIXES = (".csv", ".parquet", ".json")
INDEX_COLUMNS = ("method", "output", "parameter", "index", "value", "conf", "conf_level", "note")


@dataclass
class SensitivityResult:
    """Indices and the runs behind them.

    Attributes
    ----------
    method : str
    scenario : str
    indices : pandas.DataFrame
        Tidy: one row per (output, parameter, index) with ``value`` and ``conf`` (the
        half-width of the bootstrap confidence interval at ``conf_level``).
    outputs : pandas.DataFrame
        The analysed outputs, one row per run.
    unit : numpy.ndarray
        The design on the unit hypercube.
    problem : dict
        The SALib problem (factors on [0, 1]).
    """

    method: str
    scenario: str
    indices: pd.DataFrame
    outputs: pd.DataFrame
    unit: np.ndarray
    problem: dict

    @property
    def n_runs(self) -> int:
        """Model runs made."""
        return len(self.outputs)

    def to_frame(self) -> pd.DataFrame:
        """The tidy table of indices."""
        return self.indices.copy()

    def report(self, top: int = 8) -> str:
        """The strongest factors per output, as text."""
        key = "ST" if self.method == "sobol" else "mu_star"
        lines = [f"{self.method.title()} sensitivity of {self.scenario} ({self.n_runs:,} runs)"]
        for output, group in self.indices.groupby("output", sort=False):
            wide = group.pivot(index="parameter", columns="index", values="value")
            if key not in wide or wide[key].isna().all():
                note = group["note"].iloc[0] or "no indices"
                lines.append(f"\n{output}: {note}")
                continue
            conf = group[group["index"] == key].set_index("parameter")["conf"]
            wide = wide.assign(**{f"{key}_conf": conf}).sort_values(key, ascending=False)
            lines.append(f"\n{output} (top {min(top, len(wide))} by {key}):")
            lines.append(wide.head(top).to_string(float_format=lambda v: f"{v:.3f}"))
        return "\n".join(lines)


def salib_problem(spec: ResolvedSpec) -> dict:
    """The SALib problem: one factor per column of the unit design, bounds [0, 1]."""
    names = spec.factors
    if not names:
        raise ValueError(f"{spec.source}: no uncertain parameters to analyse")
    return {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}


def check_design(method: str, n: int, seed: int) -> None:
    """Refuse an unknown method, a sample count it cannot use, or a negative seed.

    Raises
    ------
    ValueError
        Naming the option and what is allowed.
    """
    if method not in METHODS:
        raise ValueError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer (got {seed})")
    if method == "sobol" and (n < 2 or n & (n - 1)):
        raise ValueError(f"--samples for Sobol must be a power of 2, at least 2 (got {n:,})")
    if method == "morris" and n < 2:
        raise ValueError(f"--samples (Morris trajectories) must be at least 2 (got {n:,})")


def bootstrap_seed(seed: int) -> int:
    """The seed SALib's bootstrap gets for a user's seed: ``seed + 1``.

    ``SALib.analyze.sobol`` treats a seed of 0 as no seed at all (it draws the resamples
    from numpy's global generator), so the confidence intervals of ``--seed 0``, the
    default, would change from run to run; every seed is shifted by one, so each user seed
    gives one fixed bootstrap. The design uses the seed as given (SALib seeds it properly).
    """
    return int(seed) + 1


def design(method: str, problem: dict, n: int, seed: int, num_levels: int = 4) -> np.ndarray:
    """The unit design of a method.

    Parameters
    ----------
    method : {"sobol", "morris"}
    problem : dict
        From :func:`salib_problem`.
    n : int
        Sobol: base samples, a power of 2 (``n * (D + 2)`` runs); Morris: trajectories
        (``n * (D + 1)`` runs).
    seed : int
    num_levels : int
        Morris grid levels.

    Returns
    -------
    numpy.ndarray
        ``(runs, D)`` in [0, 1].
    """
    check_design(method, n, seed)
    if method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, n, calc_second_order=False, seed=seed)
    from SALib.sample import morris

    return morris.sample(problem, n, num_levels=num_levels, seed=seed)


def analyse(
    method: str,
    problem: dict,
    unit: np.ndarray,
    outputs: pd.DataFrame,
    seed: int = 0,
    conf_level: float = 0.95,
    num_resamples: int = 100,
    num_levels: int = 4,
) -> pd.DataFrame:
    """SALib's analysis of each output column, as one tidy table.

    Parameters
    ----------
    method : {"sobol", "morris"}
    problem : dict
    unit : numpy.ndarray
        The design the outputs were computed on.
    outputs : pandas.DataFrame
        One column per output, one row per design row.
    seed : int
        The user's seed; the bootstrap is seeded with :func:`bootstrap_seed` of it.
    conf_level, num_resamples, num_levels
        Passed to SALib.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`INDEX_COLUMNS`. An output that is constant (or not finite) gets NaN
        indices and a note instead of an error.
    """
    from SALib.analyze import morris as morris_analysis
    from SALib.analyze import sobol as sobol_analysis

    rows = []
    seed = bootstrap_seed(seed)
    for output in outputs.columns:
        y = outputs[output].to_numpy(dtype=float)
        note = ""
        if not np.isfinite(y).all():
            note = f"{int((~np.isfinite(y)).sum())} runs gave no finite value"
        elif np.ptp(y) == 0:
            note = f"constant ({y[0]:g}) in every run: no variance to apportion"
        if method == "sobol":
            keys = (("S1", "S1_conf"), ("ST", "ST_conf"))
            result = None if note else sobol_analysis.analyze(
                problem, y, calc_second_order=False, num_resamples=num_resamples,
                conf_level=conf_level, seed=seed,
            )  # fmt: skip
        else:
            keys = (("mu", None), ("mu_star", "mu_star_conf"), ("sigma", None))
            result = None if note else morris_analysis.analyze(
                problem, unit, y, num_resamples=num_resamples, conf_level=conf_level,
                num_levels=num_levels, seed=seed,
            )  # fmt: skip
        for position, name in enumerate(problem["names"]):
            for index, conf in keys:
                value = np.nan if result is None else float(np.asarray(result[index])[position])
                half = np.nan if result is None or conf is None else float(result[conf][position])
                rows.append((method, output, name, index, value, half, conf_level, note))
    return pd.DataFrame(rows, columns=list(INDEX_COLUMNS))


def output_table(frame: pd.DataFrame, targets: tuple[str, ...]) -> pd.DataFrame:
    """The analysed outputs from the chunk outputs (see the module docstring)."""
    table = {
        "gross_output_2035": frame["gross_output:2035"].to_numpy(dtype=float),
        "gross_output_ratio_2035_2020": (
            frame["gross_output:2035"].to_numpy(dtype=float)
            / frame["gross_output:2020"].to_numpy(dtype=float)
        ),
    }
    for target in targets:
        met = frame[f"target:{target}:met"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        table[f"{target}:met"] = met
        if target != "gross_output_2035":
            table[f"{target}:value"] = frame[f"target:{target}:value"].to_numpy(dtype=float)
    return pd.DataFrame(table)


def run_sensitivity(
    scenario=None,
    method: str = "sobol",
    n: int = 1024,
    seed: int = 0,
    *,
    spec: str | Path | ResolvedSpec = SPEC_FILE,
    parameters: list[str] | None = None,
    targets: tuple[str, ...] | None = None,
    chunk_size: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    calibrated: str | Path | None = CALIBRATED_FILE,
    conf_level: float = 0.95,
    num_resamples: int = 100,
    num_levels: int = 4,
) -> SensitivityResult:
    """Global sensitivity of a scenario's 2035 gross output and targets.

    Parameters
    ----------
    scenario : Scenario, path, bundled name or None
    method : {"sobol", "morris"}
    n : int
        Sobol base samples (power of 2) or Morris trajectories.
    seed : int
        Seed of the design and (as :func:`bootstrap_seed`) of the bootstrap: the same seed
        gives the same indices and confidence intervals.
    spec : path or ResolvedSpec
        Uncertainty specification.
    parameters : list of str, optional
        Vary only these (the others stay at the scenario's values); ``posterior draw`` names
        the posterior factor.
    targets : tuple of str, optional
        Scorecard targets whose met flag (and value) are analysed (default the doubling).
    chunk_size, workers, scheduler
        As in :func:`ningbo_sd.uncertainty.montecarlo.run_monte_carlo`.
    calibrated : path or None
    conf_level, num_resamples, num_levels
        Passed to SALib.

    Returns
    -------
    SensitivityResult
    """
    from ningbo_sd.uncertainty.budget import check_fits, sensitivity_cost
    from ningbo_sd.uncertainty.montecarlo import (
        DEFAULT_CHUNK_SIZE,
        LOCAL_IN_FLIGHT,
        check_execution,
        chunk_bounds,
        execute,
        prepare,
    )

    check_design(method, n, seed)
    check_execution(workers, scheduler)
    local = workers is None and scheduler is None
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if chunk < 1:
        raise ValueError(f"--chunk-size must be at least 1 (got {chunk})")
    in_flight = LOCAL_IN_FLIGHT if local else 2 * (workers or 0)
    request = f"--samples {n:,}"
    n_outputs = 2 + len(targets or DEFAULT_TARGETS)
    # before any work, with one factor (a lower bound); again below with every factor
    cost = sensitivity_cost(method, n, 1, n_outputs, num_resamples, chunk, in_flight)
    check_fits(request, cost, at_least=True)
    # every input on its register range, one index each: with every scalar assumption in
    # the calibration posterior, its draw would be a single factor
    prepared = prepare(
        scenario, spec, None, calibrated, ("gross_output",), years=(2020, 2035),
        threads=None if local else 1, use_posterior=False,
    )  # fmt: skip
    resolved = prepared.spec.subset(parameters) if parameters else prepared.spec
    targets = tuple(targets or DEFAULT_TARGETS)
    known = prepared.context.target_ids or ()
    unknown = [t for t in targets if t not in known]
    if unknown:
        raise ValueError(
            f"targets {unknown} are not modelled scorecard targets; choose from {known}"
        )
    context = dataclasses.replace(prepared.context, target_ids=targets)
    problem = salib_problem(resolved)
    n_outputs = 2 + sum(1 if target == "gross_output_2035" else 2 for target in targets)
    factors = problem["num_vars"]
    check_fits(
        request, sensitivity_cost(method, n, factors, n_outputs, num_resamples, chunk, in_flight)
    )
    unit = design(method, problem, n, seed, num_levels)
    bounds = chunk_bounds(len(unit), chunk)

    def tables():
        for lo, hi in bounds:
            table = transform(resolved, unit[lo:hi])
            table.index = pd.RangeIndex(lo, hi, name="sample")
            yield table

    frames = [
        output_table(frame, targets) for frame in execute(tables(), context, workers, scheduler)
    ]
    outputs = pd.concat(frames, ignore_index=True)
    indices = analyse(method, problem, unit, outputs, seed, conf_level, num_resamples, num_levels)
    return SensitivityResult(method, prepared.scenario_name, indices, outputs, unit, problem)


def check_indices_output(path: str | Path) -> Path:
    """Check, before any run, that the indices can be written to ``path``.

    Raises
    ------
    UserError
        For a suffix other than .csv, .parquet or .json, a folder, a FIFO or a device, or a
        folder that does not exist.
    """
    path = Path(path)
    if path.suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"{path}: the sensitivity output must end in {', '.join(OUTPUT_SUFFIXES)}")
    check_output(path)
    return path


def write_indices(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the tidy indices atomically; the format follows the suffix (csv, parquet, json).

    Raises
    ------
    UserError
        For another suffix or an output that cannot be written (:func:`check_indices_output`).
    """
    path = check_indices_output(path)

    def write(temporary: Path) -> None:
        if path.suffix == ".csv":
            frame.to_csv(temporary, index=False)
        elif path.suffix == ".parquet":
            frame.to_parquet(temporary, index=False)
        else:
            frame.to_json(
                temporary, orient="records", indent=1, force_ascii=False, double_precision=15
            )

    atomic_write(path, write)
    return path
