"""Leak tests: personal data sent through the API never reaches storage, logs or the audit log.

Cases whose names, document numbers, phones, addresses, narratives (and the
other free-text fields) carry unique canary strings are created, read, listed,
searched, changed and one of them erased, through the HTTP API of a scratch
service that really commits. Then every byte the service wrote is scanned:
on SQLite the database file and its write-ahead log, on PostgreSQL a text dump
of every table (``COPY ... TO STDOUT``) and every value of every column as
bytes; also the captured application log and the audit table. No canary may
appear in any spelling the code could produce (as sent, case-folded, as a
name key or document key, UTF-16). After the erasure, the erased case's
wrapped data key is gone from every file too, so its ciphertext cannot be
opened even with the keyring.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from casework.audit.models import AuditEntry
from casework.cases.indexes import document_key
from casework.cases.models import Case, CaseMember
from casework.cases.names import name_key
from casework.db import get_db
from casework.security.app import holder
from casework.security.case_keys import attach_keyring, data_key_cache
from casework.security.errors import MissingDataKeyError
from casework.security.models import CaseKey
from tests.cases.scratch import Scratch, scratch_service
from tests.conftest import erase_by_two_people

CASES = "/api/v1/cases"
OFFICE = "leak-01"


class Capture(logging.Handler):
    """Keeps every record, formatted the way casework's handler would and raw."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from casework.logs import JsonFormatter

        self.texts.append(JsonFormatter().format(record))
        self.texts.append(repr(record.__dict__))


@pytest.fixture
def captured_logs() -> Iterator[Capture]:
    capture = Capture()
    loggers = [logging.getLogger(), logging.getLogger("casework"), logging.getLogger("sqlalchemy")]
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(capture)
        logger.setLevel(logging.DEBUG)
    yield capture
    for logger, level in saved:
        logger.removeHandler(capture)
        logger.setLevel(level)


@pytest.fixture
def scratch(database_url: str, tmp_path: Path, captured_logs: Capture) -> Iterator[Scratch]:
    with scratch_service(database_url, tmp_path) as service:
        service.add_office(OFFICE)
        yield service


class Canaries:
    """Unique strings, one per field, that must never be stored or logged in clear."""

    def __init__(self, tag: str) -> None:
        self.name = f"Xylophant Quorrig{tag}"
        self.other_name = f"Zembrowicz Ulvaeth{tag}"
        self.document = f"QZX{tag}7719305"
        self.phone = f"+977 31{tag[-1:] or '0'}4 159 2653"
        self.address = f"Tent row Vexhollow{tag}, block 9"
        self.narrative = f"Fled Brimscarth{tag} after the raid"
        self.place = f"Ondraquil{tag}"
        self.reason = f"Mother hides from Krevvastan{tag} police"
        self.child = f"Pellorin Quorrig{tag}"

    def strings(self) -> list[str]:
        return [
            self.name,
            self.other_name,
            self.document,
            self.phone,
            self.address,
            self.narrative,
            self.place,
            self.reason,
            self.child,
        ]

    def needles(self) -> list[bytes]:
        """Every spelling worth looking for, as bytes."""
        forms: set[str] = set()
        for value in self.strings():
            forms |= {value, value.lower(), value.upper(), value.casefold()}
            # Distinctive fragments catch a value stored split or re-spaced.
            forms |= {word for word in value.split() if len(word) >= 8}
        forms |= {name_key(self.name), name_key(self.other_name), name_key(self.child)}
        forms.add(document_key(self.document) or "")
        forms.add(self.phone.replace(" ", ""))
        needles = set()
        for form in filter(None, forms):
            needles |= {form.encode("utf-8"), form.encode("utf-16-le"), form.encode("utf-16-be")}
        return sorted(needles)


def household(canary: Canaries) -> dict[str, Any]:
    return {
        "specific_needs": ["SV-VA"],
        "members": [
            {
                "relationship": "principal_applicant",
                "sex": "female",
                "birth_year": 1984,
                "full_name": canary.name,
                "other_names": [canary.other_name],
                "place_of_birth": canary.place,
                "documents": [{"type": "passport", "number": canary.document}],
                "phone": canary.phone,
                "address": canary.address,
                "narrative": canary.narrative,
                "country_of_origin": "SYR",
            },
            {
                "relationship": "child",
                "sex": "male",
                "birth_year": 2019,
                "full_name": canary.child,
                "mother": 0,
                "birth_registration": "not_registered",
                "nationality_status": "at_risk_of_statelessness",
                "registration_risk": {
                    "exposes_parent": True,
                    "decision": "defer",
                    "reason": canary.reason,
                },
            },
        ],
    }


def exercise(scratch: Scratch, kept: Canaries, erased: Canaries) -> dict[str, Any]:
    """Use every case endpoint with canary data; return what the test needs afterwards."""
    client = scratch.app.test_client()
    worker = {"X-Test-Principal": f"caseworker;{OFFICE};leak-worker"}
    refs = {}
    for label, canary in (("kept", kept), ("erased", erased)):
        created = client.post(CASES, json=household(canary), headers=worker)
        assert created.status_code == 201, created.get_json()
        refs[label] = created.get_json()["reference"]
        # a second registration of the same person: a duplicate is detected
        again = client.post(CASES, json=household(canary), headers=worker)
        assert refs[label] in again.get_json()["possible_duplicates"]
    url = f"{CASES}/{refs['kept']}"
    read = client.get(url, headers=worker)
    assert read.get_json()["members"][0]["narrative"] == kept.narrative
    head = read.get_json()["members"][0]["id"]
    change = {"members": {"change": [{"id": head, "address": kept.address + " (moved)"}]}}
    assert client.patch(url, json=change, headers={**worker, "If-Match": '"v1"'}).status_code == 200
    for query in (
        {"document_number": kept.document},
        {"full_name": kept.name, "birth_year": 1984},
        {"document_number": kept.document + "9"},  # a miss, logged and audited too
    ):
        assert client.post(f"{CASES}/search", json=query, headers=worker).status_code == 200
    assert (
        client.get(CASES, query_string={"specific_need": "SV-VA"}, headers=worker).status_code
        == 200
    )
    assert client.get(f"{url}/history", headers=worker).status_code == 200
    assert client.post(f"{url}/duplicates", headers=worker).status_code == 200
    bad = household(kept)
    bad["members"][0]["sex"] = kept.name  # refused: the value must not be echoed or logged
    refused = client.post(CASES, json=bad, headers=worker)
    assert refused.status_code == 422
    assert kept.name not in refused.get_data(as_text=True)

    with get_db(scratch.app).session_factory() as session:
        case_id = session.scalar(select(Case.id).where(Case.reference == refs["erased"]))
        wrapped = session.get_one(CaseKey, case_id).wrapped_key
        ciphertext = session.scalar(
            select(CaseMember.__table__.c.narrative).where(CaseMember.case_id == case_id)
        )
    return {"refs": refs, "case_id": case_id, "wrapped": bytes(wrapped), "ciphertext": ciphertext}


def erase(scratch: Scratch, reference: str) -> None:
    client = scratch.app.test_client()
    supervisor = {"X-Test-Principal": f"supervisor;{OFFICE};leak-supervisor"}
    second = {"X-Test-Principal": f"supervisor;{OFFICE};leak-supervisor-2"}
    gone = erase_by_two_people(client, reference, supervisor, second)
    assert gone.status_code == 200
    assert client.get(f"{CASES}/{reference}", headers=supervisor).status_code == 410


def sqlite_bytes(scratch: Scratch) -> dict[str, bytes]:
    assert scratch.sqlite_file is not None
    found = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{scratch.sqlite_file}{suffix}")
        if path.exists():
            found[path.name] = path.read_bytes()
    return found


def postgres_dump(scratch: Scratch) -> dict[str, bytes]:
    """Each table as COPY text and as the raw bytes of every value."""
    engine = get_db(scratch.app).engine
    dumps: dict[str, bytes] = {}
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            raw = connection.connection.driver_connection
            assert raw is not None
            copied = bytearray()
            with raw.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:  # type: ignore[attr-defined]
                for block in copy:
                    copied += bytes(block)
            dumps[f"{table} (COPY)"] = bytes(copied)
            values = bytearray()
            for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    values += (
                        value if isinstance(value, bytes | memoryview) else str(value).encode()
                    )
                    values += b"\x00"
            dumps[f"{table} (values)"] = bytes(values)
    return dumps


def stored_bytes(scratch: Scratch) -> dict[str, bytes]:
    return sqlite_bytes(scratch) if scratch.backend == "sqlite" else postgres_dump(scratch)


def assert_no_canary(stored: dict[str, bytes], needles: list[bytes]) -> None:
    for where, blob in stored.items():
        leaked = [needle for needle in needles if needle in blob]
        assert not leaked, f"canary in {where}"


def test_no_canary_in_storage_logs_or_audit_and_erasure_is_final(
    scratch: Scratch, captured_logs: Capture
) -> None:
    kept, erased = Canaries("A1"), Canaries("B2")
    result = exercise(scratch, kept, erased)
    needles = kept.needles() + erased.needles()

    before = stored_bytes(scratch)
    # Positive controls: the scan sees what was written (plaintext references, the WAL).
    everything = b"".join(before.values())
    assert all(ref.encode() in everything for ref in result["refs"].values())
    if scratch.backend == "sqlite":
        wal = [blob for name, blob in before.items() if name.endswith("-wal")]
        assert wal, "the WAL is scanned"
        assert len(wal[0]) > 10_000, "the WAL holds the writes"
        assert result["refs"]["kept"].encode() in wal[0]
    assert result["wrapped"] in everything
    assert_no_canary(before, needles)

    erase(scratch, result["refs"]["erased"])
    after = stored_bytes(scratch)
    assert_no_canary(after, needles)
    # The erased case: its data key is gone from every file, so the ciphertext
    # copied before the erasure cannot be opened, although the keyring is intact.
    assert result["ciphertext"]
    for where, blob in after.items():
        assert result["wrapped"] not in blob, f"erased case's wrapped key in {where}"
    with get_db(scratch.app).session_factory() as session:
        attach_keyring(session, holder(scratch.app).get())
        with pytest.raises(MissingDataKeyError):
            data_key_cache(session).get(result["case_id"])
        members = select(CaseMember.id).where(CaseMember.case_id == result["case_id"])
        assert session.scalar(members) is None

    logs = "\n".join(captured_logs.texts)
    assert result["refs"]["kept"] in logs or "/api/v1/cases" in logs  # the capture worked
    for value in kept.strings() + erased.strings():
        assert value not in logs
        assert value.lower() not in logs.lower()

    with get_db(scratch.app).session_factory() as session:
        for entry in session.scalars(select(AuditEntry)):
            row = repr([getattr(entry, c.key) for c in AuditEntry.__table__.columns])
            for value in kept.strings() + erased.strings():
                assert value not in row
