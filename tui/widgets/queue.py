"""The queue panel: each message by queue id with its INTERNALS state, and its files now.

Rows are the message (`✉ 2214550  S4 queued`) followed by its files (`todo/2214550`);
`pid/` files that have no id yet come first. The state's colour is a CSS class per state.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from tui.messages import Inspect
from tui.state import TraceState
from tui.widgets.table import Cells, selected_key, sync_rows

STATES = ("S1", "S2", "S3", "S4", "S5")
SHORT_MEANINGS = {"S1": "gone", "S2": "mess/ only", "S3": "envelope…", "S4": "queued",
                  "S5": "preprocessed"}  # fmt: skip


def queue_rows(state: TraceState) -> list[tuple[str, tuple[str, str]]]:
    """(key, (state, what)) per row: messages in order of first sight, their files under them.

    The state comes first so that it stays in view when a long pid/ name widens the table."""
    rows: list[tuple[str, tuple[str, str]]] = []
    for file in state.files_of(None):
        rows.append((f"file:{file.path}", ("", f"  {file.path}")))
    for message in state.messages.values():
        meaning = SHORT_MEANINGS.get(message.state, "")
        rows.append((f"message:{message.id}", (message.state, f"✉ {message.id} {meaning}")))
        for file in state.files_of(message.id):
            rows.append((f"file:{file.path}", ("", f"  {file.path}")))
    return rows


class QueuePanel(DataTable):
    """The queue directory as the trace's creates, links and unlinks leave it."""

    COMPONENT_CLASSES = (
        DataTable.COMPONENT_CLASSES | {f"queue--{s.lower()}" for s in STATES} | {"queue--file"}
    )

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_column("state", key="state")
        self.add_column("message / file", key="what")

    def show(self, state: TraceState) -> None:
        """Redraw from the state (the cursor stays on its message or file)."""
        rows: list[tuple[str, Cells]] = []
        for key, (s, what) in queue_rows(state):
            style = self.get_component_rich_style(
                f"queue--{s.lower()}" if s else "queue--file", partial=True
            )
            rows.append((key, (Text(s, style), Text(what, style))))
        sync_rows(self, rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = selected_key(self)
        if self.has_focus and key:
            kind, _, value = key.partition(":")
            self.post_message(Inspect(kind, int(value) if kind == "message" else value))
