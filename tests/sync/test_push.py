"""Push: exactly once, device order, rejections that block nothing, three-way merge."""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.cases.reference import new_reference
from casework.sync.models import Mutation, SyncConflict
from tests.conftest import erase_by_two_people, principal_headers, stored_ciphertexts
from tests.sync.conftest import household
from tests.sync.signing import Device, new_mutation
from tests.sync.test_pull import SECOND, STAFF, create, hand_over, patch, pull_all


def intake(name: str = "Amina Test") -> dict[str, Any]:
    body = household(full_name=name)
    body["client_ref"] = str(uuid.uuid4())
    body["members"][0]["client_ref"] = str(uuid.uuid4())
    return body


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["results"])


def cases_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def test_create_maps_client_refs_and_is_exactly_once(device: Device, db_session: Session) -> None:
    body = intake()
    mutation = new_mutation(1, "create", body)
    (result,) = results(device.push([mutation]))
    assert result["status"] == "applied"
    assert result["version"] == 1
    assert result["refs"][body["client_ref"]] == result["reference"]
    member_ref = body["members"][0]["client_ref"]
    assert uuid.UUID(result["refs"][member_ref])
    count = cases_count(db_session)
    (again,) = results(device.push([mutation]))
    assert again["status"] == "duplicate"
    assert again["reference"] == result["reference"]
    assert again["refs"] == result["refs"]
    assert cases_count(db_session) == count
    # The same id with another body is rejected, and nothing is applied.
    changed = {**mutation, "changes": intake("Other Person")}
    (reused,) = results(device.push([changed]))
    assert reused["status"] == "rejected"
    assert reused["errors"]["type"] == "reused-id"
    assert cases_count(db_session) == count


def test_write_checkpoint_is_reached_by_the_feed(device: Device) -> None:
    response = device.push([new_mutation(1, "create", intake())])
    checkpoint = response.get_json()["write_checkpoint"]
    _, page = pull_all(device)
    assert page["checkpoint"]["seq"] >= checkpoint > 0


def test_a_gap_answers_out_of_order_and_blocks_what_follows(device: Device) -> None:
    first = new_mutation(1, "create", intake())
    third = new_mutation(3, "create", intake())
    gap = results(device.push([third, first]))
    assert gap[0]["status"] == "out_of_order"
    assert gap[0]["expected_seq"] == 1
    assert gap[1]["status"] == "out_of_order"  # nothing after the gap is applied
    done = results(device.push([first, new_mutation(2, "create", intake()), third]))
    assert [r["status"] for r in done] == ["applied", "applied", "applied"]


def test_a_rejected_mutation_blocks_nothing(device: Device) -> None:
    bad = intake()
    bad["members"][0]["sex"] = "unknown-value"
    answer = results(
        device.push([new_mutation(1, "create", bad), new_mutation(2, "create", intake())])
    )
    assert answer[0]["status"] == "rejected"
    assert answer[0]["errors"]["type"] == "invalid"
    assert "members" in answer[0]["errors"]["fields"]
    assert answer[1]["status"] == "applied"
    # The rejected one used up its number: seq 3 is next.
    (nxt,) = results(device.push([new_mutation(3, "create", intake())]))
    assert nxt["status"] == "applied"


def test_a_rejected_update_of_one_member_blocks_nothing(device: Device) -> None:
    """Field errors keyed by a list position (members.change[0]) are stored and answered
    as JSON can hold them, not as a 500 that a device would resend forever."""
    body = intake()
    (created,) = results(device.push([new_mutation(1, "create", body)]))
    member_id = created["refs"][body["members"][0]["client_ref"]]
    bad = {"members": {"change": [{"id": member_id, "phone": "not a phone"}]}}
    answer = results(
        device.push(
            [
                new_mutation(2, "update", bad, reference=created["reference"], base_version=1),
                new_mutation(3, "create", intake()),
            ]
        )
    )
    assert answer[0]["status"] == "rejected"
    assert "members" in answer[0]["errors"]["fields"]
    assert answer[1]["status"] == "applied"


def test_update_by_client_ref_and_merge_of_disjoint_fields(
    client: FlaskClient, device: Device
) -> None:
    body = intake()
    (created,) = results(device.push([new_mutation(1, "create", body)]))
    reference = created["reference"]
    member_ref = body["members"][0]["client_ref"]
    # The server changes the phone; the device, offline since version 1, the address.
    member_id = created["refs"][member_ref]
    changed = patch(
        client, reference, 1, {"members": {"change": [{"id": member_id, "phone": "+962790000000"}]}}
    )
    assert changed.status_code == 200, changed.get_json()
    update = new_mutation(
        2,
        "update",
        {"members": {"change": [{"id": member_ref, "address": "Block 7"}]}},
        reference=body["client_ref"],
        base_version=1,
    )
    (merged,) = results(device.push([update]))
    assert merged["status"] == "applied", merged
    case = client.get(f"/api/v1/cases/{reference}", headers=STAFF).get_json()
    assert case["members"][0]["phone"] == "+962790000000"
    assert case["members"][0]["address"] == "Block 7"


def test_same_field_becomes_a_conflict_kept_for_people(
    client: FlaskClient, device: Device, db_session: Session
) -> None:
    case = create(client)
    reference, member_id = case["reference"], case["members"][0]["id"]
    patch(client, reference, 1, {"members": {"change": [{"id": member_id, "phone": "+111"}]}})
    update = new_mutation(
        1,
        "update",
        {
            "members": {"change": [{"id": member_id, "phone": "+222", "address": "Tent 4"}]},
            "specific_needs": ["SC-UC"],
        },
        reference=reference,
        base_version=1,
    )
    (result,) = results(device.push([update]))
    assert result["status"] == "conflict"
    assert result["conflict_id"]
    now = client.get(f"/api/v1/cases/{reference}", headers=STAFF).get_json()
    assert now["members"][0]["phone"] == "+111"  # never silently overwritten
    assert now["members"][0]["address"] == "Tent 4"  # the rest merged
    assert now["specific_needs"] == ["SC-UC"]
    conflict = client.get(f"/api/v1/sync/conflicts/{result['conflict_id']}", headers=STAFF)
    assert conflict.status_code == 200
    assert conflict.get_json()["fields"] == [
        {"field": f"members.{member_id}.phone", "server": "+111", "device": "+222"}
    ]
    listed = client.get("/api/v1/sync/conflicts", headers=STAFF).get_json()["items"]
    assert [c["id"] for c in listed] == [result["conflict_id"]]
    # The device lists it too.
    assert device.request("GET", "/api/v1/sync/conflicts").get_json()["items"]
    blobs = stored_ciphertexts(db_session, SyncConflict)
    assert all(b"+222" not in (blob or b"") for blob in blobs)


def test_resolve_with_if_match(client: FlaskClient, device: Device) -> None:
    case = create(client)
    reference, member_id = case["reference"], case["members"][0]["id"]
    patch(client, reference, 1, {"members": {"change": [{"id": member_id, "phone": "+111"}]}})
    update = new_mutation(
        1,
        "update",
        {"members": {"change": [{"id": member_id, "phone": "+222"}]}},
        reference=reference,
        base_version=1,
    )
    (result,) = results(device.push([update]))
    path = f"/api/v1/sync/conflicts/{result['conflict_id']}/resolve"
    assert client.post(path, json={"keep": "device"}, headers=STAFF).status_code == 428
    stale = client.post(path, json={"keep": "device"}, headers={**STAFF, "If-Match": '"v9"'})
    assert stale.status_code == 412
    done = client.post(path, json={"keep": "device"}, headers={**STAFF, "If-Match": '"v1"'})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "resolved"
    now = client.get(f"/api/v1/cases/{reference}", headers=STAFF).get_json()
    assert now["members"][0]["phone"] == "+222"
    # The resolution reaches the devices through the feed.
    changes, _ = pull_all(device)
    assert changes[-1]["case"]["members"][0]["phone"] == "+222"
    assert client.get("/api/v1/sync/conflicts", headers=STAFF).get_json()["items"] == []


def test_needs_merge_as_a_set(client: FlaskClient, device: Device) -> None:
    case = create(client)
    reference = case["reference"]
    patch(client, reference, 1, {"specific_needs": ["SC-UC"]})
    update = new_mutation(
        1, "update", {"specific_needs": ["LP-RR"]}, reference=reference, base_version=1
    )
    (result,) = results(device.push([update]))
    assert result["status"] == "applied"
    now = client.get(f"/api/v1/cases/{reference}", headers=STAFF).get_json()
    assert sorted(now["specific_needs"]) == ["LP-RR", "SC-UC"]


def test_two_offline_edits_of_one_field_do_not_conflict_with_themselves(
    client: FlaskClient, device: Device
) -> None:
    case = create(client)
    reference, member_id = case["reference"], case["members"][0]["id"]
    edits = [
        new_mutation(
            seq,
            "update",
            {"members": {"change": [{"id": member_id, "phone": phone}]}},
            reference=reference,
            base_version=1,
        )
        for seq, phone in ((1, "+333"), (2, "+444"))
    ]
    assert [r["status"] for r in results(device.push(edits))] == ["applied", "applied"]


def test_update_of_an_erased_case_is_rejected_as_gone(
    client: FlaskClient, device: Device, db_session: Session
) -> None:
    case = create(client)
    assert erase_by_two_people(client, case["reference"], STAFF, SECOND).status_code == 200
    update = new_mutation(
        1, "update", {"specific_needs": ["SC-UC"]}, reference=case["reference"], base_version=1
    )
    (result,) = results(device.push([update]))
    assert result["status"] == "rejected"
    assert result["errors"]["type"] == "gone"


def test_results_are_sealed(device: Device, db_session: Session) -> None:
    results(device.push([new_mutation(1, "create", intake("Zeynep Canary"))]))
    blobs = stored_ciphertexts(db_session, Mutation)
    assert all(b"Canary" not in (blob or b"") for blob in blobs)
    row = db_session.scalars(select(Mutation)).one()
    assert row.status == "applied"
    assert row.case_version == 1


def test_every_push_result_is_in_the_access_log(device: Device, db_session: Session) -> None:
    from casework.audit.models import AuditEntry

    mutation = new_mutation(1, "create", intake())
    (first,) = results(device.push([mutation]))
    results(device.push([mutation]))
    entries = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "sync.push").order_by(AuditEntry.seq)
    ).all()
    assert [json.loads(e.fields) for e in entries] == [
        ["case", "create.applied"],
        ["create.duplicate"],
    ]
    assert {e.target for e in entries} == {first["reference"]}
    assert {e.device for e in entries} == {device.device_id}
    assert {e.actor for e in entries} == {str(device.user.id)}  # type: ignore[attr-defined]


def test_erasure_destroys_conflicts_and_results_but_keeps_exactly_once(
    client: FlaskClient, device: Device, db_session: Session
) -> None:
    body = intake()
    create_mutation = new_mutation(1, "create", body)
    (created,) = results(device.push([create_mutation]))
    reference, member_id = created["reference"], created["refs"][body["members"][0]["client_ref"]]
    patch(client, reference, 1, {"members": {"change": [{"id": member_id, "phone": "+111"}]}})
    update = new_mutation(
        2,
        "update",
        {"members": {"change": [{"id": member_id, "phone": "+222"}]}},
        reference=reference,
        base_version=1,
    )
    (conflicted,) = results(device.push([update]))
    assert conflicted["status"] == "conflict"
    erased = erase_by_two_people(
        client,
        reference,
        STAFF,
        SECOND,
    )
    assert erased.status_code == 200, erased.get_json()
    assert db_session.scalars(select(SyncConflict)).all() == []
    assert all(blob is None for blob in stored_ciphertexts(db_session, Mutation))
    (again,) = results(device.push([create_mutation]))
    assert again["status"] == "duplicate"
    assert again["reference"] == reference
    assert again["errors"]["type"] == "gone"
    assert cases_count(db_session) == 1


def test_one_request_creates_updates_by_client_ref_and_repeats(device: Device) -> None:
    """What one request creates, a later mutation of the same request can name by its
    client_ref; a mutation sent twice in one request is applied once."""
    body = intake()
    create_mutation = new_mutation(1, "create", body)
    member_ref = body["members"][0]["client_ref"]
    update = new_mutation(
        2,
        "update",
        {"members": {"change": [{"id": member_ref, "address": "Block 9"}]}},
        reference=body["client_ref"],
        base_version=1,
    )
    other_body = {**create_mutation, "changes": intake("Other Person")}
    answer = results(device.push([create_mutation, update, create_mutation, other_body]))
    assert [r["status"] for r in answer] == ["applied", "applied", "duplicate", "rejected"]
    assert answer[1]["reference"] == answer[0]["reference"]
    assert answer[1]["version"] == 2
    assert answer[2]["refs"] == answer[0]["refs"]
    assert answer[3]["errors"]["type"] == "reused-id"
    again = results(device.push([create_mutation, update]))
    assert [(r["status"], r["version"]) for r in again] == [("duplicate", 1), ("duplicate", 2)]


def test_updates_of_cases_out_of_reach_say_why(
    app: Any, client: FlaskClient, device: Device, db_session: Session, make_office: Any
) -> None:
    moved = create(client)
    make_office("amm")
    elsewhere = client.post(
        "/api/v1/cases", json=household(), headers=principal_headers("supervisor", "amm")
    )
    assert elsewhere.status_code == 201, elsewhere.get_json()
    hand_over(app, db_session, moved["reference"], "amm")
    change = {"specific_needs": ["SC-UC"]}
    names = [
        moved["reference"],
        elsewhere.get_json()["reference"],
        new_reference(),
        str(uuid.uuid4()),
        "not a reference",
    ]
    mutations = [
        new_mutation(seq, "update", change, reference=name, base_version=1)
        for seq, name in enumerate(names, start=1)
    ]
    answer = results(device.push(mutations))
    assert [r["errors"]["type"] for r in answer] == [
        "evicted",
        "not-found",
        "not-found",
        "not-found",
        "not-found",
    ]
    assert {r["status"] for r in answer} == {"rejected"}


def _conflict(client: FlaskClient, device: Device, seq: int) -> str:
    case = create(client)
    reference, member_id = case["reference"], case["members"][0]["id"]
    patch(client, reference, 1, {"members": {"change": [{"id": member_id, "phone": "+111"}]}})
    change = {"members": {"change": [{"id": member_id, "phone": "+222"}]}}
    update = new_mutation(seq, "update", change, reference=reference, base_version=1)
    (result,) = results(device.push([update]))
    assert result["status"] == "conflict"
    return str(result["conflict_id"])


def test_conflicts_are_listed_a_page_at_a_time(client: FlaskClient, device: Device) -> None:
    made = [_conflict(client, device, seq) for seq in (1, 2, 3)]
    first = client.get("/api/v1/sync/conflicts?limit=2", headers=STAFF)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["next_cursor"]
    cursor = first.get_json()["next_cursor"]
    second = client.get(f"/api/v1/sync/conflicts?limit=2&cursor={cursor}", headers=STAFF)
    assert second.get_json()["next_cursor"] is None
    listed = [c["id"] for c in first.get_json()["items"] + second.get_json()["items"]]
    assert listed == made  # oldest first, each once
    assert client.get("/api/v1/sync/conflicts?cursor=bad", headers=STAFF).status_code == 422
    assert client.get("/api/v1/sync/conflicts?limit=0", headers=STAFF).status_code == 422
    whole = device.request("GET", "/api/v1/sync/conflicts").get_json()
    assert [c["id"] for c in whole["items"]] == made
    assert whole["next_cursor"] is None


def _entries(session: Session, reference: str, action: str) -> list[Any]:
    from casework.audit.models import AuditEntry

    query = select(AuditEntry).where(AuditEntry.target == reference, AuditEntry.action == action)
    return list(session.scalars(query.order_by(AuditEntry.seq)))


def test_updates_of_one_request_publish_each_case_as_stored(
    app: Any, device: Device, db_session: Session
) -> None:
    """A request's updates are written together; the snapshot the feed seals for each case
    is the case as its rows decrypt, and every write is a ``case.update`` entry too."""
    from casework.security.app import holder
    from casework.security.case_keys import attach_keyring
    from casework.sync import feed

    body = intake()
    child_ref = str(uuid.uuid4())
    body["members"].append(
        {"relationship": "child", "sex": "male", "birth_year": 2015, "full_name": "Sami Test"}
        | {"client_ref": child_ref}
    )
    (created,) = results(device.push([new_mutation(1, "create", body)]))
    assert created["status"] == "applied", created["errors"]
    reference = created["reference"]
    principal = created["refs"][body["members"][0]["client_ref"]]
    first = {
        "specific_needs": ["SC-UC"],
        "members": {"change": [{"id": principal, "phone": "+962791111111", "other_names": []}]},
    }
    second = {
        "members": {
            "remove": [child_ref],
            "add": [{"relationship": "spouse", "sex": "male", "full_name": "Omar Test"}],
        }
    }
    third = {"members": {"change": [{"id": principal, "phone": "+962793333333"}]}}
    attach_keyring(db_session, holder(app).get())

    def pulled_and_stored() -> tuple[Any, Any]:
        changes, _page = pull_all(device)
        (pulled,) = [c for c in changes if c["reference"] == reference]
        db_session.expire_all()
        row = db_session.scalar(select(Case).where(Case.reference == reference))
        assert row is not None
        return pulled, feed.device_view(db_session, row)

    (one,) = results(
        device.push([new_mutation(2, "update", first, reference=reference, base_version=1)])
    )
    assert (one["status"], one["version"]) == ("applied", 2)
    pulled, stored = pulled_and_stored()
    assert pulled["version"] == 2
    assert pulled["case"] == stored
    assert pulled["case"]["members"][0]["phone"] == "+962791111111"
    answer = results(
        device.push(
            [
                new_mutation(3, "update", second, reference=body["client_ref"], base_version=2),
                new_mutation(4, "update", third, reference=reference, base_version=2),
            ]
        )
    )
    assert [(r["status"], r["version"]) for r in answer] == [("applied", 3), ("applied", 4)]
    pulled, stored = pulled_and_stored()
    assert pulled["version"] == 4
    assert pulled["case"] == stored
    assert [m["full_name"] for m in pulled["case"]["members"]] == ["Amina Test", "Omar Test"]
    updates = _entries(db_session, reference, "case.update")
    assert [json.loads(e.fields) for e in updates] == [
        ["members.phone", "specific_needs"],
        ["members.add", "members.full_name", "members.relationship", "members.remove",
         "members.sex"],
        ["members.phone"],
    ]  # fmt: skip
    assert {e.device for e in updates} == {device.device_id}


def test_an_update_refused_by_the_household_rules_leaves_nothing(
    device: Device, db_session: Session
) -> None:
    """Refused after its merge (no principal applicant left): neither its needs nor its
    member change are written, and the next mutation of the request still applies."""
    body = intake()
    (created,) = results(device.push([new_mutation(1, "create", body)]))
    reference = created["reference"]
    member = created["refs"][body["members"][0]["client_ref"]]
    no_principal = {"change": [{"id": member, "relationship": "child"}]}
    refused = {"specific_needs": ["SC-UC"], "members": no_principal}
    fine = {"members": {"change": [{"id": member, "phone": "+962792222222"}]}}
    answer = results(
        device.push(
            [
                new_mutation(2, "update", refused, reference=reference, base_version=1),
                new_mutation(3, "update", fine, reference=reference, base_version=1),
            ]
        )
    )
    assert answer[0]["status"] == "rejected"
    assert answer[0]["errors"]["type"] == "invalid"
    assert (answer[1]["status"], answer[1]["version"]) == ("applied", 2)
    changes, _page = pull_all(device)
    (pulled,) = [c for c in changes if c["reference"] == reference]
    assert pulled["case"]["specific_needs"] == []
    assert pulled["case"]["members"][0]["relationship"] == "principal_applicant"
    assert pulled["case"]["members"][0]["phone"] == "+962792222222"
    updates = _entries(db_session, reference, "case.update")
    assert [json.loads(e.fields) for e in updates] == [["members.phone"]]


def test_a_requests_creates_keep_their_entries_queue_rows_and_refs_and_a_rejected_one_nothing(
    app: Any, device: Device, db_session: Session
) -> None:
    """The creates of a request write their ``case.create`` entries, the cross-office
    check's queue rows and their client references together; a rejected one (its
    client reference used already) leaves none of them, nor a case."""
    from casework.audit.models import AuditEntry
    from casework.cases.models import BlindIndexEntry, DuplicateCheck
    from casework.sync.models import ClientRef

    needy = intake("Mina Park")
    needy["specific_needs"] = ["SC-UC"]
    reused = intake("Rami Haddad")
    reused["members"][0]["client_ref"] = needy["client_ref"]
    bodies = [intake("Amina Test"), needy, reused]
    before = cases_count(db_session)
    answer = results(device.push([new_mutation(n + 1, "create", b) for n, b in enumerate(bodies)]))
    assert [r["status"] for r in answer] == ["applied", "applied", "rejected"]
    assert answer[2]["errors"] == {"type": "invalid", "fields": {"client_ref": ["Already used."]}}
    made = [answer[0]["reference"], answer[1]["reference"]]
    db_session.expire_all()
    assert cases_count(db_session) == before + 2
    ids = set(db_session.scalars(select(Case.id).where(Case.reference.in_(made))))
    assert set(db_session.scalars(select(DuplicateCheck.case_id))) == ids
    assert set(db_session.scalars(select(BlindIndexEntry.case_id))) == ids
    refs = {str(ref) for ref in db_session.scalars(select(ClientRef.client_ref))}
    assert str(reused["client_ref"]) not in refs
    assert len(refs) == 4  # two cases and their one member each
    creates = list(
        db_session.scalars(
            select(AuditEntry).where(AuditEntry.action == "case.create").order_by(AuditEntry.seq)
        )
    )
    assert sorted(e.target for e in creates) == sorted(made)
    fields = {e.target: json.loads(e.fields) for e in creates}
    assert "specific_needs" in fields[made[1]]
    assert "specific_needs" not in fields[made[0]]
    assert "members.full_name" in fields[made[0]]


def test_an_update_of_a_create_of_the_same_request_keeps_its_index_entries_current(
    device: Device, db_session: Session
) -> None:
    """A create is written (its index entries with it) before the request's next update,
    which may name it by its client reference: renaming its member there leaves the
    member indexed under the new name only, as a case registered with that name is."""
    from casework.cases.models import BlindIndexEntry

    renamed = intake("Amina Test")
    member_ref = renamed["members"][0]["client_ref"]
    change = {"members": {"change": [{"id": member_ref, "full_name": "Rami Haddad"}]}}
    mutations = [
        new_mutation(1, "create", renamed),
        new_mutation(2, "update", change, reference=renamed["client_ref"], base_version=1),
        new_mutation(3, "create", intake("Rami Haddad")),
    ]
    answer = results(device.push(mutations))
    assert [(r["status"], r["version"]) for r in answer] == [
        ("applied", 1),
        ("applied", 2),
        ("applied", 1),
    ]

    def entries(reference: str) -> set[tuple[str, int]]:
        query = (
            select(BlindIndexEntry.name, BlindIndexEntry.value)
            .join(Case, Case.id == BlindIndexEntry.case_id)
            .where(Case.reference == reference)
        )
        return {(name, value) for name, value in db_session.execute(query)}

    assert entries(answer[0]["reference"]) == entries(answer[2]["reference"])
    assert entries(answer[0]["reference"])


def test_a_create_failing_while_it_is_written_fails_the_whole_request(
    app: Any, device: Device, db_session: Session, monkeypatch: Any
) -> None:
    """Every refusal comes before the first write; a failure after it (the database's,
    here a refusal where none can be) is never stored as a rejection of a half-written
    create: the request answers 500 and leaves nothing, and the device sends it again."""
    from casework.cases import duplicates
    from casework.errors import ValidationFailed
    from casework.sync.models import ClientRef

    original = duplicates.find_duplicates_each

    def failing(*args: Any, **kwargs: Any) -> Any:
        # after the cases, their keys and index entries are written
        raise ValidationFailed(errors={"json": {"members": ["refused"]}})

    monkeypatch.setattr(duplicates, "find_duplicates_each", failing)
    mutations = [new_mutation(n, "create", intake(f"Person {n}")) for n in (1, 2, 3)]
    before = cases_count(db_session)
    assert device.push(mutations).status_code == 500
    db_session.expire_all()
    assert cases_count(db_session) == before
    assert db_session.scalar(select(func.count()).select_from(Mutation)) == 0
    assert db_session.scalar(select(func.count()).select_from(ClientRef)) == 0
    monkeypatch.setattr(duplicates, "find_duplicates_each", original)
    answer = results(device.push(mutations))
    assert [r["status"] for r in answer] == ["applied"] * 3
    assert cases_count(db_session) == before + 3


def test_creates_of_one_request_find_each_other_as_duplicates_never_themselves(
    device: Device,
) -> None:
    """A request's creates are written together before their duplicate lookups: two
    registrations of one person in one request find each other (whichever came first),
    no case is its own duplicate, and each create's result names what it found, as
    ``POST /cases`` does; a resend answers the same names (the stored result)."""
    bodies = [intake("Amina Test"), intake("Rami Haddad"), intake("Amina Test")]
    mutations = [new_mutation(n + 1, "create", b) for n, b in enumerate(bodies)]
    answer = results(device.push(mutations))
    assert [r["status"] for r in answer] == ["applied"] * 3
    first, other, second = (r["reference"] for r in answer)
    named = {r["reference"]: [d["reference"] for d in r["possible_duplicates"]] for r in answer}
    assert named == {first: [second], other: [], second: [first]}
    assert answer[0]["possible_duplicates"][0]["score"] > 0
    again = results(device.push(mutations))
    assert [r["status"] for r in again] == ["duplicate"] * 3
    assert [r["possible_duplicates"] for r in again] == [r["possible_duplicates"] for r in answer]


def test_a_create_names_an_earlier_case_of_the_office_it_may_duplicate(device: Device) -> None:
    """A registration made offline of someone the office already holds comes back with
    that case among its possible duplicates; an update's result carries none."""
    (earlier,) = results(device.push([new_mutation(1, "create", intake("Layla Haddad"))]))
    (later,) = results(device.push([new_mutation(2, "create", intake("Layla Haddad"))]))
    assert [d["reference"] for d in later["possible_duplicates"]] == [earlier["reference"]]
    assert earlier["possible_duplicates"] == []
    change = {"specific_needs": ["LP-RR"]}
    update = new_mutation(3, "update", change, reference=later["reference"], base_version=1)
    (updated,) = results(device.push([update]))
    assert updated["status"] == "applied"
    assert "possible_duplicates" not in updated
