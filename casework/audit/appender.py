"""Group commit: many requests' entries sequenced and written in one transaction.

A request that only reads does not take the log's lock itself. Its entries
are handed to the process's :class:`GroupCommit`, and the request waits until
they are durable. The first waiting thread that finds no batch in progress
becomes the *leader*: it waits at most ``max_wait`` for the queue to fill to
``batch_size`` entries, takes the queue, and writes it with one transaction
(one lock, one head read, one INSERT, one fsync); the threads whose entries it
carried are released when it commits, or all fail together when it does not.
Entries that arrive while a batch is being written wait for the next one, so
under load batches grow by themselves and the lock is taken once per batch
instead of once per request. Across processes and hosts the batches of each
process serialise on the log's lock like any other append (PostgreSQL: the
advisory lock; SQLite: the write lock), so the chain never forks.

There is no background thread: the leader is a request thread, so nothing has
to survive a fork (gunicorn) or be stopped, and an entry is never held by a
thread that no request waits for. A worker killed mid-batch loses only entries
whose requests had not been answered yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class AppendFailed(RuntimeError):
    """The batch carrying these entries was not written; the request must not succeed."""


@dataclass(eq=False)
class _Waiter(Generic[T]):
    items: Sequence[T]
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Sequence items from many threads into batches written by ``write``.

    ``write(items)`` must write every item durably or raise; it runs in the
    leader's thread, outside this object's lock. ``batch_size`` bounds the
    items per batch (a request's items are never split); ``max_wait`` is how
    long a leader waits for a batch to fill before writing what it has.
    """

    def __init__(
        self, write: Callable[[list[T]], None], *, batch_size: int = 512, max_wait: float = 0.0
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._write = write
        self.batch_size = batch_size
        self.max_wait = max(0.0, max_wait)
        self._cond = threading.Condition()
        self._queue: list[_Waiter[T]] = []
        self._queued = 0
        self._leading = False
        self.batches = 0
        self.items = 0

    def append(self, items: Sequence[T]) -> None:
        """Block until ``items`` are written; raise :class:`AppendFailed` if they were not."""
        if not items:
            return
        waiter: _Waiter[T] = _Waiter(items)
        with self._cond:
            self._queue.append(waiter)
            self._queued += len(items)
            self._cond.notify_all()
            while not waiter.done:
                if self._leading:
                    self._cond.wait()
                else:
                    self._lead()
        if waiter.error is not None:
            raise AppendFailed("the access-log batch was not written") from waiter.error

    def _lead(self) -> None:
        """Write one batch (called holding the lock; releases it while writing)."""
        self._leading = True
        try:
            if self.max_wait and self._queued < self.batch_size:
                deadline = time.monotonic() + self.max_wait
                while self._queued < self.batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            batch = self._take()
            items = [item for waiter in batch for item in waiter.items]
            error: BaseException | None = None
            self._cond.release()
            try:
                self._write(items)
            except BaseException as failure:  # handed to every waiter of the batch
                error = failure
            finally:
                self._cond.acquire()
            self.batches += 1
            self.items += len(items)
            for waiter in batch:
                waiter.done = True
                waiter.error = error
        finally:
            self._leading = False
            self._cond.notify_all()

    def _take(self) -> list[_Waiter[T]]:
        taken: list[_Waiter[T]] = []
        count = 0
        while self._queue:
            size = len(self._queue[0].items)
            if taken and count + size > self.batch_size:
                break
            taken.append(self._queue.pop(0))
            count += size
        self._queued -= count
        return taken
