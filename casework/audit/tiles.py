"""The Merkle tree's interior hashes as tiles (the C2SP ``tlog-tiles`` layout).

A tile of level ``L`` and index ``N`` holds up to 256 consecutive hashes of
the tree's level ``8 L``: level-0 tiles hold the leaf hashes (RFC 6962
``SHA-256(0x00 || entry hash)``), a level-1 tile the roots of 256 complete
level-0 tiles, and so on. Any node of the tree at level ``h`` is the root of
``2^(h mod 8)`` consecutive hashes of one tile of level ``h // 8``; any
subtree a proof needs is a few such nodes. So an inclusion or consistency
proof reads O(log n) tiles (about three per tile level) however long the log,
and whoever holds the tiles can rebuild every proof without the database.

A tile is stored whole (one row, the concatenated hashes) and grows as
batches are integrated: its first ``W`` hashes never change once written, so
the C2SP partial tile ``tile/L/N.p/W`` is the first ``W`` hashes of the row.

Everything here is pure (dicts of bytes in, dicts of bytes out) so that it can
be property-tested against :mod:`casework.audit.merkle` computing from all
leaves; :mod:`casework.audit.tree` stores and reads the tiles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from hashlib import sha256

from casework.audit.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, leaf_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63 // TILE_HEIGHT + 1

TileKey = tuple[int, int]
"""(level, index) of a tile."""

_NODE = b"\x01"


INNER_FROM = 4
"""A full tile also stores its inner nodes of heights 4..7 (16 + 8 + 4 + 2 hashes): a proof
then takes any node of height 4 or more as it is, and rebuilds one of height 1..3 from at
most 8 hashes, instead of from up to 128."""
INNER_COUNT = sum(TILE_WIDTH >> height for height in range(INNER_FROM, TILE_HEIGHT))


def _inner_offset(height: int) -> int:
    """Where the nodes of ``height`` (INNER_FROM..7) start among a full tile's inner nodes."""
    return sum(TILE_WIDTH >> h for h in range(INNER_FROM, height))


def _full_tile(hashes: bytes | bytearray) -> tuple[bytes, bytes]:
    """The root of a full tile and its inner nodes of heights INNER_FROM..7, concatenated."""
    nodes = [bytes(hashes[i : i + HASH_SIZE]) for i in range(0, TILE_WIDTH * HASH_SIZE, HASH_SIZE)]
    inner: list[bytes] = []
    for height in range(1, TILE_HEIGHT + 1):
        nodes = [sha256(_NODE + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
        if INNER_FROM <= height < TILE_HEIGHT:
            inner.extend(nodes)
    return nodes[0], b"".join(inner)


def inner_nodes(tile: bytes) -> bytes:
    """The stored inner nodes of a full tile (see :data:`INNER_FROM`)."""
    if len(tile) != TILE_WIDTH * HASH_SIZE:
        raise ValueError("only a full tile has stored inner nodes")
    return _full_tile(tile)[1]


def _perfect_root(hashes: bytes | bytearray, count: int) -> bytes:
    """The root over ``count`` (a power of two) consecutive 32-byte hashes."""
    nodes = [bytes(hashes[i : i + HASH_SIZE]) for i in range(0, count * HASH_SIZE, HASH_SIZE)]
    while len(nodes) > 1:
        nodes = [sha256(_NODE + nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
    return nodes[0]


def edge_keys(size: int) -> list[TileKey]:
    """The partial tiles on the right edge of a tree of ``size`` leaves (those still growing)."""
    keys = []
    level = 0
    while (count := size >> (TILE_HEIGHT * level)) > 0:
        if count % TILE_WIDTH:
            keys.append((level, count // TILE_WIDTH))
        level += 1
    return keys


def integrate(
    size: int,
    edge: Mapping[TileKey, bytes],
    entry_hashes: Iterable[bytes],
    inner: dict[TileKey, bytes] | None = None,
) -> tuple[int, dict[TileKey, bytes]]:
    """Append leaves (entry hashes) to a tree of ``size`` leaves; return the new size and
    every tile that changed, whole.

    ``edge`` holds the tiles named by :func:`edge_keys` (``size``) as stored.
    ``inner``, when given, receives the inner nodes of every tile that became
    full (see :data:`INNER_FROM`).
    """
    return integrate_leaf_hashes(size, edge, [leaf_hash(data) for data in entry_hashes], inner)


def integrate_leaf_hashes(
    size: int,
    edge: Mapping[TileKey, bytes],
    leaves: Sequence[bytes],
    inner: dict[TileKey, bytes] | None = None,
) -> tuple[int, dict[TileKey, bytes]]:
    """:func:`integrate` of leaves whose RFC 6962 leaf hashes are already computed (the
    caller also extends its compact range with them: each leaf is hashed once).

    The leaves go into their level-0 tiles a tile's worth at a time: a tile's bytes
    are one join, and only a tile that becomes full pushes its root up a level.
    """
    counts = [size >> (TILE_HEIGHT * level) for level in range(MAX_LEVEL + 1)]
    changed: dict[TileKey, bytearray] = {}

    def open_tile(level: int, count: int) -> tuple[TileKey, bytearray]:
        key = (level, count // TILE_WIDTH)
        tile = changed.get(key)
        if tile is None:
            tile = changed[key] = bytearray(edge.get(key, b"") if count % TILE_WIDTH else b"")
            if len(tile) != (count % TILE_WIDTH) * HASH_SIZE:
                raise ValueError(f"tile {key} does not match the tree size")
        return key, tile

    def push(level: int, node: bytes) -> None:
        while True:
            count = counts[level]
            key, tile = open_tile(level, count)
            tile += node
            counts[level] = count + 1
            if (count + 1) % TILE_WIDTH:
                return
            node, nodes = _full_tile(tile)
            if inner is not None:
                inner[key] = nodes
            level += 1

    done = 0
    while done < len(leaves):
        count = counts[0]
        key, tile = open_tile(0, count)
        room = TILE_WIDTH - count % TILE_WIDTH
        chunk = leaves[done : done + room]
        tile += b"".join(chunk)
        counts[0] = count + len(chunk)
        done += len(chunk)
        if len(chunk) == room:  # the tile is full: its root goes up
            root, nodes = _full_tile(tile)
            if inner is not None:
                inner[key] = nodes
            push(1, root)
    return size + len(leaves), {key: bytes(value) for key, value in changed.items()}


def _node_location(level: int, index: int) -> tuple[TileKey, int, int]:
    """Where the node (level, index) lives: its tile, first hash and number of hashes."""
    tile_level, within = divmod(level, TILE_HEIGHT)
    first = index << within
    return (tile_level, first // TILE_WIDTH), first % TILE_WIDTH, 1 << within


def _decompose(low: int, high: int) -> list[tuple[int, int]]:
    """The perfect aligned subtrees (level, index) covering leaves ``low..high``, left first."""
    nodes = []
    while low < high:
        level = (high - low).bit_length() - 1
        while low % (1 << level):
            level -= 1
        nodes.append((level, low >> level))
        low += 1 << level
    return nodes


def proof_ranges_inclusion(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots make the audit path of leaf ``index``, nearest first."""
    if not 0 <= index < size:
        raise ValueError("index must name a leaf of the tree")
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
    ranges.reverse()
    return ranges


def proof_ranges_consistency(old_size: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots make the RFC 6962 consistency proof (old_size -> size)."""
    if not 0 <= old_size <= size:
        raise ValueError("old_size must be between 0 and the tree size")
    if old_size in (0, size):
        return []
    ranges = []
    low, high, remaining = 0, size, old_size
    whole = True
    while remaining != high - low:
        middle = low + (1 << ((high - low - 1).bit_length() - 1))
        if remaining <= middle - low:
            ranges.append((middle, high))
            high = middle
        else:
            ranges.append((low, middle))
            remaining -= middle - low
            low = middle
            whole = False
    if not whole:
        ranges.append((low, high))
    ranges.reverse()
    return ranges


def tiles_for(ranges: Iterable[tuple[int, int]]) -> set[TileKey]:
    """Every tile needed to compute the roots of ``ranges``."""
    return {
        _node_location(level, index)[0]
        for low, high in ranges
        for level, index in _decompose(low, high)
    }


def range_root(
    tiles: Mapping[TileKey, bytes],
    low: int,
    high: int,
    inner: Mapping[TileKey, bytes | None] | None = None,
) -> bytes:
    """The RFC 6962 root over leaves ``low..high`` from tiles (see :func:`tiles_for`).

    ``inner`` holds the stored inner nodes of full tiles (None where a tile has
    none): a node of height INNER_FROM or more is then read, not rebuilt.
    Raises KeyError or ValueError when a tile needed is missing or too short.
    """
    if low >= high:
        return EMPTY_ROOT
    nodes = []
    for level, index in _decompose(low, high):
        key, first, count = _node_location(level, index)
        tile = tiles[key]
        part = tile[first * HASH_SIZE : (first + count) * HASH_SIZE]
        if len(part) != count * HASH_SIZE:
            raise ValueError(f"tile {key} is shorter than the tree needs")
        if count == 1:
            nodes.append(part)
            continue
        height = count.bit_length() - 1
        stored = inner.get(key) if inner is not None and height >= INNER_FROM else None
        if stored is not None and len(stored) == INNER_COUNT * HASH_SIZE:
            at = (_inner_offset(height) + (first >> height)) * HASH_SIZE
            nodes.append(stored[at : at + HASH_SIZE])
        else:
            nodes.append(_perfect_root(part, count))
    root = bytes(nodes[-1])
    for node in reversed(nodes[:-1]):
        root = sha256(_NODE + node + root).digest()
    return root


def compact_range(tiles: Mapping[TileKey, bytes], size: int) -> CompactRange:
    """The tree's peaks at ``size``, from tiles."""
    peaks = [range_root(tiles, low, high) for low, high in _peak_ranges(size)]
    return CompactRange(size, peaks)


def _peak_ranges(size: int) -> list[tuple[int, int]]:
    ranges = []
    low = 0
    for bit in reversed(range(size.bit_length())):
        if size & (1 << bit):
            ranges.append((low, low + (1 << bit)))
            low += 1 << bit
    return ranges


# --- The C2SP path layout: tile/<L>/<N>[.p/<W>], N in groups of three digits. ---

_SEGMENT = re.compile(r"(x\d{3}/)*\d{3}(\.p/\d{1,3})?")


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """The C2SP ``tlog-tiles`` path of a hash tile (``width`` < 256: a partial tile)."""
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    path = "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])
    suffix = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{level}/{path}{suffix}"


def parse_index(text: str) -> tuple[int, int]:
    """The index and width named by the ``<N>[.p/<W>]`` part of a tile path.

    Raises ValueError unless the text is in the canonical form (so that one
    tile has one path, as the specification requires).
    """
    if not _SEGMENT.fullmatch(text):
        raise ValueError("not a tile index")
    width = TILE_WIDTH
    if ".p/" in text:
        text, width_text = text.split(".p/")
        width = int(width_text)
        if not 1 <= width < TILE_WIDTH or width_text != str(width):
            raise ValueError("a partial tile's width is 1..255")
    index = int(text.replace("x", "").replace("/", ""))
    if tile_path(0, index, width) != f"tile/0/{text}" + (f".p/{width}" if width < 256 else ""):
        raise ValueError("not the canonical form of this index")
    return index, width
