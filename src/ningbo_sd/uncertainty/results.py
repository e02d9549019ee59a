"""Monte Carlo results: the streamed Parquet file, exact summaries, and reading it back.

Layout of the file (*wide*: one row per sample, one row group per chunk, in sample order):

``sample``                    sample number (0 .. n-1)
``param:<Vensim name>``       the sample table: each uncertain parameter's value (the common
                              factor of a ``scale_vector`` parameter); ``param:posterior_draw``
                              is the row of the posterior draws, when used
``<indicator>:<year>``        headline indicators (``model/outputs.yaml`` names and units),
                              e.g. ``gross_output:2035``; ``binding_constraint:<year>`` is an
                              int8 code (0 capital, 1 land, 2 energy)
``target:<id>:value``         each modelled scorecard target's simulated value
``target:<id>:met``           whether it is met (nullable boolean; null when undefined)

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

SUMMARY_YEARS = (2025, 2035)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
METADATA_KEY = b"ningbo_sd"
LAYOUT = (
    "wide: one row per sample; sample, param:<name>, <indicator>:<year>, "
    "target:<id>:value, target:<id>:met"
)


def modelled_targets() -> list:
    """The scorecard's targets the model can compute (``TargetSpec`` objects)."""
    from ningbo_sd.scenarios.scorecard import load_target_specs

    return [spec for spec in load_target_specs() if spec.modelled]


# ---------------------------------------------------------------- output


class ParquetStream:
    """Write frames as row groups of one Parquet file, atomically.

    Rows go to a temporary file in the target's folder; :meth:`commit` renames it into
    place, :meth:`abort` deletes it (a crash leaves no half-written final file).
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

    def write(self, frame: pd.DataFrame) -> None:
        """Append one chunk as a row group."""
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
        self.writer.write_table(table, row_group_size=max(len(frame), 1))

    def commit(self) -> Path:
        """Close and rename the file into place."""
        if self.writer is not None:
            self.writer.close()
        return self.output.commit()

    def abort(self) -> None:
        """Close and delete the temporary file."""
        with contextlib.suppress(Exception):
            if self.writer is not None:
                self.writer.close()
        self.output.abort()


# ---------------------------------------------------------------- summaries


class SummaryAccumulator:
    """Exact quantiles and probabilities, accumulated chunk by chunk with bounded memory.

    Keeps one float per sample for each (summary indicator, summary year) and running
    counts of met targets; nothing else.
    """

    def __init__(self, n_samples: int, indicators, years, target_ids) -> None:
        self.n_samples = n_samples
        self.columns = [f"{i}:{y}" for i in indicators if i != "binding_constraint" for y in years]
        self.values = {column: np.full(n_samples, np.nan) for column in self.columns}
        self.binding = [f"binding_constraint:{y}" for y in years]
        self.binding_counts = {column: np.zeros(3, dtype=np.int64) for column in self.binding}
        self.target_ids = list(target_ids or [])
        self.met = np.zeros(len(self.target_ids), dtype=np.int64)
        self.known = np.zeros(len(self.target_ids), dtype=np.int64)

    def add(self, frame: pd.DataFrame) -> None:
        """Fold one chunk's output frame in."""
        rows = frame["sample"].to_numpy()
        for column in self.columns:
            if column in frame:
                self.values[column][rows] = frame[column].to_numpy(dtype=float)
        for column in self.binding:
            if column in frame:
                codes = frame[column].to_numpy().astype(np.int64)
                self.binding_counts[column] += np.bincount(codes, minlength=3)[:3]
        for position, target in enumerate(self.target_ids):
            flags = frame[f"target:{target}:met"]
            self.met[position] += int(flags.sum())
            self.known[position] += int(flags.notna().sum())

    def quantiles(self) -> pd.DataFrame:
        """Quantiles of each summary indicator and year (index indicator, year)."""
        return quantile_table({c: v for c, v in self.values.items() if not np.isnan(v).all()})

    def probabilities(self) -> pd.DataFrame:
        """Probability of meeting each target (met over samples where it is defined)."""
        return probability_table(self.target_ids, self.met, self.known, self.n_samples)

    def binding_shares(self) -> pd.DataFrame:
        """Share of samples where each constraint binds, per summary year."""
        from ningbo_sd.model.outputs import BINDING_LABELS

        rows = {
            int(column.split(":")[1]): counts / max(counts.sum(), 1)
            for column, counts in self.binding_counts.items()
            if counts.sum()
        }
        return pd.DataFrame(rows, index=list(BINDING_LABELS)).T.rename_axis("year")


def quantile_table(values: dict, quantiles=QUANTILES) -> pd.DataFrame:
    """Quantiles of ``{"<indicator>:<year>": samples}`` as a table.

    Returns
    -------
    pandas.DataFrame
        Index (indicator, year); columns ``unit``, ``mean``, ``q05`` ... ``q95``.
    """
    from ningbo_sd.model.outputs import output_columns

    units = {column.name: column.unit for column in output_columns()}
    rows = []
    for column, data in values.items():
        indicator, year = column.rsplit(":", 1)
        data = np.asarray(data, dtype=float)
        levels = np.nanquantile(data, quantiles) if np.isfinite(data).any() else [np.nan] * 5
        row = {"indicator": indicator, "year": int(year), "unit": units.get(indicator, "")}
        row["mean"] = float(np.nanmean(data)) if np.isfinite(data).any() else np.nan
        row.update(
            {f"q{round(q * 100):02d}": float(v) for q, v in zip(quantiles, levels, strict=True)}
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index(["indicator", "year"])


def probability_table(target_ids, met, known, n_samples: int) -> pd.DataFrame:
    """The probability of meeting each target, with its sampling standard error.

    Returns
    -------
    pandas.DataFrame
        Index ``target``; columns ``label_en``, ``op``, ``target_value``, ``unit``,
        ``probability``, ``std_error``, ``met``, ``defined``, ``samples``.
    """
    specs = {spec.id: spec for spec in modelled_targets()}
    met = np.asarray(met, dtype=float)
    known = np.asarray(known, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = np.where(known > 0, met / known, np.nan)
        error = np.sqrt(probability * (1 - probability) / known)
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
    """

    samples: pd.DataFrame
    indicators: object
    values: pd.DataFrame
    met: pd.DataFrame
    metadata: dict

    def quantiles(self, years=SUMMARY_YEARS) -> pd.DataFrame:
        """Quantiles of every indicator in ``years`` (as printed by ``ningbo-sd mc``)."""
        values = {
            f"{name}:{year}": self.indicators[name].sel(year=year).to_numpy()
            for name in self.indicators.data_vars
            if name != "binding_constraint"
            for year in years
        }
        return quantile_table(values)

    def fan(self, indicator: str, quantiles=QUANTILES) -> pd.DataFrame:
        """Quantiles of one indicator for every year (rows = years), for fan charts."""
        data = self.indicators[indicator].transpose("sample", "year").to_numpy()
        levels = np.nanquantile(data, quantiles, axis=0)
        columns = [f"q{round(q * 100):02d}" for q in quantiles]
        years = self.indicators["year"].to_numpy()
        return pd.DataFrame(levels.T, index=pd.Index(years, name="year"), columns=columns)

    def probabilities(self) -> pd.DataFrame:
        """Probability of meeting each target: the mean of the per-sample met flags."""
        met = self.met.astype("Float64")
        return probability_table(
            list(self.met.columns),
            met.sum().to_numpy(dtype=float),
            met.notna().sum().to_numpy(dtype=float),
            len(self.met),
        )


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
    return MonteCarloResults(samples, dataset, values, met, metadata)
