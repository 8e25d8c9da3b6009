"""RFC 6962 Merkle hashing: known answers, proofs for every index and size up to 64."""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 64
LEAVES = [sha256(i.to_bytes(4, "big")).digest() for i in range(MAX_SIZE)]


def H(data: bytes) -> bytes:
    return sha256(data).digest()


# --- A reference written straight from RFC 6962 §2.1, recursion and all. ---


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(data: list[bytes]) -> bytes:
    if not data:
        return H(b"")
    if len(data) == 1:
        return H(b"\x00" + data[0])
    k = _k(len(data))
    return H(b"\x01" + mth(data[:k]) + mth(data[k:]))


def path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = _k(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    if m == len(data):
        return [] if whole else [mth(data)]
    k = _k(len(data))
    if m <= k:
        return [*subproof(m, data[:k], whole), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


# --- Known answers. ---


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert H(b"") == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT


def test_small_trees_by_hand() -> None:
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = H(b"\x00a"), H(b"\x00b"), H(b"\x00c")
    assert leaf_hash(a) == la
    assert node_hash(la, lb) == H(b"\x01" + la + lb)
    assert root([a]) == la
    assert root([a, b]) == H(b"\x01" + la + lb)
    # Three leaves split 2 + 1: the odd leaf is not duplicated (unlike Bitcoin).
    assert root([a, b, c]) == H(b"\x01" + H(b"\x01" + la + lb) + lc)


# Roots of the first n leaves of the test data in Certificate Transparency's
# reference implementation (leaves "", 00, 10, 2021, 3031, 40414243, ...).
CT_LEAVES = [bytes.fromhex(x) for x in ("", "00", "10", "2021", "3031", "40414243",
             "5051525354555657", "606162636465666768696a6b6c6d6e6f")]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    assert root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]
    assert mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_root_matches_the_recursive_definition(size: int) -> None:
    assert root(LEAVES[:size]) == mth(LEAVES[:size])


# --- Compact range. ---


def test_compact_range_tracks_the_root_after_every_append() -> None:
    compact = CompactRange()
    assert compact.root() == EMPTY_ROOT
    for size, data in enumerate(LEAVES, start=1):
        compact.append(data)
        assert compact.size == size
        assert len(compact.peaks) == size.bit_count()
        assert compact.root() == mth(LEAVES[:size])
        restored = CompactRange(compact.size, compact.peaks)
        assert restored.root() == compact.root()


def test_compact_range_resumes_from_saved_state() -> None:
    compact = CompactRange()
    for data in LEAVES[:37]:
        compact.append(data)
    resumed = CompactRange(compact.size, compact.peaks)
    for data in LEAVES[37:]:
        resumed.append(data)
    assert resumed.root() == mth(LEAVES)


def test_append_leaf_hash_takes_precomputed_leaf_hashes() -> None:
    compact = CompactRange()
    for data in LEAVES[:11]:
        compact.append_leaf_hash(leaf_hash(data))
    assert compact.root() == mth(LEAVES[:11])


@pytest.mark.parametrize(("start", "split"), [(0, 0), (0, 11), (5, 37), (37, len(LEAVES))])
def test_extend_leaf_hashes_is_append_leaf_hash_in_turn(start: int, split: int) -> None:
    one_by_one = CompactRange()
    for data in LEAVES[:start]:
        one_by_one.append(data)
    together = CompactRange(one_by_one.size, one_by_one.peaks)
    for data in LEAVES[start:split]:
        one_by_one.append_leaf_hash(leaf_hash(data))
    together.extend_leaf_hashes(leaf_hash(data) for data in LEAVES[start:split])
    assert (together.size, together.peaks) == (one_by_one.size, one_by_one.peaks)
    assert together.root() == mth(LEAVES[: max(start, split)])


@pytest.mark.parametrize(
    ("size", "peaks"), [(3, [b"\x00" * 32]), (1, []), (-1, []), (1, [b"\x00" * 31])]
)
def test_compact_range_rejects_inconsistent_state(size: int, peaks: list[bytes]) -> None:
    with pytest.raises(ValueError, match="peak"):
        CompactRange(size, peaks)


def test_large_tree_root_and_proofs() -> None:
    leaves = [i.to_bytes(32, "big") for i in range(100_003)]
    big_root = root(leaves)
    compact = CompactRange()
    for data in leaves:
        compact.append(data)
    assert compact.root() == big_root
    for index in (65_536, 100_002):
        proof = inclusion_proof(leaves, index)
        assert len(proof) <= 17
        verify_inclusion(leaves[index], index, len(leaves), proof, big_root)
    old_root = root(leaves[:70_000])
    verify_consistency(70_000, len(leaves), old_root, big_root, consistency_proof(leaves, 70_000))


# --- Inclusion proofs. ---


def _altered(proof: list[bytes]) -> list[list[bytes]]:
    """Every single-element bit flip, plus a truncated and an extended proof."""
    variants = []
    for position in range(len(proof)):
        flipped = bytearray(proof[position])
        flipped[position % 32] ^= 0x01
        variants.append([*proof[:position], bytes(flipped), *proof[position + 1 :]])
    if proof:
        variants.append(proof[:-1])
    variants.append([*proof, EMPTY_ROOT])
    return variants


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_for_every_index(size: int) -> None:
    leaves = LEAVES[:size]
    tree_root = mth(leaves)
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        assert proof == path(index, leaves)
        verify_inclusion(leaves[index], index, size, proof, tree_root)
        for bad in _altered(proof):
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, size, bad, tree_root)


# The tree size is not bound by a proof alone (sizes whose paths have the same
# shape accept the same proof); it is bound by the signed checkpoint that carries
# size and root together. So these tests alter leaf, index and root only.
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_inclusion_proof_binds_leaf_index_and_root(size: int) -> None:
    leaves = LEAVES[:size]
    tree_root = mth(leaves)
    for index in range(size):
        proof = inclusion_proof(leaves, index)
        for other in range(size + 2):
            if other != index:
                with pytest.raises(ProofError):
                    verify_inclusion(leaves[index], other, size, proof, tree_root)
                with pytest.raises(ProofError):
                    verify_inclusion(LEAVES[other], index, size, proof, tree_root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[index], index, size, proof, mth(LEAVES[: size + 1]))


def test_inclusion_proof_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="index"):
        inclusion_proof(LEAVES[:4], 4)
    with pytest.raises(ValueError, match="index"):
        inclusion_proof([], 0)
    with pytest.raises(ProofError, match="32-byte"):
        verify_inclusion(LEAVES[0], 0, 2, [b"short"], mth(LEAVES[:2]))


# --- Consistency proofs. ---


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_consistency_proofs_for_every_old_size(size: int) -> None:
    leaves = LEAVES[:size]
    new_root = mth(leaves)
    for old_size in range(size + 1):
        proof = consistency_proof(leaves, old_size)
        expected = [] if old_size in (0, size) else subproof(old_size, leaves, True)
        assert proof == expected
        old_root = mth(leaves[:old_size])
        verify_consistency(old_size, size, old_root, new_root, proof)
        for bad in _altered(proof):
            with pytest.raises(ProofError):
                verify_consistency(old_size, size, old_root, new_root, bad)


@pytest.mark.parametrize("size", [2, 3, 4, 7, 8, 9, 16, 17])
def test_consistency_proof_binds_both_roots_and_the_old_size(size: int) -> None:
    leaves = LEAVES[:size]
    new_root = mth(leaves)
    forked = [*leaves[:-1], b"forked"]
    for old_size in range(1, size):
        proof = consistency_proof(leaves, old_size)
        old_root = mth(leaves[:old_size])
        with pytest.raises(ProofError):
            verify_consistency(old_size, size, old_root, mth(forked), proof)
        with pytest.raises(ProofError):
            verify_consistency(old_size, size, mth(forked[: old_size - 1]), new_root, proof)
        for other_old in range(1, size):
            if other_old != old_size and mth(leaves[:other_old]) != old_root:
                with pytest.raises(ProofError):
                    verify_consistency(other_old, size, old_root, new_root, proof)


def test_consistency_edge_cases() -> None:
    full = mth(LEAVES[:5])
    verify_consistency(0, 5, EMPTY_ROOT, full, [])
    verify_consistency(5, 5, full, full, [])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, full, full, [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, full, mth(LEAVES[:4]), [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, full, full, [full])
    with pytest.raises(ProofError):
        verify_consistency(6, 5, full, full, [])
    with pytest.raises(ProofError):
        verify_consistency(3, 5, mth(LEAVES[:3]), full, [])
    with pytest.raises(ValueError, match="old_size"):
        consistency_proof(LEAVES[:5], 6)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), size=st.integers(2, 300))
def test_consistency_and_inclusion_on_random_sizes(data: st.DataObject, size: int) -> None:
    leaves = [i.to_bytes(8, "big") for i in range(size)]
    old_size = data.draw(st.integers(1, size))
    index = data.draw(st.integers(0, size - 1))
    new_root = root(leaves)
    verify_consistency(
        old_size, size, root(leaves[:old_size]), new_root, consistency_proof(leaves, old_size)
    )
    verify_inclusion(leaves[index], index, size, inclusion_proof(leaves, index), new_root)
