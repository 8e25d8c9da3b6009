"""The tamper matrix end to end: database -> export API -> edited file -> offline verifier (CLI).

A log of 2,000 entries is written through ``audit.record`` (checkpoints signed
every 250 entries as the service signs them), exported through the API, then
changed the ways an attacker would. Each changed export goes through
``casework audit verify --from-export FILE --key KEY`` with nothing but the
published verifier key, and must fail at exactly the documented seq (see
:mod:`casework.audit.verify`); the untouched export must pass.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from casework.audit.checkpoint import parse_and_verify_checkpoint, sign_checkpoint
from casework.audit.encoding import ChainedRecord, chain
from casework.audit.export import CheckpointNote, ExportItem, read_export, write_export
from casework.audit.verify import verify_export_file
from casework.cli import main as casework_cli
from casework.db import get_db
from casework.security.app import current_keyring
from tests.audit.helpers import audit_settings, fill
from tests.conftest import principal_headers

LOG_SIZE = 2000
EVERY = 250


@dataclass(frozen=True)
class Exported:
    items: tuple[ExportItem, ...]
    key: str  # the verifier key string, as an auditor pins it
    sizes: tuple[int, ...]  # checkpoint sizes in the export

    def entries(self) -> list[ExportItem]:
        return list(self.items)

    @property
    def size(self) -> int:
        return sum(isinstance(item, ChainedRecord) for item in self.items)


@pytest.fixture(scope="module")
def exported(app: Flask, engine: Engine) -> Iterator[Exported]:
    """Write the log in a transaction of its own, export it, roll everything back."""
    with engine.connect() as connection:
        outer = connection.begin()
        database = get_db(app)
        original = database.session_factory

        def factory() -> Session:
            return Session(
                bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
            )

        database.session_factory = factory  # type: ignore[assignment]
        try:
            with audit_settings(app, audit_checkpoint_every=EVERY), app.app_context():
                session = factory()
                fill(session, LOG_SIZE - 1)
                session.commit()
                session.close()
            client = app.test_client()
            response = client.get("/api/v1/audit/export", headers=principal_headers("auditor"))
            assert response.status_code == 200
            lines = response.get_data(as_text=True).splitlines(keepends=True)
            key = client.get("/api/v1/audit/public-key").get_json()["verifier_key"]
        finally:
            database.session_factory = original
            outer.rollback()
    items = tuple(read_export(lines))
    sizes = tuple(
        int(item.note.split("\n")[1]) for item in items if isinstance(item, CheckpointNote)
    )
    return Exported(items, key, sizes)


def _verify(
    tmp_path: Path,
    items: list[ExportItem],
    key: str,
    pinned: list[str] = (),  # type: ignore[assignment]
) -> dict[str, object]:
    """Run the offline CLI verifier; return its JSON answer (exit status checked)."""
    export = tmp_path / "export.jsonl"
    export.write_text("".join(write_export(items)), encoding="ascii")
    args = ["audit", "verify", "--from-export", str(export), "--key", key]
    for number, note in enumerate(pinned):
        kept = tmp_path / f"kept-{number}.note"
        kept.write_text(note, encoding="utf-8")
        args += ["--checkpoint", str(kept)]
    result = CliRunner().invoke(casework_cli, args)
    answer: dict[str, object] = json.loads(result.output)
    assert result.exit_code == (0 if answer["ok"] else 1), result.output
    return answer


def _detected(answer: dict[str, object], first_bad_seq: int | None) -> None:
    assert answer["ok"] is False
    assert answer["first_bad_seq"] == first_bad_seq, answer["reason"]
    assert "REF0" not in str(answer["reason"])  # names seqs, never content
    assert "u-" not in str(answer["reason"])


def _entry_index(items: list[ExportItem], seq: int) -> int:
    return next(
        n for n, item in enumerate(items) if isinstance(item, ChainedRecord) and item.seq == seq
    )


def _with(entry: ExportItem, **changes: object) -> ChainedRecord:
    assert isinstance(entry, ChainedRecord)
    record = dataclasses.replace(entry.record, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(entry, record=record)


# --- No false alarms. ---


def test_the_untouched_export_verifies_with_only_the_key(
    exported: Exported, tmp_path: Path
) -> None:
    assert exported.size >= LOG_SIZE
    assert len(exported.sizes) >= LOG_SIZE // EVERY
    answer = _verify(tmp_path, exported.entries(), exported.key)
    assert answer == {
        "ok": True,
        "entries": exported.size,
        "checkpoints": len(exported.sizes),
        "first_bad_seq": None,
        "reason": "ok",
    }


def test_the_checkpoints_are_the_services_own(exported: Exported, app: Flask) -> None:
    notes = [item.note for item in exported.items if isinstance(item, CheckpointNote)]
    with app.app_context():
        public = current_keyring().verify_key
    origin = app.config["CASEWORK"]["audit_origin"]
    sizes = [parse_and_verify_checkpoint(n, public, origin, origin).size for n in notes]
    assert sizes == sorted(sizes)
    assert all(b - a <= EVERY for a, b in itertools.pairwise(sizes))


# --- Entries changed without re-hashing: the chain names the seq. ---

Tamper = Callable[[list[ExportItem], int], None]


def _edit(items: list[ExportItem], k: int) -> None:
    index = _entry_index(items, k)
    items[index] = _with(items[index], actor="intruder")


def _retime(items: list[ExportItem], k: int) -> None:
    index = _entry_index(items, k)
    entry = items[index]
    assert isinstance(entry, ChainedRecord)
    items[index] = _with(entry, at=entry.record.at - timedelta(hours=3))


def _delete(items: list[ExportItem], k: int) -> None:
    del items[_entry_index(items, k)]


def _insert(items: list[ExportItem], k: int) -> None:
    before = items[_entry_index(items, k - 1)] if k > 1 else None
    prev = before.hash if isinstance(before, ChainedRecord) else bytes(32)
    victim = items[_entry_index(items, k)]
    assert isinstance(victim, ChainedRecord)
    forged = chain(prev, dataclasses.replace(victim.record, actor="intruder"))
    items.insert(_entry_index(items, k), forged)  # a perfect forgery: right seq, link, hash


def _duplicate(items: list[ExportItem], k: int) -> None:
    index = _entry_index(items, k)
    items.insert(index + 1, items[index])


CHAIN_TAMPERS: dict[str, Tamper] = {
    "edit": _edit,
    "rewrite timestamp": _retime,
    "delete": _delete,
    "insert": _insert,
    "duplicate": _duplicate,
}


@pytest.mark.parametrize("kind", sorted(CHAIN_TAMPERS))
@pytest.mark.parametrize("k", [1, EVERY, EVERY + 1, LOG_SIZE - 1])
def test_changed_entry_is_named(exported: Exported, tmp_path: Path, kind: str, k: int) -> None:
    if kind == "insert" and k == 1:
        k = 2
    items = exported.entries()
    CHAIN_TAMPERS[kind](items, k)
    _detected(_verify(tmp_path, items, exported.key), k)


@pytest.mark.parametrize(("i", "j"), [(1, 2), (3, LOG_SIZE - 2), (EVERY, EVERY + 1)])
def test_swapped_entries_are_named_at_the_first(
    exported: Exported, tmp_path: Path, i: int, j: int
) -> None:
    items = exported.entries()
    a, b = _entry_index(items, i), _entry_index(items, j)
    items[a], items[b] = items[b], items[a]
    _detected(_verify(tmp_path, items, exported.key), i)


# --- Rollback: only a checkpoint (in the export, or kept by the auditor) knows. ---


@pytest.mark.parametrize("kept", [0, EVERY - 1, -5])
def test_truncated_export_is_a_rollback(exported: Exported, tmp_path: Path, kept: int) -> None:
    """Entries after the latest checkpoint are vouched for by nothing yet: cut below it."""
    latest = [item.note for item in exported.items if isinstance(item, CheckpointNote)][-1]
    if kept < 0:
        kept += exported.sizes[-1]
    cut = [
        item
        for item in exported.items
        if (isinstance(item, ChainedRecord) and item.seq <= kept)
        or (isinstance(item, CheckpointNote) and int(item.note.split("\n")[1]) <= kept)
    ]
    answer = _verify(tmp_path, cut, exported.key, pinned=[latest])
    _detected(answer, kept + 1)
    assert "rollback" in str(answer["reason"])
    # Without the kept checkpoint, a cut that drops the later checkpoints too is
    # invisible: any prefix of a log is a valid log. Auditors keep the latest note.
    assert _verify(tmp_path, cut, exported.key)["ok"] is True


# --- Checkpoints: forged, foreign, or two of one size (a fork). ---


def _notes(items: list[ExportItem]) -> list[int]:
    return [n for n, item in enumerate(items) if isinstance(item, CheckpointNote)]


def test_forged_checkpoint_signature_is_rejected(exported: Exported, tmp_path: Path) -> None:
    items = exported.entries()
    index = _notes(items)[2]
    note = items[index]
    assert isinstance(note, CheckpointNote)
    body, signature = note.note.rsplit(" ", 1)
    flipped = ("B" if signature[10] != "B" else "C").join((signature[:10], signature[11:]))
    items[index] = CheckpointNote(f"{body} {flipped}")
    answer = _verify(tmp_path, items, exported.key)
    _detected(answer, None)  # the entries are sound; the note proves nothing
    assert "rejected" in str(answer["reason"])


def test_checkpoint_of_another_key_is_rejected(
    exported: Exported, tmp_path: Path, app: Flask
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    origin = app.config["CASEWORK"]["audit_origin"]
    items = exported.entries()
    items.append(
        CheckpointNote(sign_checkpoint(Ed25519PrivateKey.generate(), origin, origin, 5, bytes(32)))
    )
    answer = _verify(tmp_path, items, exported.key)
    _detected(answer, None)
    assert "no signature from the expected key" in str(answer["reason"])


def test_two_checkpoints_of_one_size_are_a_fork(
    exported: Exported, tmp_path: Path, app: Flask
) -> None:
    """The signer equivocated: a second, genuinely signed root for a size already signed."""
    size = exported.sizes[3]
    origin = app.config["CASEWORK"]["audit_origin"]
    with app.app_context():
        other = sign_checkpoint(current_keyring().signing_key, origin, origin, size, bytes(32))
    items = exported.entries()
    items.insert(_entry_index(items, size) + 1, CheckpointNote(other))
    answer = _verify(tmp_path, items, exported.key)
    _detected(answer, exported.sizes[2] + 1)
    assert "fork" in str(answer["reason"])


# --- An attacker who re-hashes everything: the signed roots still catch it. ---


@pytest.mark.parametrize("k", [2, EVERY + 3, LOG_SIZE // 2])
def test_rehashed_rewrite_is_caught_by_the_checkpoints(
    exported: Exported, tmp_path: Path, k: int
) -> None:
    records = [item.record for item in exported.items if isinstance(item, ChainedRecord)]
    records[k - 1] = dataclasses.replace(records[k - 1], actor="intruder")
    rewritten: list[ExportItem] = []
    prev = bytes(32)
    for record in records:
        rewritten.append(chain(prev, record))
        prev = rewritten[-1].hash  # type: ignore[union-attr]
    rewritten += [item for item in exported.items if isinstance(item, CheckpointNote)]
    answer = _verify(tmp_path, rewritten, exported.key)
    vouched = max(size for size in exported.sizes if size < k)
    _detected(answer, vouched + 1)
    assert "Merkle root" in str(answer["reason"])


def test_library_and_cli_agree(exported: Exported, tmp_path: Path) -> None:
    from casework.audit.checkpoint import VerifierKey

    items = exported.entries()
    _edit(items, 777)
    cli = _verify(tmp_path, items, exported.key)
    key = VerifierKey.parse(exported.key)
    direct = verify_export_file(tmp_path / "export.jsonl", key.public_key, key.name, key.name)
    assert dataclasses.asdict(direct) == cli
