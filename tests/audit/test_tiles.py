"""Hash tiles: proofs from tiles equal proofs from all leaves; the stored tiles and their routes."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.audit import merkle, signer, tiles, tree
from casework.audit.models import AuditEntry
from casework.audit.service import append, write_batch
from tests.audit.helpers import fill
from tests.conftest import principal_headers

BASE = "/api/v1/audit"
AUDITOR = principal_headers("auditor", user_id="u-auditor")


def _leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(n.to_bytes(8, "big")).digest() for n in range(count)]


def _build(leaves: list[bytes], batches: list[int]) -> dict[tiles.TileKey, bytes]:
    """Integrate ``leaves`` in batches of the given sizes (the rest in one), as stored."""
    stored: dict[tiles.TileKey, bytes] = {}
    size = 0
    for count in [*batches, len(leaves)]:
        chunk = leaves[size : size + count]
        edge = {key: stored[key] for key in tiles.edge_keys(size) if key in stored}
        size, changed = tiles.integrate(size, edge, chunk)
        stored.update(changed)
    assert size == len(leaves)
    return stored


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=70_000),
    batches=st.lists(st.integers(min_value=1, max_value=600), max_size=6),
    data=st.data(),
)
def test_proofs_from_tiles_equal_proofs_from_all_leaves(
    size: int, batches: list[int], data: st.DataObject
) -> None:
    leaves = _leaves(size)
    stored = _build(leaves, batches)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=0, max_value=size), label="old size")
    inclusion = [
        tiles.range_root(stored, a, b) for a, b in tiles.proof_ranges_inclusion(index, size)
    ]
    assert inclusion == merkle.inclusion_proof(leaves, index)
    consistency = [
        tiles.range_root(stored, a, b) for a, b in tiles.proof_ranges_consistency(old, size)
    ]
    assert consistency == merkle.consistency_proof(leaves, old)
    root = merkle.root(leaves)
    assert tiles.range_root(stored, 0, size) == root
    merkle.verify_inclusion(leaves[index], index, size, inclusion, root)
    merkle.verify_consistency(old, size, merkle.root(leaves[:old]), root, consistency)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=1, max_value=3000), data=st.data())
def test_proofs_for_any_smaller_tree_read_the_grown_tiles(size: int, data: st.DataObject) -> None:
    """Tiles only grow: a tree of any smaller size is proved from the same tiles."""
    leaves = _leaves(size)
    stored = _build(leaves, [])
    smaller = data.draw(st.integers(min_value=1, max_value=size), label="smaller")
    index = data.draw(st.integers(min_value=0, max_value=smaller - 1), label="index")
    path = [tiles.range_root(stored, a, b) for a, b in tiles.proof_ranges_inclusion(index, smaller)]
    assert path == merkle.inclusion_proof(leaves[:smaller], index)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=70_000),
    batches=st.lists(st.integers(min_value=1, max_value=600), max_size=6),
    data=st.data(),
)
def test_proofs_from_stored_inner_nodes_equal_proofs_from_all_leaves(
    size: int, batches: list[int], data: st.DataObject
) -> None:
    """A full tile's stored inner nodes stand in for the nodes a proof would rebuild."""
    leaves = _leaves(size)
    stored: dict[tiles.TileKey, bytes] = {}
    inner: dict[tiles.TileKey, bytes] = {}
    done = 0
    for count in [*batches, size]:
        edge = {key: stored[key] for key in tiles.edge_keys(done) if key in stored}
        done, changed = tiles.integrate(done, edge, leaves[done : done + count], inner)
        stored.update(changed)
    full = {key for key, data in stored.items() if len(data) == tiles.TILE_WIDTH * 32}
    assert set(inner) == full
    for key in full:
        assert inner[key] == tiles.inner_nodes(stored[key])
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=0, max_value=size), label="old size")
    nodes: dict[tiles.TileKey, bytes | None] = dict(inner)
    inclusion = [
        tiles.range_root(stored, a, b, nodes) for a, b in tiles.proof_ranges_inclusion(index, size)
    ]
    assert inclusion == merkle.inclusion_proof(leaves, index)
    consistency = [
        tiles.range_root(stored, a, b, nodes) for a, b in tiles.proof_ranges_consistency(old, size)
    ]
    assert consistency == merkle.consistency_proof(leaves, old)


def test_a_tile_without_stored_inner_nodes_is_rebuilt_and_wrong_ones_are_used() -> None:
    """Tiles written before inner nodes were stored prove as before; the inner nodes
    are read, not recomputed (a verifier checks the proof against the signed root)."""
    leaves = _leaves(1024)
    stored = _build(leaves, [])
    path = [tiles.range_root(stored, a, b) for a, b in tiles.proof_ranges_inclusion(3, 1024)]
    absent: dict[tiles.TileKey, bytes | None] = dict.fromkeys(stored)
    assert [
        tiles.range_root(stored, a, b, absent) for a, b in tiles.proof_ranges_inclusion(3, 1024)
    ] == path
    forged: dict[tiles.TileKey, bytes | None] = {
        key: bytes(tiles.INNER_COUNT * 32) for key in stored
    }
    assert [
        tiles.range_root(stored, a, b, forged) for a, b in tiles.proof_ranges_inclusion(3, 1024)
    ] != path


def test_a_proof_reads_a_few_tiles_at_a_million_leaves() -> None:
    size = 1_000_000
    ranges = tiles.proof_ranges_inclusion(123_456, size)
    assert len(tiles.tiles_for(ranges)) <= 8
    assert len(tiles.tiles_for(tiles.proof_ranges_consistency(654_321, size))) <= 10


@pytest.mark.parametrize(
    ("index", "width", "path"),
    [
        (0, 256, "tile/0/000"),
        (5, 7, "tile/0/005.p/7"),
        (1000, 256, "tile/0/x001/000"),
        (1234067, 256, "tile/0/x001/x234/067"),
        (1234067, 255, "tile/0/x001/x234/067.p/255"),
    ],
)
def test_tile_paths_follow_the_c2sp_layout(index: int, width: int, path: str) -> None:
    assert tiles.tile_path(0, index, width) == path
    assert tiles.parse_index(path.removeprefix("tile/0/")) == (index, width)


@pytest.mark.parametrize(
    "text", ["5", "0005", "x000/005", "001/002", "005.p/0", "005.p/256", "x1/000"]
)
def test_non_canonical_tile_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"tile index|width|canonical"):
        tiles.parse_index(text)


# --- Stored tiles. ---


def _stored_leaves(session: Session) -> list[bytes]:
    return [bytes(h) for h in session.scalars(select(AuditEntry.hash).order_by(AuditEntry.seq))]


def test_batches_integrate_into_stored_tiles(app: Flask, db_session: Session) -> None:
    with app.app_context():
        fill(db_session, 300)  # in-transaction appends: not integrated yet
        drafts = [entry.record for entry in fill(db_session, 5)]
        append(db_session, drafts, integrate=True)
        leaves = _stored_leaves(db_session)
        state = tree.state(db_session)
        assert state.size == len(leaves)
        assert state.root == merkle.root(leaves)
        for index in (0, 7, 255, 256, len(leaves) - 1):
            path = tree.inclusion_path(db_session, index, len(leaves))
            assert path == merkle.inclusion_proof(leaves, index)
        assert tree.consistency_path(db_session, 100, len(leaves)) == merkle.consistency_proof(
            leaves, 100
        )


def test_integration_refuses_a_broken_chain(app: Flask, db_session: Session) -> None:
    from tests.audit.helpers import allow_tampering

    with app.app_context():
        fill(db_session, 10)
        allow_tampering(db_session.connection())
        db_session.execute(
            AuditEntry.__table__.update().where(AuditEntry.seq == 4).values(target="FORGED")
        )
        with pytest.raises(tree.LogIntegrityError) as caught:
            tree.integrate(db_session, 10)
        assert caught.value.seq == 4


def test_a_checkpoint_integrates_every_batch_since_the_last(
    app: Flask, db_session: Session
) -> None:
    with app.app_context():
        drafts = [entry.record for entry in fill(db_session, 3)]
        write_batch(drafts)
        write_batch(drafts)
        signer.sign_now(db_session)
        leaves = _stored_leaves(db_session)
        assert tree.state(db_session).size == len(leaves)
        assert tree.state(db_session).root == merkle.root(leaves)


def _signed_log(app: Flask, client: FlaskClient, db_session: Session, count: int) -> dict[str, Any]:
    with app.app_context():
        fill(db_session, count)
    response = client.post(f"{BASE}/checkpoints", headers=principal_headers("auditor"))
    assert response.status_code == 201
    document: dict[str, Any] = response.get_json()
    return document


def test_consistency_route_proves_the_log_only_grew(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    first = _signed_log(app, client, db_session, 20)
    second = _signed_log(app, client, db_session, 300)
    response = client.get(f"{BASE}/proofs/consistency?from={first['size']}&to={second['size']}")
    assert response.status_code == 200
    body = response.get_json()
    proof = [bytes.fromhex(node) for node in body["proof"]]
    merkle.verify_consistency(
        first["size"],
        second["size"],
        bytes.fromhex(first["root"]),
        bytes.fromhex(second["root"]),
        proof,
    )
    beyond = client.get(f"{BASE}/proofs/consistency?from=1&to={second['size'] + 1000}")
    assert beyond.status_code == 404
    backwards = client.get(f"{BASE}/proofs/consistency?from=5&to=4")
    assert backwards.status_code == 422


def test_tile_route_serves_raw_hashes(app: Flask, client: FlaskClient, db_session: Session) -> None:
    signed = _signed_log(app, client, db_session, 300)
    leaves = _stored_leaves(db_session)
    full = client.get(f"{BASE}/tiles/tile/0/000")
    assert full.status_code == 200
    assert full.mimetype == "application/octet-stream"
    assert full.data == b"".join(merkle.leaf_hash(leaf) for leaf in leaves[:256])
    width = signed["size"] % 256
    partial = client.get(f"{BASE}/tiles/tile/0/001.p/{width}")
    assert partial.data == b"".join(merkle.leaf_hash(leaf) for leaf in leaves[256 : 256 + width])
    assert client.get(f"{BASE}/tiles/tile/1/000.p/1").data == merkle.root(leaves[:256])
    assert client.get(f"{BASE}/tiles/tile/0/x001/000").status_code == 404
    assert client.get(f"{BASE}/tiles/tile/0/1").status_code == 404
    assert client.get(f"{BASE}/tiles/tile/0/001").status_code == 404  # not full yet


# --- Links this process wrote, kept for the next checkpoint. ---


def test_a_checkpoint_takes_this_process_s_committed_batches_from_memory(
    app: Flask, db_session: Session
) -> None:
    """Rows altered after their batch committed are not read back: the checkpoint vouches
    for what was written, and the verifier names the altered row against it."""
    from casework.audit import store
    from tests.audit.helpers import allow_tampering

    with app.app_context():
        signer.sign_now(db_session)  # forget links of earlier tests
        drafts = [entry.record for entry in fill(db_session, 3)]
        first = tree.state(db_session).size
        write_batch(drafts)
        write_batch(drafts)
        forged = first + 5
        allow_tampering(db_session.connection())
        db_session.execute(
            AuditEntry.__table__.update().where(AuditEntry.seq == forged).values(target="FORGED")
        )
        checkpoint = signer.sign_now(db_session)  # read back, the forged row would refuse it
        leaves = _stored_leaves(db_session)
        assert checkpoint.size == len(leaves)
        assert bytes(checkpoint.root) == merkle.root(leaves)
        result = store.verify_stored(
            store.log_state(db_session), store.in_session(db_session), signer.log_identity()
        )
        assert not result.ok
        assert result.first_bad_seq == forged


def test_kept_links_the_database_no_longer_holds_are_read_back(
    app: Flask, db_session: Session
) -> None:
    with app.app_context():
        fill(db_session, 12)
        size = tree.state(db_session).size
        head = len(_stored_leaves(db_session))
        stale = tree.WrittenLinks()
        stale.add(
            [(seq, *[None] * 10, bytes(32), bytes([seq % 256]) * 32) for seq in range(1, head + 1)]
        )
        state = tree.integrate(db_session, head, known=stale)
        leaves = _stored_leaves(db_session)
        assert (state.size, state.root) == (head, merkle.root(leaves))
        assert stale.take(size, head) == {}  # taken once, then forgotten


def test_written_links_keep_seq_order_and_a_bound() -> None:
    links = tree.WrittenLinks(limit=3)

    def row(seq: int) -> tuple[Any, ...]:
        return (seq, *[None] * 10, bytes(32), seq.to_bytes(32, "big"))

    links.add([row(1), row(2), row(3), row(4)])
    assert sorted(links.take(0, 10)) == [2, 3, 4]  # 1 went over the bound
    links.add([row(5), row(6)])
    links.add([row(2)])  # the log went back: what was kept is dropped
    assert sorted(links.take(0, 10)) == [2]
    links.add([row(3), row(4), row(5)])
    assert sorted(links.take(3, 4)) == [4]
    assert sorted(links.take(0, 10)) == [5]
