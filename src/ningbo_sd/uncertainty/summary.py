"""Out-of-core Monte Carlo summaries: exact quantiles and probabilities in bounded memory.

The client of a Monte Carlo run never holds the per-sample values. :class:`SummaryAccumulator`
folds each chunk into integers only (integer sums are associative, so the result is the same
whatever the chunk size, the order in which chunks arrive or the number of workers):

- per summary column (``<indicator>:<year>``), a histogram of 65,536 bins over the values'
  order-preserving 64-bit keys (:func:`~ningbo_sd.uncertainty.exact.order_keys`; no range is
  needed in advance), holding integer counts (and fixed-point weight sums), and the exact sum
  of the values (:func:`~ningbo_sd.uncertainty.exact.exact_sum`) for the mean;
- per target, integer counts of samples where it is met and where it is defined; per year, of
  samples by binding constraint.

Quantiles are then **exact**, by refinement over the results file the run wrote
(:meth:`SummaryAccumulator.finish`, reading the summary columns row group by row group): each wanted
order statistic lies in one bin of the histogram; a pass over the file histograms the values
in that bin into 4,096 finer bins, until the bin holds at most :data:`COLLECT_LIMIT` values,
which one more pass collects and sorts. A bin of 2**48 keys needs at most four refinements to
reach a single value, and in practice one (under about 10**9 samples): two passes over the
file in all. Memory is bounded by the histograms (512 KB a column, 1.5 MB weighted) and the
collected bins (at most ``COLLECT_LIMIT`` values for each wanted order statistic), not by the
number of samples.

- Unweighted, a quantile is ``numpy.quantile``'s default (linear interpolation between the
  order statistics, Hyndman and Fan's method 7), bit for bit (NaN ignored, as
  ``numpy.nanquantile``); the mean is the exact mean correctly rounded (``numpy.mean`` sums
  pairwise and may differ from it in the last bit).
- Weighted (a ``weights`` array per chunk, or a :data:`WEIGHT_COLUMN` column; e.g. importance
  weights), weights become integers in units of 2**-32
  (:func:`~ningbo_sd.uncertainty.exact.fixed_point`) and every weighted count is exact. A
  quantile q is the smallest value whose cumulative weight reaches q times the total (the
  inverted weighted CDF, ``numpy.quantile(..., weights=w, method="inverted_cdf")``, computed
  without its floating-point cumulative sum; q is read as the decimal it is written as, so
  0.05 is exactly 1/20); probabilities are weighted shares, with the
  standard error of an effective sample size ``(sum w)**2 / sum w**2``, also exact.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from ningbo_sd.uncertainty import exact
from ningbo_sd.uncertainty.results import QUANTILES, probability_table, quantile_frame

#: The per-sample weights, when a chunk's frame (and so the results file) carries them.
WEIGHT_COLUMN = "weight"
#: Bits of a key resolved by the streamed histogram (65,536 bins) and by each refinement.
FIRST_BITS = 16
REFINE_BITS = 12
#: A bin with at most this many values is collected and sorted rather than refined again.
COLLECT_LIMIT = 2**16
_LOW = np.int64(2**32 - 1)

#: ``read(columns)`` yields dicts of numpy arrays, one per batch of rows.
Reader = Callable[[list[str]], Iterator[dict[str, np.ndarray]]]


def parquet_reader(path: str | Path) -> Reader:
    """Read columns of a Parquet file one row group at a time.

    Row groups are bounded (:data:`~ningbo_sd.uncertainty.results.ROW_GROUP_BYTES` of every
    column): memory stays flat. (``ParquetFile.iter_batches`` would keep what it has read
    until the iteration ends: 56 MB more per million samples of ten columns, pyarrow 26.)
    """

    def read(columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as source:
            missing = [name for name in columns if name not in source.schema_arrow.names]
            if missing:
                raise ValueError(f"{path}: the results file has no column {missing}")
            for group in range(source.num_row_groups):
                table = source.read_row_group(group, columns=columns)
                yield {name: table.column(name).to_numpy() for name in columns}

    return read


class _Histogram:
    """Integer counts, and fixed-point weight sums when weighted, over ``size`` bins."""

    def __init__(self, size: int, weighted: bool) -> None:
        self.counts = np.zeros(size, dtype=np.int64)
        self.weighted = weighted
        if weighted:  # weight = high * 2**32 + low, carried after each add
            self.low = np.zeros(size, dtype=np.int64)
            self.high = np.zeros(size, dtype=np.int64)

    def add(self, bins: np.ndarray, weights: np.ndarray | None) -> None:
        size = len(self.counts)
        self.counts += np.bincount(bins, minlength=size)
        if not self.weighted:
            return
        for start in range(0, len(bins), 2**20):  # float sums of < 2**52: exact
            part = bins[start : start + 2**20]
            w = weights[start : start + 2**20]
            self.low += np.bincount(part, (w & _LOW).astype(float), size).astype(np.int64)
            self.high += np.bincount(part, (w >> np.int64(32)).astype(float), size).astype(np.int64)
            self.high += self.low >> np.int64(32)
            self.low &= _LOW

    def measure(self) -> list[int]:
        """Per bin: the weight (in units of 2**-32) when weighted, else the count."""
        if not self.weighted:
            return self.counts.tolist()
        return [(h << 32) + lo for h, lo in zip(self.high.tolist(), self.low.tolist(), strict=True)]

    def cumulative(self) -> np.ndarray:
        """The cumulative measure per bin: int64 while the total fits, else Python ints."""
        if not self.weighted:
            return np.cumsum(self.counts)
        high, low = np.cumsum(self.high), np.cumsum(self.low)  # each far below 2**63
        if (int(high[-1]) << 32) + int(low[-1]) < 2**62:  # exact in int64
            return (high << np.int64(32)) + low
        return np.cumsum(np.array(self.measure(), dtype=object))

    def locate(self, threshold: int) -> tuple[int, int]:
        """The first bin where the cumulative measure reaches ``threshold``, and the rest."""
        cumulative = self.cumulative()
        if cumulative.dtype == object:
            listed = cumulative.tolist()
            position = min(bisect.bisect_left(listed, threshold), len(listed) - 1)
        else:
            position = min(int(np.searchsorted(cumulative, threshold)), len(cumulative) - 1)
        return position, threshold - (int(cumulative[position - 1]) if position else 0)


class _Column:
    """What a summary column keeps: a histogram, exact sums and counts of infinities."""

    def __init__(self, weighted: bool) -> None:
        self.histogram = _Histogram(2**FIRST_BITS, weighted)
        self.valid = 0  # measure (count or weight) of non-NaN values
        self.count = 0  # non-NaN values
        self.finite = 0  # finite values
        self.total = 0  # exact sum of (weighted) finite values in units of exact.TINY
        self.infinite = {1: 0, -1: 0}  # measure of +inf and -inf
        self.lowest: int | None = None  # smallest and largest keys (a constant: no pass)
        self.highest: int | None = None

    def add(self, values: np.ndarray, weights: np.ndarray | None) -> None:
        keep = ~np.isnan(values)
        values = values[keep]
        weights = None if weights is None else weights[keep]
        keys = exact.order_keys(values)
        if len(keys):
            low, high = int(keys.min()), int(keys.max())
            self.lowest = low if self.lowest is None else min(self.lowest, low)
            self.highest = high if self.highest is None else max(self.highest, high)
        self.histogram.add((keys >> np.uint64(64 - FIRST_BITS)).astype(np.intp), weights)
        self.count += len(values)
        self.valid += len(values) if weights is None else exact.int_sum(weights)
        finite = np.isfinite(values)
        self.finite += int(finite.sum())
        self.total += exact.exact_sum(values[finite], None if weights is None else weights[finite])
        for sign in (1, -1):
            hit = values == sign * np.inf
            self.infinite[sign] += (
                int(hit.sum()) if weights is None else exact.int_sum(weights[hit])
            )

    def mean(self) -> float:
        if self.infinite[1] or self.infinite[-1]:
            return (
                np.nan
                if self.infinite[1] and self.infinite[-1]
                else np.inf * (1 if self.infinite[1] else -1)
            )
        return exact.ratio(self.total, self.valid << -exact.TINY_EXPONENT)


@dataclass(frozen=True)
class TargetReading:
    """A target as the discrepancy reads it: measure, span, op and threshold."""

    measure: str
    span: int | None
    op: str
    value: float


def target_readings(target_ids) -> dict[str, TargetReading]:
    """How each target is read on the discrepancy's log scale (scored ``>=``/``<=`` only)."""
    from ningbo_sd.uncertainty.discrepancy import SCENARIO_INPUTS, span_of
    from ningbo_sd.uncertainty.results import modelled_targets

    wanted = set(target_ids)
    return {
        spec.id: TargetReading(
            spec.measure, span_of(spec.measure, spec.year, spec.year_start), spec.op, spec.value
        )
        for spec in modelled_targets()
        if spec.id in wanted
        and spec.op in (">=", "<=")
        and not spec.assumed
        and spec.column not in SCENARIO_INPUTS
    }


class SummaryAccumulator:
    """Quantiles, means and target probabilities of a Monte Carlo run, out of core.

    Fold every chunk in with :meth:`add`, then call :meth:`finish` with a reader of the
    results file (the summary columns, and :data:`WEIGHT_COLUMN` when weighted). See the
    module docstring for the method and its exactness.

    Parameters
    ----------
    indicators : sequence of str
        Indicators summarised (``binding_constraint`` is counted by code instead).
    years : sequence of int
        Summary years.
    target_ids : sequence of str or None
        Targets whose ``target:<id>:met`` columns are counted.
    quantiles : sequence of float
        Probabilities of the quantile table.
    """

    def __init__(
        self, indicators, years, target_ids, quantiles=QUANTILES, discrepancy=None
    ) -> None:
        self.columns = [f"{i}:{y}" for i in indicators if i != "binding_constraint" for y in years]
        self.binding = [f"binding_constraint:{y}" for y in years]
        self.target_ids = list(target_ids or [])
        self.quantile_levels = tuple(quantiles)
        self.weighted: bool | None = None  # fixed by the first chunk
        self.rows = 0
        self.weight = 0  # sum of the weights (units of 2**-32); rows when unweighted
        self.weight_squares = 0
        self._columns: dict[str, _Column] = {}
        self._binding: dict[str, _Histogram] = {}
        count = len(self.target_ids)
        self._targets = {key: [0] * count for key in ("met", "known", "met_w", "known_w", "sq")}
        self.discrepancy = discrepancy
        self._predictive = {key: [0] * count for key in ("met", "known")}
        self._specs = target_readings(self.target_ids) if discrepancy is not None else {}
        self._quantiles: pd.DataFrame | None = None

    def add(self, frame: pd.DataFrame, weights=None) -> None:
        """Fold one chunk's output frame in.

        Parameters
        ----------
        frame : pandas.DataFrame
            A chunk of the results (columns as written to the file).
        weights : array-like, optional
            Per-sample weights (default: the frame's :data:`WEIGHT_COLUMN`, if any). Either
            every chunk is weighted or none is.
        """
        if weights is None and WEIGHT_COLUMN in frame:
            weights = frame[WEIGHT_COLUMN].to_numpy(dtype=float)
        weighted = weights is not None
        if self.weighted is None:
            self.weighted = weighted
            self._columns = {column: _Column(weighted) for column in self.columns}
            self._binding = {column: _Histogram(3, weighted) for column in self.binding}
        elif weighted != self.weighted:
            raise ValueError("either every Monte Carlo chunk carries weights or none does")
        w = exact.fixed_point(weights) if weighted else None
        if w is not None and len(w) != len(frame):
            raise ValueError(f"{len(w)} weights for a chunk of {len(frame)} samples")
        self.rows += len(frame)
        self.weight += len(frame) if w is None else exact.int_sum(w)
        self.weight_squares += len(frame) if w is None else exact.int_dot(w, w)
        for column, accumulated in self._columns.items():
            if column in frame:
                accumulated.add(frame[column].to_numpy(dtype=float), w)
        for column, histogram in self._binding.items():
            if column in frame:
                histogram.add(frame[column].to_numpy().astype(np.intp), w)
        for position, target in enumerate(self.target_ids):
            flags = frame[f"target:{target}:met"]
            known = flags.notna().to_numpy()
            met = flags.fillna(False).to_numpy(dtype=bool)
            self._targets["met"][position] += int(met.sum())
            self._targets["known"][position] += int(known.sum())
            if w is not None:
                self._targets["met_w"][position] += exact.int_sum(w[met])
                self._targets["known_w"][position] += exact.int_sum(w[known])
                self._targets["sq"][position] += exact.int_dot(w[known], w[known])
            if self.discrepancy is not None:
                self._add_predictive(position, frame[f"target:{target}:value"].to_numpy(), w)

    def _add_predictive(self, position: int, values: np.ndarray, w) -> None:
        """Fold in each sample's probability that the published figure meets the target."""
        spec = self._specs.get(self.target_ids[position])
        if spec is None:
            return
        p = self.discrepancy.probability(
            np.asarray(values, dtype=float), spec.measure, spec.span, spec.op, spec.value
        )
        defined = np.isfinite(p)
        unit = exact.fixed_point(np.ones(len(p))) if w is None else w
        # the products are per sample (no grouping), so the sums are exact in any chunking
        met = np.rint(unit[defined] * p[defined]).astype(np.int64)
        self._predictive["met"][position] += exact.int_sum(met)
        self._predictive["known"][position] += exact.int_sum(unit[defined])

    def needs(self, frame: pd.DataFrame) -> list[str]:
        """The columns of a chunk that :meth:`finish` reads back (for a scratch file)."""
        return [c for c in [*self.columns, WEIGHT_COLUMN] if c in frame]

    # ------------------------------------------------------------ results

    def effective_sample_size(self) -> float:
        """``(sum w)**2 / sum w**2`` over every sample (the sample count when unweighted)."""
        return exact.ratio(self.weight**2, self.weight_squares)

    def probabilities(self) -> pd.DataFrame:
        """Probability of meeting each target (met over samples where it is defined).

        Weighted: the weighted share, with the standard error of the effective sample size
        of the samples where the target is defined.
        """
        t = self._targets
        if not self.weighted:
            table = probability_table(self.target_ids, t["met"], t["known"], self.rows)
        else:
            probability = [exact.ratio(m, k) for m, k in zip(t["met_w"], t["known_w"], strict=True)]
            effective = [exact.ratio(k * k, s) for k, s in zip(t["known_w"], t["sq"], strict=True)]
            table = probability_table(
                self.target_ids, t["met"], t["known"], self.rows, probability, effective
            )
        if self.discrepancy is not None:
            p = self._predictive
            table["predictive"] = [
                exact.ratio(m, k) for m, k in zip(p["met"], p["known"], strict=True)
            ]
        return table

    def binding_shares(self) -> pd.DataFrame:
        """Share of samples (of the weight, when weighted) where each constraint binds."""
        from ningbo_sd.model.outputs import BINDING_LABELS

        rows = {}
        for column, histogram in self._binding.items():
            measure = histogram.measure()
            if sum(histogram.counts.tolist()):
                rows[int(column.split(":")[1])] = [exact.ratio(m, sum(measure)) for m in measure]
        return pd.DataFrame(rows, index=list(BINDING_LABELS)).T.rename_axis("year")

    def quantiles(self) -> pd.DataFrame:
        """Quantiles and means of each summary indicator and year (after :meth:`finish`)."""
        if self._quantiles is None:
            raise RuntimeError("call finish() with the results file before asking for quantiles")
        return self._quantiles

    # ------------------------------------------------------------ the exact quantiles

    def finish(self, read: Reader) -> pd.DataFrame:
        """Compute the exact quantiles, reading the summary columns back in batches.

        Parameters
        ----------
        read : callable
            ``read(columns)`` yields batches of the results (e.g. :func:`parquet_reader`):
            the rows that were added, in any order and batch size.

        Returns
        -------
        pandas.DataFrame
            The quantile table (:meth:`quantiles`).

        Raises
        ------
        RuntimeError
            If the file does not hold the values that were added.
        """
        plans: dict[str, list[tuple]] = {}  # column -> per q: (thresholds, gamma)
        searches: dict[tuple, list] = {}  # (column, threshold) -> [shift, prefix, rest, count]
        for column, accumulated in self._columns.items():
            if not accumulated.finite or not accumulated.valid:
                continue  # no finite value, or no weight: NaN quantiles
            plans[column] = []
            for q in self.quantile_levels:
                if self.weighted:  # the smallest value whose cumulative weight reaches q * total
                    fraction = Fraction(repr(float(q)))  # 0.05 is 1/20, not the binary float
                    ceiling = -(-fraction.numerator * accumulated.valid // fraction.denominator)
                    plans[column].append(((max(ceiling, 1),), None))
                else:  # numpy's linear method: two order statistics (1-based counts)
                    below, above, gamma = exact.linear_quantile(accumulated.count, q)
                    plans[column].append(((below + 1, above + 1), gamma))
                for threshold in plans[column][-1][0]:
                    if accumulated.lowest == accumulated.highest:  # one value: it is every key
                        searches[(column, threshold)] = [0, accumulated.lowest, 1, 1]
                    elif (column, threshold) not in searches:
                        histogram = accumulated.histogram
                        position, rest = histogram.locate(threshold)
                        count = int(histogram.counts[position])
                        searches[(column, threshold)] = [64 - FIRST_BITS, position, rest, count]
        keys = self._refine(searches, read)
        stats = {}
        for column, accumulated in self._columns.items():
            if not accumulated.count:
                continue  # never given, or only NaN: not in the table
            if column not in plans:
                stats[column] = (np.nan, [np.nan] * len(self.quantile_levels))
                continue
            levels = []
            for thresholds, gamma in plans[column]:
                values = exact.from_keys([keys[(column, t)] for t in thresholds])
                if self.weighted:
                    levels.append(float(values[0]))
                else:
                    levels.append(exact.interpolate(values[0], values[1], gamma))
            stats[column] = (accumulated.mean(), levels)
        self._quantiles = quantile_frame(stats, self.quantile_levels)
        return self._quantiles

    def _refine(self, searches: dict, read: Reader) -> dict:
        """Narrow every search down to one key with passes over the file: ``{search: key}``."""
        found = {}
        while True:
            for name, (shift, prefix, _, _) in list(searches.items()):
                if shift == 0:  # the bin is a single key
                    found[name] = prefix
                    del searches[name]
            if not searches:
                return found
            bins: dict[tuple, _Histogram | list] = {}  # (column, shift, prefix) -> its contents
            for (column, _), (shift, prefix, _, count) in searches.items():
                if (column, shift, prefix) not in bins:
                    large = count > COLLECT_LIMIT
                    bins[(column, shift, prefix)] = (
                        _Histogram(2**REFINE_BITS, bool(self.weighted)) if large else []
                    )
            self._pass(bins, read)
            for name, (shift, prefix, rest, count) in list(searches.items()):
                held = bins[(name[0], shift, prefix)]
                if isinstance(held, _Histogram):
                    if int(held.counts.sum()) != count:
                        raise RuntimeError("the results file differs from the chunks summarised")
                    position, rest = held.locate(rest)
                    prefix = (prefix << REFINE_BITS) | position
                    count = int(held.counts[position])
                    searches[name] = [shift - REFINE_BITS, prefix, rest, count]
                    continue
                keys = np.concatenate([k for k, _ in held]) if held else np.zeros(0, np.uint64)
                if len(keys) != count:
                    raise RuntimeError("the results file differs from the chunks summarised")
                order = np.argsort(keys, kind="stable")
                if self.weighted:
                    weights = np.concatenate([w for _, w in held])[order]
                    cumulative = np.cumsum(weights.astype(object)).tolist()
                else:
                    cumulative = range(1, count + 1)
                index = min(bisect.bisect_left(cumulative, rest), count - 1)
                found[name] = int(keys[order[index]])
                del searches[name]

    def _pass(self, bins: dict, read: Reader) -> None:
        """One pass over the file: fill each bin's histogram, or collect its keys."""
        columns = sorted({column for column, _, _ in bins})
        names = columns + ([WEIGHT_COLUMN] if self.weighted else [])
        for batch in read(names):
            weights = exact.fixed_point(batch[WEIGHT_COLUMN]) if self.weighted else None
            for column in columns:
                values = np.asarray(batch[column], dtype=float)
                keep = ~np.isnan(values)
                keys = exact.order_keys(values[keep])
                w = None if weights is None else weights[keep]
                for (name, shift, prefix), held in bins.items():
                    if name != column:
                        continue
                    inside = (keys >> np.uint64(shift)) == np.uint64(prefix)
                    chosen = keys[inside]
                    part = None if w is None else w[inside]
                    if isinstance(held, _Histogram):
                        sub = (chosen >> np.uint64(shift - REFINE_BITS)) & np.uint64(
                            2**REFINE_BITS - 1
                        )
                        held.add(sub.astype(np.intp), part)
                    elif len(chosen):
                        held.append((chosen, part))
