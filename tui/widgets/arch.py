"""The architecture view: qmail's programs left to right, lit where the trace just went.

The canvas comes from `tui.picture` (pure); this widget only chooses the size (three-line
boxes when there is room), paints each cell's role and account with styles from the CSS,
adds the caption (the step's narrated line) and a legend, and turns a click into `Inspect`.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.color import Color
from textual.widget import Widget

from tui.archview import arch_view, pairs
from tui.hosts import host_labels
from tui.messages import Inspect
from tui.picture import ArchView, Canvas, Geometry, draw, geometry
from tui.state import TraceState
from tui.widgets.accounts import ACCOUNT_CLASSES, ACCOUNTS, account_style

ROLES = ("edge", "warm", "hot", "idle", "box", "active", "title", "caption")
SHADE = 0.45  # a box whose program ran, but not in this step: its colour, darkened
TALL = 13  # lines of content from which boxes get a third line (the message token)


class ArchPicture(Widget):
    """qmail's big picture, drawn from the trace state given to `show`."""

    COMPONENT_CLASSES = ACCOUNT_CLASSES | {f"arch--{role}" for role in ROLES}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.view = ArchView()
        self.caption = ""
        self._geo: Geometry | None = None

    def show(self, state: TraceState) -> None:
        """Draw this state: lit edges, tokens, queue counts, the current step's line."""
        self.view = arch_view(state)
        self.caption = "press space to play, n to step"
        if state.log:
            last = state.log[-1]
            label = host_labels(state.hosts).get(last.host)
            self.caption = f"{label}: {last.text}" if label else last.text
        self.refresh()

    def _geometry(self) -> Geometry:
        width, height = self.size.width, self.size.height
        tall = height >= TALL
        if self._geo is None or (self._geo.width, self._geo.box_h == 3) != (width, tall):
            self._geo = geometry(max(width, 1), tall)
        return self._geo

    def render(self) -> Text:
        geo = self._geometry()
        canvas = draw(geo, pairs(), self.view)
        text = self._paint(canvas)
        text.append("\n")
        text.append(("▸ " + self.caption)[: max(self.size.width, 1)], self._role("caption"))
        if self.size.height > geo.height + 1:
            text.append("\n")
            text.append_text(self._legend())
        return text

    def _role(self, role: str) -> Style:
        return self.get_component_rich_style(f"arch--{role}", partial=True)

    def _cell_style(self, role: str, account: str) -> Style:
        if not role:
            return Style()
        if role in ("edge", "warm", "hot", "caption"):
            return self._role(role)
        colour = Color.from_rich_color(account_style(self, account or "root").color)
        if role == "idle":
            return Style(color=colour.rich_color) + self._role("idle")
        if role == "active":
            return Style(bgcolor=colour.rich_color) + self._role("active")
        shade = Style(bgcolor=colour.darken(SHADE).rich_color, color=colour.lighten(0.2).rich_color)
        return shade + self._role(role)

    def _paint(self, canvas: Canvas) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        for y, row in enumerate(canvas.chars):
            if y:
                text.append("\n")
            run, key = "", None
            for char, cell in zip(row, canvas.roles[y], strict=True):
                if cell != key and run:
                    text.append(run, self._cell_style(*key))
                    run = ""
                run, key = run + char, cell
            if run:
                text.append(run, self._cell_style(*key))
        return text

    def _legend(self) -> Text:
        legend = Text(no_wrap=True, overflow="crop")
        if self.size.width >= 100:
            legend.append("accounts: ", self._role("caption"))
        for name in ACCOUNTS:
            legend.append(f" {name} ", Style(bgcolor=account_style(self, name).color))
            legend.append(" ")
        legend.append(" ─ idle ", self._role("edge"))
        legend.append("─ warm ", self._role("warm"))
        legend.append("─ now", self._role("hot"))
        return legend

    def node_at(self, x: int, y: int) -> str | None:
        """The box under a cell of the picture, if any."""
        geo = self._geometry()
        for node, box in geo.boxes.items():
            if box.x <= x < box.x + box.w and box.y <= y < box.y + box.h:
                return node
        return None

    def on_click(self, event: events.Click) -> None:
        node = self.node_at(event.x - self.gutter.left, event.y - self.gutter.top)
        if node is not None:
            self.post_message(Inspect("node", node))
