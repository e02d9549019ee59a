"""One model run at a time, in the order asked: the served app's queue of slider moves.

A lever move costs the server about 25 ms of CPU on its one event-loop thread (the run,
the scorecard, the charts' data and the patch to the browser). When many sessions move at
the same moment, Panel's change callbacks all become due together and ran one after the
other, and each session's update left only after *all* of them had run: Bokeh sends a
callback's changes one message per change and awaits each write, and a write waits for
the event loop, which was busy with the other sessions' runs. So the median user waited
for the whole burst.

:class:`RunQueue` takes the runs out of the callbacks: a move puts its session's run in
a first-in, first-out queue (a session already waiting keeps its place, and its run then
uses its latest settings, so a drag that outpaces the server costs one run, not one per
step), and one task runs them one at a time, each under its document's lock, sends its
changes as one message at once (Panel's ``unlocked``) and lets the event loop write it
before the next run starts. The k-th session's update then leaves after k runs.

Outside a served session (tests, notebooks) a run happens at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from weakref import WeakKeyDictionary

LOGGER = logging.getLogger("ningbo_sd.app")


class RunQueue:
    """A first-in, first-out queue of sessions' runs, served one at a time by one task.

    One queue serves every session of a server process (:func:`run_queue`); it must be
    used from that process's event loop.
    """

    def __init__(self) -> None:
        self._waiting: dict[Callable[[], object], object] = {}  # run -> its document
        self._worker: asyncio.Task | None = None
        self.runs = 0  # runs done (for tests and benchmarks)

    def __len__(self) -> int:
        return len(self._waiting)

    def submit(self, run: Callable[[], object]) -> None:
        """Run ``run`` (a session's recompute) when its turn comes; at once outside a server.

        Parameters
        ----------
        run : callable
            Called with no arguments, with the session's document current and locked.
            Submitting the same callable again while it waits changes nothing.
        """
        import panel as pn

        doc = pn.state.curdoc
        context = None if doc is None else doc.session_context
        if context is None or getattr(context, "_session", None) is None:
            run()
            return
        self._waiting.setdefault(run, doc)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._waiting:
            run = next(iter(self._waiting))
            doc = self._waiting.pop(run)
            context = doc.session_context
            if context is None or context.destroyed:
                continue
            await context.with_locked_document(partial(self._run_locked, run))
            self.runs += 1
            await asyncio.sleep(0)  # the event loop writes this session's update now

    @staticmethod
    def _run_locked(run: Callable[[], object], doc) -> None:
        import panel as pn
        from panel.io.document import unlocked
        from panel.io.state import set_curdoc

        with set_curdoc(doc):
            try:
                with unlocked():  # the run's changes go out as one message, now
                    run()
            except Exception as exc:  # one session's failure is reported, the queue goes on
                handler = pn.config.exception_handler
                if handler is None:
                    LOGGER.exception("a queued run failed")
                else:
                    handler(exc)


_QUEUES: WeakKeyDictionary = WeakKeyDictionary()


def run_queue() -> RunQueue:
    """The run queue of the running event loop (one per server process).

    Returns
    -------
    RunQueue
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # no loop: runs happen at once anyway
        return RunQueue()
    if loop not in _QUEUES:
        _QUEUES[loop] = RunQueue()
    return _QUEUES[loop]
