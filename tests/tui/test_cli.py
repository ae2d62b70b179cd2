"""tui.cli: `qmailsim tui [TRACE]` options, and mistakes reported before the screen is taken."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sim.qmail.errors import BadInput
from tests.tui.events import delivery_story
from tui import cli
from tui.app import QmailTui


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qmailsim tui")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults():
    args = _args()
    assert (args.trace, args.follow, args.speed) == (Path("."), False, 2.0)


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "no such trace file"), ("not json\n", "line 1: not JSON")],
)
def test_bad_trace_is_bad_input(tmp_path, content, words):
    trace = tmp_path / "trace.jsonl"
    if content is not None:
        trace.write_text(content)
    with pytest.raises(BadInput, match=words):
        cli.run(_args(str(trace)))


def test_run_opens_the_app_on_the_trace(tmp_path, monkeypatch):
    trace = tmp_path / "trace.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in delivery_story()))
    opened: list[QmailTui] = []
    monkeypatch.setattr(QmailTui, "run", lambda self: opened.append(self))
    assert cli.run(_args(str(trace), "--follow", "--speed", "10")) == 0
    [app] = opened
    assert len(app.player.events) == len(delivery_story())
    assert app.player.speed == 8.0  # the nearest speed there is
    assert app.trace_name == "trace.jsonl"


def test_a_directory_without_a_home_trace_says_how_to_make_one(tmp_path):
    with pytest.raises(BadInput) as raised:
        cli.run(_args(str(tmp_path)))
    message = str(raised.value)
    assert "qmailsim demo --live --keep DIR makes a home" in message
    assert "\n" not in message


def test_a_directory_of_traces_points_at_one(tmp_path):
    (tmp_path / "notes.jsonl").write_text("")
    (tmp_path / "default-trace.jsonl").write_text("")  # what `qmailsim demo --keep DIR` leaves
    with pytest.raises(BadInput) as raised:
        cli.run(_args(str(tmp_path)))
    message = str(raised.value)
    assert "holds default-trace.jsonl, notes.jsonl" in message
    assert message.endswith(f"qmailsim tui {tmp_path / 'default-trace.jsonl'}")
