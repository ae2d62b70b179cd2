"""qmail-pop3d: the Maildir listing, every command's reply, RETR/TOP transparency, QUIT's work."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.pop3 import NEED_DATA, Exit, Reply
from sim.qmail.pop3d import (
    MaildirEntry,
    NeedMessage,
    Pop3d,
    Quit,
    RenameMessage,
    UnlinkMessage,
    mailbox_order,
    pop3d_error,
    stale_tmp_files,
    stuff_message,
)

NOW = 1_000_000
LISTING = [
    MaildirEntry("1000.1.oracle", "new", 120, NOW - 50),
    MaildirEntry("900.7.oracle:2,S", "cur", 300, NOW - 100),
    MaildirEntry("1001.2.oracle", "new", 45, NOW - 10),
]
MESSAGE = b"Subject: hi\nX: y\n\nline 1\n.dot line\nline 3\n"


def session() -> Pop3d:
    return Pop3d(LISTING, NOW)


def ask(pop: Pop3d, *lines: bytes, message: bytes | None = MESSAGE):
    """Send `lines`; answer every NeedMessage with `message`; return the bytes written."""
    written: list[bytes] = []
    pop.receive_data(b"".join(line + b"\r\n" for line in lines))
    while (output := pop.next_output()) is not NEED_DATA:
        if isinstance(output, Reply):
            written.append(output.data)
        elif isinstance(output, NeedMessage):
            written.append(pop.message(message))
        else:
            raise AssertionError(output)
    return b"".join(written)


def test_listing_skips_dot_files_and_the_future_and_sorts_by_mtime():
    entries = [
        ("b", "new", 1, 30),
        (".hidden", "new", 1, 10),
        ("now", "cur", 1, NOW),
        ("future", "cur", 1, NOW + 5),
        ("a", "cur", 1, 20),
    ]
    assert [e.name for e in mailbox_order(entries, NOW)] == ["a", "b"]


def test_equal_mtimes_come_out_in_qmails_heap_order():
    entries = [(name, "new", 1, 7) for name in "abcd"]
    assert [e.name for e in mailbox_order(entries, NOW)] == ["a", "d", "c", "b"]


def test_maildir_entry_lives_in_new_or_cur():
    with pytest.raises(ValueError):
        MaildirEntry("x", "tmp", 1, 1)


def test_numbers_follow_mtime():
    assert session().paths == ("cur/900.7.oracle:2,S", "new/1000.1.oracle", "new/1001.2.oracle")


def test_greeting_is_ok_with_its_space():
    assert session().greeting() == b"+OK \r\n"


@pytest.mark.parametrize(
    ("lines", "reply"),
    [
        ([b"STAT"], b"+OK 3 465\r\n"),
        ([b"DELE 1", b"STAT"], b"+OK \r\n+OK 3 165\r\n"),
        ([b"LIST"], b"+OK \r\n1 300\r\n2 120\r\n3 45\r\n.\r\n"),
        ([b"LIST 2"], b"+OK 2 120\r\n"),
        ([b"list   3"], b"+OK 3 45\r\n"),
        ([b"UIDL"], b"+OK \r\n1 900.7.oracle\r\n2 1000.1.oracle\r\n3 1001.2.oracle\r\n.\r\n"),
        ([b"UIDL 1"], b"+OK 1 900.7.oracle\r\n"),
        ([b"DELE 2", b"LIST"], b"+OK \r\n+OK \r\n1 300\r\n3 45\r\n.\r\n"),
        ([b"DELE 2", b"LIST 2"], b"+OK \r\n-ERR already deleted\r\n"),
        ([b"DELE 2", b"DELE 2"], b"+OK \r\n-ERR already deleted\r\n"),
        ([b"DELE 0"], b"-ERR messages are counted from 1\r\n"),
        ([b"DELE 4"], b"-ERR not that many messages\r\n"),
        ([b"DELE"], b"-ERR syntax error\r\n"),
        ([b"DELE x"], b"-ERR syntax error\r\n"),
        ([b"DELE -1"], b"-ERR syntax error\r\n"),
        ([b"LIST x"], b"-ERR syntax error\r\n"),
        ([b"UIDL 0"], b"-ERR messages are counted from 1\r\n"),
        ([b"RETR 9"], b"-ERR not that many messages\r\n"),
        ([b"TOP 0 1"], b"-ERR messages are counted from 1\r\n"),
        ([b"DELE 18446744073709551617", b"LAST"], b"+OK \r\n+OK 1\r\n"),
        ([b"DELE " + b"9" * 5000], b"-ERR not that many messages\r\n"),
        ([b"LAST"], b"+OK 0\r\n"),
        ([b"DELE 3", b"DELE 1", b"LAST"], b"+OK \r\n+OK \r\n+OK 3\r\n"),
        ([b"DELE 2", b"RSET", b"LAST", b"STAT"], b"+OK \r\n+OK \r\n+OK 0\r\n+OK 3 465\r\n"),
        ([b"NOOP"], b"+OK \r\n"),
        ([b"USER bob"], b"-ERR unimplemented\r\n"),
        ([b"PASS x"], b"-ERR unimplemented\r\n"),
        ([b"APOP a b"], b"-ERR unimplemented\r\n"),
        ([b""], b"-ERR unimplemented\r\n"),
    ],
)
def test_transaction_replies(lines, reply):
    assert ask(session(), *lines) == reply


def test_retr_asks_for_the_message_and_sends_it_transparently():
    pop = session()
    pop.receive_data(b"RETR 2\r\n")
    assert pop.next_output() == NeedMessage(2, "new/1000.1.oracle")
    assert pop.message(MESSAGE) == (
        b"+OK \r\nSubject: hi\r\nX: y\r\n\r\nline 1\r\n..dot line\r\nline 3\r\n\r\n.\r\n"
    )
    assert pop.next_output() is NEED_DATA


def test_retr_of_a_message_that_will_not_open():
    assert ask(session(), b"RETR 1", message=None) == b"-ERR unable to open that message\r\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"TOP 1 0", b"+OK \r\nSubject: hi\r\nX: y\r\n\r\n\r\n.\r\n"),
        (b"TOP 1 1", b"+OK \r\nSubject: hi\r\nX: y\r\n\r\nline 1\r\n\r\n.\r\n"),
        (b"TOP 1 2", b"+OK \r\nSubject: hi\r\nX: y\r\n\r\nline 1\r\n..dot line\r\n\r\n.\r\n"),
        (b"top 1   9", b"+OK \r\n" + stuff_message(MESSAGE)),
        (b"TOP 1", b"+OK \r\n" + stuff_message(MESSAGE)),
        (b"TOP 1 x", b"+OK \r\n" + stuff_message(MESSAGE)),
        (b"RETR 1 0", b"+OK \r\nSubject: hi\r\nX: y\r\n\r\n\r\n.\r\n"),
    ],
)
def test_top_sends_the_header_and_n_body_lines(line, reply):
    assert ask(session(), line) == reply


@pytest.mark.parametrize(
    ("message", "sent"),
    [
        (b"", b"\r\n.\r\n"),
        (b"\n", b"\r\n\r\n.\r\n"),
        (b"a\n", b"a\r\n\r\n.\r\n"),
        (b"a", b"a\r\n\r\n.\r\n"),
        (b".\n", b"..\r\n\r\n.\r\n"),
        (b"x\n\n.a\n..b\n", b"x\r\n\r\n..a\r\n...b\r\n\r\n.\r\n"),
        (b"cr\r\n", b"cr\r\r\n\r\n.\r\n"),
    ],
)
def test_stuff_message(message, sent):
    assert stuff_message(message) == sent


def test_quit_unlinks_deleted_and_moves_new_to_cur():
    pop = session()
    assert ask(pop, b"DELE 2") == b"+OK \r\n"
    pop.receive_data(b"QUIT\r\n")
    assert pop.next_output() == Quit(
        (
            UnlinkMessage("new/1000.1.oracle"),
            RenameMessage("new/1001.2.oracle", "cur/1001.2.oracle:2,"),
        )
    )
    assert pop.quit_reply(0) == b"+OK \r\n"
    assert pop.next_output() == Exit(0)


def test_quit_reports_each_failed_unlink_before_ok():
    pop = session()
    ask(pop, b"DELE 1", b"DELE 3")
    pop.receive_data(b"quit\r\n")
    assert isinstance(pop.next_output(), Quit)
    assert pop.quit_reply(2) == (
        b"-ERR unable to unlink all deleted messages\r\n" * 2 + b"+OK \r\n"
    )


def test_end_of_input_exits_0_and_changes_nothing():
    pop = session()
    pop.receive_data(b"DELE 1\r\nQUIT")
    pop.receive_data(b"")
    assert pop.next_output() == Reply(b"+OK \r\n")
    assert pop.next_output() == Exit(0)


def test_empty_maildir():
    assert ask(Pop3d([], NOW), b"STAT", b"LIST", b"RETR 1") == (
        b"+OK 0 0\r\n+OK \r\n.\r\n-ERR not that many messages\r\n"
    )


def test_next_output_before_message_is_answered_is_our_bug():
    pop = session()
    pop.receive_data(b"RETR 1\r\nNOOP\r\n")
    pop.next_output()
    with pytest.raises(RuntimeError):
        pop.next_output()


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("nomaildir", b"-ERR this user has no $HOME/Maildir\r\n"),
        ("scan", b"-ERR unable to scan $HOME/Maildir\r\n"),
        ("nomem", b"-ERR out of memory\r\n"),
    ],
)
def test_start_up_failure_lines(reason, line):
    assert pop3d_error(reason) == line


def test_stale_tmp_files_are_those_not_read_for_36_hours():
    tmp = [("old", NOW - 129_601), ("edge", NOW - 129_600), ("new", NOW), (".old", 0)]
    assert stale_tmp_files(tmp, NOW) == [UnlinkMessage("tmp/old")]


def unstuff(response: bytes) -> bytes:
    """Read a RETR response the way a POP3 client (poplib) does, back to LF-ended lines."""
    status, _, rest = response.partition(b"\r\n")
    assert status == b"+OK "
    lines = []
    while True:
        line, sep, rest = rest.partition(b"\r\n")
        assert sep, "response ended before the terminating dot"
        if line == b".":
            break
        lines.append(line[1:] if line.startswith(b"..") else line)
    assert rest == b""
    assert lines.pop() == b"", "qmail-pop3d's extra blank line"
    return b"".join(line + b"\n" for line in lines)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=400) | st.lists(st.sampled_from([b".", b"\n", b"\r", b"a"])).map(b"".join)
)
def test_retr_output_reads_back_to_the_message(message):
    pop = Pop3d([("m", "new", len(message), 1)], NOW)
    pop.receive_data(b"RETR 1\r\n")
    assert isinstance(pop.next_output(), NeedMessage)
    complete = message if not message or message.endswith(b"\n") else message + b"\n"
    assert unstuff(pop.message(message)) == complete


verbs = st.sampled_from(
    [b"STAT", b"list", b"UIDL", b"DELE", b"RETR", b"TOP", b"RSET", b"LAST", b"NOOP", b"xyz"]
)
args = st.sampled_from([b"", b"0", b"1", b"2", b"3", b"4", b"1 0", b"2 5", b"x", b"99999999999"])
lines = st.builds(lambda v, a: v + b" " + a + b"\r\n", verbs, args)


@settings(max_examples=200, deadline=None)
@given(st.lists(lines | st.binary(max_size=20), max_size=12), st.booleans(), st.booleans())
def test_pop3d_never_raises_on_random_lines(chunks, quit_at_end, opens):
    pop = session()
    data = b"".join(chunks) + (b"\r\nQUIT\r\n" if quit_at_end else b"")
    pop.receive_data(data)
    pop.receive_data(b"")
    while True:
        output = pop.next_output()
        if isinstance(output, NeedMessage):
            reply = pop.message(MESSAGE if opens else None)
        elif isinstance(output, Quit):
            touched = [getattr(op, "path", getattr(op, "source", None)) for op in output.operations]
            assert set(touched) <= set(pop.paths)
            reply = pop.quit_reply(0)
        elif isinstance(output, Reply):
            reply = output.data
        else:
            assert output == Exit(0)
            break
        assert reply.endswith(b"\r\n")
