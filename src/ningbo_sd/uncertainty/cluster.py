"""Running Monte Carlo chunks on a dask cluster: a ``LocalCluster`` or a running scheduler.

Kept apart from :mod:`ningbo_sd.uncertainty.montecarlo` (which chooses in-process or dask in
:func:`~ningbo_sd.uncertainty.montecarlo.execute`); distributed is imported only here, and
only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pandas as pd


def execute_dask(
    function: Callable, tables: Iterator, context, workers: int | None, scheduler: str | None
) -> Iterator[pd.DataFrame]:
    """Run ``function(table, context)`` for each table on dask; yield results in order.

    Parameters
    ----------
    function : callable
        The chunk function (:func:`ningbo_sd.uncertainty.montecarlo.run_chunk`).
    tables : iterator of pandas.DataFrame
        Chunks of the sample table, produced lazily.
    context : object
        Sent once to every worker (``scatter(broadcast=True)``).
    workers : int, optional
        Start a ``LocalCluster`` of this many processes on 127.0.0.1, no dashboard.
    scheduler : str, optional
        Address of a running scheduler.

    Yields
    ------
    pandas.DataFrame
        One per table, in the order of ``tables``. At most two chunks per worker are in
        flight; a worker lost mid-run costs only time (the scheduler reruns its chunks).
    """
    import logging

    from distributed import Client, LocalCluster, as_completed

    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            try:
                client = stack.enter_context(Client(scheduler, timeout="20s"))
            except OSError as exc:
                raise ValueError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
        n_workers = max(len(client.scheduler_info()["workers"]), 1)
        shared = client.scatter(context, broadcast=True)
        in_flight_limit = 2 * n_workers
        position: dict = {}
        ready: dict[int, pd.DataFrame] = {}
        queue = as_completed()
        submitted = next_out = 0
        tables = iter(tables)

        def submit() -> bool:
            nonlocal submitted
            table = next(tables, None)
            if table is None:
                return False
            future = client.submit(function, table, shared, pure=False)
            position[future.key] = submitted
            submitted += 1
            queue.add(future)
            return True

        while len(position) < in_flight_limit and submit():
            pass
        for future in queue:
            ready[position.pop(future.key)] = future.result()
            future.release()
            submit()
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1
