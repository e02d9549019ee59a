"""What has to hold: a target's probability by tercile of each sampled input.

The planner's second question, after "does this policy mix double output by 2035?", is "what
has to hold for it to?". A Monte Carlo results file (:func:`~ningbo_sd.uncertainty.montecarlo.
run_monte_carlo`) holds every sample's inputs (``param:<name>``), whether each target was met
(``target:<id>:met``) and, when conditioned on history, its weight (``log_weight``). For each
input this module splits the samples into three equally weighted groups (terciles of the
input: the inverted weighted CDF) and gives the weighted share meeting the target in each. An
input whose low and high terciles differ most is what the verdict hangs on. This is the one-
input-at-a-time reading of scenario discovery; it is exact and needs no tuning.

The probabilities are those of the model's runs (the ``met`` column) or, given the model
discrepancy, the predictive probabilities that the published figure meets the target
(:func:`load_target`). :mod:`ningbo_sd.uncertainty.discovery` looks for boxes over several
inputs. The file is read one column at a time, so memory stays at a few columns of the
ensemble whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.io import UserError
from ningbo_sd.uncertainty.results import LOG_WEIGHT_COLUMN, METADATA_KEY
from ningbo_sd.uncertainty.spec import POSTERIOR_COLUMN

#: Share of the ensemble's weight in each group: terciles.
GROUPS = 3
#: The columns of a conditional table.
COLUMNS = ("input", "low", "middle", "high", "spread", "edge_low", "edge_high")
#: Sample columns that are not inputs: the index of the calibration's posterior draw (the
#: draw's parameter values are inputs of their own).
NOT_INPUTS = (POSTERIOR_COLUMN,)


class ConditionsError(UserError):
    """A results file or a target that the analysis cannot use."""


def open_results(path: Path):
    """A results file's Parquet handle and its run metadata (refused: missing or foreign)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise ConditionsError(f"{path}: Monte Carlo results not found")
    try:
        source = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise ConditionsError(f"{path}: not a Parquet file ({type(error).__name__})") from None
    metadata = source.schema_arrow.metadata or {}
    if METADATA_KEY not in metadata:
        raise ConditionsError(
            f"{path}: not a Monte Carlo results file (no {METADATA_KEY.decode()} metadata); "
            "write one with `ningbo-sd mc ... -o FILE.parquet`"
        )
    return source, json.loads(metadata[METADATA_KEY])


def read_column(source, name: str) -> np.ndarray:
    """One column of a results file as a numpy array."""
    return source.read(columns=[name]).column(name).to_numpy(zero_copy_only=False)


def input_columns(source) -> Iterator[tuple[str, np.ndarray]]:
    """Each sampled input of a results file with its values, one column in memory at a time.

    The columns of :data:`NOT_INPUTS` are left out.
    """
    for column in source.schema_arrow.names:
        name = column.removeprefix("param:")
        if column.startswith("param:") and name not in NOT_INPUTS:
            yield name, read_column(source, column).astype(float)


def load_target(path: Path, target: str, discrepancy=None):
    """A results file, and each sample's outcome for one target and its weight.

    Parameters
    ----------
    path : Path
        A Monte Carlo results file.
    target : str
        One of its targets.
    discrepancy : Discrepancy, optional
        Read the outcome as the probability that the *published* figure meets the target
        (the sample's value moved by the model discrepancy,
        :meth:`~ningbo_sd.uncertainty.discrepancy.Discrepancy.probability`), as the
        predictive probabilities of ``ningbo-sd mc`` do; None: whether the run meets it.

    Returns
    -------
    source : pyarrow.parquet.ParquetFile
    met : numpy.ndarray
        1.0 met, 0.0 not met (or the probability of meeting it, with ``discrepancy``), NaN
        where the target is undefined.
    weights : numpy.ndarray
        The importance weights relative to the largest (ones when the run is unweighted).

    Raises
    ------
    ConditionsError
        A missing or foreign file, a target the file does not hold (the message lists the
        targets it does), one undefined in every sample, or (with ``discrepancy``) one that
        has no predictive reading.
    """
    source, metadata = open_results(path)
    targets = list(metadata.get("targets", []))
    if target not in targets:
        shown = ", ".join(targets[:12]) + (", ..." if len(targets) > 12 else "")
        raise ConditionsError(f"{path}: target {target!r} is not in the file; it has: {shown}")
    if discrepancy is None:
        met = pd.array(read_column(source, f"target:{target}:met"), dtype="boolean")
        met = met.to_numpy(dtype=float, na_value=np.nan)
    else:
        from ningbo_sd.uncertainty.summary import target_readings

        reading = target_readings([target]).get(target)
        if reading is None:
            raise ConditionsError(
                f"{path}: target {target!r} has no predictive reading (only modelled >= and "
                "<= targets that are not scenario inputs have one); leave out --predictive"
            )
        values = read_column(source, f"target:{target}:value").astype(float)
        met = discrepancy.probability(
            values, reading.measure, reading.span, reading.op, reading.value
        )
    if LOG_WEIGHT_COLUMN in source.schema_arrow.names:
        log_weights = read_column(source, LOG_WEIGHT_COLUMN).astype(float)
        weights = np.exp(log_weights - np.max(log_weights))
    else:
        weights = np.ones(len(met))
    if not weights[np.isfinite(met)].sum() > 0:
        raise ConditionsError(f"{path}: target {target!r} is undefined in every sample")
    return source, met, weights


def tercile_probabilities(
    values: np.ndarray, met: np.ndarray, weights: np.ndarray
) -> tuple[list[float], list[float]]:
    """Weighted share of samples meeting a target in each tercile of one input.

    Parameters
    ----------
    values : numpy.ndarray
        The input's value in each sample.
    met : numpy.ndarray
        1.0 where the sample meets the target, 0.0 where not (or its probability of meeting
        it), NaN where undefined.
    weights : numpy.ndarray
        Non-negative sample weights (ones when unweighted).

    Returns
    -------
    probabilities : list of float
        One per tercile, low to high (NaN for an empty group).
    edges : list of float
        The two values that split the terciles (weighted quantiles 1/3 and 2/3, inverted CDF);
        a sample equal to an edge goes to the lower group.
    """
    keep = np.isfinite(values) & np.isfinite(met) & (weights > 0)
    values, met, weights = values[keep], met[keep], weights[keep]
    if not len(values):
        return [float("nan")] * GROUPS, [float("nan")] * (GROUPS - 1)
    levels = [k / GROUPS for k in range(1, GROUPS)]
    edges = np.quantile(values, levels, weights=weights, method="inverted_cdf")
    group = np.searchsorted(edges, values, side="left")
    probabilities = []
    for k in range(GROUPS):
        inside = group == k
        total = weights[inside].sum()
        probabilities.append(
            float((weights[inside] * met[inside]).sum() / total) if total else np.nan
        )
    return probabilities, [float(edge) for edge in edges]


def what_holds(path: str | Path, target: str, discrepancy=None) -> pd.DataFrame:
    """A target's probability in each tercile of every sampled input, most decisive first.

    Parameters
    ----------
    path : str or Path
        A Monte Carlo results file.
    target : str
        A target id of the file (``ningbo-sd mc`` prints them), e.g. ``gross_output_2035``.
    discrepancy : Discrepancy, optional
        Give predictive probabilities (see :func:`load_target`) instead of the runs' shares.

    Returns
    -------
    pandas.DataFrame
        One row per input that varies: ``input``, ``low``, ``middle``, ``high`` (the weighted
        probability of meeting the target in each tercile of the input), ``spread`` (high
        minus low tercile), ``edge_low`` and ``edge_high`` (the values splitting the
        terciles); sorted by the absolute spread, largest first. ``attrs`` holds the overall
        probability (``probability``) and the effective sample size (``ess``).

    Raises
    ------
    ConditionsError
        A missing or foreign file, or a target the file does not hold (the message lists
        the targets it does).
    """
    path = Path(path)
    source, met, weights = load_target(path, target, discrepancy)
    table = conditional_table(input_columns(source), met, weights)
    table.attrs["target"] = target
    return table


def conditional_table(inputs: Iterable[tuple[str, np.ndarray]], met, weights) -> pd.DataFrame:
    """P(met) by tercile of each input, most decisive first (the core of :func:`what_holds`).

    Parameters
    ----------
    inputs : iterable of (str, numpy.ndarray)
        Each input's name and its value in every sample; an input held at one value, and
        the columns of :data:`NOT_INPUTS`, are left out.
    met : numpy.ndarray
        1.0 met, 0.0 not met (or the probability of meeting it), NaN undefined, per sample.
    weights : numpy.ndarray
        Non-negative sample weights.

    Returns
    -------
    pandas.DataFrame
        As :func:`what_holds`; ``attrs`` holds ``probability`` and ``ess`` (NaN when the
        target is undefined in every sample).
    """
    met = np.asarray(met, dtype=float)
    weights = np.asarray(weights, dtype=float)
    defined = np.isfinite(met)
    total = weights[defined].sum()
    rows = []
    for name, values in inputs:
        if name in NOT_INPUTS:
            continue
        values = np.asarray(values, dtype=float)
        finite = values[np.isfinite(values)]
        if not len(finite) or finite.max() == finite.min():
            continue  # held at one value: nothing to condition on
        probabilities, edges = tercile_probabilities(values, met, weights)
        rows.append({
            "input": name,
            "low": probabilities[0],
            "middle": probabilities[1],
            "high": probabilities[-1],
            "spread": probabilities[-1] - probabilities[0],
            "edge_low": edges[0],
            "edge_high": edges[-1],
        })  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.sort_values("spread", key=np.abs, ascending=False, kind="stable")
    table = table.reset_index(drop=True)
    has_total = total > 0
    table.attrs["probability"] = (
        float((weights[defined] * met[defined]).sum() / total) if has_total else float("nan")
    )
    table.attrs["ess"] = (
        float(total**2 / (weights[defined] ** 2).sum()) if has_total else float("nan")
    )
    return table
