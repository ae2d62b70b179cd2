"""Records kept in typed columns, so that a day's millions of them stay small.

A record of a few numbers and names costs 100-300 bytes as a Python object (the object, its
boxed floats and big ints); in `array` columns it costs 4-8 bytes a field, with each name
stored once. `Columns` keeps the rows, turns None into a sentinel and back, and lets a row's
fields be changed in place (a message's `end msg` comes long after its `new msg`).

A column's kind is an `array` typecode, or `NAME` for a string (an index into `names`):
"d" floats (None is NaN), "b" booleans, and integer codes ("i", "I", "q"), whose None is
the smallest value of the type ("I" has none: its values are never None).
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, TypeVar

NAME = "name"
T = TypeVar("T")
_NONE = {"b": -(2**7), "h": -(2**15), "i": -(2**31), "l": -(2**63), "q": -(2**63)}


class Columns:
    """Rows of fields `kinds` (field name -> kind), appended and read back as tuples."""

    def __init__(self, **kinds: str) -> None:
        if not kinds:
            raise TypeError("Columns needs at least one field")
        self.kinds = kinds
        self.fields = tuple(kinds)
        self.columns: dict[str, array] = {
            f: array("i" if k == NAME else k) for f, k in kinds.items()
        }
        self.names: list[Hashable] = []  # shared by every name column (strings, tuples)
        self.index: dict[Hashable, int] = {}
        self._codecs = [(self.columns[f], k) for f, k in kinds.items()]

    def __len__(self) -> int:
        return len(self.columns[self.fields[0]])

    def append(self, *values: Any) -> int:
        """Add a row (values in field order); its index. A value that cannot be stored (not
        a number, or too big for its column) adds no row, so the columns stay in step.
        Numbers are stored as their column's type: 2.9 in an integer column is 2."""
        if len(values) != len(self._codecs):
            raise TypeError(f"a row has {len(self._codecs)} fields, not {len(values)}")
        kinds = (kind for _, kind in self._codecs)
        cells = [self._encode(kind, value) for kind, value in zip(kinds, values, strict=True)]
        grown = 0
        try:
            for column, _ in self._codecs:
                column.append(cells[grown])
                grown += 1
        except OverflowError:
            for column, _ in self._codecs[:grown]:
                column.pop()
            raise
        return len(self) - 1

    def truncate(self, length: int) -> None:
        """Keep only the first `length` rows (0 or more)."""
        length = max(0, length)
        for column in self.columns.values():
            del column[length:]

    def row(self, i: int) -> tuple[Any, ...]:
        """Row `i` as it went in (names as strings, sentinels as None)."""
        return tuple(self._decode(kind, column[i]) for column, kind in self._codecs)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        for i in range(len(self)):
            yield self.row(i)

    def get(self, i: int, field: str) -> Any:
        return self._decode(self.kinds[field], self.columns[field][i])

    def set(self, i: int, field: str, value: Any) -> None:
        self.columns[field][i] = self._encode(self.kinds[field], value)

    def count(self, field: str) -> Counter[Any]:
        """How many rows have each value of `field`."""
        kind = self.kinds[field]
        out: Counter[Any] = Counter()
        for cell, n in Counter(self.columns[field]).items():
            out[self._decode(kind, cell)] += n  # each NaN read is its own object: all None
        return out

    def copy(self) -> Columns:
        """An independent copy (the arrays are copied whole, not row by row)."""
        twin = Columns(**self.kinds)
        for f, column in self.columns.items():
            twin.columns[f].extend(column)
        twin.names, twin.index = list(self.names), dict(self.index)
        return twin

    def name(self, text: Hashable | None) -> int:
        """The index of name `text` (-1 for None), storing it the first time."""
        if text is None:
            return -1
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.names)
            self.names.append(text)
        return found

    def _encode(self, kind: str, value: Any) -> Any:
        if kind == NAME:
            return self.name(value)
        if kind == "d":
            return math.nan if value is None else float(value)
        if value is None:
            if kind not in _NONE:
                raise ValueError(f"column kind {kind!r} has no None")
            return _NONE[kind]
        return int(value)

    def _decode(self, kind: str, cell: Any) -> Any:
        if kind == NAME:
            return None if cell < 0 else self.names[cell]
        if kind == "d":
            return None if math.isnan(cell) else cell
        if kind == "b":
            return None if cell == _NONE["b"] else bool(cell)
        return None if cell == _NONE.get(kind) else cell


class Records(Sequence[T]):
    """A `Sequence` of records over `Columns`: each row is made into a record (`make`) only
    when it is read. Subclasses set `table` and say how a row becomes a record."""

    table: Columns

    def make(self, i: int) -> T:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int) -> T:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]  # type: ignore[return-value]
        return self.make(range(len(self))[i])

    def copy(self) -> Records[T]:
        """An independent copy: a new one of the same class over a copy of the columns."""
        twin = type(self)()
        twin.table = self.table.copy()
        return twin
