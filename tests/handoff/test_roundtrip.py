"""Export from one deployment, import into another: two apps, two databases, two keyrings.

The sending deployment is the suite's application; the receiving one is
built here with its own database (SQLite file, or a scratch PostgreSQL
database when the suite runs there), instance folder and keyring.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from casework import create_app, migrate
from casework.audit.models import AuditEntry
from casework.cases.models import Case
from casework.db import get_db, make_engine
from casework.handoff import keys
from casework.handoff.cli import handoff_group
from casework.handoff.models import Partner
from casework.handoff.partner_package import seal_package
from casework.offices.models import Office
from casework.security.app import ensure_keyring, holder
from casework.security.case_keys import attach_keyring
from tests.handoff.conftest import CASES, PARTNERS, Api, Caller, consent_body, raw

SHARED = [
    "members.relationship",
    "members.sex",
    "members.full_name",
    "members.birth_year",
    "members.country_of_origin",
    "specific_needs",
]


@pytest.fixture(scope="module")
def receiver_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path_factory.mktemp('receiver') / 'receiver.db'}"
        return
    name = f"casework_rx_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(database_url).set(database=name).render_as_string(False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def receiver(receiver_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The partner's own casework deployment, with an office to import into."""
    instance = tmp_path_factory.mktemp("receiver-instance")
    other = create_app({"database_url": receiver_url, "instance_path": str(instance)})
    migrate.upgrade(get_db(other).engine)
    ensure_keyring(other)
    with get_db(other).session_factory() as session:
        session.add(Office(code="rx-01", name="Receiving office", country_code="JOR"))
        session.commit()
    yield other
    get_db(other).engine.dispose()


def _register_sender(receiver: Flask, code: str, verify: bytes) -> None:
    with get_db(receiver).session_factory() as session:
        if session.scalar(select(Partner).where(Partner.code == code)) is None:
            session.add(
                Partner(
                    code=code,
                    name="Sending deployment",
                    public_key=raw(X25519PrivateKey.generate().public_key()),
                    verify_key=verify,
                )
            )
            session.commit()


def _cases(receiver: Flask) -> int:
    with get_db(receiver).session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def _import(receiver: Flask, path: Path, *args: str) -> Any:
    runner = receiver.test_cli_runner()
    return runner.invoke(handoff_group, ["import", str(path), *args])


@pytest.fixture
def package(
    app: Flask,
    api: Api,
    client: FlaskClient,
    admin: Caller,
    receiver: Flask,
    worker_a: dict[str, str],
    supervisor_a2: Caller,
    tmp_path: Path,
) -> tuple[Path, dict[str, Any]]:
    """A package sent from the suite's app to ``receiver`` (registered as partner ``rx``)."""
    published = keys.public_keys(holder(receiver).get())
    body = {"code": "rx", "name": "Receiver", "public_key": published.x25519}
    assert client.post(PARTNERS, json=body, headers=admin.headers).status_code == 201
    _register_sender(receiver, "tx", base64.b64decode(published_sender(app)))
    case = api.new_case(
        worker_a,
        phone="+962 6 000 0000",
        narrative="Fled after threats; do not contact relatives.",
        address="Block 4, shelter 12",
        place_of_birth="Homs",
    )
    reference = case["reference"]
    patch = client.patch(
        f"{CASES}/{reference}",
        json={"specific_needs": ["SM-MI"]},
        headers={**worker_a, "If-Match": f'"v{case["version"]}"'},
    )
    assert patch.status_code == 200, patch.get_json()
    given = consent_body(case["members"][0]["id"], ["rx"], fields=SHARED)
    assert api.consent(reference, worker_a, **given).status_code == 201
    handoff = api.handoff(reference, worker_a, kind="partner", partner="rx").get_json()
    assert api.transition(reference, supervisor_a2.headers, "approved").status_code == 200
    assert api.transition(reference, supervisor_a2.headers, "sent").status_code == 200
    blob = client.get(
        f"{CASES}/{reference}/handoffs/{handoff['id']}/package", headers=supervisor_a2.headers
    ).data
    path = tmp_path / "case.cwpp"
    path.write_bytes(blob)
    return path, patch.get_json()


def published_sender(app: Flask) -> str:
    return keys.public_keys(holder(app).get()).ed25519


def test_round_trip_keeps_consented_fields_and_nothing_else(
    receiver: Flask, package: tuple[Path, dict[str, Any]]
) -> None:
    path, original = package
    before = _cases(receiver)
    result = _import(receiver, path, "--office", "rx-01", "--sender", "tx")
    assert result.exit_code == 0, result.output
    reference = result.output.split()[3]
    assert reference != original["reference"]
    assert _cases(receiver) == before + 1
    with get_db(receiver).session_factory() as session:
        attach_keyring(session, holder(receiver).get())
        case = session.scalars(select(Case).where(Case.reference == reference)).one()
        assert case.office_code == "rx-01"
        assert case.specific_needs == ["SM-MI"]
        (sent,) = original["members"]
        (got,) = case.members
        for name in ("relationship", "sex", "full_name", "birth_year", "country_of_origin"):
            assert getattr(got, name) == sent[name], name
        for name in ("phone", "narrative", "address", "place_of_birth", "date_of_birth"):
            assert sent[name] is not None or name == "date_of_birth"
            assert getattr(got, name) is None, name
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.target == reference, AuditEntry.action == "handoff.import"
            )
        ).one()
        assert "members.full_name" in entry.fields
        assert sent["full_name"] not in entry.fields


def test_the_sender_is_found_by_its_key(
    receiver: Flask, package: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = package
    result = _import(receiver, path, "--office", "rx-01")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("where", [10, 120, -10])
def test_a_tampered_package_is_refused(
    receiver: Flask, package: tuple[Path, dict[str, Any]], where: int
) -> None:
    path, _ = package
    blob = bytearray(path.read_bytes())
    blob[where] ^= 0x01
    path.write_bytes(bytes(blob))
    before = _cases(receiver)
    result = _import(receiver, path, "--office", "rx-01")
    assert result.exit_code != 0
    assert result.output.count("\n") == 1
    assert "refused" in result.output
    assert _cases(receiver) == before


def test_unknown_signer_and_wrong_recipient_are_refused(
    app: Flask, receiver: Flask, tmp_path: Path
) -> None:
    fields = {"members": [{"relationship": "principal_applicant", "sex": "male", "full_name": "X"}]}
    stranger = Ed25519PrivateKey.generate()
    ours = keys.receiving_keys(holder(receiver).get())[0].public_key()
    unknown = tmp_path / "unknown.cwpp"
    unknown.write_bytes(seal_package(fields, ours, stranger, {}))
    before = _cases(receiver)
    result = _import(receiver, unknown, "--office", "rx-01")
    assert result.exit_code == 1
    assert "no registered partner" in result.output

    _register_sender(receiver, "tx", base64.b64decode(published_sender(app)))
    elsewhere = X25519PrivateKey.generate().public_key()
    misdirected = tmp_path / "misdirected.cwpp"
    misdirected.write_bytes(seal_package(fields, elsewhere, holder(app).get().signing_key, {}))
    result = _import(receiver, misdirected, "--office", "rx-01")
    assert result.exit_code == 1
    assert "another recipient" in result.output
    assert _cases(receiver) == before


def test_contents_that_are_not_a_household_are_refused(
    app: Flask, receiver: Flask, tmp_path: Path
) -> None:
    _register_sender(receiver, "tx", base64.b64decode(published_sender(app)))
    ours = keys.receiving_keys(holder(receiver).get())[0].public_key()
    fields = {"members": [{"full_name": "Only a name"}]}
    path = tmp_path / "partial.cwpp"
    path.write_bytes(seal_package(fields, ours, holder(app).get().signing_key, {}))
    before = _cases(receiver)
    result = _import(receiver, path, "--office", "rx-01")
    assert result.exit_code == 1
    assert "members.0.relationship" in result.output
    assert "Only a name" not in result.output
    assert _cases(receiver) == before


def test_public_key_command(receiver: Flask) -> None:
    result = receiver.test_cli_runner().invoke(handoff_group, ["public-key"])
    assert result.exit_code == 0
    published = keys.public_keys(holder(receiver).get())
    assert published.x25519 in result.output
    assert published.ed25519 in result.output
