"""qmail-smtpd's session: every reply of the reference word for word, and its decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.smtpd import (
    TRANSITIONS,
    AbortData,
    Close,
    EndOfData,
    MessageData,
    Reply,
    SessionMisuse,
    SmtpdConfig,
    SmtpdSession,
    SmtpdState,
    StartQueue,
    verbs,
)
from sim.qmail.smtpd_replies import NETQMAIL_106, NOTQMAIL_109, reply_bytes

NOW = 812345679
CONFIG = SmtpdConfig(
    greeting="mx.example.test",
    local_host="mx.example.test",
    remote_ip="192.0.2.9",
    remote_host="client.example.org",
    localiphost="example.test",
    local_ips=frozenset({"127.0.0.1"}),
    rcpthosts=frozenset({"example.test", ".heaven.af.mil"}),
    badmailfrom=frozenset({"spammer@evil.example", "@junk.example"}),
)
LONG = b"a" * 895 + b"@b.cd"  # 900 bytes: one too many


def session(**changes: object) -> SmtpdSession:
    s = SmtpdSession(replace(CONFIG, **changes))
    s.start()
    return s


def replies(events: list) -> list[bytes]:
    return [e.text for e in events if isinstance(e, Reply)]


def say(s: SmtpdSession, data: bytes) -> bytes:
    """Everything qmail-smtpd writes back for `data`."""
    return b"".join(replies(s.receive(data)))


def through_data(s: SmtpdSession, message: bytes) -> list:
    """Send DATA and the raw message; start qmail-queue; return the events up to the end."""
    events = s.receive(b"DATA\r\n")
    assert isinstance(events[-1], StartQueue)
    return s.queue_started(NOW) + s.receive(message)


def open_envelope(s: SmtpdSession) -> None:
    assert say(s, b"MAIL FROM:<joe@client.example.org>\r\nRCPT TO:<bob@example.test>\r\n") == (
        b"250 ok\r\n250 ok\r\n"
    )


# -- every reply string of the reference (section 8.3), in the state that produces it -------

COMMAND_REPLIES = [
    ("helo", b"", b"HELO client.example.org\r\n", b"250 mx.example.test\r\n"),
    (
        "ehlo",
        b"",
        b"EHLO client.example.org\r\n",
        b"250-mx.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
    ),
    ("mail", b"", b"MAIL FROM:<joe@a.example>\r\n", b"250 ok\r\n"),
    ("rcpt", b"MAIL FROM:<>\r\n", b"RCPT TO:<bob@example.test>\r\n", b"250 ok\r\n"),
    ("rcpt first", b"", b"RCPT TO:<bob@example.test>\r\n", b"503 MAIL first (#5.5.1)\r\n"),
    ("data first", b"", b"DATA\r\n", b"503 MAIL first (#5.5.1)\r\n"),
    ("no rcpt", b"MAIL FROM:<>\r\n", b"DATA\r\n", b"503 RCPT first (#5.5.1)\r\n"),
    ("mail long", b"", b"MAIL FROM:<" + LONG + b">\r\n", b"555 syntax error (#5.5.4)\r\n"),
    (
        "rcpt long",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<" + LONG + b">\r\n",
        b"555 syntax error (#5.5.4)\r\n",
    ),
    (
        "bmf",
        b"MAIL FROM:<spammer@evil.example>\r\n",
        b"RCPT TO:<bob@example.test>\r\n",
        b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n",
    ),
    (
        "nogateway",
        b"MAIL FROM:<>\r\n",
        b"RCPT TO:<bob@elsewhere.test>\r\n",
        b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
    ),
    ("rset", b"", b"RSET\r\n", b"250 flushed\r\n"),
    ("noop", b"", b"NOOP\r\n", b"250 ok\r\n"),
    ("vrfy", b"", b"VRFY bob\r\n", b"252 send some mail, i'll try my best\r\n"),
    ("help", b"", b"HELP\r\n", b"214 qmail home page: http://pobox.com/~djb/qmail.html\r\n"),
    ("quit", b"", b"QUIT\r\n", b"221 mx.example.test\r\n"),
]


@pytest.mark.parametrize(
    ("before", "command", "reply"),
    [case[1:] for case in COMMAND_REPLIES],
    ids=[case[0] for case in COMMAND_REPLIES],
)
def test_command_reply_is_qmails(before, command, reply):
    s = session()
    s.receive(before)
    assert say(s, command) == reply


def test_greeting_is_220_greeting_esmtp():
    s = SmtpdSession(CONFIG)
    assert replies(s.start()) == [b"220 mx.example.test ESMTP\r\n"]


@pytest.mark.parametrize(
    "command",
    [b"EXPN x", b"TURN", b"ETRN x", b"AUTH LOGIN", b"STARTTLS", b"", b" NOOP", b"MAILFROM:<a>"],
)
def test_other_verbs_are_502(command):
    assert say(session(), command + b"\r\n") == b"502 unimplemented (#5.5.1)\r\n"


def test_rcpt_before_mail_is_503():
    assert say(session(), b"RCPT TO:<bob@example.test>\r\n") == b"503 MAIL first (#5.5.1)\r\n"


def test_quit_closes_with_status_0():
    s = session()
    assert s.receive(b"QUIT\r\nNOOP\r\n")[-1] == Close(0)
    assert s.state is SmtpdState.CLOSED
    with pytest.raises(SessionMisuse):
        s.receive(b"NOOP\r\n")


def test_queue_not_started_is_451_qqt_failure():
    s = session()
    open_envelope(s)
    assert s.receive(b"DATA\r\n") == [StartQueue("joe@client.example.org", ("bob@example.test",))]
    assert replies(s.queue_failed()) == [b"451 qqt failure (#4.3.0)\r\n"]
    assert say(s, b"DATA\r\n") == b"503 MAIL first (#5.5.1)\r\n"


def test_accepted_message_is_354_then_250_ok_time_qp():
    s = session()
    open_envelope(s)
    events = through_data(s, b"Subject: hi\r\n\r\n..dot\r\n.\r\n")
    assert replies(events) == [b"354 go ahead\r\n"]
    assert [e.data for e in events if isinstance(e, MessageData)] == [
        b"Received: from client.example.org (192.0.2.9)\n"
        b"  by mx.example.test with SMTP; 29 Sep 1995 03:34:39 -0000\n",
        b"Subject: hi\n\n.dot\n",
    ]
    assert events[-1] == EndOfData("joe@client.example.org", ("bob@example.test",))
    assert replies(s.queue_result(0, 12345, NOW + 0.9)) == [b"250 ok 812345679 qp 12345\r\n"]
    assert s.state is SmtpdState.NO_MAIL


QQ_REPLIES = [
    (11, b"554 envelope address too long for qq (#5.1.3)\r\n"),
    (115, b"554 envelope address too long for qq (#5.1.3)\r\n"),
    (31, b"554 mail server permanently rejected message (#5.3.0)\r\n"),
    (51, b"451 qq out of memory (#4.3.0)\r\n"),
    (52, b"451 qq timeout (#4.3.0)\r\n"),
    (53, b"451 qq write error or disk full (#4.3.0)\r\n"),
    (54, b"451 qq read error (#4.3.0)\r\n"),
    (55, b"451 qq unable to read configuration (#4.3.0)\r\n"),
    (56, b"451 qq trouble making network connection (#4.3.0)\r\n"),
    (61, b"451 qq trouble in home directory (#4.3.0)\r\n"),
    (62, b"451 qq trouble creating files in queue (#4.3.0)\r\n"),
    (66, b"451 qq trouble creating files in queue (#4.3.0)\r\n"),
    (71, b"451 mail server temporarily rejected message (#4.3.0)\r\n"),
    (72, b"451 connection to mail server timed out (#4.4.1)\r\n"),
    (73, b"451 connection to mail server rejected (#4.4.1)\r\n"),
    (74, b"451 communication with mail server failed (#4.4.2)\r\n"),
    (81, b"451 qq internal bug (#4.3.0)\r\n"),
    (91, b"451 qq internal bug (#4.3.0)\r\n"),
    (120, b"451 unable to exec qq (#4.3.0)\r\n"),
    (12, b"554 qq permanent problem (#5.3.0)\r\n"),
    (40, b"554 qq permanent problem (#5.3.0)\r\n"),
    (75, b"451 qq temporary problem (#4.3.0)\r\n"),
    (100, b"451 qq temporary problem (#4.3.0)\r\n"),
    (None, b"451 qq crashed (#4.3.0)\r\n"),
]


@pytest.mark.parametrize(("exit_code", "reply"), QQ_REPLIES)
def test_qmail_queue_failure_is_554_or_451_with_its_text(exit_code, reply):
    s = session()
    open_envelope(s)
    through_data(s, b"x\r\n.\r\n")
    assert replies(s.queue_result(exit_code, 4321, NOW)) == [reply]


def test_exit_0_after_our_write_error_is_451_qq_read_error():
    s = session()
    open_envelope(s)
    through_data(s, b"x\r\n.\r\n")
    assert replies(s.queue_result(0, 4321, NOW, write_error=True)) == [
        b"451 qq read error (#4.3.0)\r\n"
    ]


def hop_message(hops: int) -> bytes:
    return b"Received: from a by b\r\n" * hops + b"Subject: loop\r\n\r\nbody\r\n.\r\n"


def test_99_hops_is_accepted():
    s = session()
    open_envelope(s)
    assert isinstance(through_data(s, hop_message(99))[-1], EndOfData)
    assert replies(s.queue_result(0, 1, NOW)) == [b"250 ok 812345679 qp 1\r\n"]


@pytest.mark.parametrize("exit_code", [54, 0, 53])
def test_100_hops_is_554_looping_whatever_qmail_queue_says(exit_code):
    s = session()
    open_envelope(s)
    events = through_data(s, hop_message(100))
    assert isinstance(events[-1], AbortData)
    assert replies(s.queue_result(exit_code, 1, NOW)) == [
        b"554 too many hops, this message is looping (#5.4.6)\r\n"
    ]


@pytest.mark.parametrize(("size", "accepted"), [(9, True), (10, True), (11, False)])
def test_databytes_boundary(size, accepted):
    s = session(databytes=10)
    open_envelope(s)
    events = through_data(s, b"x" * (size - 1) + b"\r\n.\r\n")
    body = b"".join(e.data for e in events[2:] if isinstance(e, MessageData))
    assert body == (b"x" * (size - 1) + b"\n")[:10]
    assert isinstance(events[-1], EndOfData if accepted else AbortData)
    expected = (
        b"250 ok 812345679 qp 7\r\n"
        if accepted
        else b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
    )
    assert replies(s.queue_result(54 if not accepted else 0, 7, NOW)) == [expected]


def test_bare_lf_in_data_is_451_and_close():
    s = session()
    open_envelope(s)
    s.receive(b"DATA\r\n")
    s.queue_started(NOW)
    events = s.receive(b"line one\nline two\r\n.\r\n")
    assert events == [
        Reply(
            "straynewline",
            b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n",
            "LF without CR inside DATA",
            flush=True,
        ),
        AbortData("bare LF"),
        Close(1),
    ]
    assert s.state is SmtpdState.CLOSED


def test_bare_lf_ends_command_lines():
    assert say(session(), b"NOOP\nHELO x\n") == b"250 ok\r\n250 mx.example.test\r\n"


def test_timeout_is_451_and_close():
    s = session()
    assert s.timeout() == [
        Reply("alarm", b"451 timeout (#4.4.2)\r\n", "no input for 1200 s", flush=True),
        Close(1),
    ]


def test_timeout_during_data_cancels_the_message():
    s = session()
    open_envelope(s)
    through_data(s, b"partial\r\n")
    assert s.timeout()[1:] == [AbortData("timeout"), Close(1)]


@pytest.mark.parametrize("in_data", [False, True])
def test_eof_exits_1_silently(in_data):
    s = session()
    open_envelope(s)
    if in_data:
        through_data(s, b"partial")
    events = s.eof()
    assert replies(events) == []
    assert events[-1] == Close(1)
    assert any(isinstance(e, AbortData) for e in events) is in_data


@pytest.mark.parametrize(
    ("name", "version", "text"),
    [
        ("help", NETQMAIL_106, b"214 netqmail home page: http://qmail.org/netqmail\r\n"),
        ("help", NOTQMAIL_109, b"214 notqmail home page: https://notqmail.org\r\n"),
        ("straynewline", NOTQMAIL_109, b"451 See https://cr.yp.to/docs/smtplf.html.\r\n"),
        ("straynewline", NETQMAIL_106, b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"),
        ("nomem", NETQMAIL_106, b"421 out of memory (#4.3.0)\r\n"),
        ("control", NETQMAIL_106, b"421 unable to read controls (#4.3.0)\r\n"),
        ("ipme", NETQMAIL_106, b"421 unable to figure out my IP addresses (#4.3.0)\r\n"),
    ],
)
def test_later_versions_word_help_and_bare_lf_differently(name, version, text):
    assert reply_bytes(name, version) == text


def test_version_is_used_by_the_session():
    assert say(session(version=NOTQMAIL_109), b"HELP\r\n") == (
        b"214 notqmail home page: https://notqmail.org\r\n"
    )


# -- command parsing and pipelining ---------------------------------------------------------


def test_pipelined_commands_in_one_read_are_answered_together():
    s = session()
    events = s.receive(
        b"MAIL FROM:<joe@a.example>\r\nRCPT TO:<bob@example.test>\r\n"
        b"RCPT TO:<eve@elsewhere.test>\r\nRCPT TO:<amy@example.test>\r\nDATA\r\n"
    )
    assert replies(events) == [
        b"250 ok\r\n",
        b"250 ok\r\n",
        b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n",
        b"250 ok\r\n",
    ]
    assert events[-1] == StartQueue("joe@a.example", ("bob@example.test", "amy@example.test"))


def test_message_pipelined_after_data_waits_for_qmail_queue():
    s = session()
    events = s.receive(
        b"MAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n"
    )
    assert isinstance(events[-1], StartQueue)
    assert s.receive(b"") == []
    events = s.queue_started(NOW)
    assert events[2:] == [MessageData(b"hello\n"), EndOfData("", ("bob@example.test",))]
    events = s.queue_result(0, 99, NOW)
    assert replies(events) == [b"250 ok 812345679 qp 99\r\n", b"221 mx.example.test\r\n"]
    assert events[-1] == Close(0)


def test_commands_split_across_reads():
    s = session()
    assert s.receive(b"NO") == []
    assert s.receive(b"OP\r") == []
    assert say(s, b"\nNOOP\r\n") == b"250 ok\r\n250 ok\r\n"


def test_message_one_byte_at_a_time():
    s = session()
    open_envelope(s)
    s.receive(b"DATA\r\n")
    s.queue_started(NOW)
    stored, last = b"", None
    for byte in b"a\r\n..b\r\n.\r\nNOOP\r\n":
        for event in s.receive(bytes((byte,))):
            if isinstance(event, MessageData):
                stored += event.data
            last = event
    assert stored == b"a\n.b\n"
    assert isinstance(last, EndOfData)
    assert replies(s.queue_result(0, 5, NOW)) == [b"250 ok 812345679 qp 5\r\n", b"250 ok\r\n"]


@pytest.mark.parametrize("command", [b"noop", b"NoOp", b"NOOP junk", b"NOOP\0junk"])
def test_verb_is_case_insensitive_up_to_the_first_space(command):
    assert say(session(), command + b"\r\n") == b"250 ok\r\n"


def test_only_one_cr_before_lf_is_dropped():
    s = session()
    s.receive(b"HELO x\r\r\n")
    assert s.helo == "x\r"


def test_flush_marks_follow_qmails_command_table():
    s = session()
    events = s.receive(b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@example.test>\r\nRSET\r\nNOOP\r\n")
    assert [(e.name, e.flush) for e in events] == [
        ("ehlo", True),
        ("mail", False),
        ("rcpt", False),
        ("rset", False),
        ("noop", True),
    ]


def test_a_long_line_streams_out_without_piling_up():
    s = session()
    open_envelope(s)
    s.receive(b"DATA\r\n")
    s.queue_started(NOW)
    stored = 0
    for _ in range(64):
        events = s.receive(b"z" * 65536)
        stored += sum(len(e.data) for e in events if isinstance(e, MessageData))
        assert s.pending_input == 0
    assert stored == 64 * 65536
    assert isinstance(s.receive(b"\r\n.\r\n")[-1], EndOfData)


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300).map(lambda b: b + b"\n") | st.just(b""),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_dot_stuffed_message_arrives_byte_identical_in_any_split(message, cuts):
    wire = b"".join(
        (b"." if line.startswith(b".") else b"") + line + b"\r\n"
        for line in message.split(b"\n")[:-1]
    )
    wire = b"MAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" + wire + b".\r\nNOOP\r\n"
    points = sorted({c % (len(wire) + 1) for c in cuts})
    s = session()
    events = []
    for a, b in zip([0, *points], [*points, len(wire)], strict=True):
        events += s.receive(wire[a:b])
        if s.state is SmtpdState.QUEUE_STARTING:
            events += s.queue_started(NOW)
    data = [e.data for e in events if isinstance(e, MessageData)]
    assert data[0].startswith(b"Received: from client.example.org")
    assert b"".join(data[1:]) == message
    assert isinstance(events[-1], EndOfData)
    assert replies(s.queue_result(0, 3, NOW)) == [b"250 ok 812345679 qp 3\r\n", b"250 ok\r\n"]


# -- the transaction -----------------------------------------------------------------------


def test_mail_may_repeat_and_resets_the_recipients():
    s = session()
    open_envelope(s)
    assert say(s, b"MAIL FROM:<other@a.example>\r\nDATA\r\n") == (
        b"250 ok\r\n503 RCPT first (#5.5.1)\r\n"
    )


def test_refused_mail_keeps_the_transaction():
    s = session()
    open_envelope(s)
    assert say(s, b"MAIL FROM:<" + LONG + b">\r\n") == b"555 syntax error (#5.5.4)\r\n"
    assert s.receive(b"DATA\r\n") == [StartQueue("joe@client.example.org", ("bob@example.test",))]


@pytest.mark.parametrize("reset", [b"HELO x", b"EHLO x", b"RSET"])
def test_helo_ehlo_rset_reset_the_transaction(reset):
    s = session()
    open_envelope(s)
    s.receive(reset + b"\r\n")
    assert say(s, b"RCPT TO:<bob@example.test>\r\n") == b"503 MAIL first (#5.5.1)\r\n"


def test_data_ends_the_transaction():
    s = session()
    open_envelope(s)
    through_data(s, b".\r\n")
    s.queue_result(0, 1, NOW)
    assert say(s, b"RCPT TO:<bob@example.test>\r\n") == b"503 MAIL first (#5.5.1)\r\n"


def test_relayclient_is_appended_and_rcpthosts_not_consulted():
    s = session(relayclient="-relayed")
    events = s.receive(b"MAIL FROM:<>\r\nRCPT TO:<eve@elsewhere.test>\r\nDATA\r\n")
    assert replies(events) == [b"250 ok\r\n", b"250 ok\r\n"]
    assert "RELAYCLIENT set" in events[1].why
    assert events[-1] == StartQueue("", ("eve@elsewhere.test-relayed",))


def test_empty_relayclient_relays_unchanged():
    s = session(relayclient="")
    events = s.receive(b"MAIL FROM:<>\r\nRCPT TO:<eve@elsewhere.test>\r\nDATA\r\n")
    assert events[-1] == StartQueue("", ("eve@elsewhere.test",))


@pytest.mark.parametrize(
    "sender", [b"spammer@evil.example", b"SPAMMER@EVIL.example", b"x@junk.example"]
)
def test_badmailfrom_sender_gets_mail_ok_but_every_rcpt_553(sender):
    s = session()
    assert say(s, b"MAIL FROM:<" + sender + b">\r\n") == b"250 ok\r\n"
    bmf = b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
    assert say(s, b"RCPT TO:<bob@example.test>\r\nRCPT TO:<x>\r\n") == bmf * 2


def test_badmailfrom_is_checked_before_relayclient():
    s = session(relayclient="")
    s.receive(b"MAIL FROM:<spammer@evil.example>\r\n")
    assert say(s, b"RCPT TO:<bob@example.test>\r\n").startswith(b"553 sorry, your envelope")


@pytest.mark.parametrize(
    ("recipient", "accepted"),
    [
        (b"bob@vax.heaven.af.mil", True),
        (b"bob@a.b.heaven.af.mil", True),
        (b"bob@heaven.af.mil", False),
        (b"bob@EXAMPLE.TEST", True),
        (b"bob@sub.example.test", False),
        (b"bob", True),
        (b"", True),
        (b"bob@[127.0.0.1]", True),  # localiphost rewrites it to bob@example.test first
        (b"bob@[10.1.1.1]", False),
    ],
)
def test_rcpthosts_decides_without_relayclient(recipient, accepted):
    s = session()
    s.receive(b"MAIL FROM:<>\r\n")
    reply = say(s, b"RCPT TO:<" + recipient + b">\r\n")
    assert (reply == b"250 ok\r\n") is accepted


def test_absent_rcpthosts_accepts_every_recipient():
    s = session(rcpthosts=None)
    s.receive(b"MAIL FROM:<>\r\n")
    events = s.receive(b"RCPT TO:<bob@anywhere.test>\r\n")
    assert replies(events) == [b"250 ok\r\n"]
    assert "absent" in events[0].why


def test_localiphost_rewrites_before_the_envelope():
    s = session()
    events = s.receive(b"MAIL FROM:<joe@[127.0.0.1]>\r\nRCPT TO:<bob@[127.0.0.1]>\r\nDATA\r\n")
    assert events[-1] == StartQueue("joe@example.test", ("bob@example.test",))


def test_received_line_shows_helo_and_remote_info():
    s = session(remote_info="ident7")
    s.receive(b"HELO liar.example\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    received = s.queue_started(NOW)[1]
    assert received == MessageData(
        b"Received: from client.example.org (HELO liar.example) (ident7@192.0.2.9)\n"
        b"  by mx.example.test with SMTP; 29 Sep 1995 03:34:39 -0000\n"
    )


# -- using the session wrongly is our bug -------------------------------------------------


def test_calls_out_of_order_raise_session_misuse():
    s = SmtpdSession(CONFIG)
    with pytest.raises(SessionMisuse):
        s.receive(b"NOOP\r\n")
    s.start()
    with pytest.raises(SessionMisuse):
        s.start()
    for call in (lambda: s.queue_started(NOW), s.queue_failed, lambda: s.queue_result(0, 1, NOW)):
        with pytest.raises(SessionMisuse):
            call()


def test_config_refuses_nonsense():
    with pytest.raises(ValueError):
        replace(CONFIG, databytes=-1)
    with pytest.raises(ValueError):
        replace(CONFIG, version="qmail-2.0")
    assert replace(CONFIG, timeout=0).timeout == 1


def test_transition_table_covers_every_verb_in_every_command_state():
    expected = ["data", "ehlo", "helo", "help", "mail", "noop", "quit", "rcpt", "rset", "vrfy"]
    assert verbs() == expected
    for state in (SmtpdState.NO_MAIL, SmtpdState.MAIL, SmtpdState.RCPT):
        assert sorted(TRANSITIONS[state]) == expected
