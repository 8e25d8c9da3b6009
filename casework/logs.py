"""Structured JSON logs: one object per line, no bodies, no query strings.

Only fields named in ``SAFE_FIELDS`` leave the process; anything else passed as
``extra`` is dropped, so a careless call cannot route personal data to a log.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

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


def configure(level: str) -> None:
    """Send casework's logs to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("casework")
    logger.setLevel(level.upper())
    logger.propagate = False
    if not any(getattr(h, "_casework", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._casework = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
