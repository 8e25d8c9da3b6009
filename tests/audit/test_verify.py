"""The verifier: no false alarms, every tampering found at exactly the documented seq.

Also covers the export format (:mod:`casework.audit.export`), which exists to
feed the verifier.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from casework.audit.checkpoint import sign_checkpoint
from casework.audit.encoding import GENESIS_HASH, AuditRecord, ChainedRecord, chain
from casework.audit.export import (
    CheckpointNote,
    ExportFormatError,
    checkpoint_line,
    entry_line,
    parse_line,
    read_export,
    write_export,
)
from casework.audit.merkle import CompactRange
from casework.audit.verify import VerifyResult, verify_export, verify_export_file, verify_log

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key()
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NAME = "casework.example/audit"
ORIGIN = "casework.example/audit/v1"
T0 = datetime(2025, 1, 1, tzinfo=UTC)

LOG_SIZE = 2000
CHECKPOINT_SIZES = (250, 500, 1000, 1500, 2000)
ACTIONS = ("case.read", "case.update", "case.search", "auth.login_failed", "authz.denied")
OUTCOMES = ("success", "denied", "failure")
# Every text the generated entries contain starts with one of these: a reason
# that mentions one would be leaking entry content.
CONTENT_MARKERS = ("actor-", "office-", "device-", "case-ref-", "req-", "intruder", "narrative")

Log = list[ChainedRecord]


def make_record(seq: int, **changes: object) -> AuditRecord:
    record = AuditRecord(
        seq=seq,
        at=T0 + timedelta(seconds=seq, microseconds=seq * 7919 % 1_000_000),
        actor=None if seq % 11 == 0 else f"actor-{seq % 23}",
        role=("caseworker", "supervisor", "auditor", None)[seq % 4],
        office=f"office-{seq % 5}",
        device=None if seq % 3 else f"device-{seq % 7}",
        action=ACTIONS[seq % 5],
        target=None if seq % 13 == 0 else f"case-ref-{seq:06d}",
        fields=("date_of_birth", "family_name", "given_name")[: seq % 4],
        outcome=OUTCOMES[seq % 3 // 2],
        request_id=f"req-{seq:08x}",
    )
    return dataclasses.replace(record, **changes) if changes else record  # type: ignore[arg-type]


def seal(records: Sequence[AuditRecord], prev: bytes = GENESIS_HASH) -> Log:
    sealed = []
    for record in records:
        sealed.append(chain(prev, record))
        prev = sealed[-1].hash
    return sealed


def checkpoints_for(log: Sequence[ChainedRecord], sizes: Sequence[int]) -> list[str]:
    compact, notes = CompactRange(), []
    if 0 in sizes:
        notes.append(sign_checkpoint(KEY, NAME, ORIGIN, 0, compact.root()))
    for entry in log:
        compact.append(entry.hash)
        if compact.size in sizes:
            notes.append(sign_checkpoint(KEY, NAME, ORIGIN, compact.size, compact.root()))
    return notes


@cache
def _reference() -> tuple[tuple[ChainedRecord, ...], tuple[str, ...]]:
    log = seal([make_record(seq) for seq in range(1, LOG_SIZE + 1)])
    return tuple(log), tuple(checkpoints_for(log, CHECKPOINT_SIZES))


def reference_log() -> Log:
    return list(_reference()[0])


def reference_checkpoints() -> list[str]:
    return list(_reference()[1])


def verify(entries: Iterable[ChainedRecord], notes: Sequence[str] | None = None) -> VerifyResult:
    return verify_log(
        entries, reference_checkpoints() if notes is None else notes, PUBLIC, NAME, ORIGIN
    )


def assert_detected(result: VerifyResult, first_bad_seq: int | None) -> None:
    assert not result.ok
    assert result.first_bad_seq == first_bad_seq, result.reason
    assert result.reason
    assert not any(marker in result.reason for marker in CONTENT_MARKERS)


def vouched_before(position: int) -> int:
    """The first seq no matching checkpoint vouches for, when ``position`` is bad."""
    return max((size for size in CHECKPOINT_SIZES if size < position), default=0) + 1


positions = st.integers(1, LOG_SIZE)
EDGES = (1, LOG_SIZE // 2, LOG_SIZE)
TAMPER_SETTINGS = settings(max_examples=30, deadline=None)


# --- No false alarms. ---


@pytest.mark.parametrize("size", [0, 1, 2, 3, 7, 8, 9, 1000])
def test_untouched_logs_verify(size: int) -> None:
    log = seal([make_record(seq) for seq in range(1, size + 1)])
    sizes = sorted({0, 1, 2, size // 2, size} & set(range(size + 1)))
    notes = checkpoints_for(log, sizes)
    result = verify(log, notes)
    assert result == VerifyResult(True, size, len(notes), None, "ok")


def test_untouched_reference_log_verifies_with_and_without_checkpoints() -> None:
    assert verify(reference_log()) == VerifyResult(True, LOG_SIZE, 5, None, "ok")
    assert verify(reference_log(), []) == VerifyResult(True, LOG_SIZE, 0, None, "ok")
    repeated = reference_checkpoints() * 2
    assert verify(reference_log(), repeated) == VerifyResult(True, LOG_SIZE, 10, None, "ok")


def test_entries_are_streamed_once() -> None:
    result = verify(iter(reference_log()))
    assert result.ok


# --- Tampering with entries, hash left stale. ---


def _with(entry: ChainedRecord, **changes: object) -> ChainedRecord:
    """The entry with its content changed and its hashes left as they were."""
    record = dataclasses.replace(entry.record, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(entry, record=record)


EDITS: dict[str, Callable[[ChainedRecord], ChainedRecord]] = {
    "actor": lambda e: _with(e, actor="intruder"),
    "role": lambda e: _with(e, role="admin"),
    "office": lambda e: _with(e, office=None),
    "device": lambda e: _with(e, device="x"),
    "action": lambda e: _with(e, action="case.export"),
    "target": lambda e: _with(e, target="c"),
    "fields": lambda e: _with(e, fields=("narrative",)),
    "outcome": lambda e: _with(e, outcome="denied" if e.record.outcome != "denied" else "success"),
    "request_id": lambda e: _with(e, request_id=None),
    "prev_hash": lambda e: dataclasses.replace(e, prev_hash=bytes(31) + b"\x01"),
    "hash": lambda e: dataclasses.replace(e, hash=bytes(byte ^ 1 for byte in e.hash)),
}


@TAMPER_SETTINGS
@given(k=positions, field=st.sampled_from(sorted(EDITS)))
@example(k=1, field="actor")
@example(k=LOG_SIZE // 2, field="fields")
@example(k=LOG_SIZE, field="hash")
@example(k=1, field="prev_hash")
def test_edited_field_is_found_at_its_seq(k: int, field: str) -> None:
    log = reference_log()
    log[k - 1] = EDITS[field](log[k - 1])
    assert_detected(verify(log), k)


@TAMPER_SETTINGS
@given(k=positions, shift=st.integers(-(10**12), 10**12).filter(bool))
@example(k=1, shift=1)
@example(k=LOG_SIZE // 2, shift=-1)
@example(k=LOG_SIZE, shift=3_600_000_000)
def test_rewritten_timestamp_is_found_at_its_seq(k: int, shift: int) -> None:
    log = reference_log()
    entry = log[k - 1]
    log[k - 1] = _with(entry, at=entry.record.at + timedelta(microseconds=shift))
    assert_detected(verify(log), k)


@TAMPER_SETTINGS
@given(k=positions)
@example(k=1)
@example(k=LOG_SIZE // 2)
@example(k=LOG_SIZE)
def test_deleted_entry_is_found_at_its_seq(k: int) -> None:
    log = reference_log()
    del log[k - 1]
    result = verify(log)
    assert_detected(result, k)
    if k == LOG_SIZE:  # the last entry: only the checkpoint that covered it knows
        assert "rollback" in result.reason


def _forged(k: int, prev: bytes) -> ChainedRecord:
    return chain(prev, make_record(k, actor="intruder", fields=("narrative",)))


@TAMPER_SETTINGS
@given(k=positions, style=st.sampled_from(["stale hash", "forged", "forged and renumbered"]))
@example(k=1, style="forged")
@example(k=LOG_SIZE // 2, style="stale hash")
@example(k=LOG_SIZE, style="forged and renumbered")
def test_inserted_entry_is_found_at_its_position(k: int, style: str) -> None:
    log = reference_log()
    prev = log[k - 2].hash if k > 1 else GENESIS_HASH
    stale = _with(log[k - 1], actor="intruder")
    intruder = stale if style == "stale hash" else _forged(k, prev)
    if style == "forged and renumbered":
        log[k - 1 :] = [_with(e, seq=e.seq + 1) for e in log[k - 1 :]]
    log.insert(k - 1, intruder)
    assert_detected(verify(log), k)


@TAMPER_SETTINGS
@given(pair=st.lists(positions, min_size=2, max_size=2, unique=True).map(sorted))
@example(pair=[1, 2])
@example(pair=[1, LOG_SIZE])
@example(pair=[LOG_SIZE - 1, LOG_SIZE])
@example(pair=[LOG_SIZE // 2, LOG_SIZE // 2 + 1])
def test_swapped_entries_are_found_at_the_first(pair: list[int]) -> None:
    i, j = pair
    log = reference_log()
    log[i - 1], log[j - 1] = log[j - 1], log[i - 1]
    assert_detected(verify(log), i)


@TAMPER_SETTINGS
@given(k=positions)
@example(k=1)
@example(k=LOG_SIZE // 2)
@example(k=LOG_SIZE)
def test_duplicated_entry_is_found_at_its_seq(k: int) -> None:
    log = reference_log()
    log.insert(k, log[k - 1])
    result = verify(log)
    assert_detected(result, k)
    assert "forks" in result.reason


@TAMPER_SETTINGS
@given(kept=st.integers(0, LOG_SIZE - 1))
@example(kept=0)
@example(kept=LOG_SIZE // 2)
@example(kept=LOG_SIZE - 1)
def test_truncated_tail_is_a_rollback_at_the_first_missing_seq(kept: int) -> None:
    result = verify(reference_log()[:kept])
    assert_detected(result, kept + 1)
    assert "rollback" in result.reason
    assert result.entries == kept


# --- Tampering by someone who recomputes every hash: only checkpoints can tell. ---


def _rechain(log: Log) -> Log:
    """Renumber and re-hash the whole log, as an attacker with database access can."""
    return seal([dataclasses.replace(e.record, seq=n) for n, e in enumerate(log, start=1)])


def _strong_edit(log: Log, k: int) -> int:
    log[k - 1] = EDITS["actor"](log[k - 1])
    return k


def _strong_delete(log: Log, k: int) -> int:
    del log[k - 1]
    return k


def _strong_insert(log: Log, k: int) -> int:
    log.insert(k - 1, _forged(k, GENESIS_HASH))
    return k


def _strong_duplicate(log: Log, k: int) -> int:
    log.insert(k, log[k - 1])
    return k + 1  # the copy, renumbered, is the first entry that differs


STRONG = {
    "edit": _strong_edit,
    "delete": _strong_delete,
    "insert": _strong_insert,
    "duplicate": _strong_duplicate,
}


@settings(max_examples=20, deadline=None)  # each example re-hashes the whole log
@given(k=st.integers(1, LOG_SIZE - 1), kind=st.sampled_from(sorted(STRONG)))
@example(k=1, kind="edit")
@example(k=CHECKPOINT_SIZES[0], kind="insert")
@example(k=CHECKPOINT_SIZES[0] + 1, kind="delete")
@example(k=LOG_SIZE - 1, kind="duplicate")
def test_rehashed_tampering_is_found_by_checkpoints(k: int, kind: str) -> None:
    log = reference_log()
    first_changed = STRONG[kind](log, k)
    tampered = _rechain(log)
    result = verify(tampered)
    covering = [size for size in CHECKPOINT_SIZES if first_changed <= size <= len(tampered)]
    if covering:
        assert_detected(result, vouched_before(first_changed))
        assert "Merkle root" in result.reason
        assert f"seq {vouched_before(first_changed)}..{covering[0]}" in result.reason
    else:  # the log was shortened past its last checkpoint
        assert_detected(result, len(tampered) + 1)
        assert "rollback" in result.reason


def test_rehashed_log_without_checkpoints_is_not_detectable() -> None:
    # The honest limit of a hash chain: checkpoints are what make it tamper-evident.
    log = reference_log()
    _strong_edit(log, 10)
    assert verify(_rechain(log), []).ok


# --- Tampering with checkpoints. ---


def _forge_signature(note: str, byte: int) -> str:
    body, line = note.split("\n\n")
    prefix, encoded = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[4 + byte] ^= 0x01
    return f"{body}\n\n{prefix} {base64.b64encode(bytes(blob)).decode()}\n"


@TAMPER_SETTINGS
@given(which=st.integers(0, len(CHECKPOINT_SIZES) - 1), byte=st.integers(0, 63))
@example(which=0, byte=0)
@example(which=len(CHECKPOINT_SIZES) - 1, byte=63)
def test_forged_checkpoint_signature_is_rejected(which: int, byte: int) -> None:
    notes = reference_checkpoints()
    notes[which] = _forge_signature(notes[which], byte)
    result = verify(reference_log(), notes)
    assert_detected(result, None)  # the entries are sound; the note proves nothing
    assert f"checkpoint #{which + 1} rejected" in result.reason
    assert result.entries == LOG_SIZE
    assert result.checkpoints == len(CHECKPOINT_SIZES) - 1


def test_checkpoint_signed_by_another_key_is_rejected() -> None:
    log = reference_log()
    impostor = sign_checkpoint(OTHER_KEY, NAME, ORIGIN, LOG_SIZE, b"\x00" * 32)
    result = verify(log, [*reference_checkpoints(), impostor])
    assert_detected(result, None)
    assert "no signature from the expected key" in result.reason


def test_checkpoint_of_another_log_is_rejected() -> None:
    notes = [sign_checkpoint(KEY, NAME, "other.example/log", 5, b"\x00" * 32)]
    assert_detected(verify(reference_log(), notes), None)


def test_empty_checkpoint_with_a_root_is_rejected() -> None:
    notes = [sign_checkpoint(KEY, NAME, ORIGIN, 0, b"\x01" * 32)]
    result = verify(reference_log(), notes)
    assert_detected(result, None)
    assert "empty log" in result.reason


@TAMPER_SETTINGS
@given(size=st.sampled_from(CHECKPOINT_SIZES), root=st.binary(min_size=32, max_size=32))
@example(size=CHECKPOINT_SIZES[0], root=b"\x00" * 32)
@example(size=LOG_SIZE, root=b"\xff" * 32)
def test_two_checkpoints_of_one_size_are_a_fork(size: int, root: bytes) -> None:
    notes = [*reference_checkpoints(), sign_checkpoint(KEY, NAME, ORIGIN, size, root)]
    result = verify(reference_log(), notes)
    assert_detected(result, vouched_before(size))
    assert f"fork: 2 signed checkpoints of size {size} disagree" in result.reason


@TAMPER_SETTINGS
@given(size=positions.filter(lambda s: s not in CHECKPOINT_SIZES))
@example(size=1)
@example(size=LOG_SIZE - 1)
def test_checkpoint_inconsistent_with_the_log_is_found(size: int) -> None:
    notes = [*reference_checkpoints(), sign_checkpoint(KEY, NAME, ORIGIN, size, b"\x07" * 32)]
    result = verify(reference_log(), notes)
    assert_detected(result, vouched_before(size))
    assert "does not match the log's Merkle root" in result.reason


def test_a_bad_checkpoint_does_not_hide_a_bad_entry() -> None:
    log = reference_log()
    log[99] = EDITS["target"](log[99])
    notes = reference_checkpoints()
    notes[0] = _forge_signature(notes[0], 5)
    result = verify(log, notes)
    assert_detected(result, 100)
    assert "seq 100" in result.reason
    assert "checkpoint #1 rejected" in result.reason


def test_a_link_that_only_straddles_two_known_hashes_is_not_a_fork() -> None:
    log = reference_log()
    straddling = log[0].hash[16:] + log[1].hash[:16]
    log[4] = dataclasses.replace(log[4], prev_hash=straddling)
    result = verify(log)
    assert_detected(result, 5)
    assert "does not link" in result.reason


def test_a_link_further_back_names_the_fork_point() -> None:
    log = reference_log()
    log[9] = dataclasses.replace(log[9], prev_hash=log[2].hash)
    result = verify(log)
    assert_detected(result, 4)
    assert "forks at seq 4" in result.reason


def test_counts_stop_at_the_first_fault() -> None:
    log = reference_log()
    log[749] = EDITS["role"](log[749])
    result = verify(log)
    assert (result.entries, result.checkpoints, result.first_bad_seq) == (749, 2, 750)


# --- Export format. ---


def test_export_round_trip() -> None:
    log = reference_log()[:50]
    notes = checkpoints_for(log, [25, 50])
    lines = list(write_export([*log[:25], notes[0], *log[25:], CheckpointNote(notes[1])]))
    assert all(line.endswith("\n") and line.isascii() for line in lines)
    items = list(read_export(lines))
    assert items == [*log[:25], CheckpointNote(notes[0]), *log[25:], CheckpointNote(notes[1])]


_maybe_text = st.none() | st.text(max_size=10)
_records = st.builds(
    AuditRecord,
    seq=st.integers(1, 2**64 - 1),
    at=st.datetimes(timezones=st.just(UTC)),
    actor=_maybe_text,
    role=_maybe_text,
    office=_maybe_text,
    device=_maybe_text,
    action=st.text(min_size=1, max_size=10),
    target=_maybe_text,
    fields=st.sets(st.text(max_size=8), max_size=3).map(lambda names: tuple(sorted(names))),
    outcome=st.sampled_from(OUTCOMES),
    request_id=_maybe_text,
)


@settings(max_examples=100, deadline=None)
@given(record=_records, prev=st.binary(min_size=32, max_size=32))
def test_any_entry_survives_an_export_round_trip(record: AuditRecord, prev: bytes) -> None:
    entry = chain(prev, record)
    line = entry_line(entry)
    assert line.isascii()
    assert line.count("\n") == 1
    assert parse_line(line) == entry


def test_export_entry_line_is_the_documented_object() -> None:
    entry = reference_log()[0]
    line = entry_line(entry)
    assert json.loads(line) == {
        "kind": "entry",
        "seq": 1,
        "at": "2025-01-01T00:00:01.007919Z",
        "actor": "actor-1",
        "role": "supervisor",
        "office": "office-1",
        "device": None,
        "action": "case.update",
        "target": "case-ref-000001",
        "fields": ["date_of_birth"],
        "outcome": "success",
        "request_id": "req-00000001",
        "prev_hash": "00" * 32,
        "hash": entry.hash.hex(),
    }
    assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")) + "\n"


def _write(path: Path, items: Sequence[ChainedRecord | str]) -> Path:
    path.write_text("".join(write_export(items)), encoding="utf-8")
    return path


def _interleaved(log: Sequence[ChainedRecord], notes: Sequence[str]) -> list[ChainedRecord | str]:
    return [*log[:600], *notes[:2], *log[600:], *notes[2:]]


def test_export_file_verifies(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.jsonl", _interleaved(reference_log(), reference_checkpoints()))
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert result == VerifyResult(True, LOG_SIZE, 5, None, "ok")


def test_edited_export_line_is_found(tmp_path: Path) -> None:
    lines = list(write_export(_interleaved(reference_log(), reference_checkpoints())))
    edited = json.loads(lines[1234])
    edited["office"] = "office-9"
    lines[1234] = json.dumps(edited, sort_keys=True, separators=(",", ":")) + "\n"
    path = tmp_path / "log.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    assert_detected(verify_export_file(path, PUBLIC, NAME, ORIGIN), 1233)


def test_unreadable_export_lines_are_named(tmp_path: Path) -> None:
    lines = list(write_export(_interleaved(reference_log(), reference_checkpoints())))
    broken_entry = [*lines[:10], "{not json\n", *lines[11:]]
    path = tmp_path / "entry.jsonl"
    path.write_text("".join(broken_entry), encoding="utf-8")
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert_detected(result, 11)
    assert "line 11" in result.reason
    checkpoint_line = lines[600]
    assert json.loads(checkpoint_line)["kind"] == "checkpoint"
    broken_note = json.dumps({"kind": "checkpoint", "note": 5}) + "\n"
    path = tmp_path / "note.jsonl"
    path.write_text("".join([*lines[:600], broken_note, *lines[601:]]), encoding="utf-8")
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert_detected(result, None)
    assert "line 601" in result.reason


def test_export_file_that_is_not_utf8_or_has_an_endless_line(tmp_path: Path) -> None:
    lines = [line.encode() for line in write_export(reference_log()[:20])]
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b"".join([*lines[:4], b'{"kind": "entry", "actor": "\xe9"}\n', *lines[5:]]))
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert_detected(result, 5)
    assert "line 5: line is not UTF-8" in result.reason
    path = tmp_path / "endless.jsonl"
    path.write_bytes(b"".join([*lines[:2], b"[" * 1_000_000, b"\n", *lines[2:]]))
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert_detected(result, 3)
    assert "line 3: line is too long" in result.reason


def test_pinned_checkpoints_catch_an_export_stripped_of_its_own(tmp_path: Path) -> None:
    log = reference_log()
    _strong_edit(log, 1700)
    path = _write(tmp_path / "rewritten.jsonl", _rechain(log))  # no checkpoints inside
    assert verify_export_file(path, PUBLIC, NAME, ORIGIN).ok
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN, reference_checkpoints())
    assert_detected(result, 1501)


def test_a_checkpoint_line_spelled_with_escapes_is_still_found(tmp_path: Path) -> None:
    log = reference_log()[:500]
    notes = checkpoints_for(log, [500])
    lines = list(write_export(log))
    escaped = checkpoint_line(notes[0]).replace("checkpoint", "\\u0063heckpoint", 1)
    assert "checkpoint" not in escaped.split(",")[0]
    path = tmp_path / "escaped.jsonl"
    path.write_text("".join([*lines, escaped]), encoding="utf-8")
    assert verify_export_file(path, PUBLIC, NAME, ORIGIN) == VerifyResult(True, 500, 1, None, "ok")
    path.write_text("".join([*lines[:499], escaped]), encoding="utf-8")  # entry 500 gone
    assert_detected(verify_export_file(path, PUBLIC, NAME, ORIGIN), 500)


def test_a_fault_before_an_unreadable_line_is_the_one_named(tmp_path: Path) -> None:
    log = reference_log()[:100]
    notes = checkpoints_for(log, [100])
    log[9] = EDITS["device"](log[9])
    lines = list(write_export([*log, *notes]))
    path = tmp_path / "both.jsonl"
    path.write_text("".join([*lines[:50], "garbage\n", *lines[50:]]), encoding="utf-8")
    result = verify_export_file(path, PUBLIC, NAME, ORIGIN)
    assert_detected(result, 10)
    assert "seq 10" in result.reason
    assert "changed while" not in result.reason


def test_an_export_that_changes_between_passes_is_refused() -> None:
    log = reference_log()[:20]
    versions = [
        list(write_export([*log, *checkpoints_for(log, [20])])),
        list(write_export(log)),
    ]
    result = verify_export(versions.pop, PUBLIC, NAME, ORIGIN)  # without, then with
    assert not result.ok
    assert result.reason == "export changed while being read"


def _entry_object() -> dict[str, object]:
    obj: dict[str, object] = json.loads(entry_line(reference_log()[0]))
    return obj


def _line(obj: object) -> str:
    return json.dumps(obj) + "\n"


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("seq", 1.0),
        ("seq", True),
        ("seq", "1"),
        ("seq", 0),
        ("at", "2025-01-01T00:00:01.007919+00:00"),
        ("at", "2025-01-01T00:00:01Z"),
        ("at", "2025-01-01 00:00:01.007919Z"),
        ("at", "2025-02-30T00:00:01.007919Z"),
        ("at", "\u0662025-01-01T00:00:01.007919Z"),
        ("actor", 5),
        ("actor", "\ud800"),
        ("action", None),
        ("fields", "date_of_birth"),
        ("fields", ["b", "a"]),
        ("fields", [1]),
        ("outcome", "maybe"),
        ("prev_hash", "00" * 31),
        ("prev_hash", "AA" * 32),
        ("hash", None),
        ("kind", "Entry"),
    ],
)
def test_strict_reader_rejects_malformed_entries(change: str, value: object) -> None:
    obj = _entry_object()
    obj[change] = value
    with pytest.raises(ExportFormatError, match="line 7"):
        parse_line(_line(obj), 7)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[]\n",
        "null\n",
        '{"kind": "checkpoint", "note": "x"}',
        '{"kind": "checkpoint", "note": "x"}\n\n',
        '{"kind": "checkpoint", "note": "x", "note": "y"}\n',
        '{"kind": "checkpoint", "note": "x", "extra": 1}\n',
        '{"kind": "checkpoint"}\n',
        '{"kind": "checkpoint", "note": NaN}\n',
        '{"kind": "entry", "seq": 1}\n',
        '{"note": "x"}\n',
        '{"kind": "checkpoint", "note": "' + "x" * 70_000 + '"}\n',
    ],
)
def test_strict_reader_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(ExportFormatError):
        parse_line(line)


def test_reader_rejects_extra_and_missing_entry_keys() -> None:
    extra = {**_entry_object(), "name": "someone"}
    with pytest.raises(ExportFormatError, match="entry keys"):
        parse_line(_line(extra))
    missing = _entry_object()
    del missing["device"]
    with pytest.raises(ExportFormatError, match="entry keys"):
        parse_line(_line(missing))


def test_reader_errors_do_not_echo_content() -> None:
    obj = _entry_object()
    obj["at"] = "req-secret-value"
    with pytest.raises(ExportFormatError) as caught:
        parse_line(_line(obj))
    assert "secret" not in str(caught.value)


# --- Throughput (printed, not asserted: machines differ). ---


def test_throughput_of_verifying_100k_entries(capsys: pytest.CaptureFixture[str]) -> None:
    count = 100_000
    log = seal([make_record(seq) for seq in range(1, count + 1)])
    notes = checkpoints_for(log, [count // 4, count // 2, count])
    started = time.process_time()
    result = verify(log, notes)
    elapsed = time.process_time() - started
    assert result == VerifyResult(True, count, 3, None, "ok")
    with capsys.disabled():
        print(f"\naudit verify_log: {count} entries in {elapsed:.3f} s CPU, "
              f"{count / elapsed:,.0f} entries/s")  # fmt: skip
