"""The time grid a run steps through, and how a batch is cut into chunks (as PySD steps)."""

from __future__ import annotations

import math

import numpy as np

_RPREC = 1e-5  # PySD's relative precision for final and saving times


def time_grid(initial: float, final: float, dt: float, saveper: float):
    """Simulation times and saving flags exactly as PySD steps them.

    Time is accumulated (``t = t + dt``) and a time is saved when it is within
    ``dt * 1e-5`` of a multiple of ``saveper`` from the initial time.

    Returns
    -------
    times : ndarray
        Every evaluated time (``len(times) - 1`` Euler updates).
    save : ndarray of bool
        Whether each time is recorded.
    """
    if not dt > 0 or not saveper > 0:
        raise ValueError(f"TIME STEP ({dt}) and SAVEPER ({saveper}) must be positive")
    prec = dt * _RPREC
    times, save = [], []
    t = float(initial)

    def in_return(t):
        delay = t - initial
        return (delay % saveper < prec) or (-delay % saveper < prec)

    while t + dt * _RPREC < final:
        times.append(t)
        save.append(in_return(t))
        t = t + dt
    times.append(t)
    save.append(in_return(t))
    return np.array(times), np.array(save, dtype=bool)


def chunk_size(n: int, threads: int, group: int, target: int = 4096) -> int:
    """Samples per chunk: about ``target``, a multiple of ``threads`` chunks, whole groups."""
    n_chunks = max(math.ceil(n / target), 1)
    n_chunks = math.ceil(n_chunks / threads) * threads
    return max(math.ceil(math.ceil(n / n_chunks) / group) * group, 1)
