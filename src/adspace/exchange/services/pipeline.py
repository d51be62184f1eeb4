"""The micro-batch scheduler of the auction service: which queued auctions go into the next batch, and when.

One thread takes every auction queued so far (at most :data:`MAX_BATCH`) and hands the batch to the
service's ``process`` (clear, then hand the writes to the group-commit writer); the service calls
:meth:`Pipeline.done` once the batch is answered, with the auctions to clear again (their hold was
refused). At most :data:`IN_FLIGHT` batches are cleared and not yet committed: the pipeline clears
while the writer commits, and batches waiting for the writer go into its next transaction together.

Batching adds no wait when the exchange is idle: the pipeline takes what is queued the moment it is
free. Under load (one of the last few batches had more than one caller) it waits for auctions
already on their way, so batches fill: until as many are queued as the largest of those batches had
callers -- its own auctions plus those still in flight when it was taken, whose callers come back
once answered (callers that came back together are taken the moment the last of them arrives, and
callers split across two batches merge again) -- and at most ``batch_window_us`` (default 200 µs),
or on a market whose clearing pass costs more than that (100,000 campaigns: ~10 ms, about the same for
one auction as for eight) up to a quarter of a pass (at most 5 ms), so concurrent callers share a pass
instead of queueing for the next.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from adspace.exchange.store.writer import resolve_all

__all__ = ["IN_FLIGHT", "MAX_BATCH", "MAX_WINDOW_S", "RECENT_BATCHES", "WINDOW_SHARE", "Pipeline"]

log = logging.getLogger("adspace.exchange")

#: Most auctions cleared and committed together.
MAX_BATCH = 128
#: Under load the pipeline waits until as many auctions are queued as the largest of this many recent
#: batches had callers (its auctions plus those in flight when it was taken), or the window below has passed.
RECENT_BATCHES = 8
#: Under load, the pipeline waits for arrivals up to ``batch_window_us`` or this share of a batch's
#: clearing time, whichever is longer (at most MAX_WINDOW_S).
WINDOW_SHARE = 0.25
MAX_WINDOW_S = 0.005
#: Batches cleared but not yet committed.
IN_FLIGHT = 4


class Pipeline:
    """A queue of jobs (each with a ``future``) and the thread that takes them in micro-batches.

    ``process(batch)`` runs on the pipeline's thread and must end with :meth:`done` for that batch
    (possibly later, from another thread); when it raises instead, every job of the batch gets the
    exception.
    """

    def __init__(self, process: Callable[[list[Any]], None], window_s: float, *, name: str = "adspace-auctions"):
        self.process = process
        self.window_s = window_s
        self.name = name
        self._cond = threading.Condition()
        self._queue: list[Any] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        #: callers of the last batches: each batch's jobs plus those in flight when it was taken
        self._recent: deque[int] = deque(maxlen=RECENT_BATCHES)
        self._busy = 0  # jobs taken and not yet answered (being cleared, committed or re-queued)
        self._enough = MAX_BATCH  # queued jobs that wake a pipeline waiting for arrivals
        self._clear_s = 0.0  # moving average of a batch's clearing time
        self._idle = False  # the pipeline waits for work (an arrival must wake it)
        self._slots = threading.BoundedSemaphore(IN_FLIGHT)

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=10)

    def put(self, job) -> None:
        """Queue a job (starting the thread on first use)."""
        if self._thread is None:
            self.start()
        with self._cond:
            self._queue.append(job)
            if self._idle or len(self._queue) >= self._enough:
                self._cond.notify()

    def cleared(self, seconds: float) -> None:
        """Record a batch's clearing time (the wait for arrivals scales with it on large markets)."""
        self._clear_s += 0.2 * (seconds - self._clear_s)

    def done(self, batch: list[Any], retry: list[Any]) -> None:
        """A batch is answered, but for ``retry`` (queued again, first): its slot is free again.

        In one step, so no batch sees the jobs to retry both queued and in flight."""
        with self._cond:
            self._busy -= len(batch)
            if retry:
                self._queue[:0] = retry
                self._cond.notify()
        self._slots.release()

    def _take(self) -> list[Any] | None:
        """The next batch (``None`` once stopped and drained)."""
        with self._cond:
            while not self._queue and not self._closed:
                self._idle = True
                self._cond.wait()
            self._idle = False
            if not self._queue:
                return None
            enough = min(MAX_BATCH, max(self._recent, default=1))
            if enough > 1 and len(self._queue) < enough and self.window_s > 0:
                # Under load: let jobs on their way join, until as many are queued as the recent
                # batches had callers (the put that makes them enough wakes this wait: one wake-up per
                # batch, not one per job) or the window has passed. On a market so large that a
                # clearing pass costs more than the window (a pass over every campaign: about the same
                # for 1 auction as for 8), wait up to a quarter of a pass.
                self._enough = enough
                self._cond.wait(min(MAX_WINDOW_S, max(self.window_s, WINDOW_SHARE * self._clear_s)))
                self._enough = MAX_BATCH
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            # The callers of the jobs still in flight come back once answered: counting them lets two
            # halves of the same callers, split across batches, merge again.
            self._recent.append(len(batch) + self._busy)
            self._busy += len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            self._slots.acquire()  # at most IN_FLIGHT batches cleared and not yet committed
            batch = self._take()
            if batch is None:
                self._slots.release()
                return
            try:
                self.process(batch)
            except BaseException as exc:  # noqa: BLE001 - every waiter of the batch gets it
                self._slots.release()
                with self._cond:
                    self._busy -= len(batch)
                log.exception("auction batch failed")
                resolve_all([(job.future, False, exc) for job in batch if not job.future.done()])
