"""Structured JSON logs: one object per line, no bodies, no query strings.

Only fields named in ``SAFE_FIELDS`` leave the process; anything else passed as
``extra`` is dropped, so a careless call cannot route personal data to a log.
"""

from __future__ import annotations

import io
import json
import logging
import os
import select
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

SAFE_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "request_id",
    "error_type",
    "frames",
    "actor",
    "event",
    "count",
    "seconds",
)


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object with a fixed set of fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        return json.dumps(entry, default=str)


class LineHandler(logging.Handler):
    """Write each record as one line with one ``os.write`` on the stream's descriptor.

    ``StreamHandler`` holds a lock across the write and flush; the writing
    thread then waits for the GIL with the lock held, and every other request
    thread of the worker queues behind it on its one log line (measured: a
    tenth of a gthread worker's request time under load). A line up to
    ``PIPE_BUF`` bytes goes out whole in one write (an ``O_APPEND`` file or a
    pipe does not split it), so only longer lines (a traceback) take a lock.
    A stream without a descriptor (a test's capture) is written under the lock.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._long_lines = threading.Lock()

    def createLock(self) -> None:  # noqa: N802 (logging's name)
        self.lock = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            try:
                descriptor = self.stream.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                with self._long_lines:
                    self.stream.write(line)
                    self.stream.flush()
                return
            data = memoryview(line.encode("utf-8", "backslashreplace"))
            if len(data) <= select.PIPE_BUF:
                _write_all(descriptor, data)
                return
            with self._long_lines:
                _write_all(descriptor, data)
        except Exception:
            self.handleError(record)


def _write_all(descriptor: int, data: memoryview) -> None:
    while data:
        data = data[os.write(descriptor, data) :]


def configure(level: str) -> None:
    """Send casework's logs to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("casework")
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(getattr(h, "_casework", False) for h in logger.handlers):
        handler = LineHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._casework = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
