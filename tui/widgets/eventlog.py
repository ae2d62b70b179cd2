"""The event log: one narrated line per step (`sim.narrate`), filterable by program, pid or
message id. `/` opens the filter; Enter applies it, Escape or an empty filter clears it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from tui.messages import Inspect
from tui.state import LogLine, TraceState
from tui.widgets.table import Cells, selected_key, sync_rows


def log_matches(line: LogLine, query: str) -> bool:
    """Does the line belong to what the filter names: a message id, a pid, or a program?"""
    words = query.split()
    return all(
        (word.isdigit() and int(word) in (line.msg, line.pid)) or word in line.prog
        for word in words
    )


class LogTable(DataTable):
    """The lines themselves; highlighting one inspects its event."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {"log--time", "log--why"}

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = selected_key(self)
        if self.has_focus and key:
            self.post_message(Inspect("event", int(key)))


class EventLog(Vertical):
    """The log table and its filter line."""

    ALLOW_MAXIMIZE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "clear filter", show=False)
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.query_text = ""
        self._state: TraceState | None = None

    def compose(self) -> ComposeResult:
        table = LogTable(id="log-table", cursor_type="row")
        table.add_column("t", key="t")
        table.add_column("event", key="event")
        yield table
        yield Input(placeholder="filter: program, pid or message id", id="log-filter")

    def show(self, state: TraceState) -> None:
        """Redraw from the state; the cursor follows the newest line unless you are reading."""
        self._state = state
        table = self.query_one(LogTable)
        time_style = table.get_component_rich_style("log--time", partial=True)
        why_style = table.get_component_rich_style("log--why", partial=True)
        rows: list[tuple[str, Cells]] = []
        for line in state.log:
            if self.query_text and not log_matches(line, self.query_text):
                continue
            t = state.events[line.index].get("t")
            stamp = f"+{t - state.t0:.3f}" if isinstance(t, (int, float)) and state.t0 else ""
            text = Text(line.text)
            if "  -- " in line.text:
                text.stylize(why_style, line.text.index("  -- "))
            rows.append((str(line.index), (Text(stamp, time_style), text)))
        sync_rows(table, rows)
        if not table.has_focus and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def open_filter(self) -> None:
        """Show the filter line and put the cursor in it."""
        field = self.query_one("#log-filter", Input)
        field.value = self.query_text
        self.add_class("-filtering")
        field.focus()

    @on(Input.Submitted, "#log-filter")
    def _apply(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        self._done()

    def action_clear_filter(self) -> None:
        self.query_text = ""
        self._done()

    def _done(self) -> None:
        self.remove_class("-filtering")
        self.border_subtitle = f"filter: {self.query_text}" if self.query_text else ""
        table = self.query_one(LogTable)
        if self._state is not None:
            self.show(self._state)
        table.focus()
