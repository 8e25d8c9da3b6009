"""Setup for the case scenarios: one seeded office, one caseworker, one token.

Seeding goes through the bulk path (``casework.cases.seeding``), never HTTP, then the
sync feed's backfill as after any bulk import (not for the scale points: a million
cases would take a quarter of an hour more), in a process with the service's
environment (:meth:`BenchContext.call_in_app`), so it writes into the run's throw-away
database with the run's keyring. Every value is synthetic; the caseworker's password
is random per run and never printed or written anywhere.
"""

from __future__ import annotations

import secrets
from typing import Any

from benchmarks.context import BenchContext, SetupError

OFFICE = "bench-01"
SCALE_OFFICE = "bench-scale"
USERNAME = "bench-caseworker"
POOL_SIZE = 1000  # distinct references and searches cycled per scenario
INTAKE_POOL = 200
INTAKE_MEMBERS = 3
FILTER_NEED = "SC-UC"  # casework.cases.seeding.RARE_NEED: held by ~5% of cases
# Measured on the bulk path to 1M cases (2 cores): ~1,700/s at first, ~400/s past 800k as
# the blind-index b-trees outgrow the caches; ~800/s on average. Explains skipped points.
SEEDING_RATE_PER_S = 800


def seed_office(count: int, office: str, username: str, password: str) -> dict[str, Any]:
    """In the app: seed ``count`` cases in ``office``, add a caseworker, build request pools.

    Runs under ``benchmarks.in_app``; returns only synthetic references, codes
    and bodies (the password goes in, never out).
    """
    from casework import db
    from casework.auth import service as auth_service
    from casework.cases.seeding import seed_cases, synthetic_households

    session = db.session()
    references = seed_cases(session, count=count, office=office)
    publish_seeded(session)
    exempt_from_mfa(session, office)
    auth_service.create_user(
        session, username=username, password=password, role="caseworker", office_code=office
    )
    bodies = intake_bodies(office)
    needs = [need for h in synthetic_households(count) for need in h["specific_needs"]]
    return {
        "references": references[:POOL_SIZE],
        "intake_bodies": bodies,
        "need_share": needs.count(FILTER_NEED) / count if count else 0.0,
    }


def intake_bodies(office: str) -> list[dict[str, Any]]:
    """In the app: :data:`INTAKE_POOL` synthetic three-member intake bodies for ``office``."""
    from casework.cases.seeding import synthetic_households

    bodies = []
    for household in synthetic_households(INTAKE_POOL * 10, seed=2):
        if len(household["members"]) == INTAKE_MEMBERS:
            bodies.append({"office": office, **household})
        if len(bodies) == INTAKE_POOL:
            break
    return bodies


def seed_more(count: int, office: str, seed: int) -> list[str]:
    """In the app: add ``count`` cases to ``office`` (for the scale points); return the
    first :data:`POOL_SIZE` new references (the read pool)."""
    from casework import db
    from casework.cases.seeding import seed_cases

    return seed_cases(db.session(), count=count, office=office, seed=seed)[:POOL_SIZE]


def publish_seeded(session: Any) -> None:
    """Publish the bulk-written cases to the sync feed, as ``casework sync backfill`` does
    after any bulk import: a case read then takes its members from the feed's sealed
    snapshot, as it does for every case written through the API."""
    from casework.sync import feed

    feed.backfill(session, on_batch=session.commit)
    session.commit()


def seeded(ctx: BenchContext) -> dict[str, Any]:
    """The seeded office of this backend's run: seeded once, logged in once."""

    def make() -> dict[str, Any]:
        if ctx.settings.cases < 1:
            raise SetupError("the case scenarios need BENCH_CASES >= 1")
        password = secrets.token_urlsafe(24)
        data: dict[str, Any] = ctx.call_in_app(
            "benchmarks.case_setup:seed_office",
            count=ctx.settings.cases,
            office=OFFICE,
            username=USERNAME,
            password=password,
        )
        data["password"] = password
        data["token"] = login(ctx, USERNAME, password)
        return data

    return ctx.once("cases", make)


def login(ctx: BenchContext, username: str, password: str) -> str:
    """A bearer token for ``username`` (a caseworker of an office exempt from MFA)."""
    status, answer = ctx.request_json(
        "POST", "/api/v1/auth/login", {"username": username, "password": password}
    )
    if status != 200 or not isinstance(answer, dict) or "token" not in answer:
        raise SetupError(f"login of the benchmark caseworker answered {status}")
    if answer.get("mfa_enrolment_required"):
        raise SetupError("the benchmark caseworker must enrol in MFA: is the office exempt?")
    return str(answer["token"])


def bearer(ctx: BenchContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded(ctx)['token']}"}


def scale_office(ctx: BenchContext, total: int) -> str:
    """Grow the scale office to ``total`` cases (seed 1 first, so searches hit); a fresh token.

    Seeding a million cases outlasts a token's idle timeout (30 minutes), so
    the caseworker logs in again after every growth.
    """
    state: dict[str, Any] = ctx.once("scale", lambda: {"count": 0, "references": []})
    have = state["count"]
    if state.get("failed_at", total + 1) <= total:
        raise SetupError(f"growing the scale office to {state['failed_at']:,} cases failed earlier")
    if have < total:
        try:
            added = ctx.call_in_app(
                "benchmarks.case_setup:seed_more",
                count=total - have,
                office=SCALE_OFFICE,
                seed=1 if have == 0 else total,
            )
        except SetupError:
            state["failed_at"] = total  # the other cases of this size fail at once
            raise
        if have == 0:
            state["references"] = added  # the same cases are read at every point
        state["count"] = total
        state.pop("token", None)

    def make_user() -> str:
        password = secrets.token_urlsafe(24)
        ctx.call_in_app(
            "benchmarks.case_setup:add_user",
            office=SCALE_OFFICE,
            username=f"{USERNAME}-scale",
            password=password,
        )
        return password

    password = ctx.once("scale_password", make_user)
    if "token" not in state:
        state["token"] = login(ctx, f"{USERNAME}-scale", password)
    token: str = state["token"]
    return token


def scale_references(ctx: BenchContext, total: int) -> tuple[str, list[str]]:
    """The scale office grown to ``total`` cases: a token and the read pool."""
    token = scale_office(ctx, total)
    state: dict[str, Any] = ctx.once("scale", lambda: {"count": 0, "references": []})
    references: list[str] = state["references"]
    return token, references


def scale_intakes(ctx: BenchContext, total: int) -> tuple[str, list[dict[str, Any]]]:
    """The scale office grown to ``total`` cases: a token and intake bodies for it."""
    token = scale_office(ctx, total)
    bodies: list[dict[str, Any]] = ctx.once(
        "scale_intakes",
        lambda: ctx.call_in_app("benchmarks.case_setup:intake_bodies", office=SCALE_OFFICE),
    )
    return token, bodies


def exempt_from_mfa(session: Any, office: str) -> None:
    """In the app: exempt the synthetic ``office`` from MFA (audited, as in production).

    Caseworkers need MFA by default; the benchmarks measure reads and sign-in by
    password, and a TOTP step accepts one sign-in per 30 seconds.
    """
    from casework.offices import service as offices_service

    offices_service.update_office(
        session, offices_service.get_office(session, office), {"mfa_exempt": True}
    )


def add_user(office: str, username: str, password: str) -> None:
    """In the app: a caseworker in ``office``."""
    from casework import db
    from casework.auth import service as auth_service

    exempt_from_mfa(db.session(), office)
    auth_service.create_user(
        db.session(), username=username, password=password, role="caseworker", office_code=office
    )
