"""Anonymised statistics: count atoms from ciphertext, suppress, publish one view.

A run reads only the columns its report uses, decrypts them in batches
(:mod:`casework.reports.counting`; in worker processes on both cores when
the report is large), keeps only counts, and withholds small cells with
:mod:`casework.reports.suppression` computed on the whole grid of every
linked report, so every view of every report hides the same atoms. Each run
is one ``report.run`` entry in the access log: the report's name and the
names of the filters used, never their values and never a count.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import String, bindparam, select, type_coerce
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from casework import audit
from casework.audit import AuditAction
from casework.authz.access import Principal, deny, deny_as_missing
from casework.authz.permissions import Permission
from casework.cases.codes import BirthRegistration, NationalityStatus, Sex, Stage, needs_catalogue
from casework.cases.indexes import keyring_of
from casework.cases.models import Case, CaseMember
from casework.offices.models import Office
from casework.reports import counting
from casework.reports.codes import (
    CHILD_BANDS,
    HXL_TAGS,
    NO_CATEGORY,
    NO_NEEDS,
    AgeBand,
    Decision,
    FunnelStep,
    ReportName,
)
from casework.reports.counting import CountContext
from casework.reports.models import ReportEvent
from casework.reports.suppression import Atom, Link, Table, tabulate, withhold
from casework.security.keyring import Keyring
from casework.security.models import CaseKey
from casework.timestamps import utcnow
from casework.workflow.codes import SubmissionCategory
from casework.workflow.facts import TransitionContext
from casework.workflow.machines import (
    AppealOutcome,
    DeterminationOutcome,
    DeterminationStage,
    Process,
    VettingState,
)
from casework.workflow.models import CaseWorkflow

UNKNOWN = "unknown"
BATCH_CASES = 2000
POOL_MIN_BATCHES = 3
"""Below this many batches a report is counted in the calling process (no worker start-up)."""

METHOD = (
    "Counts below k are suppressed; a figure is the sum of the published (office, month, cell) "
    "counts it covers, so totals leave out the people of suppressed cells. See docs/reports.md."
)


@dataclass(frozen=True)
class Spec:
    """One report: what it counts, its dimensions and their values in publication order."""

    name: ReportName
    title: str
    unit: str
    source: str
    cell_dims: tuple[str, ...]
    dims: tuple[str, ...]
    values: Callable[[], dict[str, list[str]]] = field(default=lambda: {})


def _with_unknown(values: Sequence[str]) -> list[str]:
    return [*values, *([UNKNOWN] if UNKNOWN not in values else [])]


def _people_values() -> dict[str, list[str]]:
    return {
        "sex": _with_unknown([s.value for s in Sex]),
        "age_band": [band.value for band in AgeBand],
        "needs": [*sorted(needs_catalogue().families), NO_NEEDS],
    }


_DECISION_OUTCOMES = [
    VettingState.CLEARED.value,
    VettingState.REFERRED_FOR_REVIEW.value,
    VettingState.REJECTED.value,
    *(o.value for o in DeterminationOutcome),
    *(o.value for o in AppealOutcome),
]

SPECS: dict[ReportName, Spec] = {
    spec.name: spec
    for spec in (
        Spec(
            ReportName.CASES_BY_OFFICE_STAGE,
            "Cases (households) by office and stage",
            "cases",
            "cases",
            ("stage",),
            ("office", "stage"),
            lambda: {"stage": [s.value for s in Stage]},
        ),
        Spec(
            ReportName.PEOPLE_BY_SEX_AGE_NEEDS,
            "People by sex, age band and specific-needs category of their household",
            "people (a person counts once in each needs category of their household)",
            "people",
            ("sex", "age_band", "needs"),
            ("sex", "age_band", "needs"),
            _people_values,
        ),
        Spec(
            ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY,
            "Children (under 18) by birth registration and nationality status",
            "children",
            "children",
            ("birth_registration", "nationality_status"),
            ("birth_registration", "nationality_status"),
            lambda: {
                "birth_registration": _with_unknown([b.value for b in BirthRegistration]),
                "nationality_status": _with_unknown([n.value for n in NationalityStatus]),
            },
        ),
        Spec(
            ReportName.RESETTLEMENT_FUNNEL,
            "Resettlement steps reached, by month and submission category",
            "cases reaching a step (a case counts once in each category of its submission)",
            "funnel",
            ("category", "step"),
            ("month", "category", "step"),
            lambda: {
                "category": [*(c.value for c in SubmissionCategory), NO_CATEGORY],
                "step": [s.value for s in FunnelStep],
            },
        ),
        Spec(
            ReportName.DECISION_OUTCOMES,
            "Vetting and status-determination decisions by month and outcome",
            "decisions",
            "decision",
            ("decision", "outcome"),
            ("month", "decision", "outcome"),
            lambda: {"decision": [d.value for d in Decision], "outcome": _DECISION_OUTCOMES},
        ),
    )
}

LINKS = (
    # Children are counted in both: a small cell in one withholds them in both.
    Link(
        ReportName.PEOPLE_BY_SEX_AGE_NEEDS.value,
        lambda cell: cell[1] in CHILD_BANDS,
        ReportName.CHILDREN_BY_REGISTRATION_NATIONALITY.value,
        lambda cell: True,
    ),
)


class UnknownReport(Exception):
    """No report of that name (404)."""


@dataclass(frozen=True)
class Filters:
    """A run's filters: a whole office and a whole month (``YYYY-MM``); None for all."""

    office: str | None = None
    month: str | None = None

    def names(self) -> list[str]:
        """The names of the filters used: what the access log records."""
        return [name for name in ("office", "month") if getattr(self, name) is not None]


@dataclass(frozen=True)
class Settings:
    k: int
    rounding: int
    workers: int

    @classmethod
    def of_app(cls) -> Settings:
        config = current_app.config["CASEWORK"]
        return cls(
            config["reports_min_cell"], config["reports_rounding"], config["reports_workers"]
        )


def report_names() -> list[dict[str, str]]:
    return [
        {"name": spec.name.value, "title": spec.title, "unit": spec.unit} for spec in SPECS.values()
    ]


def spec_for(name: str) -> Spec:
    try:
        return SPECS[ReportName(name)]
    except ValueError:
        raise UnknownReport(name) from None


# --- scope ----------------------------------------------------------------------------------


def scoped_filters(session: Session, principal: Principal, filters: Filters) -> Filters:
    """The filters the caller may run: an analyst any office or all; staff their own office.

    An office that does not exist answers 404, as one outside the caller's
    scope does. Staff without an office get 403.
    """
    if principal.has(Permission.REPORTS_ALL_OFFICES):
        if filters.office is not None and session.get(Office, filters.office) is None:
            deny_as_missing(principal)
        return filters
    if principal.office is None:
        deny(principal, "Reports of an office need an account of that office.")
    if filters.office is not None and filters.office != principal.office:
        deny_as_missing(principal)
    return Filters(principal.office, filters.month)


# --- counting -------------------------------------------------------------------------------


def _plain_rows(session: Session, query: Any, size: int = 5000) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` (a SELECT without parameters) straight from the driver's cursor,
    in the session's transaction: no SQLAlchemy row objects for hundreds of thousands of rows."""
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect)
    if compiled.params:
        raise ValueError("only a query without parameters is read this way")
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":  # a server-side cursor: rows stream in
        cursor = driver.cursor(name="casework_report")
    else:
        cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled))
        while rows := cursor.fetchmany(size):
            yield from rows
    finally:
        cursor.close()


def _raw(column: Any) -> Any:
    """``column`` read as the driver returns it: no SQLAlchemy conversion per row
    (a report reads hundreds of thousands; the few it needs are converted here)."""
    return type_coerce(column, String)


def _context(session: Session, reference_year: int) -> CountContext:
    keyring: Keyring = keyring_of(session)
    keks = {
        k.kek_id: (k.state.value, k.key_bytes()) for k in keyring.keks if k.material is not None
    }
    families = {code: need.family for code, need in needs_catalogue().needs.items()}
    return CountContext(keks, families, reference_year)


def _slice_query(kind: str) -> Any:
    """The SELECT of one slice of cases (ids ``lo`` to ``hi``): each live case's key and the
    ciphertext of what ``kind`` counts (the people's four attributes, or the events), by case."""
    cases, keys = Case.__table__, CaseKey.__table__
    head = (_raw(cases.c.id), keys.c.kek_id, keys.c.wrapped_key, cases.c.office_code)
    if kind == "persons":
        members = CaseMember.__table__
        query = select(
            *head,
            _raw(cases.c.created_at),
            cases.c.specific_needs,
            _raw(members.c.id),
            *(members.c[column] for column in counting.PERSON_COLUMNS),
        ).join(members, members.c.case_id == cases.c.id)
    else:
        events = ReportEvent.__table__
        query = select(*head, _raw(events.c.id), _raw(events.c.occurred_at), events.c.details).join(
            events, events.c.case_id == cases.c.id
        )
    return (
        query.join(keys, keys.c.case_id == cases.c.id)
        .where(
            cases.c.erased_at.is_(None),
            cases.c.id >= bindparam("lo", type_=cases.c.id.type),
            cases.c.id <= bindparam("hi", type_=cases.c.id.type),
        )
        .order_by(cases.c.id)
    )


def _statement(session: Session, kind: str) -> counting.Statement:
    compiled = _slice_query(kind).compile(dialect=session.connection().dialect)
    order = tuple(compiled.positiontup or ()) if compiled.positional else None
    return counting.Statement(str(compiled), order)


def _slices(session: Session, size: int) -> list[counting.Bounds]:
    """The live cases, by id, in slices of ``size``: what one batch reads and counts."""
    cases = Case.__table__
    query = select(_raw(cases.c.id)).where(cases.c.erased_at.is_(None)).order_by(cases.c.id)
    return counting.chunks([row[0] for row in _plain_rows(session, query)], size)


def _count_cases(session: Session) -> Counter[Atom]:
    cases = Case.__table__
    query = select(cases.c.office_code, _raw(cases.c.created_at), cases.c.stage).where(
        cases.c.erased_at.is_(None)
    )
    out: Counter[Atom] = Counter()
    for office, created, stage in _plain_rows(session, query):
        out[(office, counting.month_of(created), (stage,))] += 1
    return out


def _shared(url: URL) -> bool:
    """Whether other processes can open the database: not an in-memory SQLite one."""
    if url.get_backend_name() != "sqlite":
        return True
    database = url.database or ""
    return database not in ("", ":memory:") and "mode=memory" not in str(url)


def _count(
    session: Session,
    kind: str,
    ctx: CountContext,
    workers: int,
    worker_cpu: list[float] | None = None,
) -> dict[str, Counter[Atom]]:
    """Count ``kind`` slice by slice: in this process for few, in ``workers`` processes for many.

    Each worker opens its own connection and reads its slices itself (the
    committed rows: a report is read-only), so this process ships no
    ciphertext; what comes back from a worker is counts only.
    """
    statement = _statement(session, kind)
    slices = _slices(session, BATCH_CASES)
    url = session.connection().engine.url
    totals: dict[str, Counter[Atom]] = {}
    if workers < 2 or len(slices) < POOL_MIN_BATCHES or not _shared(url):
        reader = counting.Reader(ctx)
        connection = session.connection().connection
        for bounds in slices:
            _merge(totals, reader.count(kind, counting.fetch(connection, statement, bounds)))
        return totals
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_worker_context(),
        initializer=counting.init_worker,
        initargs=(ctx, url),
    )
    with pool:
        futures = [
            pool.submit(counting.count_in_worker, kind, statement, bounds) for bounds in slices
        ]
        for future in futures:
            counted, seconds = future.result()
            _merge(totals, counted)
            if worker_cpu is not None:
                worker_cpu.append(seconds)
    return totals


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a clean server process that has imported the counting code once.

    Never a fork of the web process (its threads, locks and connections would
    come along); and, unlike ``spawn``, a run does not pay for importing the
    application in every worker again: the first run starts the server, later
    runs fork from it in milliseconds. The server also imports the calling
    program's main module once (``__main__``): otherwise multiprocessing runs
    that module again in every worker it starts, which cost more than a small
    report. The KEK material and the database's address reach each worker
    through the pool's initialiser, never the server.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", "casework.reports.counting"])
    return context


def _merge(totals: dict[str, Counter[Atom]], counted: Mapping[str, Counter[Atom]]) -> None:
    for name, atoms in counted.items():
        totals.setdefault(name, Counter()).update(atoms)


def count_atoms(
    session: Session, source: str, settings: Settings, worker_cpu: list[float] | None = None
) -> dict[str, Counter[Atom]]:
    """The atoms of the reports read from ``source``: people and children come together.

    ``worker_cpu``, when given, receives the CPU seconds of each slice counted
    in a worker process (for benchmarks).
    """
    if source == "cases":
        return {ReportName.CASES_BY_OFFICE_STAGE.value: _count_cases(session)}
    ctx = _context(session, utcnow().year)
    kind = "persons" if source in ("people", "children") else source
    return _count(session, kind, ctx, settings.workers, worker_cpu)


# --- a run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    spec: Spec
    filters: Filters
    table: Table
    settings: Settings


def compute(
    session: Session,
    spec: Spec,
    filters: Filters,
    settings: Settings,
    worker_cpu: list[float] | None = None,
) -> Result:
    """The published view of ``spec`` for ``filters`` (already scoped); no audit."""
    grids = count_atoms(session, spec.source, settings, worker_cpu)
    atoms = grids.get(spec.name.value, Counter())
    hidden = withhold(grids, settings.k, LINKS)
    values = spec.values()
    if "office" in spec.dims:
        offices = session.scalars(select(Office.code).order_by(Office.code)).all()
        values["office"] = [filters.office] if filters.office else list(offices)
    if "month" in spec.dims and filters.month:
        values["month"] = [filters.month]
    table = tabulate(
        atoms,
        hidden.get(spec.name.value, frozenset()),
        spec.cell_dims,
        spec.dims,
        values,
        office=filters.office,
        month=filters.month,
        rounding=settings.rounding,
    )
    return Result(spec, filters, table, settings)


def run_report(
    session: Session, principal: Principal, name: str, filters: Filters, settings: Settings
) -> Result:
    """Run report ``name`` for ``principal``: scope, compute, one ``report.run`` entry.

    Raises :class:`UnknownReport`; 403/404 from the scope check.
    """
    spec = spec_for(name)
    scoped = scoped_filters(session, principal, filters)
    result = compute(session, spec, scoped, settings)
    audit.record(
        AuditAction.REPORT_RUN, target=spec.name.value, fields=filters.names(), session=session
    )
    return result


# --- publication ----------------------------------------------------------------------------


def _count_out(value: int | None) -> int | dict[str, bool]:
    return {"suppressed": True} if value is None else value


def as_json(result: Result) -> dict[str, Any]:
    dims = result.table.dimensions
    return {
        "report": result.spec.name.value,
        "title": result.spec.title,
        "unit": result.spec.unit,
        "filters": {"office": result.filters.office, "month": result.filters.month},
        "dimensions": list(dims),
        "cells": [
            {**dict(zip(dims, key, strict=True)), "count": _count_out(value)}
            for key, value in result.table.cells
        ],
        "totals": [{**where, "count": _count_out(value)} for where, value in result.table.totals],
        "suppression": {
            "k": result.settings.k,
            "rounding": result.settings.rounding,
            "method": METHOD,
        },
    }


TOTAL = "total"


def as_rows(result: Result) -> list[list[str]]:
    """CSV rows: a header, the HXL hashtag row, the cells, then the totals (``total``)."""
    dims = list(result.table.dimensions)
    header = [*dims, "count", "suppressed"]
    rows = [header, [HXL_TAGS.get(column, "") for column in header]]

    def line(values: Sequence[str], count: int | None) -> list[str]:
        return [*values, "" if count is None else str(count), "1" if count is None else ""]

    rows += [line(key, value) for key, value in result.table.cells]
    rows += [
        line([where.get(d, TOTAL) for d in dims], value) for where, value in result.table.totals
    ]
    return rows


# --- recording the steps the reports count (a workflow effect) ------------------------------

_FUNNEL_STEPS = {step.value for step in FunnelStep}


def _event_details(context: TransitionContext) -> dict[str, Any] | None:
    transition = context.transition
    to_state = transition.to_state
    row = context.session.get(CaseWorkflow, context.case.id)
    if transition.process is Process.RESETTLEMENT and to_state in _FUNNEL_STEPS:
        submission = (row.submission if row is not None else None) or {}
        categories = submission.get("categories") or []
        return {"kind": "funnel", "step": to_state, "categories": list(categories)}
    if transition.process is Process.VETTING and to_state in (
        VettingState.CLEARED,
        VettingState.REFERRED_FOR_REVIEW,
        VettingState.REJECTED,
    ):
        return {"kind": "decision", "decision": Decision.VETTING.value, "outcome": to_state}
    if transition.process is Process.DETERMINATION and row is not None:
        if to_state == DeterminationStage.DECIDED:
            outcome = row.first_instance_outcome
            return {
                "kind": "decision",
                "decision": Decision.DETERMINATION.value,
                "outcome": outcome,
            }
        if to_state == DeterminationStage.APPEAL_DECIDED:
            outcome = row.appeal_outcome
            return {"kind": "decision", "decision": Decision.APPEAL.value, "outcome": outcome}
    return None


def record_event(context: TransitionContext) -> None:
    """Workflow effect: remember the month of a step a report counts (details sealed)."""
    details = _event_details(context)
    if details is None:
        return
    event = ReportEvent(case_id=context.case.id, occurred_at=context.now)
    event.details = details
    context.session.add(event)


def erase_events(session: Session, case: Case) -> None:
    """Erasure hook: a case's counted steps go with it."""
    from sqlalchemy import delete

    session.execute(delete(ReportEvent).where(ReportEvent.case_id == case.id))
