"""Streamed inclusion proofs equal the in-memory ones; an auditor's check needs only the key."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from hashlib import sha256

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.audit.checkpoint import CheckpointError, VerifierKey, sign_checkpoint
from casework.audit.encoding import GENESIS_HASH, AuditRecord, ChainedRecord, chain
from casework.audit.merkle import ProofError, inclusion_proof, root
from casework.audit.proofs import inclusion_path, verify_entry_proof

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ORIGIN = "casework.test/audit"
VERIFIER = VerifierKey(ORIGIN, KEY.public_key())


def _leaves(count: int) -> list[bytes]:
    return [sha256(n.to_bytes(4, "big")).digest() for n in range(count)]


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size=st.integers(1, 300))
def test_streamed_path_equals_the_in_memory_proof(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(0, size - 1))
    leaves = _leaves(size + 3)  # the stream may run on past the tree: it is not read
    assert inclusion_path(iter(leaves), index, size) == inclusion_proof(leaves[:size], index)


@pytest.mark.parametrize(("index", "size"), [(-1, 4), (4, 4), (0, 0)])
def test_index_outside_the_tree_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="leaf"):
        inclusion_path(iter(_leaves(4)), index, size)


def test_a_short_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="ended"):
        inclusion_path(iter(_leaves(5)), 2, 9)


def make_record(seq: int) -> AuditRecord:
    return AuditRecord(
        seq=seq,
        at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=seq),
        actor=f"u-{seq % 5}",
        role="caseworker",
        office="kbl",
        device=None,
        action="case.read",
        target=f"REF{seq:08d}",
        fields=("family_name",),
        outcome="success",
        request_id=None,
    )


def _log(size: int) -> list[ChainedRecord]:
    log, prev = [], GENESIS_HASH
    for seq in range(1, size + 1):
        log.append(chain(prev, make_record(seq)))
        prev = log[-1].hash
    return log


def _proved(size: int, seq: int) -> tuple[ChainedRecord, list[bytes], str]:
    log = _log(size)
    hashes = [entry.hash for entry in log]
    note = sign_checkpoint(KEY, ORIGIN, ORIGIN, size, root(hashes))
    return log[seq - 1], inclusion_path(iter(hashes), seq - 1, size), note


def test_an_auditor_proves_one_entry_with_only_the_verifier_key() -> None:
    entry, path, note = _proved(37, 20)
    checkpoint = verify_entry_proof(entry, path, note, VerifierKey.parse(VERIFIER.encode()), ORIGIN)
    assert checkpoint.size == 37


def _edited(entry: ChainedRecord) -> ChainedRecord:
    record: AuditRecord = dataclasses.replace(entry.record, actor="intruder")
    return dataclasses.replace(entry, record=record)


def test_an_edited_entry_fails_its_proof() -> None:
    entry, path, note = _proved(37, 20)
    with pytest.raises(ProofError, match="hash"):
        verify_entry_proof(_edited(entry), path, note, VERIFIER, ORIGIN)
    rehashed = chain(entry.prev_hash, _edited(entry).record)
    with pytest.raises(ProofError, match="root"):
        verify_entry_proof(rehashed, path, note, VERIFIER, ORIGIN)


def test_a_wrong_path_or_a_foreign_note_fails() -> None:
    entry, path, note = _proved(37, 20)
    with pytest.raises(ProofError):
        verify_entry_proof(entry, path[:-1], note, VERIFIER, ORIGIN)
    forged = sign_checkpoint(Ed25519PrivateKey.generate(), ORIGIN, ORIGIN, 37, bytes(32))
    with pytest.raises(CheckpointError):
        verify_entry_proof(entry, path, forged, VERIFIER, ORIGIN)
    with pytest.raises(CheckpointError, match="another log"):
        verify_entry_proof(entry, path, note, VERIFIER, "other.origin/audit")
