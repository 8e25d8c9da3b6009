"""Optimistic concurrency: ETags carry a resource's version, writes need If-Match.

Two caseworkers editing one household must never overwrite each other
silently: a write without ``If-Match`` answers 428, a stale one 412.
"""

from __future__ import annotations

from flask import request

from casework.errors import PreconditionFailed, PreconditionRequired


def etag_for(version: int) -> str:
    """The strong ETag of a resource at ``version`` (quoted, as HTTP wants)."""
    return f'"v{version}"'


def require_if_match(current_version: int) -> None:
    """Refuse the write unless ``If-Match`` names the current version.

    Raises :class:`PreconditionRequired` (428) without the header and
    :class:`PreconditionFailed` (412) when it names another version.
    """
    header = request.headers.get("If-Match")
    if not header:
        raise PreconditionRequired("Send If-Match with the ETag you last read.")
    candidates = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if etag_for(current_version) not in candidates:
        raise PreconditionFailed("The resource has changed since you read it; read it again.")
