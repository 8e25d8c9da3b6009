"""Pulling the change feed: pages in commit order, an authenticated cursor, a checkpoint.

The cursor is ``base64url(JSON) "." base64url(HMAC-SHA256)`` under a server secret:
the client cannot forge or move it, and it names the device and the office it
was issued for. It carries the last sequence number delivered, the sequence
number at which a pull from the start began (tombstones at or below it are
skipped: a device starting empty has nothing to forget) and the time it was
issued (older than the tombstone retention: resync).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from casework.audit import AuditAction
from casework.audit.service import record_many
from casework.errors import CaseworkError
from casework.security.app import derived_secret
from casework.security.case_keys import data_key_cache
from casework.security.columns import ROW_SEAL_COLUMN, RowIds, read_sealed_columns
from casework.security.envelope import WrappedKey
from casework.security.models import CaseKey
from casework.sync import signatures as sig
from casework.sync.codes import ChangeOp
from casework.sync.feed import SNAPSHOT_FIELDS, ZERO, retention
from casework.sync.models import CaseVersion, Device, FeedEntry, OfficeFeed
from casework.timestamps import utcnow

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
_MAC_BYTES = 16
PULLED_FIELDS = SNAPSHOT_FIELDS
SNAPSHOT = ("snapshot",)


class ResyncRequired(CaseworkError):
    """409: the cursor cannot continue (another device or scope, too old, tampered)."""

    status, slug, title = 409, "resync-required", "Start the pull again without a cursor"


@dataclass(frozen=True)
class Cursor:
    device: str
    office: str
    seq: int
    snapshot_until: int
    issued_at: int


def _secret() -> bytes:
    return derived_secret("sync/cursor")


def encode_cursor(cursor: Cursor) -> str:
    payload = json.dumps(
        {
            "d": cursor.device,
            "o": cursor.office,
            "s": cursor.seq,
            "h": cursor.snapshot_until,
            "t": cursor.issued_at,
        },
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(_secret(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{sig.b64url(payload)}.{sig.b64url(mac)}"


def decode_cursor(text: str, device: Device) -> Cursor:
    """The cursor ``text``, checked; raises :class:`ResyncRequired` when it cannot be used."""
    try:
        payload_text, mac_text = text.split(".")
        payload, mac = sig.b64url_decode(payload_text), sig.b64url_decode(mac_text)
        expected = hmac.new(_secret(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if not hmac.compare_digest(mac, expected):
            raise ValueError("bad mac")
        data = json.loads(payload)
        cursor = Cursor(
            str(data["d"]), str(data["o"]), int(data["s"]), int(data["h"]), int(data["t"])
        )
    except (ValueError, KeyError, TypeError):
        raise ResyncRequired("The cursor is not valid here.") from None
    if cursor.device != str(device.id) or cursor.office != device.office_code:
        raise ResyncRequired("The cursor was issued to another device or scope.")
    issued = datetime.fromtimestamp(cursor.issued_at, UTC)
    if utcnow() - issued > retention():
        raise ResyncRequired("The cursor is older than the retained deletions.")
    return cursor


def pull(session: Session, device: Device, cursor_text: str | None, limit: int) -> dict[str, Any]:
    """One page of the office's changes after the cursor, with the checkpoint.

    Every case in the page is recorded in the access log (one entry per case).
    """
    office = device.office_code
    state = session.get(OfficeFeed, office)
    high = state.last_seq if state is not None else 0
    if cursor_text:
        cursor = decode_cursor(cursor_text, device)
        after, snapshot_until = cursor.seq, cursor.snapshot_until
    else:
        after, snapshot_until = 0, high
    rows = _page(session, office, after, high, snapshot_until, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    changes = _changes(session, rows)
    next_seq = rows[-1].seq if more else high
    record_many(
        AuditAction.SYNC_PULL,
        [change["reference"] for change in changes],
        fields=PULLED_FIELDS,
        session=session,
    )
    now = int(utcnow().timestamp())
    token = Cursor(str(device.id), office, next_seq, snapshot_until, now)
    return {
        "changes": changes,
        "cursor": encode_cursor(token),
        "more": more,
        "checkpoint": {
            "seq": high,
            "count": state.count if state is not None else 0,
            "checksum": bytes(state.checksum if state is not None else ZERO).hex(),
        },
    }


def _page(
    session: Session, office: str, after: int, high: int, snapshot_until: int, limit: int
) -> list[Any]:
    """Entries after ``after`` up to ``high`` (committed when the checkpoint was read),
    each upsert with its sealed snapshot and the case's wrapped key, in one statement."""
    snapshot = CaseVersion.__table__.c[CaseVersion.snapshot.name_in_table]
    query = (
        select(
            FeedEntry.seq,
            FeedEntry.op,
            FeedEntry.reference,
            FeedEntry.version,
            FeedEntry.case_id,
            CaseVersion.id.label("version_id"),
            snapshot.label("snapshot"),
            CaseVersion.__table__.c[ROW_SEAL_COLUMN].label("row_seal"),
            CaseKey.kek_id,
            CaseKey.wrapped_key,
        )
        .outerjoin(
            CaseVersion,
            and_(
                FeedEntry.op == ChangeOp.UPSERT.value,
                CaseVersion.case_id == FeedEntry.case_id,
                CaseVersion.version == FeedEntry.version,
            ),
        )
        .outerjoin(CaseKey, CaseKey.case_id == CaseVersion.case_id)
        .where(FeedEntry.office_code == office, FeedEntry.seq > after, FeedEntry.seq <= high)
        .where(or_(FeedEntry.op == ChangeOp.UPSERT.value, FeedEntry.seq > snapshot_until))
        .order_by(FeedEntry.seq)
        .limit(limit + 1)
    )
    return list(session.execute(query).all())


def _changes(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    """The page's changes; each snapshot's row seal checked and the snapshot decrypted once,
    under its case's key (read with the page: primed together, each unwrapped on first use)."""
    data_key_cache(session).prime(
        {row[4]: WrappedKey(row[8], bytes(row[9])) for row in rows if row[9] is not None}
    )
    storage = CaseVersion.snapshot.storage_attr
    upsert = ChangeOp.UPSERT.value
    changes = []
    for seq, op, reference, version, case_id, version_id, snapshot, seal, _kek, _key in rows:
        change: dict[str, Any] = {"seq": seq, "op": op, "reference": reference, "version": version}
        if op == upsert and snapshot is not None:
            ids = RowIds(case_id, version_id)
            blobs = {storage: bytes(snapshot)}
            stored = bytes(seal) if seal is not None else None
            opened = read_sealed_columns(session, CaseVersion, ids, stored, blobs, SNAPSHOT)
            change["case"] = opened["snapshot"]
        changes.append(change)
    return changes
