"""Merkle tree hashing of the access log, as defined by RFC 6962 §2.1 (and RFC 9162 §2.1).

The leaves are the entries' chain hashes, in sequence order. The tree's root is
what a checkpoint signs: one 32-byte value that commits to every entry up to its
size, so that anyone holding an old checkpoint can check that a later log still
contains exactly the entries it vouched for (a consistency proof), and a single
entry can be shown to be in the log without the others (an inclusion proof).

Definitions (RFC 6962)::

    MTH({})       = SHA-256()
    MTH({d0})     = SHA-256(0x00 || d0)                          leaf hash
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  node hash
                    where k is the largest power of two smaller than n

The 0x00/0x01 prefixes keep a leaf from ever being read as an inner node.
Everything here is iterative; computing a root or a proof over n leaves hashes
each leaf once and each inner node once (O(n)), and :class:`CompactRange` keeps
the root of a growing log in O(log n) memory with O(1) amortised hashing per
append.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
"""The root of the tree with no leaves (RFC 6962: the hash of the empty string)."""

_LEAF = b"\x00"
_NODE = b"\x01"


class ProofError(ValueError):
    """A Merkle proof does not prove what it claims (or is malformed)."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 hash of one leaf's data."""
    return sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an inner node from its children's hashes."""
    return sha256(_NODE + left + right).digest()


class CompactRange:
    """The right edge of a growing tree: enough to compute its root and keep appending.

    A tree of ``size`` leaves decomposes into perfect subtrees, one per set bit of
    ``size``, largest first; their roots (``peaks``) are all the state needed.
    The service can persist ``size`` and ``peaks`` next to the log and rebuild
    the range with ``CompactRange(size, peaks)`` instead of rereading every entry.
    """

    __slots__ = ("_peaks", "_size")

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        peak_list = list(peaks)
        if size < 0 or len(peak_list) != size.bit_count():
            raise ValueError("a compact range needs one peak per set bit of its size")
        if any(len(peak) != HASH_SIZE for peak in peak_list):
            raise ValueError("peaks must be 32-byte hashes")
        self._size = size
        self._peaks = peak_list

    @property
    def size(self) -> int:
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest (leftmost) first."""
        return tuple(self._peaks)

    def append(self, data: bytes) -> None:
        """Add one leaf (its data, e.g. an entry hash), merging completed subtrees."""
        # The merge loop is repeated from append_leaf_hash: this is the verifier's
        # hot path, and a second method call per entry costs measurable time.
        node = sha256(_LEAF + data).digest()
        peaks = self._peaks
        size = self._size
        while size & 1:
            node = sha256(_NODE + peaks.pop() + node).digest()
            size >>= 1
        peaks.append(node)
        self._size += 1

    def append_leaf_hash(self, node: bytes) -> None:
        """Add one leaf whose RFC 6962 leaf hash is already computed."""
        peaks = self._peaks
        size = self._size
        while size & 1:
            node = sha256(_NODE + peaks.pop() + node).digest()
            size >>= 1
        peaks.append(node)
        self._size += 1

    def extend_leaf_hashes(self, nodes: Iterable[bytes]) -> None:
        """:meth:`append_leaf_hash` of each of ``nodes`` in turn, in one call (a checkpoint
        integrates thousands of entries)."""
        peaks = self._peaks
        size = self._size
        for leaf in nodes:
            node = leaf
            merged = size
            while merged & 1:
                node = sha256(_NODE + peaks.pop() + node).digest()
                merged >>= 1
            peaks.append(node)
            size += 1
        self._size = size

    def root(self) -> bytes:
        """Return the tree's root: the peaks folded from the right (RFC 6962's split)."""
        peaks = self._peaks
        if not peaks:
            return EMPTY_ROOT
        node = peaks[-1]
        for peak in reversed(peaks[:-1]):
            node = node_hash(peak, node)
        return node


def root(leaves: Iterable[bytes]) -> bytes:
    """Return the Merkle tree hash of ``leaves`` (leaf data, in order)."""
    compact = CompactRange()
    for data in leaves:
        compact.append(data)
    return compact.root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path for leaf ``index`` (RFC 6962 §2.1.1), nearest sibling first."""
    size = len(leaves)
    if not 0 <= index < size:
        raise ValueError("index must name a leaf of the tree")
    hashes = [leaf_hash(data) for data in leaves]
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            path.append(_range_root(hashes, middle, high))
            high = middle
        else:
            path.append(_range_root(hashes, low, middle))
            low = middle
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (leaf data) is leaf ``index`` of the tree ``root`` of ``size``.

    The algorithm of RFC 9162 §2.1.3.2. Raises :class:`ProofError` if it is not.
    """
    if not 0 <= index < size:
        raise ProofError("index is outside the tree")
    _check_hashes(proof)
    node_index, last_index = index, size - 1
    node = leaf_hash(leaf)
    for sibling in proof:
        if last_index == 0:
            raise ProofError("inclusion proof is too long")
        if node_index & 1 or node_index == last_index:
            node = node_hash(sibling, node)
            while not node_index & 1 and node_index:
                node_index >>= 1
                last_index >>= 1
        else:
            node = node_hash(node, sibling)
        node_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("inclusion proof is too short")
    if node != root:
        raise ProofError("inclusion proof does not lead to the root")


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the proof that the first ``old_size`` leaves are a prefix of ``leaves``.

    RFC 6962 §2.1.2 (PROOF and SUBPROOF), unrolled into a loop. Empty when
    ``old_size`` is 0 or the whole tree: those need no proof.
    """
    size = len(leaves)
    if not 0 <= old_size <= size:
        raise ValueError("old_size must be between 0 and the tree size")
    if old_size in (0, size):
        return []
    hashes = [leaf_hash(data) for data in leaves]
    proof: list[bytes] = []
    low, high, remaining = 0, size, old_size
    old_tree_is_whole_subtree = True
    while remaining != high - low:
        middle = low + _split(high - low)
        if remaining <= middle - low:
            proof.append(_range_root(hashes, middle, high))
            high = middle
        else:
            proof.append(_range_root(hashes, low, middle))
            remaining -= middle - low
            low = middle
            old_tree_is_whole_subtree = False
    if not old_tree_is_whole_subtree:
        proof.append(_range_root(hashes, low, high))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``new_root`` extends the tree ``old_root`` (append-only).

    The algorithm of RFC 9162 §2.1.4.2; sizes 0 and equal sizes need an empty
    proof. Raises :class:`ProofError` if the proof fails.
    """
    _check_hashes(proof)
    if not 0 <= old_size <= new_size:
        raise ProofError("the old tree cannot be larger than the new one")
    if old_size in (0, new_size):
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if proof or old_root != expected:
            raise ProofError("trees of these sizes are consistent only with an empty proof")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    first_index, last_index = old_size - 1, new_size - 1
    while first_index & 1:
        first_index >>= 1
        last_index >>= 1
    old_node = new_node = path[0]
    for sibling in path[1:]:
        if last_index == 0:
            raise ProofError("consistency proof is too long")
        if first_index & 1 or first_index == last_index:
            old_node = node_hash(sibling, old_node)
            new_node = node_hash(sibling, new_node)
            while not first_index & 1 and first_index:
                first_index >>= 1
                last_index >>= 1
        else:
            new_node = node_hash(new_node, sibling)
        first_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("consistency proof is too short")
    if old_node != old_root or new_node != new_root:
        raise ProofError("consistency proof does not lead to both roots")


def _split(count: int) -> int:
    """Return the largest power of two smaller than ``count`` (``count`` >= 2)."""
    return 1 << ((count - 1).bit_length() - 1)


def _range_root(hashes: Sequence[bytes], low: int, high: int) -> bytes:
    """Return the root of the subtree over leaf hashes ``hashes[low:high]``."""
    compact = CompactRange()
    for index in range(low, high):
        compact.append_leaf_hash(hashes[index])
    return compact.root()


def _check_hashes(proof: Sequence[bytes]) -> None:
    if any(not isinstance(node, bytes) or len(node) != HASH_SIZE for node in proof):
        raise ProofError("proof elements must be 32-byte hashes")
