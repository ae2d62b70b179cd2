"""The event log: one narrated line per step (`sim.narrate`), filterable by program, pid,
message id or host. `/` opens the filter; Enter applies it, Escape or an empty filter clears
it. A trace of several hosts gets a host column: each host has its own pids and queue ids."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from tui.fields import is_number
from tui.hosts import host_labels, label_of
from tui.messages import Inspect
from tui.state import LogLine, TraceState
from tui.widgets.table import Cells, selected_key, set_columns, sync_lasting_rows

COLUMNS = ("t", "event")
SHOWN = 2000  # the newest lines a log shows; a fast trace has tens of thousands, and a
# table of them all takes seconds to draw. The filter reaches every line.


def log_matches(line: LogLine, query: str) -> bool:
    """Does the line belong to what the filter names: a message id, a pid, a program or a
    host (`beta` or `beta.test`)?"""
    words = query.split()
    return all(
        (word.isdigit() and int(word) in (line.msg, line.pid))
        or word in line.prog
        or word in (line.host, line.host.split(".", 1)[0])
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
        self._labels: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        table = LogTable(id="log-table", cursor_type="row")
        set_columns(table, COLUMNS)
        yield table
        yield Input(placeholder="filter: program, pid, message id or host", id="log-filter")

    def show(self, state: TraceState) -> None:
        """Redraw from the state; the cursor follows the newest line unless you are reading."""
        self._state = state
        table = self.query_one(LogTable)
        labels = host_labels(state.hosts)
        if labels != self._labels:
            table.clear()  # a row's cells are made once: made again with the new labels
            self._labels = labels
        set_columns(table, ("t", "host", "event") if labels else COLUMNS)
        time_style = table.get_component_rich_style("log--time", partial=True)
        why_style = table.get_component_rich_style("log--why", partial=True)
        matched = [line for line in state.log
                   if not self.query_text or log_matches(line, self.query_text)]  # fmt: skip
        lines = matched[-SHOWN:]
        self.border_subtitle = "  ".join(
            part
            for part in (
                f"filter: {self.query_text}" if self.query_text else "",
                f"the last {SHOWN:,} of {len(matched):,} lines" if len(matched) > SHOWN else "",
            )
            if part
        )

        def cells(i: int) -> Cells:
            line = lines[i]
            t = state.events[line.index].get("t")
            stamp = f"+{t - state.t0:.3f}" if is_number(t) and state.t0 is not None else ""
            text = Text(line.text)
            if "  -- " in line.text:
                text.stylize(why_style, line.text.index("  -- "))
            made = [Text(stamp, time_style), text]
            if labels:
                made.insert(1, Text(label_of(labels, line.host)))
            return made

        sync_lasting_rows(table, [str(line.index) for line in lines], cells)
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
