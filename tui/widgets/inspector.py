"""The inspector: everything the trace knows about the selected thing (see `tui.inspect`)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.inspect import Report, Selection, report
from tui.state import TraceState

HINT = "Select a message, file, process or event (tab, arrows), or click a box of the picture."


class Inspector(VerticalScroll, can_focus=True):
    """A scrollable report, redrawn on every step (the selection's story grows)."""

    ALLOW_MAXIMIZE = True
    COMPONENT_CLASSES = frozenset({"inspector--title", "inspector--heading"})

    def compose(self):
        yield Static(HINT, id="inspector-body")

    def show(self, state: TraceState, selection: Selection | None) -> None:
        body = self.query_one("#inspector-body", Static)
        if selection is None:
            body.update(HINT)
            return
        body.update(self.render_report(report(state, selection)))

    def render_report(self, found: Report) -> Text:
        title = self.get_component_rich_style("inspector--title", partial=True)
        heading = self.get_component_rich_style("inspector--heading", partial=True)
        text = Text()
        text.append(found.title, title)
        for name, lines in found.sections:
            text.append(f"\n{name}\n", heading)
            text.append("\n".join(lines))
        return text
