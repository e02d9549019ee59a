"""Monte Carlo ensembles of a scenario: sample, run in chunks, score, stream to Parquet.

The heavy work, :func:`run_chunk`, is a pure function of (a chunk of the sample table, a
:class:`ChunkContext` holding the scenario's resolved parameters): it runs in-process, on a
``LocalCluster`` or on a remote dask cluster with identical results. The sample table comes
from the seed alone (:mod:`ningbo_sd.uncertainty.sampling`), so chunk size and worker count
change only how the work is executed, never what it computes.

Results stream to one Parquet file, in row groups of whole chunks, written under a temporary
name in the target's folder and renamed when complete (layout:
:mod:`ningbo_sd.uncertainty.results`).
Quantiles and probabilities are exact and out of core
(:class:`~ningbo_sd.uncertainty.summary.SummaryAccumulator`): integer histograms and counts
while the chunks arrive, then a pass or two over the written file; the client's memory does
not grow with the number of samples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.model.outputs import report_years
from ningbo_sd.resources import is_default_calibration
from ningbo_sd.scenarios.run import CALIBRATED_FILE
from ningbo_sd.uncertainty.budget import check_ensemble_fits
from ningbo_sd.uncertainty.noise import is_noise_column, resolve_noise
from ningbo_sd.uncertainty.results import (
    LAYOUT,
    LOG_WEIGHT_COLUMN,
    SUMMARY_YEARS,
    MonteCarloSummary,
    ParquetStream,
    modelled_targets,
)
from ningbo_sd.uncertainty.sampling import (
    BLOCK_SIZE,
    DESIGNS,
    POSTERIOR_COLUMN,
    SPEC_FILE,
    ResolvedSpec,
    engine_columns,
    load_spec,
    resolve_spec,
    sample_table,
)
from ningbo_sd.uncertainty.summary import WEIGHT_COLUMN, SummaryAccumulator, parquet_reader

DEFAULT_INDICATORS = (
    "gross_output",
    "value_added",
    "value_added_real",
    "industrial_investment",
    "rd_intensity",
    "effective_patents",
    "high_tech_firms",
    "industrial_land",
    "energy_use",
    "energy_quota",
    "binding_constraint",
)
#: Always written and summarised.
SUMMARY_INDICATORS = (
    "gross_output",
    "value_added",
    "rd_intensity",
    "energy_use",
    "industrial_land",
)
#: one logical block of the design: each block is drawn once, not once per chunk it spans;
#: with two chunks in flight (:data:`LOCAL_IN_FLIGHT`) a 1M run peaks at 1.1 GB (2 blocks: 1.4)
DEFAULT_CHUNK_SIZE = BLOCK_SIZE


@dataclass(frozen=True)
class ChunkContext:
    """Everything a chunk needs besides its samples (picklable, the same for every chunk).

    Attributes
    ----------
    parameters : dict
        The scenario's resolved parameters (calibrated base < scenario < overrides).
    vectors : dict
        ``scale_vector`` parameters: name -> (elements, base values, ``scale`` or
        ``spread``).
    indicators : tuple of str
        Headline columns to return.
    years : tuple of int
        Years to return.
    assumed : dict
        Values for targets without a number (the scenario's ``targets``).
    target_ids : tuple of str or None
        Scorecard targets to return (None: none).
    threads : int or None
        Engine threads per chunk.
    noise : tuple of ningbo_sd.uncertainty.noise.NoiseChannel
        Process-noise channels in the sample tables (their columns are not stored).
    history : object or None
        Conditions the ensemble on history: an object whose ``log_weights(results,
        draws)`` gives each sample's log importance weight (e.g.
        :class:`ningbo_sd.calibration.history.HistoryLikelihood`); each row then carries
        ``log_weight`` and ``weight``, and the summaries are weighted.
    """

    parameters: dict
    vectors: dict
    indicators: tuple[str, ...]
    years: tuple[int, ...]
    assumed: dict = field(default_factory=dict)
    target_ids: tuple[str, ...] | None = None
    threads: int | None = None
    noise: tuple = ()
    history: object | None = None


def run_samples(samples: pd.DataFrame, context: ChunkContext):
    """Headline results over ``(sample, year)`` of rows of a sample table.

    One run when no parameter is uncertain (the table has no engine column).
    """
    from ningbo_sd.scenarios.run import run_batch

    table = engine_columns(samples, context.vectors)
    return run_batch(
        table if table.shape[1] else None,
        overrides=context.parameters,
        calibrated=None,
        threads=context.threads,
    )


def run_chunk(samples: pd.DataFrame, context: ChunkContext) -> pd.DataFrame:
    """Run one chunk of the sample table and return its rows of the output table.

    Parameters
    ----------
    samples : pandas.DataFrame
        Rows of the sample table (index = sample numbers).
    context : ChunkContext

    Returns
    -------
    pandas.DataFrame
        The columns described in the module docstring, one row per sample.
    """
    results = run_samples(samples, context)
    if results.sizes["sample"] != len(samples):  # no uncertain parameter: one run for all
        results = results.isel(sample=np.zeros(len(samples), dtype=int))
    columns: dict[str, np.ndarray] = {"sample": samples.index.to_numpy(dtype=np.int64)}
    for name in samples.columns:
        if is_noise_column(name, context.noise):
            continue  # noise paths are redrawn from the seed, not stored
        dtype = np.int64 if name == POSTERIOR_COLUMN else float
        columns[f"param:{name}"] = samples[name].to_numpy(dtype=dtype)
    chosen = results[list(context.indicators)].sel(year=list(context.years))
    for indicator in context.indicators:
        block = chosen[indicator].transpose("sample", "year").to_numpy()
        for position, year in enumerate(context.years):
            columns[f"{indicator}:{year}"] = block[:, position]
    if context.history is not None:
        draws = samples[POSTERIOR_COLUMN].to_numpy() if POSTERIOR_COLUMN in samples else None
        log_weight = context.history.log_weights(results, draws)
        columns[LOG_WEIGHT_COLUMN] = log_weight
        columns[WEIGHT_COLUMN] = np.exp(log_weight)
    frame = pd.DataFrame(columns)
    if context.target_ids:
        outcomes = target_outcomes(results, context.assumed).sel(target=list(context.target_ids))
        values = outcomes["value"].transpose("sample", "target").to_numpy()
        met = outcomes["met"].transpose("sample", "target").to_numpy()
        extra = {}
        for position, target in enumerate(context.target_ids):
            extra[f"target:{target}:value"] = values[:, position]
            flags = met[:, position]
            known = pd.array(flags == 1.0, dtype="boolean")
            known[np.isnan(flags)] = pd.NA
            extra[f"target:{target}:met"] = known
        frame = pd.concat([frame, pd.DataFrame(extra)], axis=1)
    return frame


def target_outcomes(results, assumed: dict | None = None):
    """Scorecard outcomes (``value``, ``met``) over (sample, target) of a batch of results.

    A thin adapter over :func:`ningbo_sd.scenarios.scorecard.scorecard_outcomes`, the one definition
    of the targets.
    """
    from ningbo_sd.scenarios.scorecard import scorecard_outcomes

    return scorecard_outcomes(results, assumed=assumed or None)


# ---------------------------------------------------------------- preparation


@dataclass(frozen=True)
class Prepared:
    """A scenario and a specification resolved for an ensemble."""

    scenario_name: str
    spec: ResolvedSpec
    context: ChunkContext


def posterior_beside(calibrated: str | Path | None) -> Path | None:
    """The posterior draws written beside a calibration other than the default, if any.

    The default calibration's draws are the uncertainty specification's own (None).
    """
    if is_default_calibration(calibrated):
        return None
    draws = Path(calibrated).parent / "posterior.parquet"
    return draws if draws.is_file() else None


def prepare(
    scenario=None,
    spec: str | Path | ResolvedSpec | None = SPEC_FILE,
    overrides: dict | None = None,
    calibrated: str | Path | None = CALIBRATED_FILE,
    indicators: tuple[str, ...] = DEFAULT_INDICATORS,
    years: tuple[int, ...] | None = None,
    targets: bool = True,
    threads: int | None = None,
    posterior: str | Path | None = None,
    use_posterior: bool = True,
) -> Prepared:
    """Resolve the scenario, the uncertainty specification and the chunk context.

    Parameters
    ----------
    scenario : Scenario, path, bundled name or None
    spec : path, ResolvedSpec or None
        The uncertainty specification (None: nothing uncertain).
    overrides : dict, optional
        Constant overrides applied to every sample (below the sample table).
    calibrated : path or None
        Calibration to start from.
    indicators : tuple of str
        Headline columns to keep (``SUMMARY_INDICATORS`` are always added).
    years : tuple of int, optional
        Years to keep (default every model year).
    targets : bool
        Score the modelled targets.
    threads : int, optional
        Engine threads per chunk.
    posterior : path, optional
        Posterior draws to sample instead of the specification's (e.g. those beside a
        calibration other than the default: :func:`posterior_beside`).
    use_posterior : bool
        False: sample every register row from its range, none from the posterior (the
        screening of single inputs).

    Returns
    -------
    Prepared
    """
    from ningbo_sd.model.outputs import output_columns
    from ningbo_sd.scenarios.levers import load_levers
    from ningbo_sd.scenarios.run import compiled_model, resolve_parameters
    from ningbo_sd.scenarios.schema import Scenario, load_scenario, scenario_parameters

    if scenario is not None and not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    model = compiled_model()
    parameters = resolve_parameters(scenario, overrides, calibrated=calibrated)
    scenario_sets = set(scenario_parameters(scenario)) if scenario is not None else set()
    scenario_sets |= set(overrides or {})
    if spec is None:
        resolved = ResolvedSpec(())
    elif isinstance(spec, ResolvedSpec):
        resolved = spec
    else:
        levers = {lever.model_name for lever in load_levers().values() if lever.kind != "path"}
        loaded = load_spec(spec)
        if posterior is not None:
            source = loaded.posterior.model_copy(update={"path": str(Path(posterior).resolve())})
            loaded = loaded.model_copy(update={"posterior": source})
        if not use_posterior:
            source = loaded.posterior.model_copy(update={"use": "never"})
            loaded = loaded.model_copy(update={"posterior": source})
        resolved = resolve_spec(loaded, model.constants, scenario_sets, levers)
        if loaded.noise.use and loaded.noise.channels:
            noise = resolve_noise(loaded.noise.channels, model, parameters)
            resolved = dataclasses.replace(resolved, noise=noise)
    known = [column.name for column in output_columns()]
    unknown = [name for name in indicators if name not in known]
    if unknown:
        raise ValueError(f"indicators {unknown} are not headline columns; choose from {known}")
    chosen = tuple(dict.fromkeys([*SUMMARY_INDICATORS, *indicators]))
    model_years = report_years(model.time["initial_time"], model.time["final_time"])
    years = tuple(model_years) if years is None else tuple(int(y) for y in years)
    outside = [year for year in years if year not in model_years]
    if outside:
        raise ValueError(
            f"years {outside} are outside the model's {model_years[0]}-{model_years[-1]}"
        )
    vectors = {}
    drawn = {parameter.name for parameter in resolved.from_posterior}
    for parameter in resolved.parameters:
        if parameter.scale_vector:
            elements = model.variables[parameter.name].coords[0]
            # a posterior draw is a factor on the register's vector (the calibration's own
            # point is one such draw); otherwise the factor moves the run's vector
            base = np.asarray(
                model.constants[parameter.name]
                if parameter.name in drawn
                else parameters.get(parameter.name, model.constants[parameter.name])
            )
            mode = "spread" if parameter.spread_vector else "scale"
            values = tuple(float(v) for v in base.ravel())
            vectors[parameter.name] = (tuple(elements), values, mode)
    context = ChunkContext(
        parameters=parameters,
        vectors=vectors,
        indicators=chosen,
        years=years,
        assumed=dict(getattr(scenario, "targets", None) or {}),
        target_ids=tuple(target.id for target in modelled_targets()) if targets else None,
        threads=threads,
        noise=resolved.noise,
    )
    name = scenario.name if scenario is not None else "defaults"
    return Prepared(name, resolved, context)


# ---------------------------------------------------------------- execution


def execute(
    tables: Iterator[pd.DataFrame],
    context: ChunkContext,
    workers: int | None = None,
    scheduler: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Run chunks and yield their output frames in the order of ``tables``.

    Parameters
    ----------
    tables : iterator of pandas.DataFrame
        Chunks of the sample table, produced lazily.
    context : ChunkContext
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes on 127.0.0.1.
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``).

    Yields
    ------
    pandas.DataFrame
    """
    check_execution(workers, scheduler)
    if workers is None and scheduler is None:
        yield from _execute_local(tables, context)
        return
    from ningbo_sd.uncertainty.cluster import execute_dask

    yield from execute_dask(run_chunk, tables, context, workers, scheduler)


#: chunks in flight in an in-process run (see :func:`_execute_local`)
LOCAL_IN_FLIGHT = 2


def _execute_local(tables, context: ChunkContext) -> Iterator[pd.DataFrame]:
    """Run chunks in this process, two at a time, and yield them in order.

    A chunk's sampling, scoring and table building run on one core while the
    engine (which releases the GIL) integrates the next chunk, so neither core
    idles between chunks.  Every chunk's result depends only on its own rows,
    so the output is the same as running them one by one.
    """
    pending: deque = deque()
    pool = ThreadPoolExecutor(max_workers=LOCAL_IN_FLIGHT)
    try:
        for table in tables:
            pending.append(pool.submit(run_chunk, table, context))
            if len(pending) >= LOCAL_IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:
        # an error or an interrupt (Ctrl-C, SIGTERM): return at once, so the caller deletes
        # its temporary file and reports now, not after the chunk still running (seconds, or
        # a kernel compile); Python lets that thread finish before the process exits
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def check_execution(workers: int | None, scheduler: str | None) -> None:
    """Refuse contradictory or impossible execution settings (a clear ``ValueError``)."""
    if workers is not None and scheduler is not None:
        raise ValueError("give either --workers (a local cluster) or --scheduler, not both")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers})")


def chunk_bounds(n_samples: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_samples)`` in chunks."""
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be at least 1 (got {chunk_size})")
    return [(lo, min(lo + chunk_size, n_samples)) for lo in range(0, n_samples, chunk_size)]


def run_monte_carlo(
    scenario=None,
    n_samples: int = 1000,
    seed: int = 0,
    *,
    output: str | Path | None = None,
    spec: str | Path | ResolvedSpec | None = SPEC_FILE,
    design: str = "lhs",
    chunk_size: int | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    indicators: tuple[str, ...] = DEFAULT_INDICATORS,
    years: tuple[int, ...] | None = None,
    summary_years: tuple[int, ...] = SUMMARY_YEARS,
    overrides: dict | None = None,
    calibrated: str | Path | None = CALIBRATED_FILE,
    progress: bool | None = None,
    condition=None,
    discrepancy=None,
) -> MonteCarloSummary:
    """Run a Monte Carlo ensemble of a scenario.

    Parameters
    ----------
    scenario : Scenario, path, bundled name or None
        The scenario (None: the model defaults).
    n_samples : int
        Ensemble size.
    seed : int
        Seed of the sample table (same seed, same samples, same results).
    output : path, optional
        Parquet file for the per-sample results (layout in the module docstring).
    spec : path, ResolvedSpec or None
        Uncertainty specification (default ``scenarios/registry/uncertainty.yaml``).
    design : {"lhs", "random"}
        Latin hypercube (per block of
        :data:`~ningbo_sd.uncertainty.sampling.BLOCK_SIZE`) or plain random.
    chunk_size : int, optional
        Samples per task (default 10,000); affects memory and speed only.
    workers, scheduler
        See :func:`execute`; neither: in-process.
    indicators : tuple of str
        Headline columns written (``SUMMARY_INDICATORS`` always are).
    years : tuple of int, optional
        Years written (default every year, 2015-2035); must include ``summary_years``.
    summary_years : tuple of int
        Years of the quantile table.
    overrides : dict, optional
        Constant overrides for every sample.
    calibrated : path or None
        Calibration to start from.
    progress : bool, optional
        Show a tqdm bar on stderr (default: when stderr is a terminal).
    condition : callable, optional
        ``condition(prepared)`` returns the ``history`` of the chunk context (importance
        weights conditioning the ensemble on history, e.g.
        :func:`ningbo_sd.calibration.history.history_likelihood`); None: unweighted.
    discrepancy : ningbo_sd.uncertainty.discrepancy.Discrepancy, optional
        Adds to the probability table the *predictive* probability of each target (column
        ``predictive``): that the published figure meets it, the model's value moved by the
        model discrepancy (:mod:`ningbo_sd.uncertainty.discrepancy`).

    Returns
    -------
    MonteCarloSummary
    """
    from tqdm import tqdm

    if design not in DESIGNS:
        raise ValueError(f"--design {design!r} is not one of {', '.join(DESIGNS)}")
    if n_samples < 1:
        raise ValueError(f"--samples must be at least 1 (got {n_samples})")
    if seed < 0:
        raise ValueError(f"--seed must be a non-negative integer (got {seed})")
    if output is not None and Path(output).suffix != ".parquet":
        raise ValueError(f"{output}: the Monte Carlo output must be a .parquet file")
    check_execution(workers, scheduler)
    local = workers is None and scheduler is None
    chunk = DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size
    if chunk < 1:
        raise ValueError(f"--chunk-size must be at least 1 (got {chunk})")
    fits = {
        "n_samples": n_samples,
        "output": output,
        "summary_years": summary_years,
        "chunk": chunk,
        "in_flight": LOCAL_IN_FLIGHT if local else 2 * (workers or 0),
    }
    # before any work: the columns known now (at least these), so an absurd count is
    # refused at once; again below with every column
    chosen = tuple(dict.fromkeys([*SUMMARY_INDICATORS, *indicators]))
    check_ensemble_fits(indicators=chosen, years=years or summary_years, at_least=True, **fits)
    prepared = prepare(
        scenario,
        spec,
        overrides,
        calibrated,
        tuple(indicators),
        years=years,
        threads=None if local else 1,
        posterior=posterior_beside(calibrated),
    )
    if condition is not None:
        context = dataclasses.replace(prepared.context, history=condition(prepared))
        prepared = dataclasses.replace(prepared, context=context)
    context = prepared.context
    missing = [year for year in summary_years if year not in context.years]
    if missing:
        raise ValueError(f"--years must include the summary years {list(summary_years)}")
    resolved = prepared.spec
    check_ensemble_fits(
        indicators=context.indicators, years=context.years, parameters=len(resolved.parameters),
        posterior=bool(resolved.from_posterior), targets=len(context.target_ids or ()), **fits,
    )  # fmt: skip
    bounds = chunk_bounds(n_samples, DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size)
    tables = (sample_table(resolved, n_samples, seed, design, lo, hi) for lo, hi in bounds)
    summary = SummaryAccumulator(
        context.indicators, summary_years, context.target_ids, discrepancy=discrepancy
    )
    metadata = {
        "scenario": prepared.scenario_name,
        "n_samples": n_samples,
        "seed": seed,
        "design": design,
        "block_size": BLOCK_SIZE,
        "spec": str(resolved.source),
        "posterior": resolved.posterior_path,
        "parameters": resolved.table().to_dict(orient="records"),
        "held": list(resolved.held),
        "indicators": list(context.indicators),
        "years": list(context.years),
        "targets": list(context.target_ids or []),
        "layout": LAYOUT,
    }
    show = sys.stderr.isatty() if progress is None else progress
    with contextlib.ExitStack() as stack:
        if output is None:  # the quantiles' second pass reads the values: a scratch file
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ningbo-sd-")))
        target = Path(output) if output is not None else folder / "summary.parquet"
        stream = None
        try:  # an error or an interrupt (Ctrl-C, SIGTERM) deletes the temporary file
            stream = ParquetStream(target, metadata)
            with tqdm(total=n_samples, unit="sample", disable=not show, file=sys.stderr) as bar:
                for frame in execute(tables, context, workers, scheduler):
                    stream.write(frame if output is not None else frame[summary.needs(frame)])
                    summary.add(frame)
                    bar.update(len(frame))
            written = stream.commit()
        except BaseException:
            if stream is not None:
                stream.abort()
            raise
        summary.finish(parquet_reader(written))
    return MonteCarloSummary(
        scenario=prepared.scenario_name,
        n_samples=n_samples,
        seed=seed,
        quantiles=summary.quantiles(),
        probabilities=summary.probabilities(),
        binding=summary.binding_shares(),
        output=written if output is not None else None,
        parameters=resolved.table(),
        held=resolved.held,
        effective_samples=summary.effective_sample_size(),
    )
