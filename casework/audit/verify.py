"""The standalone verifier: does this log match itself and every signed checkpoint?

:func:`verify_log` reads the entries once, in order, and checks that

* sequence numbers run 1, 2, 3, ... without a gap or repeat;
* each entry's ``prev_hash`` is the previous entry's hash (``GENESIS_HASH`` for seq 1);
* each entry's ``hash`` is SHA-256 over its canonical encoding;
* each checkpoint is signed by the audit key, names this log's origin, and its
  root is the Merkle root of the first ``size`` entry hashes;
* no checkpoint is larger than the log (a rollback), and no two signed
  checkpoints of the same size disagree (a fork: the signer showed two histories).

It stops at the first fault and names the first bad sequence number,
``first_bad_seq``: the first seq at which the presented log stops being the
signed, chained history. Positions count from 1, so in an intact log the entry
in position p has seq p. Concretely:

==========================  ===========================================================
fault                       ``first_bad_seq``
==========================  ===========================================================
edited entry k (any field,  k: its hash no longer matches its content (or, if the
stored hashes included)     link was edited, it no longer links to entry k-1)
rewritten timestamp of k    k, as for any edit
deleted entry k             k: position k holds seq k+1; if k was the last entry, a
                            checkpoint covering it reports a rollback at k (below)
entry inserted before k     k: the intruder sits in position k. If it is a perfect
                            forgery (right seq, link and hash) the displaced entry k,
                            now in position k+1, still links to entry k-1: the chain
                            forks at k, and that names k
entries i < j swapped       i: position i holds entry j
entry k duplicated          k: the copy links to entry k-1 just as entry k does, so
                            the chain forks at k (the duplicated seq)
tail truncated to n         n+1, the first entry a larger checkpoint proves existed
entries (rollback)
checkpoint of size s whose  c+1, where c is the largest smaller checkpoint size that
root differs from the log   matched (0 if none). A root proves that some entry in
(entries rewritten and      c+1..s differs, not which; c+1 is the first seq no
re-hashed, or the signer    checkpoint vouches for. Exception: if an entry further on
equivocated: two signed     links back to c < f <= s as above, the chain pinpoints f.
checkpoints of one size)    Signing checkpoints often narrows the window.
checkpoint badly signed,    None when the entries are otherwise sound: such a note
malformed, of another       proves nothing about them. ``ok`` is False all the same,
origin, or an empty tree    the reason names the checkpoint by its position in the
with a non-empty root       input, and the other checkpoints are still used.
==========================  ===========================================================

An entry appended after the last checkpoint is, by design, indistinguishable
from a genuine append until a later checkpoint covers it; and without any
checkpoint, someone who can rewrite the table can recompute every hash. The
chain finds careless edits; the signed checkpoints make the log tamper-evident.

:func:`verify_export_file` does the same for an export file (see
:mod:`casework.audit.export`), together with any checkpoints the auditor kept
(``pinned_checkpoints``, numbered first in reasons).

Memory: the entries stream through once. The verifier keeps the O(log n)
Merkle frontier and the hashes already verified, packed (32 bytes per entry:
32 MB per million), which it needs only to name a fork point when an entry
links further back than its predecessor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from casework.audit.checkpoint import Checkpoint, CheckpointError, parse_and_verify_checkpoint
from casework.audit.encoding import GENESIS_HASH, HASH_SIZE, ChainedRecord, entry_hash
from casework.audit.export import (
    MAX_LINE_LENGTH,
    CheckpointNote,
    ExportFormatError,
    decode_lines,
    parse_line,
    read_export,
)
from casework.audit.merkle import EMPTY_ROOT, CompactRange


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The verdict on a log.

    ``entries`` counts entries that passed before the verdict (all of them when
    ``ok``); ``checkpoints`` counts signed checkpoints whose root was matched
    against the log. ``reason`` says what failed, or ``"ok"``; it names sequence
    numbers and checkpoint positions, never entry content.
    """

    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class _Scan:
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str | None = None
    end: VerifiedPrefix | None = None


@dataclass(frozen=True, slots=True)
class VerifiedPrefix:
    """Where an earlier verification ended: its size, last hash and Merkle peaks.

    An incremental verification starts here and reads only the entries after it.
    """

    size: int
    last_hash: bytes
    peaks: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class KeyInForce:
    """A signing key and the checkpoint sizes it may sign (``until`` None: no end)."""

    public_key: Ed25519PublicKey
    key_name: str
    from_size: int
    until_size: int | None


def verify_log(
    entries: Iterable[ChainedRecord],
    checkpoints: Iterable[str],
    public_key: Ed25519PublicKey,
    key_name: str,
    origin: str,
    keys: Sequence[KeyInForce] | None = None,
    start: VerifiedPrefix | None = None,
) -> VerifyResult:
    """Verify a log, streamed in sequence order, against signed checkpoint notes.

    The checkpoints are read first (they are few); the entries are read once.
    ``keys``, when given, replaces the single key: the chain of keys followed
    through signed rotations, each accepted only for the sizes it may sign.
    """
    result, _end = verify_links(
        links_of(entries), checkpoints, public_key, key_name, origin, keys, start
    )
    return result


Link = tuple[int, bytes, bytes, bool]
"""An entry as the chain check sees it: seq, prev_hash, hash, and whether the hash is
SHA-256 over the entry's canonical encoding linked to its own prev_hash."""


def links_of(entries: Iterable[ChainedRecord]) -> Iterator[Link]:
    """The links of decoded entries (an export's, or a test's)."""
    for entry in entries:
        yield (
            entry.record.seq,
            entry.prev_hash,
            entry.hash,
            entry_hash(entry.prev_hash, entry.record) == entry.hash,
        )


def verify_links(
    links: Iterable[Link],
    checkpoints: Iterable[str],
    public_key: Ed25519PublicKey,
    key_name: str,
    origin: str,
    keys: Sequence[KeyInForce] | None = None,
    start: VerifiedPrefix | None = None,
) -> tuple[VerifyResult, VerifiedPrefix | None]:
    """:func:`verify_log` over links (see :data:`Link`), computed by the caller.

    Also returns where the entries end (size, last hash, Merkle peaks), None
    when the chain broke: an incremental verification starts there next time
    if the verdict is ok. A stored log is verified this way from raw rows,
    without building a record per entry.
    """
    if keys is None:
        keys = [KeyInForce(public_key, key_name, 0, None)]
    claims, rejected = _read_checkpoints(checkpoints, keys, origin)
    if start is not None:  # incremental: checkpoints at or below the verified prefix are done
        claims = {size: roots for size, roots in claims.items() if size > start.size}
    scan = _scan(links, claims, start or VerifiedPrefix(0, GENESIS_HASH, ()))
    problems = [scan.reason] if scan.reason else []
    problems += rejected
    result = VerifyResult(
        ok=not problems,
        entries=scan.entries,
        checkpoints=scan.checkpoints,
        first_bad_seq=scan.first_bad_seq,
        reason="; ".join(problems) or "ok",
    )
    return result, scan.end


def verify_export(
    open_lines: Callable[[], Iterable[str]],
    public_key: Ed25519PublicKey,
    key_name: str,
    origin: str,
    pinned_checkpoints: Iterable[str] = (),
    keys: Sequence[KeyInForce] | None = None,
) -> VerifyResult:
    """Verify an export (see :mod:`casework.audit.export`), read twice through ``open_lines``.

    ``pinned_checkpoints`` are notes the auditor kept from earlier: whoever
    produced the export could have left its own checkpoints out, but not those.
    The first pass collects the export's checkpoints, parsing only the lines
    that can hold one; the second reads every line strictly and streams the
    entries. The first unreadable line ends the verification: as a bad entry at
    the position where it stands, unless a fault was already found before it.
    """
    embedded = _embedded_checkpoints(open_lines())
    stream = _ExportEntries(open_lines())
    notes = [*pinned_checkpoints, *embedded]
    result = verify_log(stream, notes, public_key, key_name, origin, keys)
    error = stream.error
    if error is None:
        if stream.exhausted and stream.checkpoints != len(embedded):
            return dataclasses.replace(result, ok=False, reason="export changed while being read")
        return result
    if result.first_bad_seq is not None and result.first_bad_seq <= stream.entries:
        return dataclasses.replace(result, reason=f"{result.reason}; export {error}")
    first_bad = None if error.kind == "checkpoint" else stream.entries + 1
    return VerifyResult(False, stream.entries, result.checkpoints, first_bad, f"export {error}")


def verify_export_file(
    path: Path,
    public_key: Ed25519PublicKey,
    key_name: str,
    origin: str,
    pinned_checkpoints: Iterable[str] = (),
    keys: Sequence[KeyInForce] | None = None,
) -> VerifyResult:
    """Verify an export file; see :func:`verify_export`.

    Read as bytes, line by line with a length cap, so that a hostile file can
    neither exhaust memory with one endless line nor hide behind a bad encoding.
    """

    def open_lines() -> Iterator[str]:
        with path.open("rb") as raw:
            yield from decode_lines(iter(partial(raw.readline, MAX_LINE_LENGTH + 1), b""))

    return verify_export(open_lines, public_key, key_name, origin, pinned_checkpoints, keys)


def _embedded_checkpoints(lines: Iterable[str]) -> list[str]:
    """Collect an export's checkpoint notes without parsing every entry line.

    A line can hold a checkpoint only if it spells ``checkpoint`` or uses a JSON
    escape (which could spell it otherwise); other lines are left to the strict
    pass, and so are malformed ones, so that it names the first in file order.
    """
    notes: list[str] = []
    try:
        for line in lines:
            if "checkpoint" not in line and "\\u" not in line:
                continue
            try:
                item = parse_line(line)
            except ExportFormatError:
                continue
            if isinstance(item, CheckpointNote):
                notes.append(item.note)
    except ExportFormatError:
        pass  # an undecodable line: the strict pass reports it
    return notes


class _ExportEntries:
    """The entries of an export in order, stopping quietly at the first unreadable line.

    ``error`` then holds why; ``entries`` and ``checkpoints`` count what was
    read, and ``exhausted`` says whether the reader got to the end.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.entries = 0
        self.checkpoints = 0
        self.exhausted = False
        self.error: ExportFormatError | None = None

    def __iter__(self) -> Iterator[ChainedRecord]:
        try:
            for item in read_export(self._lines):
                if isinstance(item, CheckpointNote):
                    self.checkpoints += 1
                    continue
                self.entries += 1
                yield item
        except ExportFormatError as error:
            self.error = error
        else:
            self.exhausted = True


def _read_checkpoints(
    notes: Iterable[str], keys: Sequence[KeyInForce], origin: str
) -> tuple[dict[int, list[bytes]], list[str]]:
    """Return the verified checkpoints' roots by size, and why any others were rejected."""
    claims: dict[int, list[bytes]] = {}
    rejected: list[str] = []
    for number, note in enumerate(notes, start=1):
        try:
            checkpoint = _verify_under(note, keys, origin)
        except CheckpointError as error:
            rejected.append(f"checkpoint #{number} rejected: {error}")
            continue
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            rejected.append(f"checkpoint #{number} rejected: an empty log has only one root")
            continue
        claims.setdefault(checkpoint.size, []).append(checkpoint.root)
    return claims, rejected


def _verify_under(note: str, keys: Sequence[KeyInForce], origin: str) -> Checkpoint:
    """The checkpoint, once a key in force at its size has signed it."""
    first_error: CheckpointError | None = None
    for key in keys:
        try:
            checkpoint = parse_and_verify_checkpoint(note, key.public_key, key.key_name, origin)
        except CheckpointError as error:
            first_error = first_error or error
            continue
        if key.from_size <= checkpoint.size and (
            key.until_size is None or checkpoint.size <= key.until_size
        ):
            return checkpoint
        first_error = CheckpointError(
            f"signed by a key not in force at size {checkpoint.size} (no signed rotation)"
        )
    raise first_error or CheckpointError("no key to verify with")


class _ChainFault(Exception):
    """Raised by :func:`_chain` at the first entry that breaks the chain."""

    def __init__(self, position: int, first_bad_seq: int, reason: str, is_fork: bool) -> None:
        super().__init__(reason)
        self.position = position
        self.first_bad_seq = first_bad_seq
        self.reason = reason
        self.is_fork = is_fork


def _chain(links: Iterable[Link], history: bytearray, start: VerifiedPrefix) -> Iterator[bytes]:
    """Yield each entry's hash once its seq, link and hash check out.

    Appends the hashes to ``history``; raises :class:`_ChainFault` at the first
    entry that fails. This is the hot loop: it stays flat on purpose.
    """
    prev = start.last_hash
    for position, (seq, prev_hash, digest, matches) in enumerate(links, start=start.size + 1):
        if seq != position or prev_hash != prev or not matches:
            raise _diagnose(seq, prev_hash, position, prev, history, start.size)
        prev = digest
        history += prev
        yield prev


def _scan(links: Iterable[Link], claims: dict[int, list[bytes]], start: VerifiedPrefix) -> _Scan:
    """Check chain and checkpoints in one pass; stop at the first fault."""
    sizes = iter(sorted(claims))
    next_size = next(sizes, None)
    frontier = CompactRange(start.size, start.peaks)
    append = frontier.append
    history = bytearray()
    chained = _chain(links, history, start)
    matched = 0
    vouched = position = start.size
    last = start.last_hash
    if next_size == 0:
        matched, next_size = len(claims[0]), next(sizes, None)
    try:
        for position, link in enumerate(chained, start=start.size + 1):
            append(link)
            last = link
            if position != next_size:
                continue
            contradiction = _compare_root(claims[position], frontier.root(), position, vouched)
            if contradiction:
                return _pinpoint(chained, position, matched, vouched, contradiction)
            vouched, matched = position, matched + len(claims[position])
            next_size = next(sizes, None)
    except _ChainFault as fault:
        return _Scan(fault.position - 1, matched, fault.first_bad_seq, fault.reason)
    end = VerifiedPrefix(position, last, frontier.peaks)
    if next_size is not None:
        reason = (
            f"rollback: a signed checkpoint covers {max(claims)} entries but the log has "
            f"{position}; entries after seq {vouched} are not vouched for by any checkpoint"
        )
        return _Scan(position, matched, position + 1, reason, end)
    return _Scan(position, matched, end=end)


def _pinpoint(
    links: Iterator[bytes], size: int, matched: int, vouched: int, contradiction: str
) -> _Scan:
    """Name the first bad seq after a checkpoint of ``size`` disagreed with the log.

    A root says only that some entry in ``vouched + 1 .. size`` differs. But if
    an entry further on links back into that range, it is the displaced original
    and the chain itself names the intruder's seq: keep checking links to see.
    """
    try:
        for _ in links:
            pass
    except _ChainFault as fault:
        if fault.is_fork and vouched < fault.first_bad_seq <= size:
            return _Scan(size, matched, fault.first_bad_seq, f"{fault.reason}; {contradiction}")
    return _Scan(size, matched, vouched + 1, contradiction)


def _compare_root(roots: list[bytes], root: bytes, size: int, vouched: int) -> str | None:
    """Return why the checkpoints of ``size`` contradict the log's ``root``, if they do."""
    window = f"an entry in seq {vouched + 1}..{size} differs from what was signed"
    if len(set(roots)) > 1:
        return f"fork: {len(roots)} signed checkpoints of size {size} disagree; {window}"
    if roots[0] != root:
        return f"checkpoint of size {size} does not match the log's Merkle root; {window}"
    return None


def _diagnose(
    seq: int, prev_hash: bytes, position: int, prev: bytes, history: bytearray, offset: int = 0
) -> _ChainFault:
    """Name the first bad seq when the entry in ``position`` fails its checks."""
    if prev_hash != prev:
        fork_at = _fork_point(history, prev_hash)
        if fork_at is not None and prev_hash != GENESIS_HASH:
            fork_at += offset
        if fork_at is not None:
            reason = (
                f"the entry in position {position} (seq {seq}) links to seq {fork_at - 1}, "
                f"as the entry in position {fork_at} does: the chain forks at seq {fork_at}"
            )
            return _ChainFault(position, fork_at, reason, is_fork=True)
    if seq != position:
        reason = f"position {position} holds seq {seq}: an entry is missing or moved"
    elif prev_hash != prev:
        reason = f"seq {position} does not link to the hash of seq {position - 1}"
    else:
        reason = f"seq {position} does not match its hash: its content was changed"
    return _ChainFault(position, position, reason, is_fork=False)


def _fork_point(history: bytearray, linked_hash: bytes) -> int | None:
    """Return the seq whose place an entry linking to ``linked_hash`` competes for."""
    if linked_hash == GENESIS_HASH:
        return 1
    end = len(history)
    while (found := history.rfind(linked_hash, 0, end)) >= 0:
        if found % HASH_SIZE == 0:
            return found // HASH_SIZE + 2
        end = found + HASH_SIZE - 1
    return None
