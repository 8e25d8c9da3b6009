"""Keyset pagination over a unique string column (usernames, office codes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from casework.errors import ValidationFailed
from casework.pagination import decode_cursor, encode_cursor, page_size


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
