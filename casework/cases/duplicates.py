"""Duplicate registrations and possible impostors: candidates by blind index, then a score.

A person registered twice (or an impostor using someone's identity) is found
in two steps. Blind indexes propose candidates: each member is indexed under
several spelling-tolerant keys (:mod:`casework.cases.indexes`), looked up with
the birth year and its neighbours. The server then decrypts the few
candidates and scores each pair (:func:`score_people`): name similarity of
the romanisation-blind skeletons (``rapidfuzz``), agreement on birth year,
sex and documents, and other household members found in both cases. Only a
pair scoring at least :data:`THRESHOLD` is reported.

Who learns of a match (docs/permissions.md):

* the registering office, at intake and through ``POST /cases/{ref}/duplicates``:
  candidates of its own office only, looked up with the office in SQL;
* matches in other offices never touch an office's request. Each intake and
  each on-demand check queues the case (:class:`DuplicateCheck`, one row
  whatever exists elsewhere); :func:`scan_pending` compares queued cases with
  the other offices and raises :class:`DuplicateAlert` rows that only holders
  of ``alerts:cross-office`` (``integrity_officer``) list and review. It runs
  when they list alerts and from ``casework cases scan-duplicates`` (a schedule).
"""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from casework import audit
from casework.audit import AuditAction
from casework.audit.service import record_many
from casework.authz.access import Principal, in_scope
from casework.authz.permissions import Permission
from casework.cases import indexes
from casework.cases.indexes import keyring_of
from casework.cases.models import Case, DuplicateAlert, DuplicateCheck
from casework.cases.names import EmptyName, NameForms, name_forms
from casework.cases.rules import birth_year_of
from casework.errors import NotFound, ValidationFailed
from casework.pagination import decode_cursor, encode_cursor
from casework.timestamps import utcnow

#: A pair scoring at least this is reported (``possible_duplicates``) or alerted.
#: Every spelling variant reaches a name similarity of 1.0; with a birth year off
#: by one (x0.92) and a document of the same kind that differs (x0.9) it still
#: scores 0.83. Different sexes (x0.4) or a name that only a truncated hash
#: shared (similarity well under 0.8) fall below. ``make eval-duplicates``
#: measures recall and false alerts at this value.
THRESHOLD = 0.8
YEAR_OFF_BY_ONE = 0.92
YEAR_UNKNOWN = 0.85
YEAR_FAR = 0.3
SEX_DIFFERS = 0.4
DOCUMENT_DIFFERS = 0.9
#: Share of the way to 1.0 that other household members found in both cases add.
HOUSEHOLD_WEIGHT = 0.5
#: How many queued cases a listing of cross-office alerts compares first.
SCAN_ON_READ = 200
#: ``session.info`` key: candidate members decrypted by the last in-office check
#: (read by the evaluation; never leaves the server).
DECRYPTED_KEY = "casework.duplicates.decrypted"

MATCHED_ON = (indexes.DOCUMENT_NUMBER, indexes.NAME_BIRTH_YEAR, indexes.NAME_VARIANT)

#: The member fields the comparison reads, as the access log names them.
INDEX_FIELDS: dict[str, list[str]] = {
    indexes.DOCUMENT_NUMBER: ["members.documents"],
    indexes.NAME_BIRTH_YEAR: [
        "members.birth_year",
        "members.date_of_birth",
        "members.full_name",
        "members.other_names",
    ],
}
INDEX_FIELDS[indexes.NAME_VARIANT] = INDEX_FIELDS[indexes.NAME_BIRTH_YEAR]
CHECKED_FIELDS = sorted(
    {name for names in INDEX_FIELDS.values() for name in names} | {"members.sex"}
)


# --- scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """What the score reads of one member, decrypted."""

    names: tuple[NameForms, ...]
    year: int | None
    sex: str | None
    documents: frozenset[tuple[str | None, str]]

    @classmethod
    def of(cls, plain: Mapping[str, Any]) -> Person:
        """From plain member values (API field names)."""
        names = []
        for text in [plain.get("full_name"), *(plain.get("other_names") or ())]:
            if not text:
                continue
            try:
                names.append(name_forms(text))
            except EmptyName:
                continue
        documents = set()
        for document in plain.get("documents") or ():
            key = indexes.document_key(document["number"])
            if key:
                documents.add((document.get("type"), key))
        sex = plain.get("sex")
        return cls(
            tuple(names), birth_year_of(plain), str(sex) if sex else None, frozenset(documents)
        )


def name_similarity(a: NameForms, b: NameForms) -> float:
    """0-1: how alike two names are once romanisation is set aside.

    Equal word skeletons in any order give 1.0; otherwise the best of the
    word-sorted similarity and, for each family-name position, a weighted
    similarity of family name (0.35) and joined given name (0.65).
    """
    if a.tokens == b.tokens:
        return 1.0
    best = fuzz.token_sort_ratio(" ".join(a.tokens), " ".join(b.tokens)) / 100
    for family_a, given_a in a.splits:
        for family_b, given_b in b.splits:
            family = Levenshtein.normalized_similarity(family_a, family_b)
            given = Levenshtein.normalized_similarity(given_a, given_b)
            best = max(best, 0.35 * family + 0.65 * given)
    return best


def _year_factor(a: int | None, b: int | None) -> float:
    if a is None or b is None:
        return YEAR_UNKNOWN
    if a == b:
        return 1.0
    return YEAR_OFF_BY_ONE if abs(a - b) == 1 else YEAR_FAR


def _documents_differ(a: Person, b: Person) -> bool:
    """Both hold a document of one kind, and no number is shared."""
    kinds_a = {kind for kind, _ in a.documents if kind}
    kinds_b = {kind for kind, _ in b.documents if kind}
    return bool(kinds_a & kinds_b)


def score_people(a: Person, b: Person) -> tuple[float, str]:
    """The score (0-1) of two members being one person, and what matched.

    A shared document number scores 1.0 (``document_number``). Otherwise the
    best name similarity is weighted by birth year, sex and documents
    (factors above); ``name_birth_year`` when the word skeletons and the year
    are equal, else ``name_variant``.
    """
    if {key for _, key in a.documents} & {key for _, key in b.documents}:
        return 1.0, indexes.DOCUMENT_NUMBER
    if not a.names or not b.names:
        return 0.0, indexes.NAME_VARIANT
    name = max(name_similarity(x, y) for x in a.names for y in b.names)
    score = name * _year_factor(a.year, b.year)
    if a.sex and b.sex and a.sex != b.sex:
        score *= SEX_DIFFERS
    if _documents_differ(a, b):
        score *= DOCUMENT_DIFFERS
    exact = a.year == b.year and {x.tokens for x in a.names} & {y.tokens for y in b.names}
    return score, indexes.NAME_BIRTH_YEAR if exact else indexes.NAME_VARIANT


def _household_share(ours: Sequence[Person], theirs: Sequence[Person], skip: int) -> float:
    """Share of our other members with a name-and-year match among theirs."""
    others = [p for index, p in enumerate(ours) if index != skip and p.names]
    if not others:
        return 0.0
    found = sum(1 for p in others if any(score_people(p, q)[0] >= THRESHOLD for q in theirs))
    return found / len(others)


@dataclass(frozen=True, slots=True)
class Match:
    """A case that may hold one of our people, with its best score."""

    case_id: uuid.UUID
    reference: str
    score: float
    matched_on: tuple[str, ...]


def score_case(
    session: Session, ours: Sequence[Person], candidates: Sequence[indexes.Candidate]
) -> Match:
    """The best member pair between our people and ``candidates`` (members of one case).

    When the best pair falls short of :data:`THRESHOLD` but is close (>= 0.6),
    the rest of that case's household is decrypted: members found in both cases
    add :data:`HOUSEHOLD_WEIGHT` of the way to 1.0.
    """
    best, best_index, matched = 0.0, 0, set()
    for candidate in candidates:
        theirs = Person.of(candidate.plain)
        for index, person in enumerate(ours):
            score, on = score_people(person, theirs)
            if score >= THRESHOLD:
                matched.add(on)
            if score > best:
                best, best_index = score, index
    first = candidates[0]
    if 0.6 <= best < THRESHOLD and len(ours) > 1:
        household = [Person.of(plain) for plain in indexes.household(session, first.case_id)]
        best += (1 - best) * HOUSEHOLD_WEIGHT * _household_share(ours, household, best_index)
        if best >= THRESHOLD:
            matched.add(indexes.NAME_VARIANT)
    return Match(first.case_id, first.reference, round(min(best, 1.0), 4), tuple(sorted(matched)))


# --- finding candidates ----------------------------------------------------------------------


def people_of(case: Case) -> tuple[list[Person], set[indexes.Probe]]:
    """Our members as :class:`Person` and the probes that look them up (years +-1);
    decrypts the stored members (see :func:`people_from` for values in hand)."""
    return people_from(indexes.plain_member(m) for m in case.members)


def people_from(plains: Iterable[Mapping[str, Any]]) -> tuple[list[Person], set[indexes.Probe]]:
    """:func:`people_of` from plain member values (API field names), e.g. the intake
    body a case was just registered with: nothing to decrypt."""
    return lookup_of([Person.of(plain) for plain in plains])


def lookup_of(people: list[Person]) -> tuple[list[Person], set[indexes.Probe]]:
    """``people`` and the probes that look them up (years +-1)."""
    probes: set[indexes.Probe] = set()
    for person in people:
        probes |= probes_of(person)
    return people, probes


def probes_of(person: Person, year_slack: int = indexes.YEAR_SLACK) -> set[indexes.Probe]:
    """The probes that look ``person`` up: what :func:`casework.cases.indexes.member_probes`
    gives with ``year_slack``, from the name forms the score computed already (with
    ``year_slack`` 0: the keys a member is stored under)."""
    probes = {indexes.Probe(indexes.DOCUMENT_NUMBER, (key,)) for _, key in person.documents}
    if person.year is not None:
        years = range(person.year - year_slack, person.year + year_slack + 1)
        for forms in person.names:
            probes |= indexes.forms_probes(forms, years)
    return probes


def matches(
    session: Session,
    case: Case,
    *,
    office: str | None = None,
    exclude_office: str | None = None,
    members: Sequence[Mapping[str, Any]] | None = None,
    known: indexes.Values | None = None,
    people: list[Person] | None = None,
) -> tuple[list[Match], int]:
    """Cases scoring at least :data:`THRESHOLD` against ``case`` (best first), and how
    many candidate members were decrypted to find them. ``office``/``exclude_office``
    as in :func:`casework.cases.indexes.lookup`; ``members``: ``case``'s plain member
    values when in hand (else they are decrypted), or ``people``, their :class:`Person`
    already made; ``known``: index values already computed for this request."""
    if people is not None:
        people, probes = lookup_of(people)
    elif members is not None:
        people, probes = people_from(members)
    else:
        people, probes = people_of(case)
    candidates = indexes.candidates(
        session,
        keyring_of(session),
        probes,
        office=office,
        exclude_office=exclude_office,
        exclude_case=case.id,
        known=known,
    )
    return _kept(session, people, candidates), len(candidates)


def _kept(
    session: Session, people: Sequence[Person], candidates: Sequence[indexes.Candidate]
) -> list[Match]:
    """The cases of ``candidates`` (in lookup order) scoring at least :data:`THRESHOLD`
    against ``people``, best first."""
    by_case: dict[uuid.UUID, list[indexes.Candidate]] = {}
    for candidate in candidates:
        by_case.setdefault(candidate.case_id, []).append(candidate)
    found = [score_case(session, people, members) for members in by_case.values()]
    kept = [m for m in found if m.score >= THRESHOLD]
    kept.sort(key=lambda m: (-m.score, m.reference))
    return kept


def _view(match: Match) -> dict[str, Any]:
    return {
        "reference": match.reference,
        "score": match.score,
        "matched_on": list(match.matched_on),
    }


def queue_check(session: Session, case: Case) -> None:
    """Queue ``case`` for the cross-office comparison (idempotent; one row per case)."""
    session.flush()  # the case must exist before the queue names it
    statement = _queue_statement(session.get_bind().dialect.name)
    # Through the session: a read-mode request's session becomes a writer before it.
    session.execute(statement, {"case_id": case.id, "queued_at": utcnow()})


def queue_checks(session: Session, case_ids: Sequence[uuid.UUID]) -> None:
    """:func:`queue_check` for many cases in one statement (their rows flushed first)."""
    if not case_ids:
        return
    session.flush()
    statement = _queue_statement(session.get_bind().dialect.name)
    now = utcnow()
    session.execute(statement, [{"case_id": case_id, "queued_at": now} for case_id in case_ids])


@functools.cache
def _queue_statement(dialect: str) -> Any:
    """:func:`queue_check`'s INSERT, built once per dialect (the values are bound)."""
    module = postgresql if dialect == "postgresql" else sqlite
    table: Any = DuplicateCheck.__table__  # the table, not the entity: no ORM bulk path
    return module.insert(table).on_conflict_do_nothing()


def find_duplicates(
    session: Session,
    principal: Principal,
    case: Case,
    members: Sequence[Mapping[str, Any]] | None = None,
    known: indexes.Values | None = None,
    people: list[Person] | None = None,
    *,
    queue: bool = True,
) -> list[dict[str, Any]]:
    """Cases of ``case``'s office (the caller's) that may hold the same people, best first.

    Each item: ``reference``, ``score`` (0-1), ``matched_on``. Other offices are
    not looked at here: the case is queued for :func:`scan_pending` instead, so
    neither the answer nor its time depends on what other offices hold. At
    intake, ``members`` (the body's plain member values) or ``people`` (made of
    them to compute the stored keys) and ``known`` (the index values computed to
    store them) spare decrypting, parsing names and hashing again. ``queue`` False:
    the caller queues the case itself (:func:`queue_checks`, many at once).
    """
    found: list[dict[str, Any]] = []
    if in_scope(principal, case.office_code):
        kept, decrypted = matches(
            session, case, office=case.office_code, members=members, known=known, people=people
        )
        session.info[DECRYPTED_KEY] = decrypted
        found = [_view(m) for m in kept]
    if queue:
        queue_check(session, case)
    return found


def find_duplicates_each(
    session: Session,
    principal: Principal,
    written: Sequence[tuple[Case, list[Person]]],
    known: indexes.Values | None = None,
    entries: Sequence[indexes.Written] = (),
) -> list[list[dict[str, Any]]]:
    """:func:`find_duplicates` (``queue`` False) of cases written together, each given with
    its members as :class:`Person`: the same answer for each, with one lookup statement
    per office for all (:func:`casework.cases.indexes.candidates_each`) instead of one
    per case. Cases written together find each other, never themselves. ``entries``:
    every blind-index entry of those cases, as written (``candidates_each``'s
    ``written``)."""
    found: list[list[dict[str, Any]]] = [[] for _ in written]
    by_office: dict[str, list[int]] = {}
    for position, (case, _people) in enumerate(written):
        if in_scope(principal, case.office_code):
            by_office.setdefault(case.office_code, []).append(position)
    keyring = keyring_of(session)
    for office, positions in by_office.items():
        lookups = [(lookup_of(written[p][1])[1], written[p][0].id) for p in positions]
        each = indexes.candidates_each(
            session, keyring, lookups, office=office, known=known, written=entries
        )
        for position, candidates in zip(positions, each, strict=True):
            kept = _kept(session, written[position][1], candidates)
            session.info[DECRYPTED_KEY] = len(candidates)
            found[position] = [_view(m) for m in kept]
    return found


def check_duplicates(session: Session, principal: Principal, case: Case) -> list[dict[str, Any]]:
    """:func:`find_duplicates` on demand, recorded as ``case.duplicates``."""
    found = find_duplicates(session, principal, case)
    audit.record(
        AuditAction.CASE_DUPLICATES, target=case.reference, fields=CHECKED_FIELDS, session=session
    )
    return found


def scan_pending(session: Session, *, limit: int | None = None) -> int:
    """Compare queued cases with every other office's cases; return the alerts raised.

    Oldest first, at most ``limit`` cases; each compared case leaves the queue.
    Never commits (a command commits after each call).
    """
    query = select(DuplicateCheck.case_id).order_by(
        DuplicateCheck.queued_at, DuplicateCheck.case_id
    )
    if limit is not None:
        query = query.limit(limit)
    raised = 0
    for case_id in list(session.scalars(query)):
        case = session.get(Case, case_id)
        if case is not None and not case.is_erased:
            indexes.prefetch_keys(session, [case.id])
            kept, _decrypted = matches(session, case, exclude_office=case.office_code)
            for match in kept:
                on = match.matched_on[0] if match.matched_on else indexes.NAME_VARIANT
                other = session.get_one(Case, match.case_id)
                raised += raise_alert(session, case, other, on, match.score)
        session.execute(delete(DuplicateCheck).where(DuplicateCheck.case_id == case_id))
    return raised


def pending_checks(session: Session) -> int:
    """How many cases wait for the cross-office comparison."""
    return int(session.scalar(select(func.count()).select_from(DuplicateCheck)) or 0)


def _dialect(session: Session) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def raise_alert(
    session: Session, case: Case, other: Case, matched_on: str, score: float | None = None
) -> bool:
    """Record that ``case`` and ``other`` may be one person; False if already recorded.

    Both cases' references get an ``alert.raise`` entry (an action no case
    history shows), so auditors find it under either case.
    """
    first, second = sorted((case, other), key=lambda c: c.id)
    session.flush()  # a case just registered must exist before an alert names it
    # Two scans may detect the same pair at once: the later insert waits for the
    # earlier one and then does nothing, instead of failing on the unique key.
    inserted = session.scalar(
        _dialect(session)
        .insert(DuplicateAlert)
        .values(
            id=uuid.uuid4(),
            case_id=first.id,
            other_case_id=second.id,
            matched_on=matched_on,
            score=score,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(DuplicateAlert.id)
    )
    if inserted is None:
        return False
    for target in (case, other):
        audit.record(
            AuditAction.ALERT_RAISE,
            target=target.reference,
            fields=INDEX_FIELDS[matched_on],
            session=session,
        )
    return True


# --- listing ---------------------------------------------------------------------------------


def _after(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    position = decode_cursor(cursor)
    try:
        at = datetime.datetime.fromisoformat(position["t"])
        alert_id = uuid.UUID(position["id"])
    except (KeyError, TypeError, ValueError):
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}}) from None
    if at.tzinfo is None:
        raise ValidationFailed(errors={"query": {"cursor": ["Not a valid cursor."]}})
    return at, alert_id


def list_alerts(
    session: Session, principal: Principal, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Alerts the caller may see, newest first, each recorded as ``alert.read``.

    Holders of ``alerts:cross-office`` see alerts between offices (after the
    queue has been scanned, up to :data:`SCAN_ON_READ` cases); office staff see
    alerts whose two cases are both in their office.
    """
    first, second = aliased(Case), aliased(Case)
    query = (
        select(DuplicateAlert, first, second)
        .join(first, first.id == DuplicateAlert.case_id)
        .join(second, second.id == DuplicateAlert.other_case_id)
    )
    if principal.has(Permission.ALERTS_CROSS_OFFICE):
        if not cursor:
            scan_pending(session, limit=SCAN_ON_READ)
        query = query.where(first.office_code != second.office_code)
    elif principal.office is not None:
        query = query.where(
            first.office_code == principal.office, second.office_code == principal.office
        )
    else:
        return [], None
    if cursor:
        at, alert_id = _after(cursor)
        query = query.where(
            or_(
                DuplicateAlert.created_at < at,
                and_(DuplicateAlert.created_at == at, DuplicateAlert.id < alert_id),
            )
        )
    query = query.order_by(DuplicateAlert.created_at.desc(), DuplicateAlert.id.desc())
    rows = session.execute(query.limit(limit + 1)).all()
    items = [_alert_view(session, alert, a, b) for alert, a, b in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last: DuplicateAlert = rows[limit - 1][0]
        next_cursor = encode_cursor({"t": last.created_at.isoformat(), "id": str(last.id)})
    return items, next_cursor


def _alert_view(session: Session, alert: DuplicateAlert, *cases: Case) -> dict[str, Any]:
    record_many(
        AuditAction.ALERT_READ,
        [case.reference for case in cases],
        fields=["matched_on", "score"],
        session=session,
    )
    return {
        "id": alert.id,
        "matched_on": alert.matched_on,
        "version": alert.version,
        "score": alert.score,
        "created_at": alert.created_at,
        "cases": [{"office": c.office_code, "reference": c.reference} for c in cases],
    }


def read_alert(session: Session, principal: Principal, alert_id: uuid.UUID) -> dict[str, Any]:
    """One alert as :func:`list_alerts` shows it (audited the same way): to holders of
    ``alerts:cross-office`` an alert between offices, to office staff one whose two cases
    are both in their office; NotFound otherwise, like a missing one."""
    alert = session.get(DuplicateAlert, alert_id)
    if alert is None:
        raise NotFound("No such resource.")
    cases = [session.get(Case, alert.case_id), session.get(Case, alert.other_case_id)]
    found = [c for c in cases if c is not None]
    offices = {c.office_code for c in found}
    if principal.has(Permission.ALERTS_CROSS_OFFICE):
        visible = len(offices) > 1
    else:
        visible = principal.office is not None and offices == {principal.office}
    if not visible:
        raise NotFound("No such resource.")
    return _alert_view(session, alert, *found)
