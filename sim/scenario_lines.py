"""Where a scenario mistake is: the checker that names the file, the line and the key.

`Checker.fail("workload[2].rate", "must be ...")` makes a `ScenarioError` reading
`x.toml:14: workload[2].rate: must be ...`. TOML parsers keep no positions, so the line is
found in the text: the `[[table]]` of the index (up to the next table that is not one of its
sub-tables), then its sub-table (`[host.control]`), then the key. A key the text does not
show (a default, a value inside an inline table) names the nearest line found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sim.kernel.costs import finite
from sim.qmail.errors import BadInput

SUBTABLES = ("control", "dotqmail", "costs")  # the tables inside a [[host]]
REQUIRED = object()  # `Checker.get`'s default for a key that must be given
KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_PATH = re.compile(r"(?P<table>[^.\[]+)(?:\[(?P<index>\d+)\])?(?:\.(?P<rest>.*))?", re.S)
_HEADER = re.compile(r"\s*\[")


class ScenarioError(BadInput):
    """A scenario file the model cannot run; the message names file, line and key."""


def join(path: str, key: str) -> str:
    """`path.key`, or `key` alone at the top level (no stray leading dot)."""
    return f"{path}.{key}" if path else key


class Checker:
    """Validation with positions: finds the line of a key to name it in the error."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.split("\n")  # TOML ends lines with LF only (str.splitlines does not)
        self.source = source

    def line_of(self, path: str) -> int:
        """Best line for a key path like `workload[2].rate` or `host[1].control.databytes`
        (keys may hold dots: only `control`, `dotqmail` and `costs` are sub-tables)."""
        match = _PATH.fullmatch(path)
        if match is None:
            return 1
        table, index, rest = match["table"], match["index"], match["rest"]
        sub, key = None, rest if rest else table
        if rest:
            head, dot, tail = rest.partition(".")
            if dot and head in SUBTABLES:
                sub, key = head, tail
        start, end = self._region(table, None if index is None else int(index))
        if sub is not None:
            for number in range(start, end):
                if re.match(
                    rf"\s*\[\s*{re.escape(table)}\s*\.\s*{re.escape(sub)}\s*\]", self.lines[number]
                ):
                    start = number
                    break
        found = self._key_line(key, start, end)
        return (found if found is not None else start) + 1

    def _region(self, table: str, index: int | None) -> tuple[int, int]:
        """(first, after last) line of `[table]` or of the `index`-th `[[table]]`."""
        if index is None:
            opens = re.compile(rf"\s*\[\s*{re.escape(table)}\s*[\].]")
        else:
            opens = re.compile(rf"\s*\[\[\s*{re.escape(table)}\s*\]\]")
        inside = re.compile(rf"\s*\[{{1,2}}\s*{re.escape(table)}\s*[\].]")
        seen, start = 0, None
        for number, line in enumerate(self.lines):
            if opens.match(line):
                if index is None or seen == index:
                    start = number
                    break
                seen += 1
        if start is None:
            return 0, len(self.lines)
        for number in range(start + 1, len(self.lines)):
            line = self.lines[number]
            if _HEADER.match(line) and not (inside.match(line) and not opens.match(line)):
                return start, number
        return start, len(self.lines)

    def _key_line(self, key: str, start: int, end: int) -> int | None:
        quoted = rf"[\"']?{re.escape(key)}[\"']?\s*="
        for pattern in (rf"\s*{quoted}", rf".*[{{,]\s*{quoted}", rf"\s*[\w-]+\.{quoted}"):
            for number in range(start, end):
                if re.match(pattern, self.lines[number]):
                    return number
        return None

    def fail(self, path: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}:{self.line_of(path)}: {path}: {problem}")

    def get(self, table: Mapping[str, Any], key: str, path: str, kind: type, default: Any) -> Any:
        """`table[key]` of type `kind`, or `default` (`REQUIRED`: missing is a mistake)."""
        if key not in table:
            if default is REQUIRED:
                raise self.fail(join(path, key), "missing")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            if not finite(value):
                raise self.fail(join(path, key), f"must be a finite number, not {value!r}")
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(join(path, key), f"must be {KIND[kind]}, not {value!r}")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        default: float | None,
        *,
        positive: bool = False,
        fraction: bool = False,
    ) -> Any:
        """A finite number >= 0 (> 0 if `positive`, <= 1 if `fraction`): TOML reads `inf`,
        `nan` and `1e400` as floats, and none of them is a time, a rate or a size."""
        value = self.get(table, key, path, float, default)
        if value is None:
            return value
        where = join(path, key)
        if not finite(value):
            raise self.fail(where, f"must be a finite number, not {value!r}")
        if positive and not value > 0:
            raise self.fail(where, f"must be a number > 0, not {value!r}")
        if not positive and value < 0:
            raise self.fail(where, f"must be a number >= 0, not {value!r}")
        if fraction and value > 1:
            raise self.fail(where, f"must be a fraction between 0 and 1, not {value!r}")
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, path: str, default: int, low: int, high: int
    ) -> int:
        """An integer from `low` to `high`: a count or a size the model holds in memory."""
        value = self.get(table, key, path, int, default)
        if not low <= value <= high:
            raise self.fail(
                join(path, key), f"must be an integer from {low} to {high:,}, not {value!r}"
            )
        return value

    def strings(self, table: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(join(path, key), f"must be a list of strings, not {value!r}")
        return tuple(value)

    def unknown(self, table: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    join(path, key), f"unknown key (known: {', '.join(sorted(allowed))})"
                )
