"""Verification off the request path: full runs from the CLI, incremental ones for the route.

A full verification (``casework audit verify``, from cron or by hand) reads
the whole log in short transactions and stores its outcome with where it
ended (size, last hash, Merkle peaks). ``GET /api/v1/audit/verify`` reports
the latest outcome, first extending it over the entries appended since
(incremental: only those entries and the checkpoints above the verified size
are read, in the request's snapshot transaction, without any write lock).
A failed verification stays failed until a full run says otherwise: an
incremental run never starts from a prefix that did not verify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit import keys
from casework.audit.checkpoint import VerifierKey
from casework.audit.encoding import GENESIS_HASH, HASH_SIZE
from casework.audit.models import AuditCheckpoint, AuditVerification, to_micros
from casework.audit.signer import LogIdentity, log_identity
from casework.audit.store import Reader, head_seq, iter_entry_links
from casework.audit.verify import KeyInForce, Link, VerifiedPrefix, VerifyResult, verify_links


@dataclass(frozen=True)
class Outcome:
    result: VerifyResult
    kind: str
    from_size: int
    size: int
    at_us: int


class _Counted:
    """Links passed through, counted (the size the outcome reports, also on failure)."""

    def __init__(self, links: Iterable[Link], start: int) -> None:
        self._links = links
        self.size = start

    def __iter__(self) -> Iterator[Link]:
        for link in self._links:
            yield link
            self.size += 1


def latest(session: Session) -> AuditVerification | None:
    return session.scalars(
        select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1)
    ).first()


def _prefix(row: AuditVerification | None) -> VerifiedPrefix:
    if row is None:
        return VerifiedPrefix(0, GENESIS_HASH, ())
    frontier = bytes(row.frontier)
    peaks = tuple(frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE))
    return VerifiedPrefix(row.size, bytes(row.last_hash), peaks)


def run(
    session: Session,
    read: Reader,
    head: int,
    identity: LogIdentity,
    keys: Sequence[KeyInForce] | None,
    *,
    full: bool,
    pinned: Iterable[str] = (),
) -> tuple[Outcome, AuditVerification | None]:
    """Verify up to ``head``: from the start (``full``) or from the latest verified prefix.

    Returns the outcome and the row to store (None when nothing new was read).
    """
    previous = None if full else latest(session)
    if previous is not None and not previous.ok:
        return _outcome_of(previous), None
    start = _prefix(previous)
    if previous is not None and previous.size >= head:
        return _outcome_of(previous), None
    query = select(AuditCheckpoint.note).where(AuditCheckpoint.size > start.size)
    notes = [*pinned, *session.scalars(query.order_by(AuditCheckpoint.size))]
    tracked = _Counted(iter_entry_links(read, head, after=start.size), start.size)
    result, end = verify_links(
        tracked,
        notes,
        identity.public_key,
        identity.key_name,
        identity.origin,
        keys,
        None if start.size == 0 else start,
    )
    now = to_micros(datetime.now(UTC))
    kind = "full" if full else "incremental"
    reached = end if result.ok and end is not None else start
    row = AuditVerification(
        kind=kind,
        at_us=now,
        from_size=start.size,
        size=reached.size,
        ok=result.ok,
        checkpoints=result.checkpoints,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
        last_hash=reached.last_hash,
        frontier=b"".join(reached.peaks),
    )
    return Outcome(result, kind, start.size, tracked.size, now), row


def verify_service_log(
    session: Session, read: Reader, *, full: bool, pinned: Iterable[str] = ()
) -> tuple[Outcome, AuditVerification | None]:
    """Verify the stored log with the stored key chain, followed from its first key.

    A key in the chain that no signed rotation introduced fails the
    verification at the size where it took over.
    """
    identity = log_identity()
    records = keys.chain(session, identity.origin)
    first = VerifierKey.parse(records[0].vkey)
    ranges, chain_error = keys.follow_chain_lenient(first, records, identity.origin)
    anchor = LogIdentity(first.name, first.public_key)
    outcome, row = run(
        session,
        read,
        head_seq(session),
        anchor,
        keys.in_force(ranges),
        full=full,
        pinned=pinned,
    )
    if chain_error is not None and outcome.result.ok:
        bad = chain_error.from_size + 1
        result = VerifyResult(False, min(outcome.size, bad - 1), 0, bad, str(chain_error))
        outcome = Outcome(result, outcome.kind, outcome.from_size, outcome.size, outcome.at_us)
        if row is not None:
            row.ok, row.first_bad_seq, row.reason = False, bad, str(chain_error)
    return outcome, row


def save(row: AuditVerification | None, open_session: Callable[[], Session]) -> None:
    """Store an outcome in its own short transaction (not the reader's)."""
    if row is None:
        return
    with open_session() as writer:
        writer.add(row)
        writer.commit()


def _outcome_of(row: AuditVerification) -> Outcome:
    result = VerifyResult(
        ok=row.ok,
        entries=row.size,
        checkpoints=row.checkpoints,
        first_bad_seq=row.first_bad_seq,
        reason=row.reason,
    )
    return Outcome(result, row.kind, row.from_size, row.size, row.at_us)
