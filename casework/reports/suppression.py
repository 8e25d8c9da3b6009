"""Small-cell suppression that survives differencing: the method of docs/reports.md.

Every report is first counted on a grid of **atoms**: (office, month, cell), where
the cell holds the report's own dimensions (stage; sex, age band and needs; ...).
The filters a caller may use (a whole office, a whole month) and every margin
a report publishes are unions of atoms, so every figure ever published is a
sum over atoms.

1. **Primary suppression**: an atom counting 1 to k-1 is *withheld*.
2. **Complementary suppression across reports**: where two reports count the
   same people (children appear in the people report's child age bands and in
   the children report), one withheld atom in either withholds every atom of
   those people in that office and month, in both reports (a :class:`Link`), so
   the two reports' totals for those people stay equal and their difference
   is zero.
3. **Publication**: a figure is the sum of the atoms it covers that are *not*
   withheld. A figure whose published sum is 0 while some covered atom is
   withheld is shown suppressed; a true zero is shown as 0.

Because no published figure depends on the value of a withheld atom, no
combination of published figures — row and column totals, all offices minus
one office, one month against all months or its neighbours, one report's
margins against another's — can recover it: a withheld atom can take any
value from 1 to k-1 and every published figure stays the same (the property
``tests/reports/test_suppression.py`` checks). The price: a figure does not
count the people of withheld atoms, so a total is the total of the published
atoms, not of everyone (the response says so in ``method``).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Cell = tuple[str, ...]
Atom = tuple[str, str, Cell]
"""(office code, month ``YYYY-MM``, the report's own dimension values)."""

SUPPRESSED = None
"""A figure that is not published."""

ATOM_COORDINATES = ("office", "month")


@dataclass(frozen=True)
class Link:
    """Two reports counting the same people under part of their cells (see step 2)."""

    first: str
    first_cells: Callable[[Cell], bool]
    second: str
    second_cells: Callable[[Cell], bool]

    def sides(self) -> tuple[tuple[str, Callable[[Cell], bool]], ...]:
        return ((self.first, self.first_cells), (self.second, self.second_cells))


def withhold(
    counts: Mapping[str, Mapping[Atom, int]], k: int, links: Iterable[Link] = ()
) -> dict[str, frozenset[Atom]]:
    """The withheld atoms of each report: below ``k`` (and above 0), or linked to one.

    Deterministic and computed on the whole grid, never on a filtered view, so
    every view of every report hides the same atoms.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    withheld = {name: {a for a, n in grid.items() if 0 < n < k} for name, grid in counts.items()}
    links = [link for link in links if link.first in counts and link.second in counts]
    changed = True
    while changed:  # a link can withhold atoms that another link then follows
        changed = False
        for link in links:
            blocks = {
                (office, month)
                for name, covers in link.sides()
                for office, month, cell in withheld[name]
                if covers(cell)
            }
            for name, covers in link.sides():
                extra = {
                    atom
                    for atom in counts[name]
                    if (atom[0], atom[1]) in blocks
                    and covers(atom[2])
                    and atom not in withheld[name]
                }
                if extra:
                    withheld[name] |= extra
                    changed = True
    return {name: frozenset(atoms) for name, atoms in withheld.items()}


def rounded(value: int, base: int) -> int:
    """``value`` rounded half up to a multiple of ``base`` (0: unchanged)."""
    if base <= 1:
        return value
    return (value + base // 2) // base * base


def figure(true: int, published: int, rounding: int = 0) -> int | None:
    """What is shown for a figure: its published sum, 0 for a true zero, else suppressed."""
    if published == 0:
        return 0 if true == 0 else SUPPRESSED
    shown = rounded(published, rounding)
    return shown if shown > 0 else SUPPRESSED


@dataclass(frozen=True)
class Table:
    """One view of a report: its cells and margins, each figure an int or ``None`` (suppressed)."""

    dimensions: tuple[str, ...]
    cells: list[tuple[tuple[str, ...], int | None]]
    totals: list[tuple[dict[str, str], int | None]]


def tabulate(
    atoms: Mapping[Atom, int],
    withheld: frozenset[Atom],
    cell_dims: Sequence[str],
    dims: Sequence[str],
    values: Mapping[str, Sequence[str]],
    *,
    office: str | None = None,
    month: str | None = None,
    rounding: int = 0,
) -> Table:
    """The view of one report for the filters ``office`` and ``month`` (None: all).

    ``dims`` are the published dimensions, drawn from the atom's office and
    month and the ``cell_dims``; ``values`` lists each dimension's values in
    publication order (values seen in the data but not listed are appended).
    Cells are the full grid of ``dims``; totals are each dimension's margin
    and the grand total. Every figure is :func:`figure` of its atoms.
    """
    true: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
    published: dict[tuple[str, tuple[str, ...]], int] = defaultdict(int)
    seen: dict[str, set[str]] = {d: set() for d in dims}
    for atom, count in atoms.items():
        atom_office, atom_month, cell = atom
        if (office is not None and atom_office != office) or (
            month is not None and atom_month != month
        ):
            continue
        coords = dict(zip(ATOM_COORDINATES, (atom_office, atom_month), strict=True))
        coords.update(zip(cell_dims, cell, strict=True))
        key = tuple(coords[d] for d in dims)
        keys = [("", key), ("*", ())] + [(d, (coords[d],)) for d in dims]
        hidden = atom in withheld
        for target in keys:
            true[target] += count
            if not hidden:
                published[target] += count
        for d in dims:
            seen[d].add(coords[d])
    grid = {d: [*values.get(d, ()), *sorted(seen[d] - set(values.get(d, ())))] for d in dims}

    def shown(target: tuple[str, tuple[str, ...]]) -> int | None:
        return figure(true.get(target, 0), published.get(target, 0), rounding)

    cells = [(key, shown(("", key))) for key in itertools.product(*(grid[d] for d in dims))]
    totals: list[tuple[dict[str, str], int | None]] = []
    if len(dims) > 1:
        for d in dims:
            totals += [({d: v}, shown((d, (v,)))) for v in grid[d]]
    totals.append(({}, shown(("*", ()))))
    return Table(tuple(dims), cells, totals)
