"""Up-front checks that a Monte Carlo or sensitivity run fits this machine: disk and memory.

A request whose results file would not fit on its disk, or that would obviously need more
memory than the machine has, is refused before any work, in one line with the estimate and
the largest request that fits (``ningbo-sd mc -n 10000000000`` is refused at once instead of
failing with a ``MemoryError`` or a full disk hours later). The estimates are linear in the
sample count, with coefficients measured on the Ningbo model (2 cores, 23 GB, 2025):

- the results file (:class:`~ningbo_sd.uncertainty.results.ParquetStream`, zstd): 20,000
  samples of the default columns (355: 300 float, 2 int64, 21 int8, 32 boolean) take
  40.5 MB, 2,027 bytes a sample; a float or int64 value takes about 7 bytes, an int8 one
  byte, a boolean a quarter (:data:`PARQUET_BYTES`);
- memory: about 0.4 GB before any sample (interpreter, libraries, the compiled model); each
  sample of a chunk in flight about 21 KB (peak 0.46 GB with two chunks of 2,048 in
  flight, 1.07 GB with two of 16,384); chunks gathered into a row group
  (:data:`~ningbo_sd.uncertainty.results.ROW_GROUP_BYTES`); the exact quantiles, out of
  core, a fixed amount per summary column whatever the sample count
  (:class:`~ningbo_sd.uncertainty.summary.SummaryAccumulator`: histograms, and the bins
  read back from the file). What still grows with the samples is Parquet's metadata, held
  by the writer and by a reader of the file: about 1 KB per column and row group
  (:data:`PARQUET_METADATA_BYTES`), 13 bytes a sample with the default columns;
- sensitivity: the unit design (runs x factors floats, twice while SALib builds it), the
  analysed outputs, and SALib's bootstrap: 7.1 KB per Sobol base sample and 10.9 KB per
  Morris trajectory with 37 factors and 100 resamples.

Memory is compared with the machine's physical memory (``SC_PHYS_PAGES x SC_PAGE_SIZE``),
not with what is free: the check refuses what cannot work, not what might be slow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ningbo_sd.io import UserError, check_output

__all__ = [
    "Cost",
    "check_ensemble_fits",
    "check_fits",
    "free_space",
    "monte_carlo_cost",
    "physical_memory",
    "sensitivity_cost",
]

#: Bytes a value takes in the results file, by column type (zstd, no dictionary).
PARQUET_BYTES = {"float": 7.0, "int64": 7.0, "int8": 1.0, "bool": 0.25}
#: Bytes of the Parquet footer and metadata (the parameter table, the layout).
PARQUET_FIXED = 1_000_000
#: Memory in use before the first sample.
FIXED_MEMORY = 400 * 2**20
#: Memory per sample of a chunk being run (engine state, its output frame).
CHUNK_SAMPLE_MEMORY = 21 * 2**10
#: Memory of Parquet's metadata per column and row group, in the writer and in a reader
#: (measured with pyarrow 26: 314 KB per row group of 355 columns writing, 350 KB reading).
PARQUET_METADATA_BYTES = 1_000
#: Memory of the summary per summary column: its histogram (1.5 MB weighted) and, while the
#: quantiles are refined, the bins read back (at most ``COLLECT_LIMIT`` keys and weights for
#: each of its ten order statistics).
SUMMARY_COLUMN_MEMORY = 12 * 2**20
#: Bytes of SALib's bootstrap per base sample and resample (Sobol; Morris adds ``MORRIS_FACTOR``
#: per factor).
BOOTSTRAP_BYTES = 72
MORRIS_FACTOR_BYTES = 100


@dataclass(frozen=True)
class Cost:
    """A linear estimate of a run's disk and memory: ``fixed + per_unit x units``.

    Attributes
    ----------
    units : int
        Samples (Monte Carlo) or base samples (Sobol) / trajectories (Morris) requested.
    unit_name : str
        What one unit is, for messages ("sample").
    disk_fixed, disk_per_unit : float
        Bytes written.
    memory_fixed, memory_per_unit : float
        Bytes of memory at the peak.
    """

    units: int
    unit_name: str
    disk_fixed: float
    disk_per_unit: float
    memory_fixed: float
    memory_per_unit: float

    @property
    def plural(self) -> str:
        """The unit's name in the plural."""
        return "trajectories" if self.unit_name == "trajectory" else f"{self.unit_name}s"

    @property
    def disk(self) -> float:
        """Bytes written."""
        return self.disk_fixed + self.disk_per_unit * self.units

    @property
    def memory(self) -> float:
        """Bytes of memory at the peak."""
        return self.memory_fixed + self.memory_per_unit * self.units


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the system does not say)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def free_space(folder: str | Path) -> int | None:
    """Bytes free for this user on the disk holding ``folder`` (None if it cannot be read)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def monte_carlo_cost(
    n_samples: int,
    columns: dict[str, int],
    summary_columns: int,
    chunk_size: int,
    in_flight: int,
) -> Cost:
    """The disk and memory of a Monte Carlo run.

    Parameters
    ----------
    n_samples : int
        Ensemble size.
    columns : dict
        Columns of the results file by type: ``float``, ``int64``, ``int8``, ``bool``.
    summary_columns : int
        Columns summarised (quantiles and means).
    chunk_size : int
        Samples per chunk.
    in_flight : int
        Chunks held at once.

    Returns
    -------
    Cost
    """
    from ningbo_sd.uncertainty.results import ROW_GROUP_BYTES

    per_sample = sum(PARQUET_BYTES[kind] * count for kind, count in columns.items())
    width = max(sum(columns.values()), 1)
    chunk = min(chunk_size, n_samples)
    # chunks are gathered until a row group holds ROW_GROUP_BYTES (8 bytes a value at most)
    row_group = chunk * max(-(-ROW_GROUP_BYTES // (8 * width * chunk)), 1)
    running = in_flight * chunk * CHUNK_SAMPLE_MEMORY
    summary = summary_columns * SUMMARY_COLUMN_MEMORY
    return Cost(
        units=n_samples,
        unit_name="sample",
        disk_fixed=PARQUET_FIXED,
        disk_per_unit=per_sample,
        memory_fixed=FIXED_MEMORY + running + ROW_GROUP_BYTES + summary,
        memory_per_unit=PARQUET_METADATA_BYTES * width / row_group,
    )


def sensitivity_cost(
    method: str,
    n: int,
    factors: int,
    outputs: int,
    num_resamples: int,
    chunk_size: int,
    in_flight: int,
) -> Cost:
    """The memory of a sensitivity analysis (its indices file is small: no disk part).

    Parameters
    ----------
    method : {"sobol", "morris"}
    n : int
        Sobol base samples or Morris trajectories.
    factors : int
        Factors varied.
    outputs : int
        Outputs analysed.
    num_resamples : int
        Bootstrap resamples.
    chunk_size : int
        Runs per chunk.
    in_flight : int
        Chunks held at once.

    Returns
    -------
    Cost
        Units are base samples (Sobol) or trajectories (Morris).
    """
    runs_per_unit = factors + 2 if method == "sobol" else factors + 1
    design = 2 * 8.0 * runs_per_unit * factors  # SALib's design, then the unit copy
    results = 3 * 8.0 * runs_per_unit * outputs  # chunk outputs, their concatenation, y
    bootstrap = BOOTSTRAP_BYTES * num_resamples
    if method != "sobol":
        bootstrap += MORRIS_FACTOR_BYTES * factors
    running = in_flight * min(chunk_size, n * runs_per_unit) * CHUNK_SAMPLE_MEMORY
    return Cost(
        units=n,
        unit_name="trajectory" if method == "morris" else "base sample",
        disk_fixed=0.0,
        disk_per_unit=0.0,
        memory_fixed=FIXED_MEMORY + running,
        memory_per_unit=design + results + bootstrap,
    )


def _size(value: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _most(available: float, fixed: float, per_unit: float) -> int:
    return max(int((available - fixed) // per_unit), 0) if per_unit > 0 else 0


def check_fits(
    request: str, cost: Cost, output: str | Path | None = None, at_least: bool = False
) -> None:
    """Refuse a run whose output would not fit on its disk or that would not fit in memory.

    Parameters
    ----------
    request : str
        The option as the user wrote it, e.g. ``--samples 10,000,000,000``.
    cost : Cost
        From :func:`monte_carlo_cost` or :func:`sensitivity_cost`.
    output : path, optional
        The file the run writes (its disk is checked).
    at_least : bool
        The cost is a lower bound (a check before every column is known): the message says
        "at least" and "fewer than".

    Raises
    ------
    UserError
        One line: the request, the estimate, what the machine has, and the largest request
        that fits.
    """
    about, most_text = ("at least", "fewer than") if at_least else ("about", "at most about")
    if output is not None and cost.disk_per_unit > 0:
        folder = check_output(output).parent
        free = free_space(folder)
        if free is not None and cost.disk > free:
            most = _most(free, cost.disk_fixed, cost.disk_per_unit)
            raise UserError(
                f"{request}: the results would take {about} {_size(cost.disk)} "
                f"({cost.disk_per_unit:,.0f} bytes a {cost.unit_name}) but {folder} has "
                f"{_size(free)} free; allowed here: {most_text} {most:,} {cost.plural}"
            )
    memory = physical_memory()
    if memory is not None and cost.memory > memory:
        most = _most(memory, cost.memory_fixed, cost.memory_per_unit)
        raise UserError(
            f"{request}: would need {about} {_size(cost.memory)} of memory "
            f"({_size(cost.memory_per_unit)} a {cost.unit_name}) but this machine has "
            f"{_size(memory)}; allowed here: {most_text} {most:,} {cost.plural}"
        )


def check_ensemble_fits(
    n_samples: int,
    output: str | Path | None,
    indicators: tuple[str, ...],
    years: tuple[int, ...],
    summary_years: tuple[int, ...],
    chunk: int,
    in_flight: int,
    parameters: int = 0,
    posterior: bool = False,
    targets: int = 0,
    at_least: bool = False,
) -> None:
    """Refuse an ensemble whose results file would not fit on its disk, or not in memory.

    The columns follow the layout of :mod:`ningbo_sd.uncertainty.results`; the estimate is
    :func:`monte_carlo_cost`. Without an output file, the scratch file of the summary
    columns (read back for the exact quantiles) goes to the temporary folder: its disk is
    checked. ``at_least``: only some of the columns are given (a check before the scenario
    is resolved).

    Raises
    ------
    UserError
        One line with the estimate and the largest ensemble that fits.
    """
    binding = int("binding_constraint" in indicators)
    summary = (len(indicators) - binding) * len(summary_years)
    columns = {
        "int64": 1 + int(posterior),
        "float": parameters + (len(indicators) - binding) * len(years) + targets,
        "int8": binding * len(years),
        "bool": targets,
    }
    if output is None:
        columns = {"float": summary}
        output = Path(tempfile.gettempdir()) / "summary.parquet"
    cost = monte_carlo_cost(n_samples, columns, summary, chunk, in_flight)
    check_fits(f"--samples {n_samples:,}", cost, output, at_least)
