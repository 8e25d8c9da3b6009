"""Small-cell suppression: nothing published depends on a withheld cell's value.

The strongest form of "no attack recovers a suppressed cell": change the value
of any withheld (office, month, cell) count to any other value below k, and
every figure of every view of every report — each filter combination, each
margin, the grand total, the linked report's too — stays exactly the same. Then
no difference, sum or combination of published figures can tell the two apart.
The same attack against naive suppression (true totals published) succeeds,
so the test can fail.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from casework.reports.suppression import Atom, Link, figure, rounded, tabulate, withhold

OFFICES = ("off-a", "off-b", "off-c")
MONTHS = ("2026-01", "2026-02", "2026-03")
SEXES = ("female", "male")
BANDS = ("0-4", "12-17", "18-59")
STATUSES = ("registered", "not_registered")
PEOPLE, CHILDREN = "people", "children"
CELL_DIMS = {PEOPLE: ("sex", "age_band"), CHILDREN: ("registration",)}
VALUES = {"sex": list(SEXES), "age_band": list(BANDS), "registration": list(STATUSES)}
LINKS = (Link(PEOPLE, lambda cell: cell[1] != "18-59", CHILDREN, lambda cell: True),)
# Every view a caller can ask for: the report's own dimensions, by office, by month.
LAYOUTS = {name: [dims, ("office", *dims), ("month", *dims)] for name, dims in CELL_DIMS.items()}


def publication(grids: Mapping[str, Mapping[Atom, int]], k: int, rounding: int = 0) -> Any:
    """Every figure of every view of every report, for every filter combination."""
    hidden = withhold(grids, k, LINKS)
    shown = {}
    for name, layouts in LAYOUTS.items():
        for dims, office, month in itertools.product(layouts, (None, *OFFICES), (None, *MONTHS)):
            values = {**VALUES, "office": list(OFFICES), "month": list(MONTHS)}
            table = tabulate(
                grids[name],
                hidden[name],
                CELL_DIMS[name],
                dims,
                values,
                office=office,
                month=month,
                rounding=rounding,
            )
            shown[(name, dims, office, month)] = (table.cells, table.totals)
    return shown


def naive_publication(grid: Mapping[Atom, int], k: int) -> dict[Any, int | None]:
    """What a naive scheme shows: cells below k hidden, true totals by office and overall."""
    out: dict[Any, int | None] = {}
    for cell in itertools.product(SEXES, BANDS):
        for office in (None, *OFFICES):
            true = sum(n for (o, _, c), n in grid.items() if c == cell and office in (None, o))
            out[(cell, office)] = true if true == 0 or true >= k else None
    return out


atoms_strategy = st.dictionaries(
    st.tuples(
        st.sampled_from(OFFICES),
        st.sampled_from(MONTHS),
        st.tuples(st.sampled_from(SEXES), st.sampled_from(BANDS)),
    ),
    st.integers(min_value=0, max_value=14),
    max_size=30,
)


def children_of(people: Mapping[Atom, int], data: st.DataObject) -> dict[Atom, int]:
    """A children grid consistent with the people grid: the same children per office and month."""
    per_block: Counter[tuple[str, str]] = Counter()
    for (office, month, (_, band)), n in people.items():
        if band != "18-59":
            per_block[(office, month)] += n
    grid: dict[Atom, int] = {}
    for (office, month), n in per_block.items():
        registered = data.draw(st.integers(min_value=0, max_value=n))
        grid[(office, month, ("registered",))] = registered
        grid[(office, month, ("not_registered",))] = n - registered
    return grid


@settings(max_examples=60, deadline=None)
@given(people=atoms_strategy, k=st.integers(min_value=2, max_value=6), data=st.data())
def test_no_published_figure_depends_on_a_withheld_cell(
    people: dict[Atom, int], k: int, data: st.DataObject
) -> None:
    grids = {PEOPLE: people, CHILDREN: children_of(people, data)}
    hidden = withhold(grids, k, LINKS)
    # A withheld cell holding people (a true zero is published as 0: only presence shows).
    candidates = [
        (name, atom) for name in grids for atom in sorted(hidden[name]) if grids[name][atom] > 0
    ]
    if not candidates:
        return
    name, atom = data.draw(st.sampled_from(candidates))
    other = data.draw(st.integers(min_value=1, max_value=k - 1))
    before = publication(grids, k)
    changed = {**grids, name: {**grids[name], atom: other}}
    assert publication(changed, k) == before
    # and so, in particular, no published figure equals the cell through a difference
    assert withhold(changed, k, LINKS) == hidden


def test_every_difference_of_totals_and_nested_reports_fails() -> None:
    """The issue's population: one stateless child in a small office, found by no difference."""
    k = 5
    people: dict[Atom, int] = {
        ("off-a", "2026-01", ("female", "18-59")): 40,
        ("off-a", "2026-01", ("male", "18-59")): 38,
        ("off-a", "2026-01", ("female", "0-4")): 12,
        ("off-b", "2026-01", ("female", "18-59")): 9,
        ("off-b", "2026-01", ("female", "0-4")): 1,  # the one child of a small office
        ("off-b", "2026-02", ("male", "18-59")): 7,
        ("off-c", "2026-03", ("female", "12-17")): 6,
    }
    children: dict[Atom, int] = {
        ("off-a", "2026-01", ("registered",)): 12,
        ("off-b", "2026-01", ("not_registered",)): 1,
        ("off-c", "2026-03", ("registered",)): 6,
    }
    grids = {PEOPLE: people, CHILDREN: children}
    shown = publication(grids, k)
    target = ("off-b", "2026-01", ("female", "0-4"))
    published = _figures(shown)
    for view, value in published.items():
        assert value is None or value == 0 or value >= k, view
    recovered = _attacks(published)
    assert people[target] not in recovered.get(target, set())
    assert not any(1 in values for values in recovered.values())
    # The same differences against naive suppression do find the child.
    naive = naive_publication(people, k)
    all_offices = naive[(("female", "0-4"), None)]
    others = [naive[(("female", "0-4"), o)] for o in ("off-a", "off-c")]
    assert naive[(("female", "0-4"), "off-b")] is None
    assert all_offices == 13
    assert others == [12, 0]
    assert all_offices - sum(others) == people[target]


def _figures(shown: Any) -> dict[Any, int | None]:
    """Flatten the publication to {(report, view, filters, where): figure}."""
    flat: dict[Any, int | None] = {}
    for (name, dims, office, month), (cells, totals) in shown.items():
        for key, value in cells:
            flat[(name, office, month, tuple(zip(dims, key, strict=True)))] = value
        for where, value in totals:
            flat[(name, office, month, tuple(sorted(where.items())))] = value
    return flat


def _attacks(published: Mapping[Any, int | None]) -> dict[Atom, set[int]]:
    """Every single-cell recovery by a difference: whole minus the published rest.

    For each finest cell (one office, one month, one cell) it tries: the
    office's margin minus its other cells; all offices minus the other
    offices; all months minus the other months (and a month against its
    neighbours); and the people report's children against the children report.
    """
    found: dict[Atom, set[int]] = {}

    def value(name: str, office: Any, month: Any, where: tuple[Any, ...]) -> int | None:
        return published.get((name, office, month, where))

    for office, month, sex, band in itertools.product(OFFICES, MONTHS, SEXES, BANDS):
        atom: Atom = (office, month, (sex, band))
        where = (("sex", sex), ("age_band", band))
        guesses = set()
        # all offices minus the other offices
        whole = value(PEOPLE, None, month, where)
        rest = [value(PEOPLE, o, month, where) for o in OFFICES if o != office]
        if whole is not None and None not in rest:
            guesses.add(whole - sum(r for r in rest if r is not None))
        # all months minus the other months
        whole = value(PEOPLE, office, None, where)
        rest = [value(PEOPLE, office, m, where) for m in MONTHS if m != month]
        if whole is not None and None not in rest:
            guesses.add(whole - sum(r for r in rest if r is not None))
        # the sex margin of the view minus the other age bands
        margin = value(PEOPLE, office, month, (("sex", sex),))
        rest = [value(PEOPLE, office, month, (("sex", sex), ("age_band", b))) for b in BANDS]
        rest = [r for b, r in zip(BANDS, rest, strict=True) if b != band]
        if margin is not None and None not in rest:
            guesses.add(margin - sum(r for r in rest if r is not None))
        # the children report's total minus the people report's other child cells
        if band != "18-59":
            kids = value(CHILDREN, office, month, ())
            rest = [
                value(PEOPLE, office, month, (("sex", s), ("age_band", b)))
                for s, b in itertools.product(SEXES, ("0-4", "12-17"))
                if (s, b) != (sex, band)
            ]
            if kids is not None and None not in rest:
                guesses.add(kids - sum(r for r in rest if r is not None))
        found[atom] = {g for g in guesses if g > 0}
    return found


def test_a_withheld_cell_is_shown_suppressed_and_a_true_zero_as_zero() -> None:
    assert figure(0, 0) == 0
    assert figure(3, 0) is None
    assert figure(12, 9) == 9
    assert rounded(12, 5) == 10
    assert rounded(13, 5) == 15
    assert figure(13, 13, rounding=5) == 15


def test_withholding_follows_links_both_ways() -> None:
    grids = {
        PEOPLE: {("off-a", "2026-01", ("female", "0-4")): 7},
        CHILDREN: {
            ("off-a", "2026-01", ("registered",)): 5,
            ("off-a", "2026-01", ("not_registered",)): 2,
        },
    }
    hidden = withhold(grids, 5, LINKS)
    assert hidden[CHILDREN] == set(grids[CHILDREN])
    assert hidden[PEOPLE] == set(grids[PEOPLE])  # 7 >= k, but the children's block is withheld
