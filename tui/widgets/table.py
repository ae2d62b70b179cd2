"""Keeping a DataTable in step with rows computed from the trace, without losing the cursor."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

Cells = Sequence[str | Text]


def row_key(*parts: str | int) -> str:
    """A row's key from what it stands for (a host name may hold any character)."""
    return json.dumps(parts)


def key_parts(key: str) -> list[Any]:
    """What `row_key` was given."""
    return json.loads(key)


def set_columns(table: DataTable, names: Sequence[str]) -> None:
    """Show these columns (keyed by name); a change of columns starts the rows afresh."""
    if [column.value for column in table.columns] != list(names):
        table.clear(columns=True)
        for name in names:
            table.add_column(name, key=name)


def sync_rows(table: DataTable, rows: Sequence[tuple[str, Cells]]) -> None:
    """Show exactly these (key, cells) rows in this order; the cursor stays on its row."""
    keys = [key for key, _ in rows]
    shown = [row.key.value for row in table.ordered_rows]
    if shown == keys[: len(shown)]:
        _update(table, rows[: len(shown)])
        for key, cells in rows[len(shown) :]:
            table.add_row(*cells, key=key)
        return
    if keys == shown[: len(keys)]:
        for key in shown[len(keys) :]:
            table.remove_row(key)
        _update(table, rows)
        return
    current = shown[table.cursor_row] if 0 <= table.cursor_row < len(shown) else None
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if current in keys:
        table.move_cursor(row=keys.index(current), animate=False)


def sync_lasting_rows(table: DataTable, keys: Sequence[str], cells: Callable[[int], Cells]) -> None:
    """`sync_rows` for rows that never change once shown and come and go at the end (the
    event log): `cells(i)` is asked only for rows added, so a long table costs nothing more."""
    shown = [row.key.value for row in table.ordered_rows]
    if not keys:
        table.clear()
        return
    if shown and keys[0] != shown[0] and keys[0] in shown:  # a window that slid on: the
        start = shown.index(keys[0])  # oldest rows go, the rest stay as they are
        if shown[start:] == keys[: len(shown) - start]:
            for key in shown[:start]:
                table.remove_row(key)
            shown = shown[start:]
    if shown == keys[: len(shown)]:
        for i in range(len(shown), len(keys)):
            table.add_row(*cells(i), key=keys[i])
    elif keys == shown[: len(keys)]:
        for key in shown[len(keys) :]:
            table.remove_row(key)
    else:
        sync_rows(table, [(key, cells(i)) for i, key in enumerate(keys)])


def _update(table: DataTable, rows: Sequence[tuple[str, Cells]]) -> None:
    columns = list(table.columns)
    for key, cells in rows:
        old = table.get_row(key)
        for column, before, after in zip(columns, old, cells, strict=False):
            if before != after:
                table.update_cell(key, column, after, update_width=True)


def selected_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, if any."""
    if not table.row_count or not 0 <= table.cursor_row < table.row_count:
        return None
    return table.ordered_rows[table.cursor_row].key.value
