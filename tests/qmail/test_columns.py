"""Columns: rows in typed arrays come back as they went in, None and names included."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.qmail.columns import NAME, Columns

KINDS = {"id": "q", "t": "d", "who": NAME, "ok": "b", "n": "i"}
ROWS = st.tuples(
    st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1)),
    st.one_of(st.none(), st.floats(allow_nan=False)),
    st.one_of(st.none(), st.text(max_size=5)),
    st.booleans(),
    st.one_of(st.none(), st.integers(-(2**31) + 1, 2**31 - 1)),
)


@given(st.lists(ROWS, max_size=30))
def test_rows_come_back_as_they_went_in(rows: list[tuple]) -> None:
    table = Columns(**KINDS)
    for row in rows:
        table.append(*row)
    assert list(table.rows()) == rows
    assert len(table) == len(rows)
    assert table.count("who") == {w: sum(r[2] == w for r in rows) for w in {r[2] for r in rows}}


def test_a_row_can_change_in_place() -> None:
    table = Columns(**KINDS)
    i = table.append(7, None, "alice", False, None)
    table.set(i, "t", 2.5)
    table.set(i, "who", None)
    table.set(i, "ok", True)
    assert table.row(i) == (7, 2.5, None, True, None)
    assert table.get(i, "t") == 2.5 and table.get(i, "n") is None


def test_a_bad_row_adds_nothing() -> None:
    table = Columns(**KINDS)
    table.append(1, 1.0, "a", True, 1)
    with pytest.raises(OverflowError):
        table.append(2, 2.0, "b", True, 2**40)  # too big for its 32-bit column, the last
    with pytest.raises(ValueError):
        table.append(3, "noon", "c", True, 3)
    with pytest.raises(TypeError):
        table.append(4, 4.0)
    assert {len(c) for c in table.columns.values()} == {1}
    assert list(table.rows()) == [(1, 1.0, "a", True, 1)]


def test_count_of_a_float_column_adds_up_its_nones() -> None:
    table = Columns(t="d")
    for value in (None, None, 1.5, None, 1.5):
        table.append(value)
    assert table.count("t") == {None: 3, 1.5: 2}


def test_a_copy_is_independent() -> None:
    table = Columns(**KINDS)
    table.append(1, 1.0, "a", True, 1)
    twin = table.copy()
    twin.append(2, 2.0, "b", False, 2)
    twin.set(0, "t", 9.0)
    assert list(table.rows()) == [(1, 1.0, "a", True, 1)]
    assert list(twin.rows()) == [(1, 9.0, "a", True, 1), (2, 2.0, "b", False, 2)]
