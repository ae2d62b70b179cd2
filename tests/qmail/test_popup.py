"""qmail-popup: greeting, USER/PASS/APOP/QUIT/NOOP, one checkpassword run, every error line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.pop3 import NEED_DATA, Exit, Reply, encode_checkpassword
from sim.qmail.popup import Authenticate, Popup, popup_error, popup_timestamp

STAMP = b"<5690.812090813@oracle.test>"


def new_popup() -> Popup:
    return Popup("oracle.test", 5690, 812_090_813)


def talk(popup: Popup, data: bytes, *, eof: bool = True, status: int | None = 0):
    """Feed `data` (and end of input), answer Authenticate with `status`; return the dialogue."""
    written: list[bytes] = []
    asked: list[Authenticate] = []
    if data:
        popup.receive_data(data)
    if eof:
        popup.receive_data(b"")
    while True:
        output = popup.next_output()
        if isinstance(output, Reply):
            written.append(output.data)
        elif isinstance(output, Authenticate):
            asked.append(output)
            written.append(popup.checkpassword_reply(status))
        else:
            return b"".join(written), output, asked


def test_greeting_carries_the_apop_timestamp():
    popup = new_popup()
    assert popup.greeting() == b"+OK <5690.812090813@oracle.test>\r\n"
    assert popup.timestamp == STAMP == popup_timestamp(5690, 812_090_813, "oracle.test")


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (b"USER bob\r\n", b"+OK \r\n"),
        (b"uSeR bob\r\n", b"+OK \r\n"),
        (b"USER\r\n", b"-ERR syntax error\r\n"),
        (b"USER    \r\n", b"-ERR syntax error\r\n"),
        (b"PASS secret\r\n", b"-ERR USER first\r\n"),
        (b"USER bob\r\nPASS\r\n", b"+OK \r\n-ERR syntax error\r\n"),
        (b"USER\r\nPASS secret\r\n", b"-ERR syntax error\r\n-ERR USER first\r\n"),
        (b"APOP bob\r\n", b"-ERR syntax error\r\n"),
        (b"APOP\r\n", b"-ERR syntax error\r\n"),
        (b"NOOP\r\n", b"+OK \r\n"),
        (b"STAT\r\n", b"-ERR authorization first\r\n"),
        (b"RETR 1\r\n", b"-ERR authorization first\r\n"),
        (b"\r\n", b"-ERR authorization first\r\n"),
        (b"NOOP\n", b"+OK \r\n"),
        (b"NOOP", b""),
    ],
)
def test_authorization_state_replies(client, server):
    written, end, asked = talk(new_popup(), client)
    assert written == server
    assert end == Exit(1)
    assert asked == []


def test_quit_says_ok_and_exits_1_before_reading_more():
    popup = new_popup()
    written, end, _ = talk(popup, b"QUIT\r\nUSER bob\r\n", eof=False)
    assert written == b"+OK \r\n"
    assert end == Exit(1)


def test_user_then_pass_authenticates_with_the_timestamp():
    _, _, asked = talk(new_popup(), b"USER alice\r\nPASS secret word\r\n")
    assert asked == [Authenticate(b"alice", b"secret word", STAMP)]


def test_the_last_user_counts():
    _, _, asked = talk(new_popup(), b"USER bob\r\nUSER alice\r\nPASS x\r\n")
    assert asked == [Authenticate(b"alice", b"x", STAMP)]


@pytest.mark.parametrize(
    ("line", "user", "digest"),
    [
        (
            b"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
            b"alice",
            b"c4c9334bac560ecc979e58001b3e22fb",
        ),
        (b"APOP alice  two spaces\r\n", b"alice", b" two spaces"),
        (b"APOP alice \r\n", b"alice", b""),
    ],
)
def test_apop_authenticates_name_and_digest(line, user, digest):
    _, _, asked = talk(new_popup(), line)
    assert asked == [Authenticate(user, digest, STAMP)]


@pytest.mark.parametrize(
    ("status", "reply"),
    [
        (0, b""),
        (1, b"-ERR authorization failed\r\n"),
        (2, b"-ERR authorization failed\r\n"),
        (111, b"-ERR authorization failed\r\n"),
        (None, b"-ERR aack, child crashed\r\n"),
    ],
)
def test_checkpassword_outcome_then_exit_1(status, reply):
    written, end, _ = talk(new_popup(), b"USER alice\r\nPASS secret\r\n", status=status)
    assert written == b"+OK \r\n" + reply
    assert end == Exit(1)


def test_only_one_attempt_per_connection():
    popup = new_popup()
    written, end, asked = talk(popup, b"APOP a b\r\nUSER alice\r\nPASS c\r\n", status=1)
    assert len(asked) == 1
    assert written == b"-ERR authorization failed\r\n"
    assert end == Exit(1)
    assert popup.pending == b"USER alice\r\nPASS c\r\n"


def test_authenticate_fields_are_what_checkpassword_reads():
    _, _, (asked,) = talk(new_popup(), b"USER alice\r\nPASS secret\r\n")
    data = encode_checkpassword(asked.user, asked.password, asked.timestamp)
    assert data == b"alice\0secret\0<5690.812090813@oracle.test>\0"


def test_waits_for_a_whole_line():
    popup = new_popup()
    popup.receive_data(b"USER bo")
    assert popup.next_output() is NEED_DATA
    popup.receive_data(b"b\r\n")
    assert popup.next_output() == Reply(b"+OK \r\n")
    assert popup.next_output() is NEED_DATA


def test_next_output_while_checkpassword_runs_is_our_bug():
    popup = new_popup()
    popup.receive_data(b"APOP a b\r\n")
    assert isinstance(popup.next_output(), Authenticate)
    assert popup.state == "authenticating"
    with pytest.raises(RuntimeError):
        popup.next_output()


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("usage", b"-ERR usage: popup hostname subprogram\r\n"),
        ("nomem", b"-ERR out of memory\r\n"),
        ("pipe", b"-ERR unable to open pipe\r\n"),
        ("write", b"-ERR unable to write pipe\r\n"),
        ("fork", b"-ERR unable to fork\r\n"),
    ],
)
def test_system_failure_lines(reason, line):
    assert popup_error(reason) == line


verbs = st.sampled_from([b"USER", b"pass", b"Apop", b"QUIT", b"noop", b"STAT", b"", b"top"])
args = st.binary(max_size=12)
lines = st.builds(
    lambda v, a, end: v + b" " + a + end, verbs, args, st.sampled_from([b"\r\n", b"\n"])
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(lines | st.binary(max_size=20), max_size=8),
    st.sampled_from([0, 1, 111, None]),
    st.booleans(),
)
def test_popup_never_raises_on_random_lines(chunks, status, eof):
    popup = new_popup()
    written, end, asked = talk(popup, b"".join(chunks), eof=eof, status=status)
    assert end == Exit(1) if eof or asked else end in (Exit(1), NEED_DATA)
    assert len(asked) <= 1
    assert written == b"" or written.endswith(b"\r\n")
