"""Monte Carlo results: the streamed Parquet file, summary tables, and reading it back.

Layout of the file (*wide*: one row per sample, in sample order; row groups of whole chunks,
about :data:`ROW_GROUP_BYTES` of column data each):

``sample``                    sample number (0 .. n-1)
``param:<Vensim name>``       the sample table: each uncertain parameter's value (the common
                              factor of a ``scale_vector`` parameter); ``param:posterior_draw``
                              is the row of the posterior draws, when used
``<indicator>:<year>``        headline indicators (``model/outputs.yaml`` names and units),
                              e.g. ``gross_output:2035``; ``binding_constraint:<year>`` is an
                              int8 code (0 capital, 1 land, 2 energy)
``target:<id>:value``         each modelled scorecard target's simulated value
``target:<id>:met``           whether it is met (nullable boolean; null when undefined)
``weight``                    the sample's weight, in weighted runs only (the summaries are
                              then weighted: :mod:`ningbo_sd.uncertainty.summary`)

The key-value metadata ``ningbo_sd`` (JSON) records the scenario, seed, sample count, design,
the uncertain parameters with their distributions and sources, and this layout.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.io import AtomicOutput
from ningbo_sd.uncertainty.exact import exact_mean

SUMMARY_YEARS = (2025, 2035)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
METADATA_KEY = b"ningbo_sd"
LAYOUT = (
    "wide: one row per sample; sample, param:<name>, <indicator>:<year>, "
    "target:<id>:value, target:<id>:met"
)


#: Each sample's log importance weight in a results file conditioned on history.
LOG_WEIGHT_COLUMN = "log_weight"


def modelled_targets() -> list:
    """The scorecard's targets the model can compute (``TargetSpec`` objects)."""
    from ningbo_sd.scenarios.scorecard import load_target_specs

    return [spec for spec in load_target_specs() if spec.modelled]


# ---------------------------------------------------------------- output


#: Column data gathered into one row group. Parquet's writer, and any reader of the file,
#: keeps about 1 KB of metadata per column and row group in memory (0.3 MB per row group
#: of the default 355 columns): a row group per chunk of 8,192 samples made that grow by
#: 37 bytes a sample (375 MB for 10,000,000 samples, 430 MB more to open the file); three
#: chunks per row group (64 MiB buffered) cut it to about 13 bytes a sample.
ROW_GROUP_BYTES = 64 * 2**20


class ParquetStream:
    """Write frames as row groups of one Parquet file, atomically.

    Rows go to a temporary file in the target's folder; :meth:`commit` renames it into
    place, :meth:`abort` deletes it (a crash leaves no half-written final file). Frames are
    gathered until they hold :data:`ROW_GROUP_BYTES` of column data, then written as one row
    group (the file depends on the chunk size only through where row groups end).
    """

    def __init__(self, path: str | Path, metadata: dict) -> None:
        self.path = Path(path)
        if self.path.suffix != ".parquet":
            raise ValueError(f"{self.path}: the Monte Carlo output must be a .parquet file")
        self.output = AtomicOutput(self.path)
        self.temporary = self.output.temporary
        self.metadata = {METADATA_KEY: json.dumps(metadata, ensure_ascii=False).encode()}
        self.writer = None
        self.schema = None
        self.pending: list = []  # tables not yet written
        self.pending_bytes = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk (written with the next row group)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self.schema = table.schema.with_metadata(self.metadata)
            # continuous floats do not repeat: dictionary encoding only costs time and space
            self.writer = pq.ParquetWriter(
                self.temporary, self.schema, compression="zstd", use_dictionary=False
            )
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
        else:
            # the first chunk fixed the schema (with pandas' metadata): later chunks go
            # column by column from numpy, without from_pandas' per-column inference
            # (1.3 s of a 100,000-sample run); the same file, byte for byte
            if list(frame.columns) != self.schema.names:
                raise ValueError("a Monte Carlo chunk's columns differ from the first chunk's")
            arrays = [
                pa.array(series.to_numpy(), type=field.type)
                for (_, series), field in zip(frame.items(), self.schema, strict=True)
            ]
            table = pa.Table.from_arrays(arrays, schema=self.schema)
        self.pending.append(table)
        self.pending_bytes += table.nbytes
        if self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pending:
            table = pa.concat_tables(self.pending)
            self.pending, self.pending_bytes = [], 0
            self.writer.write_table(table, row_group_size=max(len(table), 1))

    def commit(self) -> Path:
        """Write what is gathered, close and rename the file into place."""
        if self.writer is not None:
            self._flush()
            self.writer.close()
        return self.output.commit()

    def abort(self) -> None:
        """Close and delete the temporary file."""
        self.pending = []
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
        self.output.abort()


# ---------------------------------------------------------------- summaries


def quantile_frame(stats: dict, quantiles=QUANTILES) -> pd.DataFrame:
    """The quantile table of ``{"<indicator>:<year>": (mean, levels)}``.

    Returns
    -------
    pandas.DataFrame
        Index (indicator, year); columns ``unit``, ``mean``, ``q05`` ... ``q95``.
    """
    from ningbo_sd.model.outputs import output_columns

    units = {column.name: column.unit for column in output_columns()}
    rows = []
    for column, (mean, levels) in stats.items():
        indicator, year = column.rsplit(":", 1)
        row = {"indicator": indicator, "year": int(year), "unit": units.get(indicator, "")}
        row["mean"] = float(mean)
        row.update(
            {f"q{round(q * 100):02d}": float(v) for q, v in zip(quantiles, levels, strict=True)}
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index(["indicator", "year"])


def weighted_quantiles(values: np.ndarray, log_weights, levels) -> np.ndarray:
    """Quantiles of each column, weighted (the inverted weighted CDF), NaN rows left out.

    ``log_weights`` None: unweighted (``numpy.nanquantile``'s default).
    """
    if log_weights is None:
        return np.nanquantile(values, levels, axis=0)
    weights = np.exp(np.asarray(log_weights) - np.max(log_weights))
    out = np.full((len(levels), values.shape[1]), np.nan)
    for column in range(values.shape[1]):
        keep = np.isfinite(values[:, column]) & (weights > 0)
        if keep.any():
            out[:, column] = np.quantile(
                values[keep, column], levels, weights=weights[keep], method="inverted_cdf"
            )
    return out


def quantile_table(values: dict, quantiles=QUANTILES) -> pd.DataFrame:
    """Quantiles of ``{"<indicator>:<year>": samples}`` held in memory, as a table.

    The same numbers as the streamed summary of a run
    (:class:`ningbo_sd.uncertainty.summary.SummaryAccumulator`): ``numpy.nanquantile`` and
    the exact mean, correctly rounded.

    Returns
    -------
    pandas.DataFrame
        Index (indicator, year); columns ``unit``, ``mean``, ``q05`` ... ``q95``.
    """
    stats = {}
    for column, data in values.items():
        data = np.asarray(data, dtype=float)
        if np.isfinite(data).any():
            stats[column] = (exact_mean(data), np.nanquantile(data, quantiles))
        else:
            stats[column] = (np.nan, [np.nan] * len(quantiles))
    return quantile_frame(stats, quantiles)


def probability_table(
    target_ids, met, known, n_samples: int, probability=None, effective=None
) -> pd.DataFrame:
    """The probability of meeting each target, with its sampling standard error.

    Parameters
    ----------
    target_ids : list of str
    met, known : array-like
        Samples where each target is met, and where it is defined.
    n_samples : int
        Samples in the run.
    probability : array-like, optional
        The probabilities (default ``met / known``; weighted runs give weighted shares).
    effective : array-like, optional
        Effective sample sizes of the standard errors (default ``known``).

    Returns
    -------
    pandas.DataFrame
        Index ``target``; columns ``label_en``, ``op``, ``target_value``, ``unit``,
        ``probability``, ``std_error``, ``met``, ``defined``, ``samples``.
    """
    specs = {spec.id: spec for spec in modelled_targets()}
    met = np.asarray(met, dtype=float)
    known = np.asarray(known, dtype=float)
    effective = known if effective is None else np.asarray(effective, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if probability is None:
            probability = np.where(known > 0, met / known, np.nan)
        probability = np.asarray(probability, dtype=float)
        error = np.sqrt(probability * (1 - probability) / effective)
    return pd.DataFrame(
        {
            "label_en": [specs[t].label_en if t in specs else t for t in target_ids],
            "op": [specs[t].op if t in specs else "" for t in target_ids],
            "target_value": [specs[t].value if t in specs else np.nan for t in target_ids],
            "unit": [specs[t].unit if t in specs else "" for t in target_ids],
            "probability": probability,
            "std_error": error,
            "met": met.astype(np.int64),
            "defined": known.astype(np.int64),
            "samples": n_samples,
        },
        index=pd.Index(list(target_ids), name="target"),
    )


# ---------------------------------------------------------------- reading back


@dataclass
class MonteCarloResults:
    """A results file read back.

    Attributes
    ----------
    samples : pandas.DataFrame
        The sample table (index ``sample``; Vensim names).
    indicators : xarray.Dataset
        Headline indicators over (sample, year).
    values, met : pandas.DataFrame
        Target values and met flags (index ``sample``, one column per target).
    metadata : dict
    log_weights : numpy.ndarray or None
        Each sample's log importance weight when the run was conditioned on history
        (``ningbo-sd mc`` by default); the quantiles, fans and probabilities then use them.
    """

    samples: pd.DataFrame
    indicators: object
    values: pd.DataFrame
    met: pd.DataFrame
    metadata: dict
    log_weights: np.ndarray | None = None

    def quantiles(self, years=SUMMARY_YEARS) -> pd.DataFrame:
        """Quantiles of every indicator in ``years`` (as printed by ``ningbo-sd mc``)."""
        values = {
            f"{name}:{year}": self.indicators[name].sel(year=year).to_numpy()
            for name in self.indicators.data_vars
            if name != "binding_constraint"
            for year in years
        }
        if self.log_weights is None:
            return quantile_table(values)
        weights = self._weights()
        stats = {}
        for column, data in values.items():
            data = np.asarray(data, dtype=float)
            finite = np.isfinite(data)
            if finite.any() and weights[finite].sum() > 0:
                mean = float(np.average(data[finite], weights=weights[finite]))
                levels = weighted_quantiles(data[:, None], self.log_weights, QUANTILES)[:, 0]
                stats[column] = (mean, levels)
            else:
                stats[column] = (np.nan, [np.nan] * len(QUANTILES))
        return quantile_frame(stats, QUANTILES)

    def fan(self, indicator: str, quantiles=QUANTILES) -> pd.DataFrame:
        """Quantiles of one indicator for every year (rows = years), for fan charts."""
        data = self.indicators[indicator].transpose("sample", "year").to_numpy()
        levels = weighted_quantiles(data, self.log_weights, quantiles)
        columns = [f"q{round(q * 100):02d}" for q in quantiles]
        years = self.indicators["year"].to_numpy()
        return pd.DataFrame(levels.T, index=pd.Index(years, name="year"), columns=columns)

    def probabilities(self) -> pd.DataFrame:
        """Probability of meeting each target: the (weighted) share of the per-sample met flags."""
        met = self.met.astype("Float64")
        counts = met.sum().to_numpy(dtype=float), met.notna().sum().to_numpy(dtype=float)
        if self.log_weights is None:
            return probability_table(list(self.met.columns), *counts, len(self.met))
        weights = self._weights()
        probability, effective = [], []
        for target in self.met.columns:
            flags = met[target]
            known = flags.notna().to_numpy()
            hit = flags.fillna(False).to_numpy(dtype=bool)
            total = weights[known].sum()
            probability.append(weights[hit & known].sum() / total if total > 0 else np.nan)
            square = np.square(weights[known]).sum()
            effective.append(total**2 / square if square > 0 else np.nan)
        return probability_table(
            list(self.met.columns), *counts, len(self.met), probability, effective
        )

    def _weights(self) -> np.ndarray:
        """The importance weights, scaled so that the largest is 1."""
        return np.exp(self.log_weights - np.max(self.log_weights))


def read_results(path: str | Path, indicators: list[str] | None = None) -> MonteCarloResults:
    """Read a Monte Carlo results file written by :func:`run_monte_carlo`.

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    indicators : list of str, optional
        Indicators to load (default all in the file).

    Returns
    -------
    MonteCarloResults
    """
    import pyarrow.parquet as pq
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Monte Carlo results not found")
    schema = pq.read_schema(path)
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(
            f"{path}: not a Monte Carlo results file (no {METADATA_KEY.decode()} metadata)"
        )
    metadata = json.loads(raw)
    wanted = indicators or metadata["indicators"]
    names = ["sample"] + [
        n for n in schema.names if n.startswith(("param:", "target:")) or n.split(":")[0] in wanted
    ]
    weighted = LOG_WEIGHT_COLUMN in schema.names
    if weighted:
        names.append(LOG_WEIGHT_COLUMN)
    frame = pd.read_parquet(path, columns=names).set_index("sample")
    samples = frame[[c for c in frame if c.startswith("param:")]]
    samples.columns = [c.removeprefix("param:") for c in samples.columns]
    data = {}
    for indicator in wanted:
        cols = [f"{indicator}:{year}" for year in metadata["years"]]
        data[indicator] = (("sample", "year"), frame[cols].to_numpy())
    dataset = xr.Dataset(data, coords={"sample": frame.index.to_numpy(), "year": metadata["years"]})
    targets = metadata["targets"]
    values = frame[[f"target:{t}:value" for t in targets]].set_axis(targets, axis=1)
    met = frame[[f"target:{t}:met" for t in targets]].set_axis(targets, axis=1)
    log_weights = frame[LOG_WEIGHT_COLUMN].to_numpy(dtype=float) if weighted else None
    return MonteCarloResults(samples, dataset, values, met, metadata, log_weights)


@dataclass
class MonteCarloSummary:
    """What :func:`run_monte_carlo` reports.

    Attributes
    ----------
    scenario : str
    n_samples, seed : int
    quantiles : pandas.DataFrame
        See :func:`ningbo_sd.uncertainty.results.quantile_table`.
    probabilities : pandas.DataFrame
        See :func:`ningbo_sd.uncertainty.results.probability_table`.
    binding : pandas.DataFrame
        Share of samples where each constraint binds, per summary year.
    output : Path or None
        The Parquet file written.
    parameters : pandas.DataFrame
        The uncertain parameters (name, distribution, origin, source).
    held : tuple of str
        Register rows left at the scenario's value.
    effective_samples : float or None
        ``(sum w)**2 / sum w**2`` of the sample weights (``n_samples`` when unweighted).
    """

    scenario: str
    n_samples: int
    seed: int
    quantiles: pd.DataFrame
    probabilities: pd.DataFrame
    binding: pd.DataFrame
    output: Path | None
    parameters: pd.DataFrame
    held: tuple[str, ...] = ()
    effective_samples: float | None = None
