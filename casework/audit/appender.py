"""Group commit: many requests' entries sequenced and written in one transaction.

A request that only reads does not take the log's lock itself. Its entries
are handed to the process's :class:`GroupCommit`, and the request waits until
they are durable. A thread that finds no batch in progress becomes the
*leader*: it waits at most ``max_wait`` for the queue to fill to
``batch_size`` entries, takes everything queued (up to ``batch_size``), and
writes it with one transaction (one lock, one head read, one INSERT, one
fsync); the threads whose entries it carried are released when it commits, or
all fail together when it does not. Entries that arrive while a batch is being
written wait for the next one, so under load batches grow by themselves and
the lock is taken once per batch instead of once per request. When a batch
ends, leadership passes straight to the oldest waiting thread.

Each waiting thread sleeps on its own lock and is woken once: when its batch
has been written, or when it is to lead the next one. (A shared condition
woken for every arrival and every batch woke every waiting thread of a busy
worker many times per batch.)

Across processes and hosts the batches of each process serialise on the log's
lock like any other append (PostgreSQL: the advisory lock; SQLite: the write
lock), so the chain never forks.

There is no background thread: the leader is a request thread, so nothing has
to survive a fork (gunicorn) or be stopped, and an entry is never held by a
thread that no request waits for. A worker killed mid-batch loses only entries
whose requests had not been answered yet.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

T = TypeVar("T")


class AppendFailed(RuntimeError):
    """The batch carrying these entries was not written; the request must not succeed."""


class _Waiter(Generic[T]):
    """One request's items, and what wakes its thread (once written, or to lead).

    A bare lock, taken at once, is the wake-up: :meth:`sleep` blocks until
    :meth:`wake` releases it. It costs about half an ``Event`` (no condition,
    no lock allocated per wait), and each sleep is matched by exactly one wake.
    """

    __slots__ = ("_wake", "done", "error", "items", "lead")

    def __init__(self, items: Sequence[T]) -> None:
        self.items = items
        self.done = False
        self.lead = False
        self.error: BaseException | None = None
        self._wake = threading.Lock()
        self._wake.acquire()

    def sleep(self) -> None:
        self._wake.acquire()

    def wake(self) -> None:
        self._wake.release()


class GroupCommit(Generic[T]):
    """Sequence items from many threads into batches written by ``write``.

    ``write(items)`` must write every item durably or raise; it runs in the
    leader's thread, outside this object's lock. ``batch_size`` bounds the
    items per batch (a request's items are never split); ``max_wait`` is how
    long a leader waits for a batch to fill before writing what it has. It
    stops waiting as soon as the requests it can expect are queued: those the
    last batch carried and those that arrived while it was being written.

    ``begin``, when given, replaces ``write``: a context manager that takes the
    log's lock (a transaction) and yields the function that writes a batch in it;
    leaving it commits. The leader then takes its batch only once it holds the
    lock, so the items that arrive while it waits for another process's batch go
    into its own instead of waiting for the next one.
    """

    def __init__(
        self,
        write: Callable[[list[T]], None] | None = None,
        *,
        begin: Callable[[], AbstractContextManager[Callable[[list[T]], None]]] | None = None,
        batch_size: int = 512,
        max_wait: float = 0.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if (write is None) == (begin is None):
            raise ValueError("give write or begin, not both")
        self._write = write
        self._begin = begin
        self.batch_size = batch_size
        self.max_wait = max(0.0, max_wait)
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)  # only a leader filling a batch waits
        self._queue: deque[_Waiter[T]] = deque()
        self._queued = 0
        self._leading = False
        self._filling = False
        self._enough = batch_size  # what a filling leader waits for
        # The last batch's items and those that arrived while it was written (before
        # the first batch, nothing is known: wait for a full batch).
        self._expected = batch_size
        self.batches = 0
        self.items = 0

    def append(self, items: Sequence[T]) -> None:
        """Block until ``items`` are written; raise :class:`AppendFailed` if they were not."""
        if not items:
            return
        waiter: _Waiter[T] = _Waiter(items)
        with self._lock:
            self._queue.append(waiter)
            self._queued += len(items)
            if not self._leading:
                self._leading = waiter.lead = True
            elif self._filling and self._queued >= self._enough:
                self._filled.notify()
        while not waiter.done:
            if waiter.lead:
                waiter.lead = False
                self._lead(waiter)
            else:
                waiter.sleep()
        if waiter.error is not None:
            raise AppendFailed("the access-log batch was not written") from waiter.error

    def _lead(self, leader: _Waiter[T]) -> None:
        """Write one batch, then hand the lead to the oldest waiter left (or give it up).

        The leader is always the oldest waiter, so its own items are in the batch.
        """
        with self._lock:
            # Waiting to fill, the leader expects back the requests of the last batch
            # (released when it committed) and those that queued while it was written:
            # once they are here, waiting longer only adds latency.
            self._enough = min(self.batch_size, max(1, self._expected))
            if self.max_wait and self._queued < self._enough:
                self._filling = True
                deadline = time.monotonic() + self.max_wait
                while self._queued < self._enough:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._filled.wait(left)
                self._filling = False
            batch = [] if self._begin is not None else self._take()
        items: list[T] = []
        error: BaseException | None = None
        try:
            if self._write is not None:
                items = [item for waiter in batch for item in waiter.items]
                self._write(items)
            elif self._begin is not None:
                with self._begin() as write:  # holds the log's lock: take the batch now
                    with self._lock:
                        batch = self._take()
                    items = [item for waiter in batch for item in waiter.items]
                    write(items)
        except BaseException as failure:  # handed to every waiter of the batch
            error = failure
        with self._lock:
            if not batch:  # the lock was never had: the leader's own items fail with it
                batch = self._take()
            self.batches += 1
            self.items += len(items)
            self._expected = len(items) + self._queued
            for waiter in batch:
                waiter.error = error
                waiter.done = True
            successor = self._queue[0] if self._queue else None
            if successor is None:
                self._leading = False
            else:
                successor.lead = True
        for waiter in batch:
            if waiter is not leader:  # awake already
                waiter.wake()
        if successor is not None:
            successor.wake()

    def _take(self) -> list[_Waiter[T]]:
        """The oldest waiters whose items fit in one batch (the first always does)."""
        taken: list[_Waiter[T]] = []
        count = 0
        queue = self._queue
        while queue:
            size = len(queue[0].items)
            if taken and count + size > self.batch_size:
                break
            taken.append(queue.popleft())
            count += size
        self._queued -= count
        return taken
