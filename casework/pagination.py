"""Cursor pagination shared by every list endpoint.

A cursor is opaque to clients: URL-safe base64 of a small JSON object (for
example the last id seen). It carries no personal data, only positions. A
cursor that does not decode answers 422, like any other bad parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from casework.errors import ValidationFailed
from casework.http import has_nul


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The position inside ``cursor``; :class:`ValidationFailed` when it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict) or has_nul(value):  # no cursor of ours holds NUL
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
    return value


class PageArgs(Schema):
    """``limit`` (1..max, default from configuration) and ``cursor``."""

    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "Page size; capped by the server's hard maximum."},
    )
    cursor = fields.String(
        load_default=None,
        validate=validate.Length(max=512),
        metadata={"description": "Opaque cursor from the previous page's next_cursor."},
    )

    @validates("limit")
    def _within_maximum(self, value: int | None, **_: Any) -> None:
        if value is not None and value > page_maximum():
            raise ValidationError(f"Must be at most {page_maximum()}.")


class PageMeta(Schema):
    next_cursor = fields.String(allow_none=True, required=True)


def page_maximum() -> int:
    return int(current_app.config["CASEWORK"]["api_max_page_size"])


def page_size(limit: int | None) -> int:
    return limit or int(current_app.config["CASEWORK"]["api_default_page_size"])


def keyset_page(
    session: Session,
    query: Select[Any],
    key: InstrumentedAttribute[str],
    limit: int | None,
    cursor: str | None,
) -> tuple[Sequence[Any], str | None]:
    """One page of ``query`` ordered by ``key``, and the cursor of the next page (or None)."""
    size = page_size(limit)
    if cursor is not None:
        after: Any = decode_cursor(cursor).get("after")
        if not isinstance(after, str):
            raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
        query = query.where(key > after)
    rows = session.scalars(query.order_by(key).limit(size + 1)).all()
    if len(rows) <= size:
        return rows, None
    rows = rows[:size]
    return rows, encode_cursor({"after": getattr(rows[-1], key.key)})


def time_id_cursor(at: datetime, row_id: uuid.UUID) -> str:
    """The cursor after a row of a list ordered by a time, then by id."""
    return encode_cursor({"at": at.isoformat(), "id": str(row_id)})


def time_id_position(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (time, id) inside a :func:`time_id_cursor`; :class:`ValidationFailed` otherwise."""
    position = decode_cursor(cursor)
    try:
        return datetime.fromisoformat(position["at"]), uuid.UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}}) from None
