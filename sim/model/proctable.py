"""The rows of processes long gone, kept in columns so that a long run stays small.

A busy day runs millions of processes; as tuples of Python objects their `ps` rows cost about
300 bytes each, as typed columns (with each program, user and state name stored once) about
50. The rows come back out as the dicts `SimKernel.ps` gives, in the order they went in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from sim.kernel.simkernel import PS_KEYS
from sim.qmail.columns import NAME, Columns

KEYS = ("boot", *PS_KEYS)
_KIND = {"boot": "I", "user": NAME, "prog": NAME, "state": NAME, "start": "d", "end": "d"}
"""Pids, uids and statuses are "i" (32 bits: a day's run starts some millions of processes,
and uids and statuses are small)."""


class ProcessRows:
    """Append-only `ps` rows (with the boot each ran in) in typed columns."""

    def __init__(self) -> None:
        self.table = Columns(**{key: _KIND.get(key, "i") for key in KEYS})

    def __len__(self) -> int:
        return len(self.table)

    def append(self, boot: int, values: tuple[Any, ...]) -> None:
        """Add one row: `values` in `PS_KEYS` order (see `simkernel.ps_row`)."""
        self.table.append(boot, *values)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as a dict, as it went in."""
        for row in self.table.rows():
            yield dict(zip(KEYS, row, strict=True))

    def count(self, key: str) -> Counter[str]:
        """How many rows have each value of a name column (user, prog or state)."""
        return self.table.count(key)
