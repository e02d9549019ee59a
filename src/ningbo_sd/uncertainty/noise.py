"""Process noise: AR(1) shock paths drawn in Python and fed to the engine as sampled constants.

The model keeps the engine deterministic: each noise channel is a subscripted constant of
log deviations at annual knots (``Demand Shock Path[shock_year]``, 2021-2035), interpolated
linearly in time by the model itself (``Demand Noise``). A deterministic run leaves the paths
at zero. The Monte Carlo draws one path per sample and channel,

    x[2021] = e[2021],    x[t] = rho * x[t-1] + e[t],    e ~ N(0, sd^2) independent,

with ``sd`` and ``rho`` read from the model's constants (``Demand Noise SD``, ``Demand Noise
Correlation``; their ranges and rationale are in the assumptions register).

The knots start after 2020, the last year the calibration fits: the shocks of 2016-2020
are part of the history it conditions on. Drawn afresh for those years, the noise
contradicted the 2015-2020 figures so badly that importance weights were degenerate
(effective sample size 1 of 2,000; :mod:`ningbo_sd.calibration.history`).

The innovations of logical block ``b`` (the same blocks as the Latin hypercube,
:data:`ningbo_sd.uncertainty.sampling.BLOCK_SIZE`) come from ``SeedSequence(seed,
spawn_key=(b, NOISE_STREAM))``, a stream independent of the design's: sample *i*'s paths
depend only on the seed, *i* and the total count, never on the chunking or the workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Spawn-key suffix of the noise stream (the design's blocks use ``(block,)``).
NOISE_STREAM = 1


@dataclass(frozen=True)
class NoiseChannel:
    """One process-noise channel.

    Attributes
    ----------
    name : str
        Channel name (``demand``).
    path : str
        The subscripted model constant holding the path (``Demand Shock Path``).
    elements : tuple of str
        Its elements, one per annual knot, in time order.
    sd : float
        Standard deviation of a year's innovation (log units).
    correlation : float
        AR(1) coefficient from one knot to the next, in [0, 1).
    """

    name: str
    path: str
    elements: tuple[str, ...]
    sd: float
    correlation: float

    def columns(self) -> list[str]:
        """Engine column names of the path (``Name[element]``)."""
        return [f"{self.path}[{element}]" for element in self.elements]


def resolve_noise(entries: dict, model, parameters: dict) -> tuple[NoiseChannel, ...]:
    """Channels of a specification's ``noise`` section, read against a compiled model.

    Parameters
    ----------
    entries : dict
        Channel name -> object with ``path``, ``sd`` and ``correlation`` (constant names).
    model : ningbo_sd.engine.engine.CompiledModel
    parameters : dict
        The run's constant values (scenario and calibration over the model's defaults).

    Raises
    ------
    ValueError
        A name that is not a constant, a path that is not subscripted, an amplitude below 0
        or a correlation outside [0, 1).
    """
    channels = []
    for name, entry in entries.items():
        for field in ("path", "sd", "correlation"):
            constant = getattr(entry, field)
            if constant not in model.constants:
                raise ValueError(
                    f"noise.channels.{name}.{field}: {constant!r} is not a model constant"
                )
        if np.ndim(model.constants[entry.path]) != 1:
            raise ValueError(
                f"noise.channels.{name}.path: {entry.path!r} must be a constant with one "
                "subscript (one element per annual knot)"
            )
        sd = float(parameters.get(entry.sd, model.constants[entry.sd]))
        correlation = float(parameters.get(entry.correlation, model.constants[entry.correlation]))
        if not sd >= 0:
            raise ValueError(f"noise.channels.{name}: {entry.sd} = {sd}; allowed: 0 or more")
        if not 0 <= correlation < 1:
            raise ValueError(
                f"noise.channels.{name}: {entry.correlation} = {correlation}; allowed: [0, 1)"
            )
        elements = tuple(model.variables[entry.path].coords[0])
        channels.append(NoiseChannel(name, entry.path, elements, sd, correlation))
    return tuple(channels)


def ar1_paths(innovations: np.ndarray, correlation: float) -> np.ndarray:
    """AR(1) paths from standard-normal-scaled innovations ``(samples, knots)``."""
    paths = np.empty_like(innovations)
    level = np.zeros(innovations.shape[0])
    for knot in range(innovations.shape[1]):
        level = correlation * level + innovations[:, knot]
        paths[:, knot] = level
    return paths


def noise_columns(
    channels: tuple[NoiseChannel, ...],
    n_samples: int,
    seed: int,
    start: int,
    stop: int,
    block_size: int,
) -> pd.DataFrame:
    """Rows ``start:stop`` of the noise paths of every channel (engine columns).

    ``block_size`` is the design's logical block
    (:data:`ningbo_sd.uncertainty.sampling.BLOCK_SIZE`).

    Returns
    -------
    pandas.DataFrame
        One column per channel and knot, index ``start:stop`` (name ``sample``).
    """
    width = sum(len(channel.elements) for channel in channels)
    pieces = []
    for block in range(start // block_size, -(-stop // block_size)):
        first = block * block_size
        size = min(block_size, n_samples - first)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block, NOISE_STREAM)))
        draws = rng.standard_normal((size, width))
        pieces.append(draws[max(start - first, 0) : min(stop - first, size)])
    draws = np.concatenate(pieces) if pieces else np.empty((0, width))
    columns: dict[str, np.ndarray] = {}
    offset = 0
    for channel in channels:
        knots = len(channel.elements)
        paths = ar1_paths(draws[:, offset : offset + knots] * channel.sd, channel.correlation)
        offset += knots
        for position, column in enumerate(channel.columns()):
            columns[column] = paths[:, position]
    return pd.DataFrame(columns, index=pd.RangeIndex(start, stop, name="sample"))


def is_noise_column(name: str, channels: tuple[NoiseChannel, ...]) -> bool:
    """True for an engine column that holds a noise path knot."""
    return any(name.startswith(f"{channel.path}[") for channel in channels)
