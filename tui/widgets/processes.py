"""The process table: pid, parent, account, program and state, from fork/exec/setuid/exit/wait.

A trace of several hosts gets a host column first: the same pid runs on each host."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from tui.hosts import host_labels, label_of
from tui.messages import Inspect
from tui.state import Process, TraceState
from tui.widgets.accounts import ACCOUNT_CLASSES, account_style
from tui.widgets.table import Cells, key_parts, row_key, selected_key, set_columns, sync_rows

COLUMNS = ("pid", "ppid", "account", "program", "state")


def process_cells(process: Process) -> tuple[str, str, str, str, str]:
    """pid, ppid, account, program, state: as the table shows them."""
    ppid = "" if process.ppid is None else str(process.ppid)
    return (str(process.pid), ppid, process.uid, process.prog, process.state)


class ProcessTable(DataTable):
    """Every process of the trace so far, in order of first sight."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | ACCOUNT_CLASSES | {"processes--exited"}

    def on_mount(self) -> None:
        self.cursor_type = "row"
        set_columns(self, COLUMNS)

    def show(self, state: TraceState) -> None:
        labels = host_labels(state.hosts)
        set_columns(self, ("host", *COLUMNS) if labels else COLUMNS)
        rows: list[tuple[str, Cells]] = []
        exited = self.get_component_rich_style("processes--exited", partial=True)
        for process in state.processes.values():
            pid, ppid, uid, prog, status = process_cells(process)
            base = exited if process.state != "running" else Style()
            cells = [
                Text(pid, base), Text(ppid, base),
                Text(uid, base + Style(color=account_style(self, uid).color)),
                Text(prog, base), Text(status, base),
            ]  # fmt: skip
            if labels:
                cells.insert(0, Text(label_of(labels, process.host), base))
            rows.append((row_key(process.host, process.pid), cells))
        sync_rows(self, rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = selected_key(self)
        if self.has_focus and key:
            host, pid = key_parts(key)
            self.post_message(Inspect("process", (host, pid)))
