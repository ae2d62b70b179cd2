"""mbox delivery: the bytes one delivery appends, the operations around them, reading back."""

from __future__ import annotations

import contextlib
import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.local import HeaderLines, Outcome, header_lines
from sim.qmail.maildir import Close, Fsync, WriteAll, drive
from sim.qmail.mbox import (
    LockExclusive,
    MboxMessage,
    OpenAppend,
    SeekEnd,
    Truncate,
    mailfile,
    mbox_bytes,
    mbox_ops,
    quote_from,
    split_mbox,
    unquote_from,
)

LINES = header_lines("fred", "heaven.af.mil", "joe@x.org", 0)
HEAD = (
    b"From joe@x.org Thu Jan 01 00:00:00 1970\n"
    b"Return-Path: <joe@x.org>\n"
    b"Delivered-To: fred@heaven.af.mil\n"
)


@pytest.mark.parametrize(
    ("message", "body"),
    [
        (b"Subject: x\n\nhi\n", b"Subject: x\n\nhi\n\n"),
        (b"Subject: x\n\nno newline", b"Subject: x\n\nno newline\n\n"),
        (b"", b"\n"),
        (b"\n", b"\n\n"),
        (b"From me\n", b">From me\n\n"),
        (b"a\nFrom here\n>From there\n>>From x\n", b"a\n>From here\n>>From there\n>>>From x\n\n"),
        (b"From\n From x\nFrom: hdr\nfrom x\n", b"From\n From x\nFrom: hdr\nfrom x\n\n"),
        (b">>From x", b">>>From x\n\n"),
        (b">>From", b">>From\n\n"),
        (b"x\r\nFrom y\r\n", b"x\r\n>From y\r\n\n"),
    ],
)
def test_the_bytes_one_delivery_appends(message, body):
    assert mbox_bytes(LINES, message) == HEAD + body


def test_quoting_is_undone_exactly():
    assert quote_from(b"From a\n>From b\n") == b">From a\n>>From b\n"
    assert unquote_from(b">From a\n>>From b\nFrom c\n>x\n") == b"From a\n>From b\nFrom c\n>x\n"


def test_the_bounce_sender_is_mailer_daemon():
    lines = header_lines("fred", "x.org", "", 0)
    assert mbox_bytes(lines, b"hi\n").startswith(
        b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\nReturn-Path: <>\n"
    )


class FakeMbox:
    """An open mbox file in memory; `fail` maps an operation type to the errno it fails with."""

    def __init__(self, content: bytes = b"", fail: dict[type, int] | None = None, short=0):
        self.content = content
        self.fail = dict(fail or {})
        self.short = short  # bytes a failing WriteAll manages to write first
        self.timeout = False

    def __call__(self, op):
        if isinstance(op, LockExclusive) and self.timeout:
            raise TimeoutError
        if type(op) in self.fail:
            if isinstance(op, WriteAll):
                self.content += op.data[: self.short]
            raise OSError(self.fail[type(op)], "injected")
        if isinstance(op, SeekEnd):
            return len(self.content)
        if isinstance(op, WriteAll):
            self.content += op.data
        elif isinstance(op, Truncate):
            self.content = self.content[: op.length]
        return None


def run(fs: FakeMbox, data: bytes = b"DATA"):
    return drive(mailfile("./Mailbox", data), fs)


def test_an_append_opens_locks_remembers_the_end_writes_and_fsyncs():
    assert mbox_ops("./Mailbox", b"DATA") == [
        OpenAppend("./Mailbox", 0o600),
        LockExclusive("./Mailbox", 30),
        SeekEnd("./Mailbox"),
        WriteAll("./Mailbox", b"DATA"),
        Fsync("./Mailbox"),
        Close("./Mailbox"),
    ]
    fs = FakeMbox(b"old\n")
    assert run(fs)[1] == Outcome(0)
    assert fs.content == b"old\nDATA"


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (errno.EACCES, "Unable to open ./Mailbox: access denied. (#4.2.1)\n"),
        (errno.EISDIR, "Unable to open ./Mailbox: is a directory. (#4.2.1)\n"),
    ],
)
def test_an_open_failure_is_temporary(err, text):
    ops, outcome = run(FakeMbox(fail={OpenAppend: err}))
    assert outcome == Outcome(111, text)
    assert ops == [OpenAppend("./Mailbox", 0o600)]


def test_a_lock_held_30_seconds_gives_up_temporarily():
    fs = FakeMbox(b"old\n")
    fs.timeout = True
    ops, outcome = run(fs)
    assert outcome == Outcome(111, "File has been locked for 30 seconds straight. (#4.3.0)\n")
    assert not any(isinstance(op, WriteAll) for op in ops)
    assert fs.content == b"old\n"


@pytest.mark.parametrize("failing", [WriteAll, Fsync])
def test_a_write_error_under_the_lock_truncates_back(failing):
    fs = FakeMbox(b"old\n", fail={failing: errno.ENOSPC}, short=2)
    ops, outcome = run(fs)
    assert outcome == Outcome(111, "Unable to write ./Mailbox: out of disk space. (#4.3.0)\n")
    assert Truncate("./Mailbox", 4) in ops
    assert fs.content == b"old\n"


def test_without_the_lock_it_appends_anyway_and_does_not_truncate():
    fs = FakeMbox(b"old\n", fail={LockExclusive: errno.ENOLCK})
    assert run(fs)[1] == Outcome(0)
    assert fs.content == b"old\nDATA"
    fs = FakeMbox(b"old\n", fail={LockExclusive: errno.ENOLCK, WriteAll: errno.EIO}, short=2)
    ops, outcome = run(fs)
    assert outcome.code == 111
    assert not any(isinstance(op, Truncate) for op in ops)
    assert fs.content == b"old\nDA"


def test_a_close_failure_is_ignored():
    assert run(FakeMbox(fail={Close: errno.EIO}))[1] == Outcome(0)


# --- reading back ---------------------------------------------------------------------------


def test_split_reads_back_each_delivery():
    first = mbox_bytes(LINES, b"Subject: 1\n\nFrom the start\n")
    second = mbox_bytes(header_lines("fred", "h", "", 0), b"Subject: 2\n\nbye")
    assert split_mbox(first + second) == [
        MboxMessage(
            b"From joe@x.org Thu Jan 01 00:00:00 1970\n",
            HEAD.split(b"\n", 1)[1] + b"Subject: 1\n\nFrom the start\n",
        ),
        MboxMessage(
            b"From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n",
            b"Return-Path: <>\nDelivered-To: fred@h\nSubject: 2\n\nbye\n",
        ),
    ]


@pytest.mark.parametrize("data", [b"Subject: x\n", b"\nFrom x\n", b"From x"])
def test_split_refuses_what_is_not_an_mbox(data):
    with pytest.raises(BadInput):
        split_mbox(data)


def test_an_empty_mbox_has_no_messages():
    assert split_mbox(b"") == []


def expected_back(lines: HeaderLines, message: bytes) -> bytes:
    """What reading back gives: the prepended lines, the message, a final newline added."""
    if message and not message.endswith(b"\n"):
        message += b"\n"
    return (lines.rpline + lines.dtline).encode("latin-1") + message


MESSAGES = st.lists(
    st.sampled_from([b"From ", b">", b"From", b"\n", b" ", b"x", b"\r", b"From x\n"]), max_size=40
).map(b"".join) | st.binary(max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    first=MESSAGES, second=MESSAGES, sender=st.text(st.characters(max_codepoint=255), max_size=10)
)
def test_append_then_split_gives_back_every_message(first, second, sender):
    lines = header_lines("fred", "x.org", sender, 0)
    data = mbox_bytes(lines, first) + mbox_bytes(lines, second)
    back = split_mbox(data)
    assert [m.message for m in back] == [expected_back(lines, first), expected_back(lines, second)]
    assert all(m.from_line == lines.ufline.encode("latin-1") for m in back)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_split_never_raises_anything_but_bad_input(data):
    with contextlib.suppress(BadInput):
        split_mbox(data)
