"""`MicroBatcher`: requests that arrive within a few milliseconds go through the model together.

One thread owns the model. It takes the first waiting item, then waits at most `max_wait_ms`
for more (up to `max_batch`), and runs them as one batch; items that queued while the
model was busy join the next batch at once. The queue is bounded (`max_queue`): a full
queue refuses new work at once (`QueueFull`, answered 503 + Retry-After by the app)
instead of letting latency grow without bound.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

log = logging.getLogger("cxrkit.serve")
T = TypeVar("T")
R = TypeVar("R")
_STOP = object()


class QueueFull(Exception):
    """The batcher's queue holds `max_queue` items: come back later."""


class MicroBatcher(Generic[T, R]):
    """Run `fn(items) -> results` (same length, same order) on batches of submitted items.

    `submit(item)` returns a `concurrent.futures.Future` of that item's result (or the
    exception `fn` raised for its batch). `stats()` counts batches and items, so the mean
    batch size can be read off a live server.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 64,
        name: str = "cxr-batcher",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self.fn, self.max_batch, self.max_wait = fn, max_batch, max_wait_ms / 1000.0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._batches = self._items = self._largest = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue `item`; its future. Raises `QueueFull` when `max_queue` items wait."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future[R] = Future()
        try:
            self._queue.put_nowait((item, future))
        except queue.Full:
            raise QueueFull from None
        return future

    def waiting(self) -> int:
        """Items queued and not yet taken into a batch."""
        return self._queue.qsize()

    def stats(self) -> dict[str, float]:
        """Batches run, items run, their mean and the largest batch so far."""
        mean = self._items / self._batches if self._batches else 0.0
        return {
            "batches": self._batches,
            "items": self._items,
            "mean_batch": round(mean, 2),
            "largest_batch": self._largest,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the items already queued; later `submit`s raise."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full (it drains)
        self._thread.join(timeout)

    def _take(self) -> tuple[list[tuple[T, Future[R]]], bool]:
        """The next batch and whether to stop after it."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    nxt = self._queue.get(timeout=remaining)
                else:  # past the wait: only what is already queued joins
                    nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._take()
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self.fn([item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch of {len(live)} gave {len(results)} results")
            except BaseException as exc:  # the batch's callers get the error, the thread lives
                log.exception("batch of %d failed", len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            self._batches += 1
            self._items += len(live)
            self._largest = max(self._largest, len(live))
            for (_, fut), result in zip(live, results, strict=True):
                fut.set_result(result)
