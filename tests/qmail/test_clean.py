"""qmail-clean's protocol: request parsing, the unlinks, the reply byte, the pid/ sweep."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.clean import (
    BAD,
    DONE,
    FAILED,
    CleanCommand,
    PidSweep,
    clean_ops,
    clean_reply,
    encode_clean_command,
    parse_clean_command,
    parse_clean_reply,
    pid_sweep_ops,
)
from sim.qmail.errors import ProtocolError
from sim.qmail.queue import IGNORE, Unlink


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"todo/457\0", CleanCommand("todo", 457)),
        (b"foop/457\0", CleanCommand("foop", 457)),
        (b"todo/1\0", CleanCommand("todo", 1)),  # 7 bytes: the shortest
        (b"foop/" + b"9" * 94 + b"\0", CleanCommand("foop", int("9" * 94))),  # 100 bytes
    ],
)
def test_well_formed_requests(line, command):
    assert parse_clean_command(line) == command


@pytest.mark.parametrize(
    "line",
    [
        b"todo/\0",  # 6 bytes
        b"foop/" + b"9" * 95 + b"\0",  # 101 bytes
        b"todo/457",  # no NUL
        b"mess/457\0",
        b"intd/457\0",
        b"todo/45a\0",
        b"todo/-45\0",
        b"todo/ 45\0",
        b"TODO/457\0",
        b"todo\\457\0",
        b"todo/4\x005\0",
    ],
)
def test_malformed_requests_are_answered_x(line):
    assert parse_clean_command(line) == BAD == b"x"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_parse_never_raises(line):
    assert parse_clean_command(line) == BAD or isinstance(parse_clean_command(line), CleanCommand)


@given(st.sampled_from(["todo", "foop"]), st.integers(0, 10**90))
def test_command_round_trips(kind, queue_id):
    assert parse_clean_command(encode_clean_command(kind, queue_id)) == CleanCommand(kind, queue_id)


def test_todo_unlinks_intd_then_todo():
    assert clean_ops(CleanCommand("todo", 26902)) == [
        Unlink("intd/26902", missing_ok=True),
        Unlink("todo/26902", missing_ok=True),
    ]


def test_foop_unlinks_intd_then_mess():
    assert clean_ops(CleanCommand("foop", 26902)) == [
        Unlink("intd/26902", missing_ok=True),
        Unlink("mess/15/26902", missing_ok=True),
    ]


@pytest.mark.parametrize(
    ("outcomes", "reply"),
    [
        ([None, None], b"+"),
        ([errno.ENOENT, None], b"+"),  # intd already gone: fine
        ([errno.ENOENT, errno.ENOENT], b"+"),
        ([errno.EACCES], b"!"),  # the second unlink is not tried
        ([None, errno.EIO], b"!"),
        ([0, errno.EPERM], b"!"),
    ],
)
def test_reply_byte_from_unlink_outcomes(outcomes, reply):
    assert clean_reply(outcomes) == reply
    assert reply in (DONE, FAILED)


def test_qmail_send_reads_only_plus_as_done():
    assert parse_clean_reply(b"+") is True
    assert parse_clean_reply(b"!") is False
    assert parse_clean_reply(b"x") is False
    with pytest.raises(ProtocolError):
        parse_clean_reply(b"")


def test_pid_sweep_runs_at_start_then_every_31st_request():
    sweep, due = PidSweep(), []
    for _ in range(70):
        now, sweep = sweep.before_request()
        due.append(now)
    assert [i + 1 for i, d in enumerate(due) if d] == [1, 32, 63]


def test_pid_sweep_unlinks_only_36_hour_old_files():
    entries = [(".", 0), ("..", 0), ("1.2.3", 1000), ("4.5.6", 1000 + 1), ("7.8.9", 0)]
    assert pid_sweep_ops(entries, now=1000 + 129600) == [
        Unlink("pid/1.2.3", missing_ok=True, fail=IGNORE),
        Unlink("pid/7.8.9", missing_ok=True, fail=IGNORE),
    ]
