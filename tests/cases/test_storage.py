"""What the database holds: sealed attributes of equal size, blind indexes, re-indexing."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases import indexes, service
from casework.cases.models import MEMBER_FIELDS, BlindIndexEntry, Case, CaseMember
from casework.security.app import holder
from casework.security.blind_index import expected_false_candidates
from casework.security.case_keys import attach_keyring
from casework.security.columns import PaddedJSON, erase_ciphertext
from casework.security.errors import CodecError
from casework.security.keyring import Keyring
from casework.security.keyring_json import dump_keyring, parse_keyring
from tests.cases.conftest import household, member, unique


def stored_sizes(session: Session, case_ref: str) -> list[dict[str, int | None]]:
    """Ciphertext length per encrypted column of each member of a case (None = SQL NULL)."""
    table = CaseMember.__table__
    case_id = session.scalar(select(Case.id).where(Case.reference == case_ref))
    columns = [table.c[name] for name in MEMBER_FIELDS if name != "relationship"]
    rows = session.execute(
        select(*columns).where(table.c.case_id == case_id).order_by(table.c.position)
    ).all()
    sizes = []
    for row in rows:
        pairs = zip(columns, row, strict=True)
        sizes.append({column.name: None if v is None else len(v) for column, v in pairs})
    return sizes


def test_values_and_absences_of_low_cardinality_fields_are_indistinguishable(
    db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    adult = member(sex="female", country_of_origin="SYR", birth_year=1990)
    child = {
        "relationship": "child",
        "sex": "unknown",
        "birth_year": 2019,
        "full_name": "Kid",
        "mother": 0,
        "birth_registration": "registered_no_certificate",
        "nationality_status": "at_risk_of_statelessness",
    }
    other = member(relationship="spouse", sex="male", country_of_origin=None, birth_year=None)
    ref = register(worker_a, household(adult, child, other))["reference"]
    sizes = stored_sizes(db_session, ref)
    for column in (
        "sex",
        "birth_year",
        "country_of_origin",
        "birth_registration",
        "nationality_status",
        "mother",
        "date_of_birth",
        "registration_risk",
        "phone",
    ):
        lengths = {row[column] for row in sizes}
        assert len(lengths) == 1, column
        assert None not in lengths, column  # absence is stored encrypted too


def test_the_number_of_needs_codes_is_hidden(
    db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    table = Case.__table__
    lengths = set()
    for needs in ([], ["SV-VA"], ["SV-VA", "TR-PI", "SM-CI", "LP-RR", "SC-UC"]):
        ref = register(worker_a, household(specific_needs=needs))["reference"]
        blob = db_session.scalar(select(table.c.specific_needs).where(table.c.reference == ref))
        lengths.add(len(blob))
    assert len(lengths) == 1


def test_padded_codec_round_trips_and_checks_types() -> None:
    day = PaddedJSON(
        "date", datetime.date, 16, lambda d: d.isoformat(), datetime.date.fromisoformat
    )
    encoded = day.encode(datetime.date(2001, 2, 3))
    assert len(encoded) == 16
    assert day.decode(encoded) == datetime.date(2001, 2, 3)
    assert day.decode(day.encode(None)) is None
    assert len(day.encode(None)) == 16
    number = PaddedJSON("int", int, 8, lambda v: v, lambda v: v).encode(5)
    with pytest.raises(CodecError):
        CaseMember.full_name.codec.decode(number)  # a text column refuses a stored int


def test_erase_ciphertext_nulls_every_encrypted_column() -> None:
    row = CaseMember(case_id=uuid.uuid4(), position=0, relationship="child")
    row._full_name_ciphertext = b"x"  # type: ignore[attr-defined]
    row.narrative = "pending"
    erase_ciphertext(row)
    assert row._full_name_ciphertext is None  # type: ignore[attr-defined]
    assert row._narrative_ciphertext is None  # type: ignore[attr-defined]


# --- blind indexes ------------------------------------------------------------------------


def test_bit_lengths_keep_lookups_flat_at_a_million_cases() -> None:
    # ~1.5 documents and ~3 named members per case at 10^6 cases
    assert expected_false_candidates(1_500_000, indexes.BITS["document_number"]) < 0.1
    assert expected_false_candidates(3_000_000, indexes.BITS["name_birth_year"]) < 3


def test_index_values_fit_their_bits(
    db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    register(worker_a, household(member(documents=[{"type": "other", "number": unique("B")}])))
    for name, value in db_session.execute(select(BlindIndexEntry.name, BlindIndexEntry.value)):
        assert 0 <= value < 2 ** indexes.BITS[name]


def test_document_keys_ignore_case_separators_and_accents() -> None:
    assert indexes.document_key("p 12-34/56") == indexes.document_key("P123456") == "p123456"
    assert indexes.document_key(" - / ") is None


def copy_with_new_root(app: Flask) -> Keyring:
    keyring = parse_keyring(dump_keyring(holder(app).get()))
    keyring.new_blind_index_root()
    return keyring


def test_reindex_all_moves_every_entry_to_the_new_root_and_search_keeps_working(
    app: Flask, db_session: Session, worker_a: dict[str, str], register: Any
) -> None:
    number = unique("RIX")
    ref = register(worker_a, household(member(documents=[{"type": "passport", "number": number}])))
    register(worker_a, household(member(birth_year=None)))
    keyring = copy_with_new_root(app)
    attach_keyring(db_session, keyring)
    probe = indexes.Probe(indexes.DOCUMENT_NUMBER, (number.lower(),))

    # Before re-indexing, entries of root 1 are found through the new keyring too.
    before = indexes.lookup(db_session, keyring, [probe], office="amm-01")
    assert [m.case.reference for m in before] == [ref["reference"]]

    batches: list[int] = []
    written = service.reindex_all(
        db_session, keyring, batch_size=1, on_batch=lambda: batches.append(1)
    )
    versions = list(db_session.scalars(select(BlindIndexEntry.root_version)))
    assert set(versions) == {2}
    assert written == len(versions)
    assert len(batches) >= 2
    after = indexes.lookup(db_session, keyring, [probe], office="amm-01")
    assert [m.case.reference for m in after] == [ref["reference"]]
    # The service's own keyring (root 1 only) no longer finds it: the index moved.
    assert indexes.lookup(db_session, holder(app).get(), [probe], office="amm-01") == []
