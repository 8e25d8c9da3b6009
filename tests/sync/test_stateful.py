"""A hypothesis state machine: several devices, random edits on the server and on the
devices, and a network that drops, duplicates and reorders requests. At quiescence
every device's replica matches the server's checkpoint and holds no case outside its
office. ``SYNC_STATEFUL_EXAMPLES`` raises the number of examples (``make sync-faults``).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.orm import Session

from casework.cases.models import Case
from casework.offices.models import Office
from casework.security.app import holder
from casework.security.case_keys import attach_keyring
from casework.sync import feed
from tests.auth.helpers import TEST_PASSWORD, create_user, fresh_code
from tests.conftest import erase_by_two_people, principal_headers
from tests.sync.conftest import household
from tests.sync.signing import Device, enrol

EXAMPLES = int(os.environ.get("SYNC_STATEFUL_EXAMPLES", "4"))
NEEDS = ["SC-UC", "LP-RR", "SM-MI", "DS-BD"]
FINAL = {"applied", "duplicate", "conflict", "rejected"}


class Replica:
    """A field client, reduced to what the contract asks of it."""

    def __init__(self, device: Device, office: str) -> None:
        self.device = device
        self.office = office
        self.outbox: list[dict[str, Any]] = []
        self.next_seq = 1
        self.cases: dict[str, int] = {}
        self.cursor: str | None = None
        self.checkpoint: dict[str, Any] | None = None

    def enqueue(self, op: str, changes: dict[str, Any], **extra: Any) -> None:
        self.outbox.append(
            {
                "mutation_id": str(uuid.uuid4()),
                "device_seq": self.next_seq,
                "op": op,
                "changes": changes,
                **extra,
            }
        )
        self.next_seq += 1

    def push(self, batch: list[dict[str, Any]], *, lose_answer: bool) -> None:
        if not batch:
            return
        response = self.device.push(batch)
        assert response.status_code == 200, response.get_json()
        if lose_answer:
            return  # the server committed; the client never heard: it will resend
        final = {r["mutation_id"] for r in response.get_json()["results"] if r["status"] in FINAL}
        self.outbox = [m for m in self.outbox if m["mutation_id"] not in final]

    def pull_page(self, *, lose_answer: bool) -> bool:
        response = self.device.pull(self.cursor, 3)
        if response.status_code == 409:
            self.cursor, self.cases = None, {}
            return True
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        if lose_answer:
            return True
        for change in page["changes"]:
            if change["op"] == "upsert":
                self.cases[change["reference"]] = change["version"]
            else:
                self.cases.pop(change["reference"], None)
        self.cursor, self.checkpoint = page["cursor"], page["checkpoint"]
        return bool(page["more"])

    def settle(self) -> None:
        """A good network at last: push until the outbox is empty, pull until caught up."""
        for _ in range(50):
            if not self.outbox:
                break
            self.push(self.outbox[:100], lose_answer=False)
        assert not self.outbox
        while self.pull_page(lose_answer=False):
            pass


def test_replicas_converge_despite_a_bad_network(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    keyring = holder(app).get()

    class Sync(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.offices = [f"h{uuid.uuid4().hex[:6]}", f"h{uuid.uuid4().hex[:6]}"]
            for code in self.offices:
                db_session.add(Office(code=code, name="Office", country_code="JOR"))
            db_session.flush()
            self.replicas = [self._device(self.offices[0]) for _ in range(2)]
            self.replicas.append(self._device(self.offices[1]))
            self.rng = random.Random(0)

        def _device(self, office: str) -> Replica:
            code = client.post(
                "/api/v1/devices/enrolment-codes",
                json={"office": office, "label": "L"},
                headers=principal_headers("admin"),
            ).get_json()["code"]
            device = enrol(client, code)
            user = create_user(app, db_session, "caseworker", office)  # MFA as required
            totp = fresh_code(app, db_session, user) if user.mfa_enabled_at else None
            assert device.login(user.username, TEST_PASSWORD, totp).status_code == 200
            return Replica(device, office)

        def _server_case(self, office: str) -> Case | None:
            return db_session.scalars(
                select(Case)
                .where(Case.office_code == office, Case.erased_at.is_(None))
                .order_by(Case.reference)
                .execution_options(populate_existing=True)
            ).first()

        @rule(office=st.sampled_from([0, 1]))
        def server_creates(self, office: int) -> None:
            staff = principal_headers("caseworker", self.offices[office])
            response = client.post("/api/v1/cases", json=household(), headers=staff)
            assert response.status_code == 201

        @rule(office=st.sampled_from([0, 1]), needs=st.lists(st.sampled_from(NEEDS), unique=True))
        def server_edits(self, office: int, needs: list[str]) -> None:
            case = self._server_case(self.offices[office])
            if case is None:
                return
            staff = principal_headers("caseworker", self.offices[office])
            client.patch(
                f"/api/v1/cases/{case.reference}",
                json={"specific_needs": needs or ["SC-UC"]},
                headers={**staff, "If-Match": f'"v{case.version}"'},
            )

        @rule()
        def server_hands_off(self) -> None:
            case = self._server_case(self.offices[0])
            if case is None:
                return
            attach_keyring(db_session, keyring)
            feed.install(db_session)
            case.office_code, case.version = self.offices[1], case.version + 1
            db_session.commit()

        @rule(office=st.sampled_from([0, 1]))
        def server_erases(self, office: int) -> None:
            case = self._server_case(self.offices[office])
            if case is None:
                return
            staff = principal_headers("supervisor", self.offices[office])
            second = principal_headers("supervisor", self.offices[office], user_id="second")
            erase_by_two_people(client, case.reference, staff, second)

        @rule(which=st.integers(0, 2))
        def device_creates(self, which: int) -> None:
            body = household()
            body["client_ref"] = str(uuid.uuid4())
            body["members"][0]["client_ref"] = str(uuid.uuid4())
            self.replicas[which].enqueue("create", body)

        @rule(which=st.integers(0, 2), needs=st.lists(st.sampled_from(NEEDS), unique=True))
        def device_edits(self, which: int, needs: list[str]) -> None:
            replica = self.replicas[which]
            if not replica.cases:
                return
            reference = sorted(replica.cases)[0]
            replica.enqueue(
                "update",
                {"specific_needs": needs},
                reference=reference,
                base_version=replica.cases[reference],
            )

        @precondition(lambda self: any(r.outbox for r in self.replicas))
        @rule(
            which=st.integers(0, 2),
            drop=st.booleans(),
            lose_answer=st.booleans(),
            duplicate=st.booleans(),
            reorder=st.booleans(),
        )
        def device_pushes(
            self, which: int, drop: bool, lose_answer: bool, duplicate: bool, reorder: bool
        ) -> None:
            replica = self.replicas[which]
            batch = list(replica.outbox[:5])
            if reorder:
                self.rng.shuffle(batch)
            if drop:
                return  # the request never arrived
            if duplicate:
                replica.push(batch, lose_answer=True)
            replica.push(batch, lose_answer=lose_answer)

        @rule(which=st.integers(0, 2), lose_answer=st.booleans())
        def device_pulls(self, which: int, lose_answer: bool) -> None:
            self.replicas[which].pull_page(lose_answer=lose_answer)

        def teardown(self) -> None:
            for replica in self.replicas:
                replica.settle()
            for replica in self.replicas:
                replica.pull_page(lose_answer=False)  # everyone's pushes are in now
                while replica.pull_page(lose_answer=False):
                    pass
                checkpoint = replica.checkpoint
                assert checkpoint is not None
                assert checkpoint["count"] == len(replica.cases)
                assert checkpoint["checksum"] == feed.checksum_of(replica.cases.items())
                in_scope = {
                    str(reference): int(version)
                    for reference, version in db_session.execute(
                        select(Case.reference, Case.version).where(
                            Case.office_code == replica.office, Case.erased_at.is_(None)
                        )
                    )
                }
                assert replica.cases == in_scope

    run_state_machine_as_test(
        Sync,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
