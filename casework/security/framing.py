"""Unambiguous concatenation of byte strings for MAC and AAD inputs.

Plain concatenation is ambiguous (``"ab" + "c" == "a" + "bc"``), which would let a
ciphertext bound to one context verify under another. Each part is therefore
preceded by its length as a 4-byte big-endian unsigned integer.
"""

from __future__ import annotations

MAX_PART_LENGTH = 2**32 - 1


def length_prefixed(*parts: bytes) -> bytes:
    """Return the parts joined as ``len(part) || part`` for each part, in order.

    Raises ValueError for a part too long for its 4-byte length prefix.
    """
    framed: list[bytes] = []
    for part in parts:
        size = len(part)
        if size > MAX_PART_LENGTH:
            raise ValueError("part too long to frame")
        framed.append(size.to_bytes(4, "big"))
        framed.append(part)
    return b"".join(framed)
