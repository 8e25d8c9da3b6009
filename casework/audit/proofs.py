"""Inclusion proofs for one entry: computed from a stream, checked with only the public key.

:func:`merkle.inclusion_proof <casework.audit.merkle.inclusion_proof>` wants every
leaf in memory; the service instead streams the entry hashes of a large log once
and keeps only O(log n) state: the audit path's subtrees are disjoint, ordered
ranges of leaves, so each leaf feeds exactly one growing subtree root (or is the
leaf being proved). :func:`verify_entry_proof` is what an auditor runs: it
needs the entry, the path, the checkpoint note and the verifier key, nothing
else from the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from casework.audit.checkpoint import Checkpoint, VerifierKey, parse_and_verify_checkpoint
from casework.audit.encoding import ChainedRecord, entry_hash
from casework.audit.merkle import CompactRange, ProofError, verify_inclusion


def inclusion_path(leaves: Iterable[bytes], index: int, size: int) -> list[bytes]:
    """Return the RFC 6962 audit path of leaf ``index`` in the tree of the first ``size`` leaves.

    ``leaves`` is the leaf data in order (here: entry hashes), read once; only
    the first ``size`` are used. Equal to ``merkle.inclusion_proof(leaves[:size],
    index)``. Raises ValueError if ``index`` is outside the tree or the stream
    ends early.
    """
    if not 0 <= index < size:
        raise ValueError("index must name a leaf of the tree")
    ranges = _sibling_ranges(index, size)  # nearest the root first
    by_position = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    roots: list[bytes] = [b""] * len(ranges)
    leaf_iter = iter(leaves)
    position = 0  # leaves consumed so far
    for number in by_position:
        low, high = ranges[number]
        if position == index:  # the proved leaf sits before this sibling range
            for _ in _take(leaf_iter, 1):
                pass
        compact = CompactRange()
        for data in _take(leaf_iter, high - low):
            compact.append(data)
        roots[number] = compact.root()
        position = high
    roots.reverse()
    return roots


def verify_entry_proof(
    entry: ChainedRecord, path: Sequence[bytes], note: str, key: VerifierKey, origin: str
) -> Checkpoint:
    """Check that ``entry`` is in the log that the signed checkpoint ``note`` describes.

    Recomputes the entry's hash from its content, checks the note's signature
    and origin, then the audit path from leaf ``seq - 1`` to the checkpoint's
    root. Returns the checkpoint; raises :class:`~casework.audit.merkle.ProofError`
    or :class:`~casework.audit.checkpoint.CheckpointError` when any step fails.
    """
    if entry_hash(entry.prev_hash, entry.record) != entry.hash:
        raise ProofError("the entry does not match its hash")
    checkpoint = parse_and_verify_checkpoint(note, key.public_key, key.name, origin)
    verify_inclusion(entry.hash, entry.seq - 1, checkpoint.size, path, checkpoint.root)
    return checkpoint


def _sibling_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form the path, from the top of the tree down."""
    ranges = []
    low, high = 0, size
    while high - low > 1:
        middle = low + (1 << ((high - low - 1).bit_length() - 1))
        if index < middle:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            low = middle
    return ranges


def _take(leaves: Iterable[bytes], count: int) -> Iterable[bytes]:
    taken = 0
    for data in leaves:
        yield data
        taken += 1
        if taken == count:
            return
    if taken < count:
        raise ValueError("the leaf stream ended before the tree size")
