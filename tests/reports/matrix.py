"""What the permission matrix needs from reports and retention: a pending policy proposal."""

from __future__ import annotations

from typing import Any

from casework.reports.models import RetentionPolicy


def pending_proposal(world: Any) -> dict[str, str]:
    """A proposal by another administrator; returns the If-Match header approving it."""
    proposer = world.user("admin", None)
    row = RetentionPolicy(rules={"closed": 3650}, proposed_by=str(proposer.id))
    world.session.add(row)
    world.session.flush()
    return {"If-Match": f'"v{row.id}"'}


def current_version(world: Any) -> dict[str, str]:
    """The If-Match header naming the policy's current version (0 when none is stored)."""
    from sqlalchemy import func, select

    latest = world.session.scalar(select(func.max(RetentionPolicy.id)))
    return {"If-Match": f'"v{latest or 0}"'}
