"""The process table: pid, parent, account, program and state, from fork/exec/setuid/exit/wait."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from tui.messages import Inspect
from tui.state import Process, TraceState
from tui.widgets.accounts import ACCOUNT_CLASSES, account_style
from tui.widgets.table import Cells, selected_key, sync_rows


def process_cells(process: Process) -> tuple[str, str, str, str, str]:
    """pid, ppid, account, program, state: as the table shows them."""
    ppid = "" if process.ppid is None else str(process.ppid)
    return (str(process.pid), ppid, process.uid, process.prog, process.state)


class ProcessTable(DataTable):
    """Every process of the trace so far, in order of first sight."""

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | ACCOUNT_CLASSES | {"processes--exited"}

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for column in ("pid", "ppid", "account", "program", "state"):
            self.add_column(column, key=column)

    def show(self, state: TraceState) -> None:
        rows: list[tuple[str, Cells]] = []
        exited = self.get_component_rich_style("processes--exited", partial=True)
        for process in state.processes.values():
            pid, ppid, uid, prog, status = process_cells(process)
            base = exited if process.state != "running" else Style()
            rows.append((pid, (
                Text(pid, base), Text(ppid, base),
                Text(uid, base + Style(color=account_style(self, uid).color)),
                Text(prog, base), Text(status, base),
            )))  # fmt: skip
        sync_rows(self, rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = selected_key(self)
        if self.has_focus and key:
            self.post_message(Inspect("process", int(key)))
