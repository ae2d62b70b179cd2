"""qmail-remote's SMTP dialogue against scripted servers, and every report it writes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.remote import (
    FAILURES,
    RemoteSession,
    Report,
    Send,
    SendBody,
    failure,
    invoked_improperly,
    perm_dns,
    smtp_address,
)

IP = "1.2.3.4"
HELO = b"HELO oracle.test\r\n"
MAIL = b"MAIL FROM:<bob@oracle.test>\r\n"
RCPT_A = b"RCPT TO:<alice@example.com>\r\n"
RCPT_B = b"RCPT TO:<bert@example.com>\r\n"
DATA = b"DATA\r\n"
DOT = b".\r\n"
QUIT = b"QUIT\r\n"
BODY = b"<body>"


def converse(replies: list[bytes], recipients=("alice@example.com",), die_at=None):
    """Play a server: feed each reply, send the body when asked; return (sent, fd 1 output).

    `die_at` = number of replies after which the link dies; `"body"` = while sending the body.
    """
    session = RemoteSession(IP, "oracle.test", "bob@oracle.test", list(recipients))
    sent: list[bytes] = []

    def act(actions):
        for action in actions:
            if isinstance(action, Send):
                sent.append(action.data)
            elif isinstance(action, SendBody):
                sent.append(BODY)
                if die_at == "body":
                    act(session.connection_died())
                    return
                act(session.body_sent())

    for i, reply in enumerate(replies):
        if die_at == i or session.done:
            break
        act(session.receive_data(reply))
    if not session.done:
        act(session.connection_died())
    assert session.done
    return sent, bytes(session.output)


DIALOGUES = [
    (
        "accepted",
        [b"220 mx ESMTP\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n",
         b"250 ok 1234 qp 99\r\n"],
        [HELO, MAIL, RCPT_A, DATA, BODY, DOT, QUIT],
        b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 ok 1234 qp 99\n\0",
    ),
    (
        "greeting_temp",
        [b"421 busy\r\n"],
        [QUIT],
        b"ZConnected to 1.2.3.4 but greeting failed.\nRemote host said: 421 busy\n\0",
    ),
    (
        "greeting_perm_is_still_temporary",
        [b"554 go away\r\n"],
        [QUIT],
        b"ZConnected to 1.2.3.4 but greeting failed.\nRemote host said: 554 go away\n\0",
    ),
    (
        "helo_rejected",
        [b"220 mx\r\n", b"501 who are you\r\n"],
        [HELO, QUIT],
        b"ZConnected to 1.2.3.4 but my name was rejected.\nRemote host said: 501 who are you\n\0",
    ),
    (
        "helo_not_exactly_250",
        [b"220 mx\r\n", b"251 fine\r\n"],
        [HELO, QUIT],
        b"ZConnected to 1.2.3.4 but my name was rejected.\nRemote host said: 251 fine\n\0",
    ),
    (
        "sender_perm",
        [b"220 mx\r\n", b"250 mx\r\n", b"553 bad sender\r\n"],
        [HELO, MAIL, QUIT],
        b"DConnected to 1.2.3.4 but sender was rejected.\nRemote host said: 553 bad sender\n\0",
    ),
    (
        "sender_temp",
        [b"220 mx\r\n", b"250 mx\r\n", b"451 try later\r\n"],
        [HELO, MAIL, QUIT],
        b"ZConnected to 1.2.3.4 but sender was rejected.\nRemote host said: 451 try later\n\0",
    ),
    (
        "recipient_perm",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"550 no such user\r\n"],
        [HELO, MAIL, RCPT_A, QUIT],
        b"h1.2.3.4 does not like recipient.\nRemote host said: 550 no such user\n\0"
        b"DGiving up on 1.2.3.4.\n\0",
    ),
    (
        "recipient_temp",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"450 mailbox busy\r\n"],
        [HELO, MAIL, RCPT_A, QUIT],
        b"s1.2.3.4 does not like recipient.\nRemote host said: 450 mailbox busy\n\0"
        b"DGiving up on 1.2.3.4.\n\0",
    ),
    (
        "data_perm",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"554 no data\r\n"],
        [HELO, MAIL, RCPT_A, DATA, QUIT],
        b"r\0D1.2.3.4 failed on DATA command.\nRemote host said: 554 no data\n\0",
    ),
    (
        "data_temp",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"451 not now\r\n"],
        [HELO, MAIL, RCPT_A, DATA, QUIT],
        b"r\0Z1.2.3.4 failed on DATA command.\nRemote host said: 451 not now\n\0",
    ),
    (
        "data_any_code_below_400_goes_on",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"250 sure\r\n",
         b"250 done\r\n"],
        [HELO, MAIL, RCPT_A, DATA, BODY, DOT, QUIT],
        b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 done\n\0",
    ),
    (
        "after_message_perm",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n",
         b"554 spam\r\n"],
        [HELO, MAIL, RCPT_A, DATA, BODY, DOT, QUIT],
        b"r\0D1.2.3.4 failed after I sent the message.\nRemote host said: 554 spam\n\0",
    ),
    (
        "after_message_temp",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n",
         b"452 disk full\r\n"],
        [HELO, MAIL, RCPT_A, DATA, BODY, DOT, QUIT],
        b"r\0Z1.2.3.4 failed after I sent the message.\nRemote host said: 452 disk full\n\0",
    ),
    (
        "died_before_greeting",
        [],
        [],
        b"ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n\0",
    ),
    (
        "died_after_final_dot",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"],
        [HELO, MAIL, RCPT_A, DATA, BODY, DOT],
        b"r\0ZConnected to 1.2.3.4 but connection died. Possible duplicate! (#4.4.2)\n\0",
    ),
    (
        "died_in_mid_reply",
        [b"220 mx\r\n", b"250 mx\r\n", b"250 o"],
        [HELO, MAIL],
        b"ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n\0",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("replies", "commands", "reports"),
    [d[1:] for d in DIALOGUES],
    ids=[d[0] for d in DIALOGUES],
)
def test_dialogue_sends_commands_and_reports_exactly(replies, commands, reports):
    assert converse(replies) == (commands, reports)


def test_died_while_sending_body_is_not_a_duplicate():
    replies = [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"]
    sent, output = converse(replies, die_at="body")
    assert sent == [HELO, MAIL, RCPT_A, DATA, BODY]
    assert output == b"r\0ZConnected to 1.2.3.4 but connection died. (#4.4.2)\n\0"


def test_two_recipients_one_refused():
    replies = [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"550 unknown\r\n", b"250 ok\r\n"]
    replies += [b"354 go\r\n", b"250 queued\r\n"]
    sent, output = converse(replies, recipients=("alice@example.com", "bert@example.com"))
    assert sent == [HELO, MAIL, RCPT_A, RCPT_B, DATA, BODY, DOT, QUIT]
    assert output == (
        b"h1.2.3.4 does not like recipient.\nRemote host said: 550 unknown\n\0"
        b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 queued\n\0"
    )


def test_multiline_reply_text_is_kept_whole():
    replies = [b"220-mx.example\r\n220-welcome\r\n220 ready\r\n", b"250-mx\r\n250 SIZE\r\n"]
    replies += [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250-queued\r\n250 as 77\r\n"]
    sent, output = converse(replies)
    assert sent == [HELO, MAIL, RCPT_A, DATA, BODY, DOT, QUIT]
    assert output == b"r\0K1.2.3.4 accepted message.\nRemote host said: 250-queued\n250 as 77\n\0"


def test_multiline_reply_code_comes_from_first_line_as_in_1_03():
    """smtpcode() reads later lines' digits but never uses them."""
    replies = [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250-fine\r\n550 not really\r\n"]
    replies += [b"354 go\r\n", b"250 ok\r\n"]
    assert converse(replies)[1] == b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0"


def test_reply_text_loses_crs_and_shows_nuls_as_question_marks():
    replies = [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"550 bad\0user\r\r\n"]
    assert converse(replies)[1] == (
        b"h1.2.3.4 does not like recipient.\nRemote host said: 550 bad?user\n\0"
        b"DGiving up on 1.2.3.4.\n\0"
    )


def test_reply_text_kept_up_to_5000_bytes():
    reply = b"421 " + b"x" * 6000 + b"\r\n"
    output = converse([reply])[1]
    said = output.split(b"Remote host said: ", 1)[1]
    assert said == (b"421 " + b"x" * 6000)[:5000] + b"\0"


def test_reply_with_bare_lf_and_no_text():
    replies = [b"220\n", b"250\n", b"250\n", b"250\n", b"354\n", b"250\n"]
    assert converse(replies)[1] == b"r\0K1.2.3.4 accepted message.\nRemote host said: 250\n\0"


def test_reply_code_of_non_digits_is_not_220():
    output = converse([b"ab\n\r\n"])[1]
    assert output.startswith(b"ZConnected to 1.2.3.4 but greeting failed.\n")


def test_replies_arriving_together_are_read_in_turn():
    session = RemoteSession(IP, "oracle.test", "bob@oracle.test", ["alice@example.com"])
    assert session.receive_data(b"220 mx\r\n250 mx\r\n250 o") == [Send(HELO), Send(MAIL)]
    assert session.receive_data(b"k\r\n") == [Send(RCPT_A)]


def test_reply_arriving_during_body_waits_for_the_dot():
    session = RemoteSession(IP, "oracle.test", "", ["alice@example.com"])
    for reply in [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n"]:
        session.receive_data(reply)
    assert session.receive_data(b"354 go\r\n") == [SendBody()]
    assert session.receive_data(b"250 early\r\n") == []
    assert session.body_sent() == [
        Send(DOT),
        Send(QUIT),
        Report(b"K1.2.3.4 accepted message.\nRemote host said: 250 early\n\0"),
    ]


def test_null_sender_is_sent_as_empty_path():
    session = RemoteSession(IP, "oracle.test", "", ["alice@example.com"])
    session.receive_data(b"220 mx\r\n")
    assert session.receive_data(b"250 mx\r\n") == [Send(b"MAIL FROM:<>\r\n")]


def test_bytes_after_the_report_are_ignored():
    session = RemoteSession(IP, "oracle.test", "bob@oracle.test", ["alice@example.com"])
    session.receive_data(b"421 busy\r\n")
    assert session.receive_data(b"250 late\r\n") == []
    assert session.connection_died() == []


@pytest.mark.parametrize(
    ("event", "report"),
    [
        ("partial_final_line", FAILURES["partialline"]),
        ("message_unreadable", FAILURES["read"]),
    ],
)
def test_message_trouble_while_sending_body_ends_without_quit(event, report):
    session = RemoteSession(IP, "oracle.test", "bob@oracle.test", ["alice@example.com"])
    for reply in [b"220 mx\r\n", b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"]:
        session.receive_data(reply)
    assert getattr(session, event)() == [Report(report + b"\0")]
    assert session.done


REMOTE_FAILURES = {
    "nomem": b"ZOut of memory. (#4.3.0)\n",
    "oserr": b"ZSystem resources temporarily unavailable. (#4.3.0)\n",
    "noconn": b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n",
    "read": b"ZUnable to read message. (#4.3.0)\n",
    "dnscanon": b"ZCNAME lookup failed temporarily. (#4.4.3)\n",
    "dns": b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n",
    "chdir": b"ZUnable to switch to home directory. (#4.3.0)\n",
    "control": b"ZUnable to read control files. (#4.3.0)\n",
    "partialline": b"DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n",
    "usage": b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n",
    "nomx": b"DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n",
    "ambigmx": b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
    b"it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n",
}


@pytest.mark.parametrize(("name", "text"), REMOTE_FAILURES.items())
def test_failure_reports_word_for_word(name, text):
    assert FAILURES[name] == text
    assert failure(name) == text + b"\0"


def test_dns_failure_names_the_host_printably():
    assert (
        perm_dns("no.such.host")
        == b"DSorry, I couldn't find any host named no.such.host. (#5.1.2)\n\0"
    )
    assert perm_dns("bad host\n\u00e9") == (
        b"DSorry, I couldn't find any host named bad?host??. (#5.1.2)\n\0"
    )


@pytest.mark.parametrize(
    ("argv", "report"),
    [
        (["qmail-remote", "example.com", "bob@oracle.test"], failure("usage")),
        (["qmail-remote", "example.com", "bob@oracle.test", "a@example.com"], None),
    ],
)
def test_invoked_improperly_without_a_recipient(argv, report):
    assert invoked_improperly(argv) == report


@pytest.mark.parametrize(
    ("address", "canonical", "sent"),
    [
        ("joe@example.com", None, "joe@example.com"),
        ("joe smith@example.com", None, '"joe smith"@example.com'),
        ("joe@www.example.com", "example.com", "joe@example.com"),
        ("nohost", None, "nohost"),
        ("", None, ""),
        ("#@[]", None, "#@[]"),
    ],
)
def test_smtp_address_quotes_local_part(address, canonical, sent):
    assert smtp_address(address, canonical) == sent


def run_chunked(data: bytes, cuts: list[int]) -> tuple[list, bytes]:
    """Feed a whole server transcript cut at `cuts`; return all actions and fd 1 output."""
    session = RemoteSession(IP, "oracle.test", "bob@oracle.test", ["a@x", "b@x"])
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    actions = []
    for a, b in itertools.pairwise(points):
        for action in session.receive_data(data[a:b]):
            actions.append(action)
            if isinstance(action, SendBody):
                actions += session.body_sent()
    actions += session.connection_died()
    return actions, bytes(session.output)


TRANSCRIPT = (
    b"220-mx\r\n220 hi\r\n250 mx\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n250-a\r\n250 b\r\n"
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1000), max_size=12))
def test_any_chunking_of_server_bytes_gives_the_same_dialogue(cuts):
    assert run_chunked(TRANSCRIPT, cuts) == run_chunked(TRANSCRIPT, [])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_any_server_bytes_end_in_exactly_one_message_report(data, sent_body):
    session = RemoteSession(IP, "h", "s@x", ["a@x"])
    for action in session.receive_data(data):
        if isinstance(action, SendBody) and sent_body:
            session.body_sent()
    session.connection_died()
    reports = bytes(session.output).split(b"\0")
    assert reports[-1] == b""
    assert [r[:1] for r in reports[:-2]] in ([], [b"r"], [b"h"], [b"s"])
    assert reports[-2][:1] in (b"K", b"Z", b"D")
