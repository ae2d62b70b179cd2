"""The queue panel: each message by queue id with its INTERNALS state, and its files now.

Rows are the message (`✉ 2214550  S4 queued`) followed by its files (`todo/2214550`);
`pid/` files that have no id yet come first. The state's colour is a CSS class per state.
A trace of several hosts has one queue per host: a host column says whose each row is.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.hosts import host_labels, label_of
from tui.messages import Inspect
from tui.state import TraceState
from tui.widgets.table import Cells, key_parts, row_key, selected_key, set_columns, sync_rows

STATES = ("S1", "S2", "S3", "S4", "S5")
SHORT_MEANINGS = {"S1": "gone", "S2": "mess/ only", "S3": "envelope…", "S4": "queued",
                  "S5": "preprocessed"}  # fmt: skip
COLUMNS = ("state", "message / file")


def queue_rows(state: TraceState) -> list[tuple[str, tuple[str, str, str]]]:
    """(key, (state, host, what)) per row: messages in order of first sight, their files under
    them. The state comes first so that it stays in view when a long pid/ name widens the table.
    """
    rows: list[tuple[str, tuple[str, str, str]]] = []
    for file in state.files.values():
        if file.msg is None:
            rows.append((row_key("file", file.host, file.path), ("", file.host, f"  {file.path}")))
    for message in state.messages.values():
        what = f"✉ {message.id} {SHORT_MEANINGS.get(message.state, '')}"
        key = row_key("message", message.host, message.id)
        rows.append((key, (message.state, message.host, what)))
        for file in state.files_of(message.host, message.id):
            rows.append((row_key("file", file.host, file.path), ("", file.host, f"  {file.path}")))
    return rows


class QueuePanel(DataTable):
    """The queue directory as the trace's creates, links and unlinks leave it."""

    COMPONENT_CLASSES = (
        DataTable.COMPONENT_CLASSES | {f"queue--{s.lower()}" for s in STATES} | {"queue--file"}
    )

    def on_mount(self) -> None:
        self.cursor_type = "row"
        set_columns(self, COLUMNS)

    def show(self, state: TraceState) -> None:
        """Redraw from the state (the cursor stays on its message or file)."""
        labels = host_labels(state.hosts)
        set_columns(self, ("state", "host", COLUMNS[1]) if labels else COLUMNS)
        rows: list[tuple[str, Cells]] = []
        for key, (s, host, what) in queue_rows(state):
            style = self.get_component_rich_style(
                f"queue--{s.lower()}" if s in STATES else "queue--file", partial=True
            )
            cells = [Text(s, style), Text(what, style)]
            if labels:
                cells.insert(1, Text(label_of(labels, host), style))
            rows.append((key, cells))
        sync_rows(self, rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = selected_key(self)
        if self.has_focus and key:
            kind, host, value = key_parts(key)
            self.post_message(Inspect(kind, (host, value)))
