"""Rules behind ``casework keys``: what each KEK still protects, rotation, retirement.

Two kinds of secret are sealed directly under a KEK: case data keys
(``case_keys``) and staff TOTP seeds (``users.mfa_secret``, sealed by
:mod:`casework.auth.mfa`). A KEK may be destroyed only when neither kind holds
anything under it, or the cases and accounts behind them are lost for good.

These functions never commit. The command (:mod:`casework.keys.cli`)
is the transaction boundary and commits each batch, so an interrupted rotation
keeps what it did. Access-log entries carry KEK ids and counts, never case ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction, Outcome
from casework.auth.mfa import reencrypt_mfa_seeds
from casework.auth.models import User
from casework.keys.rotation import Batch, Cursor, rewrap_after
from casework.security.errors import SecurityError
from casework.security.keyring import Kek, Keyring, KeyState
from casework.security.models import CaseKey, ShredMark

UNKNOWN_STATE = "unknown"
"""State shown for a KEK id found in the database but not in the keyring (its rows are lost)."""


@dataclass(frozen=True)
class SealedKind:
    """One kind of secret sealed under a KEK: how to count it per KEK and re-wrap a batch."""

    name: str
    label: str
    columns: tuple[str, ...]
    count_by_kek: Callable[[Session], dict[str, int]]
    rewrap: Callable[[Session, Keyring, Cursor | None, int], Batch]


def _case_keys_by_kek(session: Session) -> dict[str, int]:
    query = select(CaseKey.kek_id, func.count()).group_by(CaseKey.kek_id)
    return dict(session.execute(query).all())


def _rewrap_case_keys(
    session: Session, keyring: Keyring, after: Cursor | None, limit: int
) -> Batch:
    return rewrap_after(session, keyring, after, limit=limit)


def _mfa_seeds_by_kek(session: Session) -> dict[str, int]:
    query = (
        select(User.mfa_kek_id, func.count())
        .where(User.mfa_secret.is_not(None))
        .group_by(User.mfa_kek_id)
    )
    return {kek_id: count for kek_id, count in session.execute(query) if kek_id is not None}


def _reseal_mfa_seeds(
    session: Session, keyring: Keyring, _after: Cursor | None, _limit: int
) -> Batch:
    # Seeds are few (one per staff member): the identity feature re-seals them all at once.
    return Batch(reencrypt_mfa_seeds(session, keyring), None)


CASE_KEYS = SealedKind(
    "case_keys",
    "case keys",
    ("case_keys.kek_id", "case_keys.wrapped_key"),
    _case_keys_by_kek,
    _rewrap_case_keys,
)
MFA_SEEDS = SealedKind(
    "mfa_seeds",
    "MFA seeds",
    ("users.mfa_kek_id", "users.mfa_secret"),
    _mfa_seeds_by_kek,
    _reseal_mfa_seeds,
)
KINDS: tuple[SealedKind, ...] = (CASE_KEYS, MFA_SEEDS)


class KeysRefused(SecurityError):
    """A key command would lose data or leave a rotation half done, so it does nothing.

    The message names KEK ids and counts only; ``counts`` holds them by kind.
    """

    def __init__(self, message: str, kek_id: str, counts: Mapping[str, int]) -> None:
        super().__init__(message)
        self.kek_id = kek_id
        self.counts = dict(counts)


@dataclass(frozen=True)
class KekUse:
    """One KEK as the keyring and the database see it; ``counts`` are rows per kind under it."""

    kek_id: str
    state: str
    created_at: datetime | None
    counts: dict[str, int]

    @property
    def is_readable(self) -> bool:
        """Whether rows under it can still be opened (and so re-wrapped)."""
        return self.state in (KeyState.ACTIVE, KeyState.DECRYPT_ONLY)


@dataclass(frozen=True)
class KeyStatus:
    """What ``casework keys status`` reports: KEKs with their usage, and blind-index roots."""

    active_kek: str
    keks: tuple[KekUse, ...]
    blind_index_roots: tuple[tuple[int, datetime], ...]
    kinds: tuple[str, ...]
    shred: ShredStatus | None = None

    def _total(self, include: Callable[[KekUse], bool]) -> dict[str, int]:
        return {kind: sum(k.counts[kind] for k in self.keks if include(k)) for kind in self.kinds}

    def behind(self) -> dict[str, int]:
        """Rows under a decrypt-only KEK: the work a rotation still has to do."""
        return self._total(lambda k: k.state == KeyState.DECRYPT_ONLY)

    def unreadable(self) -> dict[str, int]:
        """Rows under a destroyed or unknown KEK: already lost, never re-wrappable."""
        return self._total(lambda k: not k.is_readable)

    def as_json(self) -> dict[str, Any]:
        current = max(version for version, _ in self.blind_index_roots)
        return {
            "active_kek": self.active_kek,
            "keks": [
                {
                    "id": k.kek_id,
                    "state": k.state,
                    "created_at": k.created_at.isoformat() if k.created_at else None,
                    **k.counts,
                }
                for k in self.keks
            ],
            "behind": self.behind(),
            "unreadable": self.unreadable(),
            "blind_index_roots": [
                {"version": v, "created_at": at.isoformat(), "current": v == current}
                for v, at in self.blind_index_roots
            ],
            "pending_shred": self.shred.pending if self.shred else 0,
            "oldest_pending_shred": (
                self.shred.oldest.isoformat() if self.shred and self.shred.oldest else None
            ),
        }


def key_status(
    session: Session, keyring: Keyring, kinds: Iterable[SealedKind] = KINDS
) -> KeyStatus:
    """Return every KEK of the keyring, and every KEK id the database uses, with row counts.

    A KEK id used in the database but missing from the keyring is listed with
    state ``unknown``: its rows cannot be opened by anyone holding this keyring.
    """
    kinds = tuple(kinds)
    by_kind = {kind.name: kind.count_by_kek(session) for kind in kinds}
    known = {kek.kek_id: kek for kek in keyring.keks}
    strays = sorted({kek_id for counts in by_kind.values() for kek_id in counts} - known.keys())

    def use(kek_id: str, kek: Kek | None) -> KekUse:
        counts = {name: by_kind[name].get(kek_id, 0) for name in by_kind}
        if kek is None:
            return KekUse(kek_id, UNKNOWN_STATE, None, counts)
        return KekUse(kek_id, kek.state.value, kek.created_at, counts)

    return KeyStatus(
        active_kek=keyring.active_kek().kek_id,
        keks=tuple(use(i, known.get(i)) for i in [*known, *strays]),
        blind_index_roots=tuple((r.version, r.created_at) for r in keyring.blind_index_roots),
        kinds=tuple(by_kind),
        shred=shred_status(session, keyring),
    )


def _kek_target(kek_id: str, **counts: int) -> str:
    """An access-log target naming a KEK and counts; at most 63 characters with 10-digit counts."""
    return " ".join([f"kek:{kek_id}", *(f"{name}={count}" for name, count in counts.items())])


def begin_rotation(
    session: Session, keyring: Keyring, kinds: Iterable[SealedKind] = KINDS
) -> tuple[Kek, Kek]:
    """Make a new KEK active and the current one decrypt-only; return ``(old, new)``.

    Records ``keys.rotate`` with the number of rows now behind. The caller
    must save the keyring *before* committing and before any re-wrap, so that
    no row is ever wrapped under a KEK that exists only in memory.
    Raises KeysRefused while an earlier rotation is unfinished: a second one
    would only leave one more KEK to retire; finish it with ``--resume``.
    """
    status = key_status(session, keyring, kinds)
    pending = status.behind()
    if any(pending.values()):
        raise KeysRefused(
            f"an earlier rotation is unfinished ({_describe(pending)} still behind the active "
            f"KEK {status.active_kek}): finish it with casework keys rotate --resume",
            status.active_kek,
            pending,
        )
    old = keyring.active_kek()
    new = keyring.rotate()
    behind = sum(next(k for k in status.keks if k.kek_id == old.kek_id).counts.values())
    audit.record(
        AuditAction.KEYS_ROTATE,
        target=f"kek:{new.kek_id} from={old.kek_id} behind={behind}",
        session=session,
    )
    return old, new


def record_rotation(
    session: Session,
    keyring: Keyring,
    done: Mapping[str, int],
    left: Mapping[str, int],
    kinds: Iterable[SealedKind] = KINDS,
) -> None:
    """Record one ``keys.rotate`` run: rows re-wrapped by kind, rows still behind."""
    touched = [column for kind in kinds if done.get(kind.name) for column in kind.columns]
    audit.record(
        AuditAction.KEYS_ROTATE,
        target=_kek_target(
            keyring.active_kek().kek_id,
            keys=done.get(CASE_KEYS.name, 0),
            seeds=done.get(MFA_SEEDS.name, 0),
            left=sum(left.values()),
        ),
        fields=touched,
        session=session,
    )


def retire(
    session: Session, keyring: Keyring, kek_id: str, kinds: Iterable[SealedKind] = KINDS
) -> None:
    """Destroy a decrypt-only KEK's material in ``keyring`` and record ``keys.retire``.

    Raises KeysRefused while any row of any kind is still sealed under it;
    UnknownKeyError for an unknown or already destroyed KEK; KeyringError for
    the active one. The caller saves the keyring, then commits.
    """
    keyring.kek(kek_id)  # unknown or destroyed: raise before counting anything
    in_use = {kind.name: kind.count_by_kek(session).get(kek_id, 0) for kind in kinds}
    if keyring.active_kek().kek_id != kek_id and any(in_use.values()):
        raise KeysRefused(
            f"KEK {kek_id} still protects {_describe(in_use)}: destroying it would make them "
            "unreadable; finish the rotation with casework keys rotate --resume first",
            kek_id,
            in_use,
        )
    keyring.retire(kek_id)
    audit.record(AuditAction.KEYS_RETIRE, target=_kek_target(kek_id), session=session)


def record_refused_retire(session: Session, refusal: KeysRefused) -> None:
    """Keep a refused retirement in the access log (outcome ``failure``), with its counts."""
    audit.record(
        AuditAction.KEYS_RETIRE,
        target=_kek_target(
            refusal.kek_id,
            keys=refusal.counts.get(CASE_KEYS.name, 0),
            seeds=refusal.counts.get(MFA_SEEDS.name, 0),
        ),
        outcome=Outcome.FAILURE,
        session=session,
    )


def _describe(counts: Mapping[str, int]) -> str:
    labels = {kind.name: kind.label for kind in KINDS}
    parts = [f"{count} {labels.get(name, name)}" for name, count in counts.items() if count]
    return " and ".join(parts) or "nothing"


# --- shredding: make erased cases unrecoverable from any copy of the database -------------


@dataclass(frozen=True)
class ShredStatus:
    """Erasures whose wrapped keys a copy of the database could still open.

    ``pending`` counts erasure marks while the KEK active at the erasure, or
    an older one, is still readable; ``oldest`` is when the first of them was
    marked; ``keks`` are the readable KEKs a shred must destroy.
    """

    pending: int
    oldest: datetime | None
    keks: tuple[str, ...]


def _readable_at_or_before(keyring: Keyring, kek_id: str) -> list[Kek]:
    """Readable KEKs that existed when ``kek_id`` was active: it and every older one."""
    known = {kek.kek_id: kek for kek in keyring.keks}
    marked = known.get(kek_id)
    if marked is None:  # not in this keyring: nothing here can open what it wrapped
        return []
    return [
        kek
        for kek in keyring.keks
        if kek.state is not KeyState.DESTROYED
        and (kek.kek_id == kek_id or kek.created_at < marked.created_at)
    ]


def shred_status(session: Session, keyring: Keyring) -> ShredStatus:
    """What ``casework keys shred`` still has to do (``keys status``: ``pending_shred``)."""
    query = select(ShredMark.kek_id, func.count(), func.min(ShredMark.marked_at)).group_by(
        ShredMark.kek_id
    )
    pending, oldest, keks = 0, None, set[str]()
    for kek_id, count, first in session.execute(query):
        readable = _readable_at_or_before(keyring, kek_id)
        if not readable:
            continue
        pending += count
        oldest = first if oldest is None else min(oldest, first)
        keks.update(kek.kek_id for kek in readable)
    return ShredStatus(pending, oldest, tuple(sorted(keks)))


def shred_due(status: ShredStatus, now: datetime, after: timedelta) -> bool:
    """Whether a scheduled run (``--if-due``) should shred now: the oldest pending erasure
    has waited ``after`` (erasures are batched so one shred serves many)."""
    return status.pending > 0 and status.oldest is not None and now - status.oldest >= after


def begin_shred(session: Session, keyring: Keyring) -> tuple[Kek, Kek] | None:
    """Make a fresh KEK active if the current one wrapped a pending erasure's key.

    Returns ``(old, new)``, or None when the active KEK is already newer than
    every pending erasure (a shred interrupted after its rotation: it resumes
    with the re-wrap). Records ``keys.shred``. As for a rotation, the caller
    saves the keyring before committing and before any re-wrap.
    """
    status = shred_status(session, keyring)
    old = keyring.active_kek()
    if old.kek_id not in status.keks:
        return None
    new = keyring.rotate()
    audit.record(
        AuditAction.KEYS_SHRED,
        target=f"kek:{new.kek_id} from={old.kek_id} pending={status.pending}",
        session=session,
    )
    return old, new


def finish_shred(
    session: Session, keyring: Keyring, kinds: Iterable[SealedKind] = KINDS
) -> list[str]:
    """Destroy every decrypt-only KEK and drop the erasure marks that are now final.

    Returns the destroyed KEK ids. Raises KeysRefused (nothing destroyed) while
    any live row is still under one of them: finish the re-wrap first. The
    caller saves the keyring, then commits.
    """
    kinds = tuple(kinds)
    doomed = [kek.kek_id for kek in keyring.keks if kek.state is KeyState.DECRYPT_ONLY]
    for kek_id in doomed:
        in_use = {kind.name: kind.count_by_kek(session).get(kek_id, 0) for kind in kinds}
        if any(in_use.values()):
            raise KeysRefused(
                f"KEK {kek_id} still protects {_describe(in_use)}: run casework keys shred again",
                kek_id,
                in_use,
            )
    for kek_id in doomed:
        retire(session, keyring, kek_id, kinds)
    final = [
        kek_id
        for kek_id in session.scalars(select(ShredMark.kek_id).distinct())
        if not _readable_at_or_before(keyring, kek_id)
    ]
    if final:
        session.execute(delete(ShredMark).where(ShredMark.kek_id.in_(final)))
    audit.record(
        AuditAction.KEYS_SHRED,
        target=f"kek:{keyring.active_kek().kek_id} destroyed={len(doomed)}",
        session=session,
    )
    return doomed
