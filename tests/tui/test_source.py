"""tui.source: reading a trace file whole or as it grows; mistakes are BadInput, not tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.qmail.errors import BadInput
from tui.source import TraceTail, load_trace, parse_line, trace_path

HEADER = '{"v":1,"t":1.0,"host":"h","kind":"trace","source":"test"}\n'
EVENT = '{"t":1.1,"host":"h","pid":7,"ppid":1,"uid":"root","prog":"p","kind":"close","fd":3}\n'


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "trace.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_a_qmail_home_means_its_log_trace(tmp_path):
    (tmp_path / "log").mkdir()
    _write(tmp_path / "log", HEADER)
    assert trace_path(tmp_path) == tmp_path / "log" / "trace.jsonl"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "missing.jsonl", "no such trace file"),
        (lambda p: p, "has no log/trace.jsonl"),
    ],
)
def test_missing_trace_is_bad_input(tmp_path, make, words):
    with pytest.raises(BadInput, match=words):
        trace_path(make(tmp_path))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (HEADER + "{not json\n", "line 2: not JSON"),
        (HEADER + "[1, 2]\n", "line 2: not a trace event"),
        ('{"v":2,"t":1,"kind":"trace"}\n', "line 1: trace schema v2"),
        (HEADER + '{"t":1,"kind":"close"}\n', "line 2: event 'close' has no pid"),
        (HEADER + '{"t":1,"pid":[6],"kind":"exec"}\n', r"line 2: .* pid \[6\], not a number"),
        (HEADER + '{"t":1,"pid":true,"kind":"exec"}\n', "line 2: .* pid True, not a number"),
        (b"\xff\xfe\x00garbage\n", "not text"),
    ],
)
def test_malformed_trace_names_file_and_line(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(BadInput, match=words) as caught:
        load_trace(path)
    assert str(path) in str(caught.value)


def test_load_reads_every_event_and_skips_blank_lines(tmp_path):
    events, _ = load_trace(_write(tmp_path, HEADER + "\n" + EVENT))
    assert [e["kind"] for e in events] == ["trace", "close"]


def test_last_line_without_newline_counts_if_whole(tmp_path):
    events, _ = load_trace(_write(tmp_path, HEADER + EVENT.rstrip("\n")))
    assert len(events) == 2


def test_tail_waits_for_the_rest_of_a_line(tmp_path):
    path = _write(tmp_path, HEADER + EVENT[:20])
    events, tail = load_trace(path)
    assert len(events) == 1
    with path.open("a") as handle:
        handle.write(EVENT[20:])
    more, problems = tail.read_new()
    assert [e["kind"] for e in more] == ["close"]
    assert problems == []
    assert tail.read_new() == ([], [])


def test_tail_reports_a_bad_line_and_goes_on(tmp_path):
    path = _write(tmp_path, HEADER)
    tail = TraceTail(path)
    tail.read_new(strict=True)
    with path.open("a") as handle:
        handle.write("oops\n" + EVENT)
    events, problems = tail.read_new()
    assert len(events) == 1
    assert problems == [f"{path} line 2: not JSON (Expecting value); is this a qmailsim trace?"]


def test_parse_line_keeps_the_fields():
    assert parse_line(EVENT, "x") == json.loads(EVENT)
    assert parse_line("   ", "x") is None


def test_tail_says_so_when_the_file_shrinks(tmp_path):
    path = _write(tmp_path, HEADER + EVENT)
    _, tail = load_trace(path)
    path.write_text(HEADER)
    events, [problem] = tail.read_new()
    assert events == [] and "shrank" in problem
