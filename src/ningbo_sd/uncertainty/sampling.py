"""Samplers: from a resolved uncertainty specification to parameter tables.

Sampling works on the unit hypercube first (one column per *factor*: each non-posterior
parameter, plus one ``posterior draw`` factor that picks a whole row of the calibration
posterior, so the calibrated parameters keep their joint distribution), then maps each
column through ``scipy.stats`` ppf (:meth:`ningbo_sd.uncertainty.spec.UncertainParameter.ppf`).

Latin hypercube designs follow ``SALib.sample.latin`` and are generated per logical block of
:data:`BLOCK_SIZE` samples, each block seeded by ``SeedSequence(seed, spawn_key=(block,))``:
sample *i* depends only on the seed, *i* and the total count, never on how a run is chunked
or on how many workers run it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ningbo_sd.uncertainty.noise import noise_columns
from ningbo_sd.uncertainty.spec import (
    POSTERIOR_COLUMN,
    POSTERIOR_FACTOR,
    SPEC_FILE,
    ResolvedSpec,
    UncertaintySpecError,
    load_spec,
    resolve_spec,
)

__all__ = [
    "BLOCK_SIZE",
    "DESIGNS",
    "POSTERIOR_COLUMN",
    "POSTERIOR_FACTOR",
    "SPEC_FILE",
    "ResolvedSpec",
    "UncertaintySpecError",
    "block_rng",
    "engine_columns",
    "latin_unit",
    "load_spec",
    "resolve_spec",
    "sample_table",
    "transform",
    "unit_rows",
]

DESIGNS = ("lhs", "random")
#: Samples per logical block of the Latin hypercube design (part of the design: changing it
#: changes the samples a seed gives).
BLOCK_SIZE = 8192


def latin_unit(n: int, factors: int, rng: np.random.Generator) -> np.ndarray:
    """Latin hypercube on [0, 1)^factors, exactly as ``SALib.sample.latin.sample``.

    SALib's function fills its result with a Python loop over samples and factors (slow for
    large blocks); this is the same algorithm, same random stream and arithmetic, vectorised:
    ``latin_unit(n, d, numpy.random.default_rng(s))`` equals
    ``SALib.sample.latin.sample(problem, n, seed=s)`` bit for bit for an int or
    ``SeedSequence`` ``s`` and bounds [0, 1] (the tests check it).

    Parameters
    ----------
    n : int
        Samples.
    factors : int
        Dimensions.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        ``(n, factors)``.
    """
    step = 1.0 / n
    strata = np.arange(n, dtype=float)[:, None]
    design = rng.uniform(low=strata * step, high=(strata + 1) * step, size=(n, factors))
    for column in range(factors):
        rng.shuffle(design[:, column])
    return design


def block_rng(seed: int, block: int) -> np.random.Generator:
    """The generator of one logical block: ``SeedSequence(seed, spawn_key=(block,))``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))


def unit_rows(
    n_factors: int, n_samples: int, seed: int, start: int, stop: int, design: str = "lhs"
) -> np.ndarray:
    """Rows ``start:stop`` of the unit design of ``n_samples`` samples.

    Logical block ``b`` (samples ``b * BLOCK_SIZE`` to ``min((b + 1) * BLOCK_SIZE, n)``) is a
    Latin hypercube of its own size (``design='lhs'``) or independent uniforms
    (``'random'``), drawn from :func:`block_rng`. The result does not depend on how
    ``[0, n_samples)`` is cut into ``start:stop`` pieces.

    Returns
    -------
    numpy.ndarray
        ``(stop - start, n_factors)`` in [0, 1).
    """
    if design not in DESIGNS:
        raise ValueError(f"design {design!r} is not one of {', '.join(DESIGNS)}")
    if not 0 <= start <= stop <= n_samples:
        raise ValueError(f"rows {start}:{stop} are not inside 0:{n_samples}")
    pieces = []
    for block in range(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE)):
        first = block * BLOCK_SIZE
        size = min(BLOCK_SIZE, n_samples - first)
        rng = block_rng(seed, block)
        if design == "lhs":
            rows = latin_unit(size, n_factors, rng)
        else:
            rows = rng.random((size, n_factors))
        pieces.append(rows[max(start - first, 0) : min(stop - first, size)])
    return np.concatenate(pieces) if pieces else np.empty((0, n_factors))


def transform(spec: ResolvedSpec, unit: np.ndarray) -> pd.DataFrame:
    """Map unit-design rows to parameter values (the sample table).

    Parameters
    ----------
    spec : ResolvedSpec
    unit : numpy.ndarray
        ``(n, len(spec.factors))`` in [0, 1).

    Returns
    -------
    pandas.DataFrame
        One column per uncertain parameter (a ``scale_vector`` parameter's common factor),
        plus ``posterior_draw`` (the row of the draws) when the posterior is used.
    """
    unit = np.atleast_2d(np.asarray(unit, dtype=float))
    if unit.shape[1] != len(spec.factors):
        raise ValueError(f"expected {len(spec.factors)} unit columns, got {unit.shape[1]}")
    columns = {p.name: p.ppf(unit[:, i]) for i, p in enumerate(spec.sampled)}
    if spec.from_posterior:
        draws = spec.posterior
        rows = np.minimum((unit[:, -1] * len(draws)).astype(np.int64), len(draws) - 1)
        for parameter in spec.from_posterior:
            columns[parameter.name] = draws[parameter.name].to_numpy()[rows]
        columns[POSTERIOR_COLUMN] = rows
    return pd.DataFrame(columns)


def sample_table(
    spec: ResolvedSpec,
    n_samples: int,
    seed: int,
    design: str = "lhs",
    start: int = 0,
    stop: int | None = None,
) -> pd.DataFrame:
    """Rows ``start:stop`` of the sample table a seed gives (index = sample number).

    Parameters
    ----------
    spec : ResolvedSpec
    n_samples : int
        Size of the whole ensemble.
    seed : int
        Non-negative integer.
    design : {"lhs", "random"}
    start, stop : int
        Rows to return (default all).

    Returns
    -------
    pandas.DataFrame
        The parameters, then the process-noise paths of ``spec.noise`` (``Name[knot]``
        columns, :mod:`ningbo_sd.uncertainty.noise`).
    """
    if n_samples < 1:
        raise ValueError(f"the number of samples must be at least 1 (got {n_samples})")
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer (got {seed})")
    stop = n_samples if stop is None else stop
    unit = unit_rows(len(spec.factors), n_samples, seed, start, stop, design)
    frame = transform(spec, unit)
    frame.index = pd.RangeIndex(start, stop, name="sample")
    if spec.noise:
        noise = noise_columns(spec.noise, n_samples, seed, start, stop, BLOCK_SIZE)
        frame = pd.concat([frame, noise], axis=1)
    return frame


def engine_columns(samples: pd.DataFrame, vectors: dict) -> pd.DataFrame:
    """Turn a sample table into the engine's parameter table.

    Parameters
    ----------
    samples : pandas.DataFrame
        From :func:`sample_table`.
    vectors : dict
        For each ``scale_vector`` parameter: ``(elements, base values, mode)``; its column
        becomes ``Name[element]`` columns: base x factor (``scale``) or base ** factor
        (``spread``).

    Returns
    -------
    pandas.DataFrame
        Columns are Vensim constant names or ``Name[element]``.
    """
    columns: dict[str, np.ndarray] = {}
    for name in samples.columns:
        if name == POSTERIOR_COLUMN:
            continue
        values = samples[name].to_numpy(dtype=float)
        if name in vectors:
            elements, base, mode = vectors[name]
            for element, level in zip(elements, base, strict=True):
                # scale: a common factor; spread: an exponent (base ** u) on every element
                spread = np.power(float(level), values) if mode == "spread" else None
                columns[f"{name}[{element}]"] = values * float(level) if spread is None else spread
        else:
            columns[name] = values
    return pd.DataFrame(columns, index=samples.index)
