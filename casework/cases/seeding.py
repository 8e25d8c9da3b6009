"""Synthetic households for benchmarks and demonstrations: never real people.

Values come from seeded pseudo-random generators, so two runs with the same
seed write the same households (with new random references). Document
numbers and their types follow the same sequence as
``benchmarks/synthetic.py`` (``document_numbers`` and ``document_searches``
with the same seed), so the benchmark's searches find the seeded cases.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from itertools import islice
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from casework.cases.rules import utc_today
from casework.cases.service import bulk_register
from casework.offices import service as offices_service
from casework.offices.models import Office

DOCUMENT_TYPES = ("passport", "national_id", "refugee_id", "birth_certificate")
_SYLLABLES = ("ka", "lo", "mi", "ra", "su", "te", "vo", "za", "ne", "di", "ba", "fu", "ho", "ji")
_COUNTRIES = ("SYR", "AFG", "SSD", "COD", "MMR", "ERI", "SOM", "SDN", "IRQ", "XXA")
_NEEDS = ("LP-RR", "SM-CI", "WR-WR", "CR-NE", "ER-NF", "DS-PM")
#: Held by about 5% of households, so a page of 50 filtered on it decrypts about
#: 1,000 cases: the benchmark's filter on an encrypted attribute.
RARE_NEED = "SC-UC"
RARE_NEED_SHARE = 0.05
_CHILD_STATUS = ("not_registered", "certificate_issued", "late_registration_pending", "unknown")
_NATIONALITY = ("nationality_confirmed", "at_risk_of_statelessness", "undetermined", "unknown")


def document_numbers(seed: int = 1) -> Iterator[str]:
    """Distinct numbers such as ``PX4471093``, in the benchmark harness's order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    seen: set[str] = set()
    while True:
        prefix = "".join(rng.choices(string.ascii_uppercase, k=2))
        number = f"{prefix}{rng.randrange(10**7):07d}"
        if number not in seen:
            seen.add(number)
            yield number


def _name(rng: random.Random) -> str:
    def word() -> str:
        return "".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))).capitalize()

    return f"{word()} {word()} Synthetic"


def _member(rng: random.Random, relationship: str, year: int) -> dict[str, Any]:
    return {
        "relationship": relationship,
        "sex": rng.choice(("female", "male")),
        "birth_year": year,
        "country_of_origin": rng.choice(_COUNTRIES),
        "full_name": _name(rng),
        "other_names": [],
        "documents": [],
        "phone": f"+000 {rng.randrange(10**8):08d}",
        "address": f"Block {rng.randint(1, 40)}, shelter {rng.randint(1, 500)}",
        "narrative": "Synthetic record for load testing. " * rng.randint(1, 4),
    }


def synthetic_households(count: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """``count`` valid intake bodies (``IntakeIn`` data); the principal applicant of
    household ``i`` holds document number ``i`` of :func:`document_numbers`."""
    numbers = document_numbers(seed)
    types = random.Random(seed)  # noqa: S311 - same draws as the harness's document_searches
    rng = random.Random(seed * 7919 + 1)  # noqa: S311
    this_year = utc_today().year
    for _ in range(count):
        head = _member(rng, "principal_applicant", rng.randint(this_year - 70, this_year - 30))
        head["sex"] = "female"
        head["documents"] = [{"type": types.choice(DOCUMENT_TYPES), "number": next(numbers)}]
        members = [head]
        if rng.random() < 0.6:
            members.append(_member(rng, "spouse", rng.randint(this_year - 70, this_year - 20)))
        for _child in range(rng.randint(0, 3)):
            child = _member(rng, "child", rng.randint(this_year - 15, this_year - 1))
            child.update(
                birth_registration=rng.choice(_CHILD_STATUS),
                nationality_status=rng.choice(_NATIONALITY),
                mother=0,
            )
            members.append(child)
        needs = rng.sample(_NEEDS, k=rng.choice((0, 0, 1, 2)))
        if rng.random() < RARE_NEED_SHARE:
            needs.append(RARE_NEED)
        yield {"specific_needs": needs, "members": members}


def seed_cases(
    session: Session,
    *,
    count: int,
    office: str,
    seed: int = 1,
    batch_size: int = 500,
) -> list[str]:
    """Write ``count`` synthetic cases for ``office`` (created if missing); return references.

    The outermost caller of a one-off command: commits after each batch so a
    million cases never sit in one transaction or in memory.
    """
    if session.get(Office, office) is None:
        offices_service.create_office(
            session, code=office, name=f"Synthetic office {office}", country_code="XXX"
        )
        session.commit()
    references: list[str] = []
    households = synthetic_households(count, seed)
    while batch := list(islice(households, batch_size)):
        references += bulk_register(session, office, batch, audit_each=False)
        session.commit()
    settle(session)
    return references


def settle(session: Session) -> None:
    """After a bulk load on PostgreSQL: ``VACUUM (ANALYZE)`` now, not when autovacuum wakes.

    A million inserted rows leave the planner's statistics stale and no page
    in the visibility map, so autovacuum would analyse and vacuum them on the
    same cores while the first requests (or a benchmark's measurements) run.
    SQLite's planner needs no statistics for these equality lookups.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    session.commit()
    with bind.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE)"))


def seed(count: int, office: str, seed: int = 1) -> list[str]:
    """For ``python -m benchmarks.in_app casework.cases.seeding:seed``: the app's session."""
    from casework import db

    return seed_cases(db.session(), count=count, office=office, seed=seed)
