"""Keeping a DataTable in step with rows computed from the trace, without losing the cursor."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cells = Sequence[str | Text]


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
