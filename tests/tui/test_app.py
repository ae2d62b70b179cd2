"""The Textual app driven by Pilot: step through a live trace and read the panels."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from tests.tui.events import MSG, delivery_story
from tui.app import QmailTui
from tui.source import load_trace
from tui.widgets.arch import ArchPicture
from tui.widgets.eventlog import LogTable
from tui.widgets.help import HelpScreen
from tui.widgets.processes import ProcessTable
from tui.widgets.queue import QueuePanel

WIDE, SMALL = (120, 40), (80, 24)


def rows(table: DataTable) -> list[list[str]]:
    """The table's cells as plain text, in display order."""
    return [[str(cell) for cell in table.get_row(row.key)] for row in table.ordered_rows]


async def step_until(pilot, app: QmailTui, done) -> None:
    """Step the player (not the keys: faster) until `done(state)`, then draw once."""
    while not done(app.player.state) and app.player.step():
        pass
    app.refresh_views()
    await pilot.pause()


def inspector_text(app: QmailTui) -> str:
    return str(app.query_one("#inspector-body", Static).render())


async def test_stepping_through_the_live_trace_fills_every_panel(live_trace):
    app = QmailTui(live_trace.events, name="trace.jsonl")
    async with app.run_test(size=WIDE) as pilot:
        while not app.player.at_end:
            await pilot.press("n")
        await pilot.pause()
        assert app.player.state.step == app.total_steps
        processes = rows(app.query_one(ProcessTable))
        assert any(r[2:4] == ["qmailq", "qmail-queue"] and r[4] == "exit 0" for r in processes)
        queue = [(r[0], r[1].strip()) for r in rows(app.query_one(QueuePanel))]
        msg = next(iter(app.player.state.messages.values())).id
        assert ("S4", f"✉ {msg} queued") in queue
        assert ("", f"todo/{msg}") in queue
        log = [r[1] for r in rows(app.query_one(LogTable))]
        assert any("replies 250 ok" in line for line in log)


async def test_the_picture_lights_qmail_queue_while_it_stores_the_message(live_trace):
    app = QmailTui(live_trace.events)
    async with app.run_test(size=WIDE) as pilot:
        await step_until(pilot, app, lambda s: any("link intd/" in x.text for x in s.log))
        picture = app.query_one(ArchPicture)
        assert "qmail-queue" in picture.view.active
        assert picture.view.heat[("qmail-queue", "queue")][0] == "hot"
        assert picture.view.queue_counts["todo"] == 1
        assert "link intd/" in picture.caption


async def test_back_and_home_and_end(live_trace):
    app = QmailTui(live_trace.events)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("n", "n", "n", "left")
        assert app.player.state.step == 2
        await pilot.press("end")
        assert app.player.at_end
        assert app.check_action("step", ()) is None  # shown unavailable at the end
        await pilot.press("home")
        assert app.player.position == 0


async def test_filter_keeps_one_programs_lines(live_trace):
    app = QmailTui(live_trace.events)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end", "slash", *"queue", "enter")
        lines = [r[1] for r in rows(app.query_one(LogTable))]
        assert lines and all("qmail-queue[" in line for line in lines)
        await pilot.press("escape")
        assert len(rows(app.query_one(LogTable))) == len(app.player.state.log)


async def test_filter_by_message_id_keeps_the_250_reply():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end", "slash", *str(MSG), "enter")
        lines = [r[1] for r in rows(app.query_one(LogTable))]
        assert any("250 ok" in line for line in lines)
        assert not any("tcpserver" in line for line in lines)


async def test_moving_in_a_panel_inspects_its_row():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end", "tab")  # queue → processes
        await pilot.press("down")
        assert app.selection is not None and app.selection[0] == "process"
        assert inspector_text(app).startswith(f"process {app.selection[1][1]}:")
        await pilot.press("tab")  # the event log
        await pilot.press("up")
        assert app.selection[0] == "event"
        assert "fields" in inspector_text(app)


async def test_clicking_a_box_inspects_the_program():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        picture = app.query_one(ArchPicture)
        box = picture._geometry().boxes["qmail-queue"]
        await pilot.click(ArchPicture, offset=(box.x + 1 + picture.gutter.left, box.y + 1 + 1))
        assert app.selection == ("node", "qmail-queue")
        assert "setuid qmailq" in inspector_text(app)


async def test_small_terminal_shows_one_panel_and_tab_cycles():
    app = QmailTui(delivery_story())
    async with app.run_test(size=SMALL) as pilot:
        assert app.screen.has_class("-narrow")
        shown = [p.id for p in app.query(".panel") if p.display and p.has_class("-current")]
        assert shown == ["queue"]
        await pilot.press("tab")
        assert app.current == "processes"
        assert app.query_one("#processes").has_class("-current")
        assert not app.query_one("#queue").has_class("-current")


async def test_help_opens_and_closes():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_play_steps_on_each_tick_and_stops_at_the_end():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("space")
        assert app.player.playing
        app._tick()
        assert app.player.state.step >= 1
        while app.player.playing:
            app._tick()
        assert app.player.at_end
        await pilot.press("plus")
        assert app.player.speed_index == 3


async def test_follow_shows_what_the_file_gains(tmp_path: Path):
    events = delivery_story()
    trace = tmp_path / "trace.jsonl"
    lines = [__import__("json").dumps(e) + "\n" for e in events]
    trace.write_text("".join(lines[:10]))
    loaded, tail = load_trace(trace)
    app = QmailTui(loaded, tail=tail, name="trace.jsonl")
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("f")
        assert app.player.following and app.player.position == 10
        with trace.open("a") as handle:
            handle.write("".join(lines[10:]))
        app.poll_trace()
        assert app.player.position == len(events)
        assert "following" in str(app.query_one("#status", Static).render())
        await pilot.press("left")  # stepping by hand ends following
        assert not app.player.following


async def test_typing_a_filter_does_not_step():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end")
        step = app.player.state.step
        await pilot.press("slash", *"clean", "left", "right", "enter")
        assert app.player.state.step == step
        lines = [r[1] for r in rows(app.query_one(LogTable))]
        assert lines and all(line.startswith("qmail-clean[") for line in lines)
        assert app.query_one("#log").border_subtitle == "filter: clean"


async def test_zoom_fills_the_screen_with_the_current_panel():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        for panel in ("queue", "processes", "log", "inspector"):
            assert app.current == panel
            await pilot.press("z")
            assert app.screen.maximized is app.query_one(f"#{panel}")
            await pilot.press("z", "tab")
            assert app.screen.maximized is None


def from_zero(events: list[dict]) -> list[dict]:
    """The same trace, its clock starting at 0 as the model's does."""
    return [{**e, "t": round(e["t"] - events[0]["t"], 6)} for e in events]


async def test_a_trace_whose_clock_starts_at_zero_shows_its_times():
    events = from_zero(delivery_story())
    app = QmailTui(events)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end")
        state = app.player.state
        assert state.t0 == 0.0
        stamps = [r[0] for r in rows(app.query_one(LogTable))]
        assert stamps == [f"+{events[line.index]['t']:.3f}" for line in state.log]
        assert stamps[-1] == f"+{state.t:.3f}" != "+0.000"
        await pilot.press("tab", "tab", "up")  # the event log: inspect a line's event
        assert app.selection == ("event", state.log[-2].index)
        assert inspector_text(app).startswith(f"event #{state.log[-2].index} +")


async def test_the_log_keeps_in_step_going_back_and_forth():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        for keys in (["end"], ["left", "left"], ["right"], ["home"], ["n", "n"], ["end"]):
            await pilot.press(*keys)
            shown = [r[1] for r in rows(app.query_one(LogTable))]
            assert shown == [line.text for line in app.player.state.log], keys


async def test_a_long_log_shows_its_newest_lines_and_the_filter_reaches_the_rest(monkeypatch):
    from tui.widgets import eventlog

    monkeypatch.setattr(eventlog, "SHOWN", 5)
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        for keys in (["end"], ["left", "left"], ["right"], ["home"], ["n"] * 7, ["end"]):
            await pilot.press(*keys)
            log = app.player.state.log
            shown = [r[1] for r in rows(app.query_one(LogTable))]
            assert shown == [line.text for line in log][-5:], keys  # the window slides
            subtitle = app.query_one(eventlog.EventLog).border_subtitle
            assert subtitle == (f"the last 5 of {len(log)} lines" if len(log) > 5 else ""), keys
        assert len(app.player.state.log) > 5
        oldest = app.player.state.log[0]
        await pilot.press("tab", "tab", "slash")  # the log's filter
        await pilot.press(*str(oldest.pid), "enter")
        shown = [r[1] for r in rows(app.query_one(LogTable))]
        assert oldest.text in shown  # a line out of the window, found by the filter
