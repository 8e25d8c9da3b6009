"""Synthetic, deterministic test data for request bodies and seeding.

Nothing here is or resembles a real person's record: values come from a seeded
pseudo-random generator, so two runs send the same requests and results compare.
"""

from __future__ import annotations

import random
import string

DOCUMENT_TYPES = ("passport", "national_id", "refugee_id", "birth_certificate")


def document_numbers(count: int, seed: int = 1) -> list[str]:
    """``count`` distinct document numbers such as ``"PX4471093"``."""
    rng = random.Random(seed)  # not for security: reproducible test data
    numbers: dict[str, None] = {}
    while len(numbers) < count:
        prefix = "".join(rng.choices(string.ascii_uppercase, k=2))
        numbers[f"{prefix}{rng.randrange(10**7):07d}"] = None
    return list(numbers)


def document_searches(count: int, seed: int = 1) -> list[dict[str, str]]:
    """Bodies shaped like a search by document number, one per number."""
    rng = random.Random(seed)
    return [
        {"document_type": rng.choice(DOCUMENT_TYPES), "document_number": number}
        for number in document_numbers(count, seed)
    ]
