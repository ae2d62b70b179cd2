"""A trace is the user's input: fields of unexpected types are shown as they are, and never
stop the narrator, the fold, the inspector or the app."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.narrate import narrate
from tests.tui.events import HOST, Story, delivery_story, two_host_story
from tests.tui.test_app import WIDE, inspector_text, rows
from tui.app import QmailTui
from tui.inspect import report
from tui.source import parse_line
from tui.state import TraceState
from tui.widgets.eventlog import LogTable, log_matches
from tui.widgets.processes import process_cells
from tui.widgets.queue import queue_rows

FIELDS = (
    *("t", "host", "pid", "ppid", "uid", "prog", "kind", "path", "src", "dst", "program"),
    *("argv", "label", "result", "fd", "old", "new", "status", "msg", "id", "state", "sender"),
    *("recipients", "reply", "why", "err", "create", "mode", "to_user", "data"),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 500) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=4,
)
STORIES = delivery_story()[1:] + two_host_story()[1:]


@st.composite
def odd_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real event with some of its fields given values of any JSON type."""
    event = dict(draw(st.sampled_from(STORIES)))
    event.update(draw(st.dictionaries(st.sampled_from(FIELDS), JSON, min_size=1, max_size=4)))
    return event


def everything_shown(state: TraceState) -> None:
    """What the panels and the inspector would draw from this state."""
    queue_rows(state)
    for process in state.processes.values():
        process_cells(process)
    for line in state.log:
        log_matches(line, "30 qmail beta")
    selections = [("event", i) for i in range(len(state.events))]
    selections += [("process", key) for key in state.processes]
    selections += [("message", key) for key in state.messages]
    selections += [("file", key) for key in [*state.files, *state.gone]]
    selections += [("node", "qmail-queue"), ("node", "queue")]
    for selection in selections:
        report(state, selection)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(STORIES) | odd_events(), min_size=1, max_size=30))
def test_any_field_of_any_type_folds_narrates_and_inspects(events):
    for event in events:
        line = narrate(event)
        assert line is None or isinstance(line, str)
    state = TraceState.fold(events)
    assert isinstance(state.t, float)
    everything_shown(state)


def test_a_reply_that_is_a_number_is_told_as_it_is():
    line = narrate({"t": 5, "pid": 6, "kind": "smtp-reply", "reply": 5})
    assert line == "?[6] (?) replies 5"
    assert (
        narrate({"pid": 6, "kind": "exec", "program": "x", "argv": "-v"}) == "?[6] (?) execs x -v"
    )
    assert narrate({"pid": 6, "kind": ["link"], "src": "pid/1", "dst": "mess/1/1"}) is None


async def test_the_app_shows_a_trace_with_odd_fields():
    s = Story()
    s(6, 1, "qmaild", "qmail-smtpd", "smtp-reply", reply=5)
    s(7, [1], 3, "qmail-queue", "exec", program=["qmail-queue"], argv=7)
    s(7, 1, "qmailq", "qmail-queue", "queue", state=4, id=457, sender=0, recipients="alice")
    s(7, 1, "qmailq", "qmail-queue", "link", src=1, dst={"mess": 1}, why=["no"])
    s(7, 1, "qmailq", "qmail-queue", "wait", result=[[8], "x"])
    events = [parse_line(json.dumps(e), "test") for e in s.events]  # what the file gives
    events.insert(2, {"t": "soon", "host": 3, "pid": 6, "kind": "smtp-reply", "reply": None})
    app = QmailTui(events)
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end")
        log = [r[-1] for r in rows(app.query_one(LogTable))]  # after a host column: host 3
        assert "qmail-smtpd[6] (qmaild) replies 5" in log
        assert any("queue: state=4 id=457 sender=0 recipients=alice" in line for line in log)
        state = app.player.state
        assert state.messages[HOST, 457].state == "4"  # as the trace says it
        await pilot.press("down", "tab", "down", "tab", "up")  # queue, processes, log
        assert inspector_text(app).startswith("event #")
        for _ in events:
            await pilot.press("p")
        assert app.player.position == 0
