"""The replica: sealed rows, outbox in the same transaction, pulled pages merged under edits."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from casework_sync.checkpoint import checkpoint
from casework_sync.replica import REPLICA_FILE, Replica, ReplicaError, UnknownCase

INTAKE = {
    "specific_needs": ["SM-MI"],
    "members": [
        {"relationship": "principal_applicant", "sex": "female", "full_name": "Canary Amina"}
    ],
}


def _server_case(reference: str, version: int, **fields: Any) -> dict[str, Any]:
    case = {
        "reference": reference,
        "office": "amm-01",
        "stage": "intake",
        "version": version,
        "specific_needs": [],
        "members": [
            {"id": "m-1", "relationship": "principal_applicant", "sex": "male", "full_name": "A"}
        ],
    }
    case.update(fields)
    return case


def _upsert(reference: str, version: int, **fields: Any) -> dict[str, Any]:
    return {
        "seq": version,
        "op": "upsert",
        "reference": reference,
        "version": version,
        "case": _server_case(reference, version, **fields),
    }


def test_a_new_case_and_its_mutation_land_together(replica: Replica) -> None:
    client_ref, view = replica.create_case(INTAKE, "amm-01")
    assert view["members"][0]["full_name"] == "Canary Amina"
    [pending] = replica.pending()
    assert pending.device_seq == 1
    assert pending.body["op"] == "create"
    assert pending.body["changes"]["client_ref"] == client_ref
    assert pending.body["changes"]["members"][0]["client_ref"]
    assert replica.case(client_ref)["office"] == "amm-01"


def test_a_failed_transaction_leaves_neither_case_nor_mutation(replica: Replica) -> None:
    def killed_mid_transaction() -> None:
        with replica.transaction():
            replica.apply_change(_upsert("REF1", 1), 0)
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        killed_mid_transaction()
    assert replica.case_count() == 0
    with pytest.raises(UnknownCase):
        replica.update_case("REF1", {"specific_needs": ["x"]})
    assert replica.pending_count() == 0


def test_device_sequence_numbers_increase_by_one(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 3), 0)
    for needs in (["a"], ["b"], ["c"]):
        replica.update_case("REF1", {"specific_needs": needs})
        replica.mark_sent(replica.pending())  # sent: the next edit is a new mutation
    assert [m.device_seq for m in replica.pending()] == [1, 2, 3]
    assert {m.body["base_version"] for m in replica.pending()} == {3}


def test_edits_fold_into_a_mutation_never_sent_and_never_into_a_sent_one(
    replica: Replica,
) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 3), 0)
    replica.update_case("REF1", {"specific_needs": ["a"]})
    replica.update_case("REF1", {"members": {"change": [{"id": "m-1", "phone": "1"}]}})
    replica.update_case("REF1", {"members": {"change": [{"id": "m-1", "phone": "2"}]}})
    [only] = replica.pending()
    assert only.body["changes"] == {
        "specific_needs": ["a"],
        "members": {"change": [{"id": "m-1", "phone": "2"}]},
    }
    replica.mark_sent([only])
    replica.update_case("REF1", {"specific_needs": ["b"]})
    first, second = replica.pending()
    assert first.body == only.body  # frozen once it may have reached the server
    assert second.body["changes"] == {"specific_needs": ["b"]}


def test_an_edit_of_an_unsent_new_case_changes_its_intake(replica: Replica) -> None:
    client_ref, _ = replica.create_case(INTAKE, "amm-01")
    member = replica.pending()[0].body["changes"]["members"][0]["client_ref"]
    replica.update_case(
        client_ref,
        {
            "specific_needs": ["ER"],
            "members": {
                "change": [{"id": member, "phone": "+1"}],
                "add": [{"relationship": "child", "sex": "male", "full_name": "K"}],
            },
        },
    )
    [create] = replica.pending()
    body = create.body["changes"]
    assert body["specific_needs"] == ["ER"]
    assert body["members"][0]["phone"] == "+1"
    assert body["members"][1]["client_ref"]
    assert "id" not in body["members"][1]
    assert len(replica.case(client_ref)["members"]) == 2


def test_an_applied_update_advances_the_base_when_nothing_came_between(
    replica: Replica,
) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 3), 0)
    replica.update_case("REF1", {"specific_needs": ["a"]})
    [sent] = replica.pending()
    replica.mark_sent([sent])
    with replica.transaction():
        replica.settle(sent, {"mutation_id": sent.mutation_id, "status": "applied", "version": 4})
    assert replica.record("REF1")["base"]["version"] == 4
    assert replica.record("REF1")["base"]["specific_needs"] == ["a"]
    replica.update_case("REF1", {"specific_needs": ["b"]})
    assert replica.pending()[0].body["base_version"] == 4


def test_a_pull_never_overwrites_unacknowledged_edits(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 1), 0)
    replica.update_case("REF1", {"specific_needs": ["SM-MI"]})
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 2, stage="registered"), 0)
    case = replica.case("REF1")
    assert case["specific_needs"] == ["SM-MI"]  # ours, still pending
    assert case["stage"] == "registered"  # theirs, merged under it
    assert replica.record("REF1")["base"]["version"] == 2
    # Once acknowledged, the server's copy is shown as it comes.
    [pending] = replica.pending()
    with replica.transaction():
        replica.settle(pending, {"mutation_id": pending.mutation_id, "status": "applied"})
        replica.apply_change(_upsert("REF1", 3, specific_needs=["SM-MI", "ER"]), 0)
    assert replica.case("REF1")["specific_needs"] == ["SM-MI", "ER"]


def test_member_edits_merge_with_a_pulled_member_change(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 1), 0)
    replica.update_case("REF1", {"members": {"change": [{"id": "m-1", "phone": "+1 555"}]}})
    pulled = _upsert("REF1", 2)
    pulled["case"]["members"][0]["full_name"] = "B"
    with replica.transaction():
        replica.apply_change(pulled, 0)
    member = replica.case("REF1")["members"][0]
    assert member == {**member, "phone": "+1 555", "full_name": "B"}


def test_a_create_result_rekeys_the_case_to_the_server_reference(replica: Replica) -> None:
    client_ref, _ = replica.create_case(INTAKE, "amm-01")
    member_ref = replica.pending()[0].body["changes"]["members"][0]["client_ref"]
    replica.mark_sent(replica.pending())
    replica.update_case(client_ref, {"members": {"change": [{"id": member_ref, "phone": "1"}]}})
    create, update = replica.pending()
    assert update.body["reference"] == client_ref
    assert update.body["base_version"] == 1
    with replica.transaction():
        replica.settle(
            create,
            {
                "mutation_id": create.mutation_id,
                "status": "applied",
                "reference": "SERVERREF1",
                "version": 1,
                "refs": {client_ref: "SERVERREF1", member_ref: "m-9"},
            },
        )
    assert replica.record("SERVERREF1")["reference"] == "SERVERREF1"
    assert replica.case(client_ref)["members"][0]["phone"] == "1"  # old id still finds it
    pulled = _upsert("SERVERREF1", 1)
    pulled["case"]["members"][0]["id"] = "m-9"
    with replica.transaction():
        replica.apply_change(pulled, 0)
    # The pending update names the member by its offline ref; it is still laid over.
    assert replica.case("SERVERREF1")["members"][0]["phone"] == "1"
    assert [p.body["reference"] for p in replica.pending()] == [client_ref]


def test_results_and_attention(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_change(_upsert("REF1", 1), 0)
    replica.update_case("REF1", {"specific_needs": ["bad"]})
    [pending] = replica.pending()
    result = {
        "mutation_id": pending.mutation_id,
        "status": "rejected",
        "errors": {"specific_needs": {"0": ["Unknown code."]}},
    }
    with replica.transaction():
        replica.settle(pending, result)
    assert replica.pending_count() == 0
    [stored] = replica.results(attention_only=True)
    assert stored["result"]["errors"] == result["errors"]
    assert replica.dismiss(pending.mutation_id)
    assert replica.results(attention_only=True) == []
    assert len(replica.results()) == 1  # kept, never dropped


def test_delete_and_evict_remove_the_case_and_a_clean_pull_sweeps(replica: Replica) -> None:
    with replica.transaction():
        for reference in ("A1", "B1", "C1"):
            replica.apply_change(_upsert(reference, 1), 0)
        replica.apply_change({"seq": 9, "op": "evict", "reference": "A1"}, 0)
        replica.apply_change({"seq": 10, "op": "delete", "reference": "NOPE"}, 0)
    assert replica.case_count() == 2
    replica.update_case("C1", {"specific_needs": ["x"]})
    with replica.transaction():
        replica.apply_change(_upsert("B1", 2), 1)
        assert replica.sweep_before(1) == 0  # C1 has a pending edit: kept
    [pending] = replica.pending()
    with replica.transaction():
        replica.settle(pending, {"mutation_id": pending.mutation_id, "status": "applied"})
        assert replica.sweep_before(1) == 1
    assert sorted(ref for ref, _ in replica.server_pairs()) == ["B1"]


def test_the_file_holds_no_plaintext_and_another_key_is_refused(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = Replica(tmp_path / REPLICA_FILE, key)
    store.create_case(INTAKE, "amm-01")
    with store.transaction():
        store.apply_change(_upsert("VISIBLEREF", 1, specific_needs=["SM-MI"]), 0)
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for canary in (b"Canary Amina", b"VISIBLEREF", b"SM-MI", b"amm-01"):
        assert canary not in data
    with pytest.raises(ReplicaError):
        Replica(tmp_path / REPLICA_FILE, secrets.token_bytes(32))
    assert Replica(tmp_path / REPLICA_FILE, key).case("VISIBLEREF")["version"] == 1


def test_a_row_moved_to_another_id_does_not_open(tmp_path: Path) -> None:
    store = Replica(tmp_path / REPLICA_FILE, secrets.token_bytes(32))
    with store.transaction():
        store.apply_change(_upsert("R1", 1), 0)
        store.apply_change(_upsert("R2", 1), 0)
    raw = sqlite3.connect(tmp_path / REPLICA_FILE)
    first, second = raw.execute("SELECT row_id, blob FROM cases ORDER BY row_id").fetchall()
    raw.execute("UPDATE cases SET blob = ? WHERE row_id = ?", (second[1], first[0]))
    raw.commit()
    raw.close()
    with pytest.raises(ReplicaError):
        list(store.iter_cases())


def _plain_checkpoint(replica: Replica) -> tuple[int, str]:
    return checkpoint(replica.server_pairs())


def test_the_running_checkpoint_follows_every_kind_of_change(replica: Replica) -> None:
    assert replica.checkpoint() == (0, "0" * 64)
    with replica.transaction():  # one page naming a case several times, as the feed may
        replica.apply_page(
            [
                _upsert("P1", 1),
                _upsert("P2", 1),
                _upsert("P1", 2),
                {"seq": 4, "op": "delete", "reference": "P2"},
                _upsert("P3", 1),
                _upsert("P2", 3),
            ],
            0,
        )
    assert dict(replica.server_pairs()) == {"P1": 2, "P2": 3, "P3": 1}
    assert replica.checkpoint() == _plain_checkpoint(replica)
    client_ref, _ = replica.create_case(INTAKE, "amm-01")  # not the server's: not counted
    replica.update_case("P1", {"specific_needs": ["a"]})
    assert replica.checkpoint() == _plain_checkpoint(replica)
    create, update = replica.pending()
    replica.mark_sent([create, update])
    with replica.transaction():
        replica.apply_page([_upsert("NEWREF", 1)], 0)  # pulled before its create's answer
        replica.settle(
            create,
            {
                "mutation_id": create.mutation_id,
                "status": "applied",
                "reference": "NEWREF",
                "version": 1,
                "refs": {client_ref: "NEWREF"},
            },
        )
        replica.settle(
            update, {"mutation_id": update.mutation_id, "status": "applied", "version": 3}
        )
    assert dict(replica.server_pairs()) == {"P1": 3, "P2": 3, "P3": 1, "NEWREF": 1}
    assert replica.checkpoint() == _plain_checkpoint(replica)
    with replica.transaction():
        replica.apply_page([_upsert("P3", 2)], 1)
        replica.sweep_before(1)
    assert dict(replica.server_pairs()) == {"P3": 2}
    assert replica.checkpoint() == _plain_checkpoint(replica)

    def killed_mid_page() -> None:
        with replica.transaction():
            replica.apply_page([_upsert("P9", 1), _upsert("P3", 5)], 1)
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):  # a rolled-back page leaves the sums as they were
        killed_mid_page()
    assert replica.checkpoint() == _plain_checkpoint(replica) == checkpoint([("P3", 2)])
    assert replica.recount() == _plain_checkpoint(replica)


def test_a_pull_merges_under_edits_of_a_case_created_offline(replica: Replica) -> None:
    client_ref, _ = replica.create_case(INTAKE, "amm-01")
    [create] = replica.pending()
    replica.mark_sent([create])
    with replica.transaction():
        replica.settle(
            create,
            {"mutation_id": create.mutation_id, "status": "applied", "reference": "R7"},
        )
    replica.update_case(client_ref, {"specific_needs": ["ER"]})
    with replica.transaction():
        replica.apply_page([_upsert("R7", 1), _upsert("R7", 2, stage="registered")], 0)
    assert replica.case(client_ref)["specific_needs"] == ["ER"]
    assert replica.case("R7")["stage"] == "registered"
    assert replica.checkpoint() == _plain_checkpoint(replica) == checkpoint([("R7", 2)])


def test_a_replica_written_before_the_running_checkpoint_is_upgraded(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = Replica(tmp_path / REPLICA_FILE, key)
    with store.transaction():
        store.apply_page([_upsert("U1", 4), _upsert("U2", 1)], 0)
    expected = store.checkpoint()
    store.close()
    raw = sqlite3.connect(tmp_path / REPLICA_FILE)
    raw.execute("ALTER TABLE cases DROP COLUMN pair")
    raw.execute("DELETE FROM meta WHERE name = 'checkpoint_sums'")
    raw.commit()
    raw.close()
    reopened = Replica(tmp_path / REPLICA_FILE, key)
    assert reopened.checkpoint() == expected == checkpoint([("U1", 4), ("U2", 1)])
    with reopened.transaction():
        reopened.apply_page([{"seq": 9, "op": "delete", "reference": "U1"}], 0)
    assert reopened.checkpoint() == checkpoint([("U2", 1)])
    reopened.close()


def _rejected(replica: Replica, errors: dict[str, Any]) -> str:
    [pending] = replica.pending()
    replica.mark_sent([pending])
    with replica.transaction():
        replica.settle(
            pending, {"mutation_id": pending.mutation_id, "status": "rejected", "errors": errors}
        )
    return pending.mutation_id


def test_a_rejected_update_is_resent_corrected_under_a_new_id(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_page([_upsert("REF1", 3)], 0)
    replica.update_case("REF1", {"specific_needs": ["BAD"]})
    rejected = _rejected(replica, {"type": "invalid", "fields": {"specific_needs": {}}})
    assert replica.case("REF1")["specific_needs"] == []  # the server's value again
    new_id = replica.resend(rejected, {"specific_needs": ["SM-MI"]}, "amm-01")
    [pending] = replica.pending()
    assert pending.mutation_id == new_id != rejected
    assert pending.body["changes"] == {"specific_needs": ["SM-MI"]}
    assert pending.body["base_version"] == 3
    assert replica.case("REF1")["specific_needs"] == ["SM-MI"]
    assert replica.results(attention_only=True) == []
    [kept] = replica.results()  # never dropped: the rejection stays, pointing at its resend
    assert kept["resent_as"] == new_id
    assert kept["mutation"]["changes"] == {"specific_needs": ["BAD"]}
    with pytest.raises(ReplicaError, match="Already sent again"):
        replica.resend(rejected, {"specific_needs": ["ER"]}, "amm-01")
    assert replica.pending_count() == 1


def test_a_rejected_new_case_is_recorded_again_under_its_offline_id(replica: Replica) -> None:
    client_ref, _ = replica.create_case(INTAKE, "amm-01")
    rejected = _rejected(replica, {"type": "invalid", "fields": {"members": {"0": {}}}})
    with pytest.raises(UnknownCase):
        replica.case(client_ref)
    [stored] = replica.results(attention_only=True)
    fixed = dict(stored["mutation"]["changes"], specific_needs=["ER"])
    new_id = replica.resend(rejected, fixed, "amm-01")
    [pending] = replica.pending()
    assert (pending.mutation_id, pending.body["op"]) == (new_id, "create")
    assert pending.body["changes"]["client_ref"] == client_ref
    assert replica.case(client_ref)["specific_needs"] == ["ER"]
    assert replica.results(attention_only=True) == []


def test_only_a_rejected_mutation_can_be_resent(replica: Replica) -> None:
    with replica.transaction():
        replica.apply_page([_upsert("REF1", 1)], 0)
    replica.update_case("REF1", {"specific_needs": ["a"]})
    [pending] = replica.pending()
    with replica.transaction():
        replica.settle(pending, {"mutation_id": pending.mutation_id, "status": "applied"})
    with pytest.raises(ReplicaError):
        replica.resend(pending.mutation_id, {"specific_needs": ["b"]}, None)
    with pytest.raises(ReplicaError):
        replica.resend("no-such-id", {"specific_needs": ["b"]}, None)
    assert replica.pending_count() == 0
