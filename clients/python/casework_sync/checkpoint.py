"""The replica's checkpoint, computed the way the server computes its own.

``count`` is the number of cases in scope; ``checksum`` is the XOR over those
cases of SHA-256 of the ASCII text ``"<reference>:<version>"``, as 64
lower-case hex digits (all zeros for none). XOR is order-independent, so the
client streams its replica one row at a time and memory stays flat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def checkpoint(pairs: Iterable[tuple[str, int]]) -> tuple[int, str]:
    """(count, checksum) of (reference, version) pairs."""
    count = 0
    total = 0
    for reference, version in pairs:
        count += 1
        total ^= int.from_bytes(hashlib.sha256(f"{reference}:{version}".encode()).digest(), "big")
    return count, f"{total:064x}"
