"""Allowed transitions over lazily gathered facts: the same answer, fewer queries."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, cast

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from casework import handoff, vetting, workflow
from casework.authz.permissions import STAFF_ROLES, Permission
from casework.cases.codes import ResettlementStage, Stage
from casework.handoff import service as handoff_service
from casework.vetting import service as vetting_service
from casework.workflow import engine
from casework.workflow import facts as registry
from casework.workflow.codes import (
    CredibilityAssessment,
    HandoffKind,
    IdentityVerification,
    MedicalExamination,
    SecurityScreening,
)
from casework.workflow.facts import LazyFacts
from casework.workflow.guards import CaseFacts, Handoff
from casework.workflow.machines import DeterminationStage, HandoffStatus, VettingState
from casework.workflow.service import _OWN_FACTS
from tests.workflow.helpers import (
    OFFICE,
    OTHER_OFFICE,
    PARTNER,
    actor,
    actor_with,
    consent,
    facts,
)


def _registered() -> registry.WorkflowHooks:
    """The hooks the features register on an application as ``create_app`` builds it."""
    bare = Flask(__name__)
    for feature in (workflow, vetting, handoff):
        feature.init_app(bare)
    return registry.hooks(bare)


HOOKS = _registered()
PEOPLE = st.frozensets(st.sampled_from(["u-1", "u-2", "u-3"]), max_size=2)


@st.composite
def case_facts(draw: st.DrawFn) -> CaseFacts:
    """Whole facts, states and fact-source fields drawn independently."""
    handoff = draw(
        st.none()
        | st.builds(
            Handoff,
            kind=st.sampled_from(HandoffKind),
            target=st.sampled_from([OTHER_OFFICE, PARTNER]),
            requested_by=st.sampled_from(["u-1", "u-2"]),
            approved_by=st.none() | st.sampled_from(["u-1", "u-2"]),
        )
    )
    return facts(
        stage=draw(st.sampled_from(Stage)),
        vetting=draw(st.sampled_from(VettingState)),
        determination=draw(st.sampled_from(DeterminationStage)),
        resettlement=draw(st.sampled_from(ResettlementStage)),
        handoff_status=draw(st.sampled_from(HandoffStatus)),
        identity_verification=draw(st.sampled_from(IdentityVerification)),
        security_screening=draw(st.sampled_from(SecurityScreening)),
        medical_examination=draw(st.sampled_from(MedicalExamination)),
        credibility_assessment=draw(st.sampled_from(CredibilityAssessment)),
        fit_to_travel=draw(st.none() | st.booleans()),
        open_duplicate_alerts=draw(st.integers(0, 2)),
        vetting_interviewers=draw(PEOPLE),
        vetting_referred_by=draw(st.none() | st.sampled_from(["u-1", "u-2"])),
        consents=draw(st.sampled_from([(), (consent(),), (consent(recipient=PARTNER),)])),
        handoff=handoff,
    )


def lazy(whole: CaseFacts, calls: list[str]) -> CaseFacts:
    """``whole`` behind LazyFacts, split as the registered sources split it."""
    own = {name: getattr(whole, name) for name in _OWN_FACTS}

    def fetch(name: str) -> dict[str, Any]:
        for source, provides in HOOKS.sources.items():
            if name in provides:
                calls.append(source.__name__)
                return {field: getattr(whole, field) for field in provides}
        return {}

    return cast(CaseFacts, LazyFacts(own, fetch))


def test_the_sources_cover_every_fact_the_workflow_does_not_keep() -> None:
    assert set(HOOKS.sources) >= {
        vetting_service.vetting_facts,
        handoff_service.handoff_facts,
    }
    everything = {f.name for f in fields(CaseFacts)}
    assert HOOKS.provided() == everything - _OWN_FACTS


@settings(max_examples=300, deadline=None)
@given(
    whole=case_facts(),
    role=st.sampled_from(STAFF_ROLES),
    office=st.sampled_from([OFFICE, OTHER_OFFICE]),
)
def test_lazy_facts_allow_exactly_what_whole_facts_allow(
    whole: CaseFacts, role: str, office: str
) -> None:
    who = actor(role, "u-1", office)
    calls: list[str] = []
    assert engine.allowed_for_case(lazy(whole, calls), who) == engine.allowed_for_case(whole, who)
    assert len(calls) == len(set(calls))  # each source asked at most once


def test_a_new_intake_case_asks_only_for_the_hand_off() -> None:
    """A caseworker's read: the hand-off request's guard reads the hand-off, nothing else."""
    calls: list[str] = []
    allowed = engine.allowed_for_case(lazy(facts(), calls), actor("caseworker"))
    assert [t.name for t in allowed] == ["start_vetting"]
    assert calls == ["handoff_facts"]


def test_a_settled_hand_off_is_neither_fetched_nor_overwritten() -> None:
    """A case read at hand-off "none" settles ``handoff`` (no record can exist: only the
    ``request`` transition makes one, and leaves "none" in the same transaction): the
    caseworker's read asks no source, and a source asked later for another field of its
    own does not replace the settled value."""
    calls: list[str] = []
    whole = facts()
    own = {name: getattr(whole, name) for name in _OWN_FACTS} | {"handoff": None}
    stray = Handoff(kind=HandoffKind.PARTNER, target=PARTNER, requested_by="u-2")

    def fetch(name: str) -> dict[str, Any]:
        calls.append(name)
        return {"consents": (consent(recipient=PARTNER),), "handoff": stray}

    settled = cast(CaseFacts, LazyFacts(own, fetch))
    allowed = engine.allowed_for_case(settled, actor("caseworker"))
    assert [t.name for t in allowed] == ["start_vetting"]
    assert calls == []
    assert len(settled.consents) == 1
    assert calls == ["consents"]
    assert settled.handoff is None


def test_vetting_decisions_ask_the_vetting_source_once() -> None:
    calls: list[str] = []
    whole = facts(stage=Stage.VETTING, vetting=VettingState.IN_PROGRESS)
    engine.allowed_for_case(lazy(whole, calls), actor_with(Permission.VETTING_DECIDE))
    assert "vetting_facts" in calls
    assert len(calls) == len(set(calls))


def test_an_unknown_attribute_is_refused_not_defaulted() -> None:
    stand_in: Any = LazyFacts({"office": OFFICE, "now": facts().now}, lambda name: {})
    with pytest.raises(AttributeError):
        _ = stand_in.not_a_fact


def test_a_source_must_provide_what_it_declares() -> None:
    with pytest.raises(ValueError, match="not CaseFacts fields"):
        HOOKS.fact_source(lambda session, case: {}, "not_a_fact")
    with pytest.raises(ValueError, match="provided twice"):
        HOOKS.fact_source(lambda session, case: {"handoff": None}, "handoff")
