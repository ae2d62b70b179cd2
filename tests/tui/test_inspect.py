"""tui.inspect: what the inspector says about each kind of thing."""

from __future__ import annotations

import pytest

from tests.tui.events import HOST, MSG, delivery_story
from tui.inspect import report
from tui.state import TraceState


@pytest.fixture(scope="module")
def state() -> TraceState:
    return TraceState.fold(delivery_story())


def _text(found) -> str:
    return "\n".join(
        [found.title] + [f"{h}: {line}" for h, lines in found.sections for line in lines]
    )


def test_message_report_has_state_envelope_history_and_story(state):
    text = _text(report(state, ("message", (HOST, MSG))))
    assert "S1: no message" in text
    assert "recipient: alice@example.test" in text
    assert "S4  todo/ entry linked" in text
    assert "todo/457: unlinked" in text
    assert "qmail-queue[30] (qmailq)" in text


def test_process_report_has_accounts_programs_and_children(state):
    text = _text(report(state, ("process", (HOST, 22))))
    assert "process 22: qmail-lspawn" in text
    assert "children: qmail-local[40] (alice), exit 0" in text
    assert "killed by signal 9" in text
    local = _text(report(state, ("process", (HOST, 40))))
    assert "accounts: root → alice" in local
    assert "programs: qmail-lspawn → qmail-local" in local


def test_file_report_says_what_its_directory_holds(state):
    text = _text(report(state, ("file", (HOST, "todo/457"))))
    assert "waiting for qmail-send to preprocess it" in text
    assert "not in the queue now" in text


def test_event_report_lists_every_field_and_the_edge(state):
    index = next(i for i, e in enumerate(state.events) if e["kind"] == "link" and
                 e.get("dst") == "todo/457")  # fmt: skip
    text = _text(report(state, ("event", index)))
    assert "dst: todo/457" in text
    assert "qmail-queue → queue/todo (link)" in text


def test_node_report_comes_from_the_architecture(state):
    text = _text(report(state, ("node", "qmail-queue")))
    assert "user: qmailq" in text
    assert "qmail-queue[30]" in text


@pytest.mark.parametrize(
    "selection",
    [
        ("message", (HOST, 1)),
        ("process", (HOST, 999)),
        ("message", ("elsewhere.test", MSG)),
        ("event", 10**6),
        ("node", "nope"),
        ("x", 1),
    ],
)
def test_unknown_things_say_so(state, selection):
    found = report(state, selection)
    assert not found.sections


def test_the_queue_box_lists_its_directories(state):
    text = _text(report(state, ("node", "queue")))
    assert "todo/ (0): the finished envelope" in text
    assert "457: S1 no message" in text
