"""The rows of processes long gone, kept in columns so that a long run stays small.

A busy day runs millions of processes; as tuples of Python objects their `ps` rows cost about
300 bytes each, as typed columns (with each program, user and state name stored once) about
50. The rows come back out as the dicts `SimKernel.ps` gives, in the order they went in.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterator
from typing import Any

from sim.kernel.simkernel import PS_KEYS

KEYS = ("boot", *PS_KEYS)
NAMES = ("user", "prog", "state")  # columns of names: an index into `names`
FLOATS = ("start", "end")
_TYPE = {"boot": "I", "user": "I", "prog": "I", "state": "I", "start": "d", "end": "d"}
"""Typecodes: names index `names`; pids, uids and statuses are "i" (32 bits: a day's run
starts some millions of processes, and uids and statuses are small)."""
NONE = -(2**31)  # an int column's None


class ProcessRows:
    """Append-only `ps` rows (with the boot each ran in) in typed columns."""

    def __init__(self) -> None:
        self.columns: dict[str, array] = {key: array(_TYPE.get(key, "i")) for key in KEYS}
        self.names: list[str] = []
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.columns["pid"])

    def append(self, boot: int, values: tuple[Any, ...]) -> None:
        """Add one row: `values` in `PS_KEYS` order (see `simkernel.ps_row`). The whole row
        is converted before any column grows, so a bad value leaves the columns in step."""
        cells = []
        for key, value in zip(KEYS, (boot, *values), strict=True):
            if key in NAMES:
                cells.append(self._name(value))
            elif key in FLOATS:
                cells.append(math.nan if value is None else float(value))
            else:
                cells.append(NONE if value is None else int(value))
        for column, cell in zip(self.columns.values(), cells, strict=True):
            column.append(cell)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as a dict, as it went in."""
        names = self.names
        for i in range(len(self)):
            row: dict[str, Any] = {}
            for key, column in self.columns.items():
                value = column[i]
                if key in NAMES:
                    row[key] = names[value]
                elif key in FLOATS:
                    row[key] = None if math.isnan(value) else value
                else:
                    row[key] = None if value == NONE else value
            yield row

    def count(self, key: str) -> Counter[str]:
        """How many rows have each value of a name column (user, prog or state)."""
        counts = Counter(self.columns[key])
        return Counter({self.names[i]: n for i, n in counts.items()})

    def _name(self, name: str) -> int:
        found = self.index.get(name)
        if found is None:
            found = self.index[name] = len(self.names)
            self.names.append(name)
        return found
