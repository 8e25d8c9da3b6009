"""The encrypted replica: one SQLite file holding sealed cases, outbox, results and conflicts.

Every value about a person is an AES-256-GCM blob under the replica key
(from the vault); its associated data names the table and row, so a blob
cannot be moved to another row unnoticed. Rows are found by an HMAC of the
reference, never the reference itself. What stays in the clear is
bookkeeping: device sequence numbers, mutation ids (random UUIDs), result
statuses and counts.

The checkpoint (count and XOR of SHA-256 of ``"<reference>:<version>"`` over
the server's cases) is kept up to date as rows change: each server row holds
its own digest, sealed, in ``pair``, and the running total is sealed in
``meta`` with the transaction that changed it. Verifying after a pull costs
nothing; a mismatch recounts from every case before anything else is trusted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casework_sync.changes import (
    Case,
    apply_update,
    case_from_intake,
    fold_into_intake,
    fold_update,
)
from casework_sync.vault import NONCE_BYTES, shred

REPLICA_FILE = "replica.db"
FINAL_STATUSES = frozenset({"applied", "duplicate", "conflict", "rejected"})
ATTENTION_STATUSES = frozenset({"conflict", "rejected"})
#: Row ids looked up in one statement (well under SQLite's bound on parameters).
_LOOKUP_CHUNK = 500
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)
_UPSERT_CASE = (
    "INSERT INTO cases(row_id, is_server, gen, blob, pair) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT(row_id) DO UPDATE SET is_server = excluded.is_server, "
    "gen = excluded.gen, blob = excluded.blob, pair = excluded.pair"
)
_UPSERT_CASE_KEEP_GEN = (
    "INSERT INTO cases(row_id, is_server, blob, pair) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(row_id) DO UPDATE SET is_server = excluded.is_server, "
    "blob = excluded.blob, pair = excluded.pair"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    row_id TEXT PRIMARY KEY,
    is_server INTEGER NOT NULL,
    gen INTEGER NOT NULL DEFAULT 0,
    blob BLOB NOT NULL,
    pair BLOB
);
CREATE TABLE IF NOT EXISTS aliases (alias TEXT PRIMARY KEY, row_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    device_seq INTEGER PRIMARY KEY,
    mutation_id TEXT NOT NULL UNIQUE,
    case_row TEXT NOT NULL,
    is_sent INTEGER NOT NULL DEFAULT 0,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    mutation_id TEXT PRIMARY KEY,
    device_seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    needs_attention INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS conflicts (conflict_id TEXT PRIMARY KEY, blob BLOB NOT NULL);
"""


class ReplicaError(Exception):
    """The replica cannot be opened with this key, or a row was tampered with."""


class UnknownCase(KeyError):
    """No case with this reference (or offline id) in the replica."""


@dataclass(frozen=True)
class PendingMutation:
    device_seq: int
    mutation_id: str
    body: dict[str, Any]


class Replica:
    """The sealed local store. All writes go through :meth:`transaction`."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._index_key = hmac.new(key, b"row ids", hashlib.sha256).digest()
        #: The checkpoint's running (count, xor) while a transaction changes it.
        self._sums: tuple[int, int] | None = None
        self._sums_dirty = False
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit (a local edit, a result, a pulled page with its cursor)
        # is on disk before the next request; it costs one fsync per transaction.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA secure_delete=ON")
        # SQLite's default page cache (2 MiB): memory stays flat in the number of cases.
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.executescript(_SCHEMA)
        self._check_key()
        self._upgrade()

    # -- sealing -------------------------------------------------------------

    def _seal_bytes(self, table: str, row: str, data: bytes) -> bytes:
        """AES-256-GCM, fresh nonce, ``table:row`` as associated data (nonce || ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, f"{table}:{row}".encode())

    def _open_bytes(self, table: str, row: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{table}:{row}".encode()
            )
        except InvalidTag:
            raise ReplicaError(f"A {table} row does not open with this device's key.") from None

    def _seal(self, table: str, row: str, value: Any) -> bytes:
        return self._seal_bytes(table, row, _ENCODER.encode(value).encode("utf-8"))

    def _open(self, table: str, row: str, blob: bytes) -> Any:
        return json.loads(self._open_bytes(table, row, blob))

    def row_id(self, key: str) -> str:
        return hmac.digest(self._index_key, key.encode("utf-8"), "sha256").hex()

    def _check_key(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'check'").fetchone()
        if row is None:
            with self.transaction():
                self._put_meta("check", "casework-sync replica")
        else:
            self._open("meta", "check", row[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One local transaction (BEGIN IMMEDIATE): all of it lands, or none of it."""
        self.db.execute("BEGIN IMMEDIATE")
        self._sums, self._sums_dirty = None, False  # read afresh: another process may write
        try:
            yield
            if self._sums_dirty and self._sums is not None:
                count, total = self._sums
                self._put_meta("checkpoint_sums", {"count": count, "xor": f"{total:064x}"})
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        finally:
            self._sums, self._sums_dirty = None, False
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # -- meta ----------------------------------------------------------------

    def _put_meta(self, name: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, self._seal("meta", name, value)),
        )

    def put_meta(self, name: str, value: Any) -> None:
        """Store a setting; call inside a transaction."""
        self._put_meta(name, value)

    def get_meta(self, name: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else self._open("meta", name, row[0])

    def delete_meta(self, name: str) -> None:
        self.db.execute("DELETE FROM meta WHERE name = ?", (name,))

    # -- cases ---------------------------------------------------------------

    def _resolve(self, key: str) -> str | None:
        row_id = self.row_id(key)
        if self.db.execute("SELECT 1 FROM cases WHERE row_id = ?", (row_id,)).fetchone():
            return row_id
        alias = self.db.execute("SELECT row_id FROM aliases WHERE alias = ?", (row_id,)).fetchone()
        return alias[0] if alias else None

    def _load(self, row_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT blob FROM cases WHERE row_id = ?", (row_id,)).fetchone()
        return None if row is None else self._open("cases", row_id, row[0])

    def _store(self, row_id: str, record: dict[str, Any], gen: int | None = None) -> None:
        """Write one case row (in a transaction), keeping the checkpoint's sums in step."""
        row = self.db.execute("SELECT pair FROM cases WHERE row_id = ?", (row_id,)).fetchone()
        digest = _pair_digest(record)
        self._adjust_sums(row_id, row[0] if row else None, digest)
        is_server = 0 if digest is None else 1
        pair = None if digest is None else self._seal_bytes("pairs", row_id, digest)
        blob = self._seal("cases", row_id, record)
        if gen is None:
            self.db.execute(_UPSERT_CASE_KEEP_GEN, (row_id, is_server, blob, pair))
        else:
            self.db.execute(_UPSERT_CASE, (row_id, is_server, gen, blob, pair))

    def _delete_case(self, row_id: str) -> None:
        """Remove one case row (in a transaction), taking it out of the checkpoint's sums."""
        row = self.db.execute("SELECT pair FROM cases WHERE row_id = ?", (row_id,)).fetchone()
        if row is not None:
            self._adjust_sums(row_id, row[0], None)
            self.db.execute("DELETE FROM cases WHERE row_id = ?", (row_id,))

    # -- the checkpoint ------------------------------------------------------

    def _load_sums(self) -> tuple[int, int]:
        """The running sums (kept in memory only for the length of a transaction)."""
        if self._sums is not None:
            return self._sums
        stored = self.get_meta("checkpoint_sums")
        sums = (int(stored["count"]), int(stored["xor"], 16))
        if self.db.in_transaction:
            self._sums = sums
        return sums

    def _adjust_sums(self, row_id: str, old_pair: bytes | None, new: bytes | None) -> None:
        """Take a row's old digest out of the running sums and put its new one in."""
        if not self.db.in_transaction:
            raise ReplicaError("Case rows change only inside a transaction.")
        old = None if old_pair is None else self._open_bytes("pairs", row_id, old_pair)
        if old == new:
            return
        count, total = self._load_sums()
        if old is not None:
            count, total = count - 1, total ^ int.from_bytes(old, "big")
        if new is not None:
            count, total = count + 1, total ^ int.from_bytes(new, "big")
        self._sums, self._sums_dirty = (count, total), True

    def checkpoint(self) -> tuple[int, str]:
        """(count, checksum) of the server's cases held here, from the running sums."""
        count, total = self._load_sums()
        return count, f"{total:064x}"

    def recount(self) -> tuple[int, str]:
        """The checkpoint counted again from every case (and the running sums set to it).

        Only a defect could make the running sums drift from the rows; this is
        what a mismatch falls back on before the replica is pulled again.
        """
        fixes: list[tuple[int, bytes | None, str]] = []
        count = total = 0
        with self.transaction():
            cursor = self.db.execute("SELECT row_id, is_server, blob, pair FROM cases")
            for row_id, is_server, blob, pair in cursor:  # one row in memory at a time
                digest = _pair_digest(self._open("cases", row_id, blob))
                if digest is not None:
                    count, total = count + 1, total ^ int.from_bytes(digest, "big")
                stored = None if pair is None else self._open_bytes("pairs", row_id, pair)
                if stored != digest or is_server != (digest is not None):
                    sealed = None if digest is None else self._seal_bytes("pairs", row_id, digest)
                    fixes.append((0 if digest is None else 1, sealed, row_id))
            self.db.executemany("UPDATE cases SET is_server = ?, pair = ? WHERE row_id = ?", fixes)
            self._sums, self._sums_dirty = (count, total), True
        return count, f"{total:064x}"

    def _upgrade(self) -> None:
        """Give a replica written before the running checkpoint its ``pair`` column and sums."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(cases)")}
        if "pair" not in columns:
            self.db.execute("ALTER TABLE cases ADD COLUMN pair BLOB")
        if self.get_meta("checkpoint_sums") is None:
            self.recount()

    def record(self, key: str) -> dict[str, Any]:
        """The stored record of a case: ``reference``, ``base`` (server's), ``local``, ``refs``."""
        row_id = self._resolve(key)
        record = None if row_id is None else self._load(row_id)
        if record is None:
            raise UnknownCase(key)
        return record

    def case(self, key: str) -> Case:
        """The case as the caseworker sees it: the server's copy with pending edits over it."""
        record = self.record(key)
        return record["local"] if record.get("local") is not None else record["base"]

    def iter_cases(self) -> Iterator[tuple[dict[str, Any], int]]:
        """Every record with its number of pending mutations, one row in memory at a time."""
        cursor = self.db.execute("SELECT row_id, blob FROM cases ORDER BY row_id")
        for row_id, blob in cursor:
            pending = self.db.execute(
                "SELECT count(*) FROM outbox WHERE case_row = ?", (row_id,)
            ).fetchone()[0]
            yield self._open("cases", row_id, blob), pending

    def case_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM cases").fetchone()[0])

    def server_pairs(self) -> Iterator[tuple[str, int]]:
        """(reference, version) of every case as the server last sent it (for the checkpoint)."""
        cursor = self.db.execute("SELECT row_id, blob FROM cases WHERE is_server = 1")
        for row_id, blob in cursor:
            record = self._open("cases", row_id, blob)
            yield record["reference"], int(record["base"]["version"])

    # -- outbox --------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = int(self.get_meta("next_device_seq", 1))
        self._put_meta("next_device_seq", seq + 1)
        return seq

    def _enqueue(self, row_id: str, body: dict[str, Any]) -> PendingMutation:
        seq = self._next_seq()
        mutation = dict(body, device_seq=seq)
        self.db.execute(
            "INSERT INTO outbox(device_seq, mutation_id, case_row, blob) VALUES (?, ?, ?, ?)",
            (seq, mutation["mutation_id"], row_id, self._seal("outbox", str(seq), mutation)),
        )
        return PendingMutation(seq, mutation["mutation_id"], mutation)

    def create_case(self, intake: dict[str, Any], office: str | None) -> tuple[str, Case]:
        """Record a new case and its ``create`` mutation in one transaction; returns its id."""
        with self.transaction():
            client_ref, local, _ = self._create(intake, office)
        return client_ref, local

    def _create(self, intake: dict[str, Any], office: str | None) -> tuple[str, Case, str]:
        """The new case and its mutation (in a transaction): offline id, view, mutation id."""
        body = dict(intake)
        body.setdefault("client_ref", str(uuid.uuid4()))
        body["members"] = [
            dict(member, client_ref=member.get("client_ref") or str(uuid.uuid4()))
            for member in body.get("members", [])
        ]
        client_ref = str(body["client_ref"])
        local = case_from_intake(body, office)
        row_id = self.row_id(client_ref)
        if self._resolve(client_ref) is not None:
            raise ReplicaError("A case with this offline id is already in the replica.")
        record = {"reference": None, "client_ref": client_ref, "base": None, "local": local}
        record["refs"] = {}
        self._store(row_id, record)
        mutation_id = str(uuid.uuid4())
        self._enqueue(row_id, {"mutation_id": mutation_id, "op": "create", "changes": body})
        return client_ref, local, mutation_id

    def update_case(self, key: str, changes: dict[str, Any]) -> Case:
        """Apply an edit locally and queue its ``update`` mutation, in one transaction."""
        with self.transaction():
            local, _ = self._update(key, changes)
        return local

    def _update(self, key: str, changes: dict[str, Any]) -> tuple[Case, str]:
        """The edit and its mutation (in a transaction): the local view and the mutation id."""
        row_id = self._resolve(key)
        record = None if row_id is None else self._load(row_id)
        if record is None or row_id is None:
            raise UnknownCase(key)
        members = changes.get("members") or {}
        changes = dict(changes)
        if members.get("add"):
            changes["members"] = dict(
                members,
                add=[
                    dict(m, client_ref=m.get("client_ref") or str(uuid.uuid4()))
                    for m in members["add"]
                ],
            )
        current = record["local"] if record.get("local") is not None else record["base"]
        record["local"] = apply_update(current, changes, record.get("refs", {}))
        self._store(row_id, record)
        mutation_id = self._fold_into_unsent(row_id, changes)
        if mutation_id is None:
            base_version = record["base"]["version"] if record.get("base") else 1
            mutation_id = str(uuid.uuid4())
            mutation = {
                "mutation_id": mutation_id,
                "op": "update",
                "reference": record.get("reference") or record["client_ref"],
                "base_version": base_version,
                "changes": changes,
            }
            self._enqueue(row_id, mutation)
        return record["local"], mutation_id

    def _fold_into_unsent(self, row_id: str, changes: dict[str, Any]) -> str | None:
        """Fold an edit into the case's last mutation if it was never sent (same transaction).

        Once a mutation may have reached the server its body never changes:
        a resend must be byte-for-byte the same mutation. Returns the id of the
        mutation folded into, or None when there is none.
        """
        row = self.db.execute(
            "SELECT device_seq, is_sent, blob, mutation_id FROM outbox WHERE case_row = ? "
            "ORDER BY device_seq DESC LIMIT 1",
            (row_id,),
        ).fetchone()
        if row is None or row[1]:
            return None
        seq, _, blob, mutation_id = row
        mutation = self._open("outbox", str(seq), blob)
        if mutation["op"] == "create":
            mutation["changes"] = fold_into_intake(mutation["changes"], changes)
        else:
            mutation["changes"] = fold_update(mutation["changes"], changes)
        self.db.execute(
            "UPDATE outbox SET blob = ? WHERE device_seq = ?",
            (self._seal("outbox", str(seq), mutation), seq),
        )
        return str(mutation_id)

    def mark_sent(self, mutations: list[PendingMutation]) -> None:
        """Record, before sending, that these may reach the server: they are frozen from now."""
        with self.transaction():
            self.db.executemany(
                "UPDATE outbox SET is_sent = 1 WHERE device_seq = ?",
                [(m.device_seq,) for m in mutations],
            )

    def pending(self, limit: int | None = None) -> list[PendingMutation]:
        query = "SELECT device_seq, mutation_id, blob FROM outbox ORDER BY device_seq"
        rows = self.db.execute(query + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [
            PendingMutation(seq, mid, self._open("outbox", str(seq), b)) for seq, mid, b in rows
        ]

    def pending_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def _pending_for(self, row_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT device_seq, blob FROM outbox WHERE case_row = ? ORDER BY device_seq", (row_id,)
        ).fetchall()
        return [self._open("outbox", str(seq), blob) for seq, blob in rows]

    def _overlay(self, row_id: str, record: dict[str, Any]) -> None:
        """Recompute the local view: the server's case with every pending update replayed."""
        pending = self._pending_for(row_id)
        if not pending:
            record["local"] = None if record.get("base") is not None else record.get("local")
            return
        view = record.get("base")
        for mutation in pending:
            if mutation["op"] == "create":
                view = record.get("local") if view is None else view
            elif view is not None:
                view = apply_update(view, mutation["changes"], record.get("refs", {}))
        record["local"] = view

    # -- push results --------------------------------------------------------

    def settle(self, mutation: PendingMutation, result: dict[str, Any]) -> None:
        """Store a final result and take the mutation out of the outbox (call in a transaction)."""
        status = result["status"]
        row = self.db.execute(
            "SELECT case_row FROM outbox WHERE mutation_id = ?", (mutation.mutation_id,)
        ).fetchone()
        self.db.execute("DELETE FROM outbox WHERE mutation_id = ?", (mutation.mutation_id,))
        stored = {"result": result, "mutation": mutation.body}
        self.db.execute(
            "INSERT OR REPLACE INTO results(mutation_id, device_seq, status, needs_attention, blob)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                mutation.mutation_id,
                mutation.device_seq,
                status,
                1 if status in ATTENTION_STATUSES else 0,
                self._seal("results", mutation.mutation_id, stored),
            ),
        )
        if row is not None:
            self._after_result(row[0], mutation.body, result)

    def _after_result(self, row_id: str, mutation: dict[str, Any], result: dict[str, Any]) -> None:
        record = self._load(row_id)
        if record is None:
            return
        reference = result.get("reference")
        if mutation["op"] == "create" and reference and result["status"] != "rejected":
            record["reference"] = reference
            record.setdefault("refs", {}).update(result.get("refs") or {})
            new_row = self.row_id(reference)
            if new_row != row_id:
                self._delete_case(row_id)
                self.db.execute(
                    "INSERT OR REPLACE INTO aliases(alias, row_id) VALUES (?, ?)", (row_id, new_row)
                )
                self.db.execute(
                    "UPDATE outbox SET case_row = ? WHERE case_row = ?", (new_row, row_id)
                )
                existing = self._load(new_row)
                if existing is not None and existing.get("base") is not None:
                    record["base"] = existing["base"]
                row_id = new_row
        elif mutation["op"] == "create" and result["status"] == "rejected":
            # The intake body and its errors stay in the result store (needs attention).
            self._delete_case(row_id)
            return
        if result["status"] == "applied":
            self._advance_base(record, mutation, result)
        if record.get("base") is not None:
            self._overlay(row_id, record)
        self._store(row_id, record)

    @staticmethod
    def _advance_base(
        record: dict[str, Any], mutation: dict[str, Any], result: dict[str, Any]
    ) -> None:
        """Know the server's copy right after our own write, when nothing else came between.

        An applied create is version 1 of what we sent; an applied update one
        version above our base is our base with our changes. The next offline
        edit then builds on that version instead of conflicting with our own
        previous edit. The feed brings the server's exact view later.
        """
        version = result.get("version")
        if not isinstance(version, int):
            return
        refs = record.get("refs", {})
        if mutation["op"] == "create" and record.get("base") is None:
            office = (record.get("local") or {}).get("office")
            base = case_from_intake(mutation["changes"], office)
            base["reference"] = record["reference"]
            for member in base.get("members", []):
                member["id"] = refs.get(str(member.get("id")), member.get("id"))
            base["version"] = version
            record["base"] = base
        elif (
            mutation["op"] == "update"
            and record.get("base") is not None
            and record["base"].get("version") == version - 1
        ):
            base = apply_update(record["base"], mutation["changes"], refs)
            for member in base.get("members", []):
                member["id"] = refs.get(str(member.get("id")), member.get("id"))
            base["version"] = version
            record["base"] = base

    def results(self, attention_only: bool = False) -> list[dict[str, Any]]:
        query = "SELECT mutation_id, blob FROM results"
        if attention_only:
            query += " WHERE needs_attention = 1"
        rows = self.db.execute(query + " ORDER BY device_seq").fetchall()
        return [self._open("results", mid, blob) for mid, blob in rows]

    def result_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*) FROM results GROUP BY status")
        return dict(rows)

    def dismiss(self, mutation_id: str) -> bool:
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE results SET needs_attention = 0 WHERE mutation_id = ?", (mutation_id,)
            )
        return cursor.rowcount > 0

    def stored_result(self, mutation_id: str) -> dict[str, Any] | None:
        """``{"result", "mutation"}`` (and ``resent_as`` once resent) of a settled mutation."""
        row = self.db.execute(
            "SELECT blob FROM results WHERE mutation_id = ?", (mutation_id,)
        ).fetchone()
        return None if row is None else self._open("results", mutation_id, row[0])

    def resend(self, mutation_id: str, changes: dict[str, Any], office: str | None) -> str:
        """Queue a corrected copy of a rejected mutation; returns the id it goes out under.

        In one transaction: the case is changed (or, for a rejected new case,
        recorded again under the same offline id) and queued like any offline
        edit, and the rejection leaves needs-attention, keeping its body and
        errors and noting the new mutation. A new id: the server keeps its
        answer to the old one forever.
        """
        with self.transaction():
            stored = self.stored_result(mutation_id)
            if stored is None or stored["result"].get("status") != "rejected":
                raise ReplicaError("Only a rejected mutation can be sent again.")
            if stored.get("resent_as"):
                raise ReplicaError(f"Already sent again as {stored['resent_as']}.")
            mutation = stored["mutation"]
            if mutation["op"] == "create":
                intake = dict(changes, client_ref=mutation["changes"]["client_ref"])
                _, _, new_id = self._create(intake, office)
            else:
                _, new_id = self._update(str(mutation["reference"]), changes)
            stored["resent_as"] = new_id
            self.db.execute(
                "UPDATE results SET needs_attention = 0, blob = ? WHERE mutation_id = ?",
                (self._seal("results", mutation_id, stored), mutation_id),
            )
        return new_id

    # -- pulled changes ------------------------------------------------------

    def apply_page(self, changes: list[dict[str, Any]], gen: int) -> None:
        """Merge one page of the feed (call in the page's transaction); pending edits stay on top.

        The page's rows are read in a few statements, merged in memory in feed
        order (a case may appear more than once), and written with one
        ``executemany``: the same result as merging entry by entry.
        """
        if not changes:
            return
        ids = {change["reference"]: self.row_id(change["reference"]) for change in changes}
        stored = self._rows(set(ids.values()))
        aliases = self._aliases([row_id for row_id in set(ids.values()) if row_id not in stored])
        stored.update(self._rows({t for t in aliases.values() if t not in stored}))
        pending = {row[0] for row in self.db.execute("SELECT DISTINCT case_row FROM outbox")}
        merged: dict[str, dict[str, Any] | None] = {}  # row id -> record; None: deleted
        removed: set[str] = set()

        def current(row_id: str) -> dict[str, Any] | None:
            if row_id in merged:
                return merged[row_id]
            if row_id in stored:
                merged[row_id] = self._open("cases", row_id, stored[row_id][0])
                return merged[row_id]
            return None

        for change in changes:
            reference = change["reference"]
            row_id = ids[reference]
            record = current(row_id)
            if record is None and row_id in aliases:
                row_id = aliases[row_id]
                record = current(row_id)
            if change["op"] == "upsert":
                if record is None:
                    record = {"reference": reference, "client_ref": None, "refs": {}}
                record["reference"] = reference
                record["base"] = change["case"]
                record["local"] = None
                if row_id in pending:
                    self._overlay(row_id, record)
                merged[row_id] = record
            elif record is not None:
                # delete or evict: the case is gone from this office. Pending edits stay
                # in the outbox; the server answers them ``rejected`` (gone/evicted).
                merged[row_id] = None
                removed.add(row_id)
                aliases = {alias: t for alias, t in aliases.items() if t != row_id}
        self._write_merged(merged, stored, removed, gen)

    def apply_change(self, change: dict[str, Any], gen: int) -> None:
        """Merge one feed entry (call in a transaction)."""
        self.apply_page([change], gen)

    def _rows(self, row_ids: set[str]) -> dict[str, tuple[bytes, bytes | None]]:
        """row id -> (blob, pair) of the rows among ``row_ids`` that exist."""
        found: dict[str, tuple[bytes, bytes | None]] = {}
        wanted = list(row_ids)
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT row_id, blob, pair FROM cases WHERE row_id IN ({marks})"  # noqa: S608
            for row_id, blob, pair in self.db.execute(query, chunk):
                found[row_id] = (blob, pair)
        return found

    def _aliases(self, row_ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(row_ids), _LOOKUP_CHUNK):
            chunk = row_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT alias, row_id FROM aliases WHERE alias IN ({marks})"  # noqa: S608
            found.update(self.db.execute(query, chunk))
        return found

    def _write_merged(
        self,
        merged: dict[str, dict[str, Any] | None],
        stored: dict[str, tuple[bytes, bytes | None]],
        removed: set[str],
        gen: int,
    ) -> None:
        upserts: list[tuple[str, int, int, bytes, bytes | None]] = []
        deletes: list[tuple[str]] = []
        for row_id, record in merged.items():
            old_pair = stored[row_id][1] if row_id in stored else None
            if record is None:
                if row_id in stored:
                    self._adjust_sums(row_id, old_pair, None)
                    deletes.append((row_id,))
                continue
            digest = _pair_digest(record)
            self._adjust_sums(row_id, old_pair, digest)
            pair = None if digest is None else self._seal_bytes("pairs", row_id, digest)
            blob = self._seal("cases", row_id, record)
            upserts.append((row_id, 0 if digest is None else 1, gen, blob, pair))
        self.db.executemany("DELETE FROM cases WHERE row_id = ?", deletes)
        self.db.executemany("DELETE FROM aliases WHERE row_id = ?", [(r,) for r in removed])
        self.db.executemany(_UPSERT_CASE, upserts)

    def sweep_before(self, gen: int) -> int:
        """After a clean pull: drop server cases the snapshot no longer holds."""
        rows = self.db.execute(
            "SELECT row_id FROM cases WHERE is_server = 1 AND gen < ? "
            "AND row_id NOT IN (SELECT case_row FROM outbox)",
            (gen,),
        ).fetchall()
        for (row_id,) in rows:
            self._delete_case(row_id)
            self.db.execute("DELETE FROM aliases WHERE row_id = ?", (row_id,))
        return len(rows)

    # -- conflicts -----------------------------------------------------------

    def replace_conflicts(self, conflicts: list[dict[str, Any]]) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM conflicts")
            for conflict in conflicts:
                conflict_id = str(conflict["id"])
                self.db.execute(
                    "INSERT INTO conflicts(conflict_id, blob) VALUES (?, ?)",
                    (conflict_id, self._seal("conflicts", conflict_id, conflict)),
                )

    def conflicts(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT conflict_id, blob FROM conflicts ORDER BY conflict_id")
        return [self._open("conflicts", cid, blob) for cid, blob in rows]


def _pair_digest(record: dict[str, Any]) -> bytes | None:
    """SHA-256 of ``"<reference>:<version>"`` for a case as the server sent it, else None."""
    if not record.get("reference") or record.get("base") is None:
        return None
    text = f"{record['reference']}:{int(record['base']['version'])}"
    return hashlib.sha256(text.encode()).digest()


def wipe(home: Path) -> None:
    """Shred the replica, its WAL and shared-memory files."""
    for name in (REPLICA_FILE, REPLICA_FILE + "-wal", REPLICA_FILE + "-shm"):
        shred(home / name)
