"""The qmailsim TUI: a trace replayed (or followed live) over qmail's architecture.

The app owns the trace source and the `Player`; after every move it hands the new state
down to each panel's `show` ("attributes down"), and panels post `Inspect` up when the
user selects something. Playback and following are timers on the app's own loop: a trace
file is local and read in small increments, so nothing ever blocks the UI for long.
On a small terminal only the current panel is shown under the picture; tab cycles them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input

from tui.inspect import Selection
from tui.messages import Inspect
from tui.player import Player
from tui.source import TraceTail
from tui.state import is_stop
from tui.widgets.arch import ArchPicture
from tui.widgets.eventlog import EventLog, LogTable
from tui.widgets.help import HelpScreen
from tui.widgets.inspector import Inspector
from tui.widgets.processes import ProcessTable
from tui.widgets.queue import QueuePanel
from tui.widgets.status import StatusLine, status_text

POLL = 0.25  # seconds between looks at a growing trace file
MAX_TICKS = 20  # screen updates per second while playing; faster speeds take several steps
NARROW = (110, 34)  # below this width or height: one panel at a time under the picture
PANELS = ("queue", "processes", "log", "inspector")
TYPING = {"step", "back", "start", "end", "faster", "slower", "follow", "filter", "zoom", "help"}
TITLES = {"arch": "qmail: how mail moves", "queue": "queue", "processes": "processes",
          "log": "event log", "inspector": "inspector"}  # fmt: skip


class QmailTui(App[int]):
    """Replay or follow a qmailsim trace."""

    CSS_PATH = "app.tcss"
    TITLE = "qmailsim"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "play", "play"),
        Binding("n", "step", "step", priority=True),
        Binding("right", "step", "step", show=False, priority=True),
        Binding("p", "back", "back", show=False, priority=True),
        Binding("left", "back", "back", show=False, priority=True),
        Binding("plus,equals_sign", "faster", "faster", key_display="+"),
        Binding("minus", "slower", "slower", key_display="-"),
        Binding("home", "start", "start", show=False, priority=True),
        Binding("end", "end", "end", show=False, priority=True),
        Binding("f", "follow", "follow"),
        Binding("slash", "filter", "filter", key_display="/"),
        Binding("tab", "next_panel", "panels", priority=True),
        Binding("shift+tab", "previous_panel", "previous panel", show=False, priority=True),
        Binding("z", "zoom", "zoom", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        events: list[dict[str, Any]],
        *,
        tail: TraceTail | None = None,
        name: str = "trace",
        follow: bool = False,
        speed_index: int | None = None,
    ) -> None:
        super().__init__()
        self.player = Player(events)
        if speed_index is not None:
            self.player.speed_index = speed_index
        self.tail = tail
        self.trace_name = name
        self.total_steps = sum(1 for e in events if is_stop(e))
        self.selection: Selection | None = None
        self.current = "queue"
        self._play_timer: Timer | None = None
        self._start_following = follow

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield ArchPicture(id="arch")
        with Grid(id="panels"):
            yield QueuePanel(id="queue", classes="panel")
            yield ProcessTable(id="processes", classes="panel")
            yield Inspector(id="inspector", classes="panel")
            yield EventLog(id="log", classes="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        for key, title in TITLES.items():
            self.query_one(f"#{key}").border_title = title
        if self.tail is not None:
            self.set_interval(POLL, self.poll_trace)
        if self._start_following:
            self.action_follow()
        self._layout(self.size.width, self.size.height)
        self.focus_panel("queue")
        self.refresh_views()

    # -- moving through the trace ----------------------------------------------------

    def refresh_views(self) -> None:
        """Hand the state to every panel and say where we are."""
        state = self.player.state
        self.query_one(ArchPicture).show(state)
        self.query_one(QueuePanel).show(state)
        self.query_one(ProcessTable).show(state)
        self.query_one(EventLog).show(state)
        self.query_one(Inspector).show(state, self.selection)
        line = status_text(self.player, self.trace_name, self.total_steps)
        self.query_one(StatusLine).update(line)

    def poll_trace(self) -> None:
        """Read what the trace file gained; when following, show it at once."""
        if self.tail is None:
            return
        events, problems = self.tail.read_new()
        for problem in problems:
            self.notify(problem, title="trace", severity="error")
        if not events:
            return
        self.player.extend(events)
        self.total_steps += sum(1 for e in events if is_stop(e))
        if self.player.following:
            self.player.to_end()
        self.refresh_views()

    def _stop_following(self) -> None:
        self.player.following = False

    def action_play(self) -> None:
        self._stop_following()
        self.player.playing = not self.player.playing
        if self.player.playing and self.player.at_end:
            self.player.rewind()
        self._retime()
        self.refresh_views()

    def _retime(self) -> None:
        if self._play_timer is not None:
            self._play_timer.stop()
            self._play_timer = None
        if self.player.playing:
            interval = max(1 / self.player.speed, 1 / MAX_TICKS)
            self._play_timer = self.set_interval(interval, self._tick)

    def _tick(self) -> None:
        steps = max(1, math.ceil(self.player.speed / MAX_TICKS))
        moved = False
        for _ in range(steps):
            moved = self.player.step() or moved
        if self.player.at_end:
            self.player.playing = False
            self._retime()
        if moved or not self.player.playing:
            self.refresh_views()

    def action_step(self) -> None:
        self._stop_following()
        self.player.step()
        self.refresh_views()

    def action_back(self) -> None:
        self._stop_following()
        self.player.back()
        self.refresh_views()

    def action_start(self) -> None:
        self._stop_following()
        self.player.rewind()
        self.refresh_views()

    def action_end(self) -> None:
        self.player.to_end()
        self.refresh_views()

    def action_faster(self) -> None:
        self.player.faster()
        self._retime()
        self.refresh_views()

    def action_slower(self) -> None:
        self.player.slower()
        self._retime()
        self.refresh_views()

    def action_follow(self) -> None:
        """Follow the trace's end as it grows, or stop following."""
        self.player.following = not self.player.following
        if self.player.following:
            self.player.playing = False
            self._retime()
            self.poll_trace()
            self.player.to_end()
        self.refresh_views()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Step and back are shown unavailable where they cannot move; while the filter is
        being typed, its keys are letters, not commands."""
        if isinstance(self.focused, Input) and action in TYPING:
            return False
        if action == "step" and self.player.at_end:
            return None
        if action == "back" and self.player.position == 0:
            return None
        if action == "follow" and self.tail is None:
            return None
        return True

    # -- panels ------------------------------------------------------------------------

    def on_resize(self) -> None:
        self._layout(self.size.width, self.size.height)

    def _layout(self, width: int, height: int) -> None:
        self.screen.set_class(width < NARROW[0] or height < NARROW[1], "-narrow")

    def focus_panel(self, name: str) -> None:
        """Make `name` the current panel (the one shown on a small terminal) and focus it."""
        self.current = name
        for panel in PANELS:
            self.query_one(f"#{panel}").set_class(panel == name, "-current")
        target: Widget = self.query_one(f"#{name}")
        if isinstance(target, EventLog):
            target = target.query_one(LogTable)
        target.focus()

    def action_next_panel(self) -> None:
        self.focus_panel(PANELS[(PANELS.index(self.current) + 1) % len(PANELS)])

    def action_previous_panel(self) -> None:
        self.focus_panel(PANELS[(PANELS.index(self.current) - 1) % len(PANELS)])

    def action_zoom(self) -> None:
        if self.screen.maximized is not None:
            self.screen.minimize()
        else:
            self.screen.maximize(self.query_one(f"#{self.current}"), container=False)

    def action_filter(self) -> None:
        self.focus_panel("log")
        self.query_one(EventLog).open_filter()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    @on(Inspect)
    def _inspect(self, message: Inspect) -> None:
        self.selection = (message.kind, message.key)
        self.query_one(Inspector).show(self.player.state, self.selection)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.focus_panel("inspector")


def app_for(path: Path, events: list[dict[str, Any]], tail: TraceTail, **options: Any) -> QmailTui:
    """The app for a trace file already loaded (see `tui.cli.run`)."""
    return QmailTui(events, tail=tail, name=path.name, **options)
