"""The replica's checkpoint, computed the way the server computes its own.

``count`` is the number of cases in scope; ``checksum`` is order-independent
over (reference, version) pairs, so the client streams its replica one row
at a time and memory stays flat in the number of cases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def checkpoint(pairs: Iterable[tuple[str, int]]) -> tuple[int, str]:
    """(count, checksum): checksum = hex of the sum mod 2**256 of sha256("reference:version")."""
    count = 0
    total = 0
    for reference, version in pairs:
        count += 1
        digest = hashlib.sha256(f"{reference}:{version}".encode()).digest()
        total = (total + int.from_bytes(digest, "big")) % (1 << 256)
    return count, f"{total:064x}"
