"""Bounces: recipient paragraphs, the single/double/triple policy, the QSBMF message and back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.bounce import (
    BounceEnvelope,
    BounceKind,
    bounce_envelope,
    bounce_kind,
    bounce_paragraph,
    make_bounce,
    parse_bounce,
    strip_verp,
)
from sim.qmail.control import Control
from sim.qmail.errors import BadInput
from sim.qmail.rfc822 import quote_address


@dataclass(frozen=True)
class Hosts:
    bouncefrom: str = "MAILER-DAEMON"
    bouncehost: str = "oracle.test"
    doublebounceto: str = "postmaster"
    doublebouncehost: str = "oracle.test"


HOSTS = Hosts()
T = 812_090_813  # 26 Sep 1995 04:46:53 GMT
MESS = (
    b"Received: (qmail 5690 invoked by uid 1000); 26 Sep 1995 04:46:52 -0000\n"
    b"Subject: hi\n\nhello\n"
)
BILL = b"Sorry, no mailbox here by that name. (#5.1.1)\n"
JOE = (
    b"1.2.3.4 does not like recipient.\nRemote host said: 550 unknown user\nGiving up on 1.2.3.4.\n"
)


@pytest.mark.parametrize(
    ("recipient", "text", "paragraph"),
    [
        ("bill@irs.gov", BILL, b"<bill@irs.gov>:\n" + BILL + b"\n"),
        ("joe@example.org", JOE, b"<joe@example.org>:\n" + JOE + b"\n"),
        ("a@b", b"no newline", b"<a@b>:\nno newline\n\n"),
        ("a\nb@c", b"x\n", b"<a_b@c>:\nx\n\n"),
        ("a@b", b"", b"<a@b>:\n\n"),
        ("a@b", b"one\n\ntwo\n", b"<a@b>:\none\n/two\n\n"),
        ("a@b", b"one\n\n\ntwo\n", b"<a@b>:\none\n//two\n\n"),
        ("a@b", b"\nfirst line empty\n", b"<a@b>:\n/first line empty\n\n"),
        ("a@b", b"last line empty\n\n", b"<a@b>:\nlast line empty\n\n\n"),
        ("a@b", b"two empty\n\n\n", b"<a@b>:\ntwo empty\n/\n\n"),
    ],
)
def test_bounce_paragraph_is_qmail_sends_addbounce_text(recipient, text, paragraph):
    assert bounce_paragraph(recipient, text) == paragraph


@pytest.mark.parametrize(
    ("sender", "stripped", "kind"),
    [
        ("bob@oracle.test", "bob@oracle.test", BounceKind.SINGLE),
        ("list-owner-@lists.test-@[]", "list-owner-@lists.test", BounceKind.SINGLE),
        ("", "", BounceKind.DOUBLE),
        ("-@[]", "", BounceKind.DOUBLE),
        ("#@[]", "#@[]", BounceKind.TRIPLE),
        ("#-@[]", "#", BounceKind.SINGLE),
        ("a@[]", "a@[]", BounceKind.SINGLE),
    ],
)
def test_bounce_kind_is_decided_after_the_verp_mark_is_removed(sender, stripped, kind):
    assert strip_verp(sender) == stripped
    assert bounce_kind(sender) is kind


@pytest.mark.parametrize(
    ("sender", "envelope"),
    [
        (
            "bob@oracle.test",
            BounceEnvelope(BounceKind.SINGLE, "", "bob@oracle.test", "bob@oracle.test"),
        ),
        ("x-@host-@[]", BounceEnvelope(BounceKind.SINGLE, "", "x-@host", "x-@host")),
        ("", BounceEnvelope(BounceKind.DOUBLE, "#@[]", "postmaster@oracle.test", "")),
        ("#@[]", BounceEnvelope(BounceKind.TRIPLE, "", "", "#@[]")),
    ],
)
def test_bounce_envelope_single_double_triple(sender, envelope):
    assert bounce_envelope(sender, HOSTS) == envelope


def test_double_bounce_goes_to_doublebounceto_at_doublebouncehost():
    hosts = Hosts(doublebounceto="root", doublebouncehost="admin.test")
    assert bounce_envelope("", hosts).recipient == "root@admin.test"


def test_control_values_are_accepted_as_bounce_hosts():
    control = Control(bouncehost="oracle.test", doublebouncehost="oracle.test")
    assert make_bounce("bob@oracle.test", b"", MESS, T, control) == make_bounce(
        "bob@oracle.test", b"", MESS, T, HOSTS
    )


def test_single_bounce_matches_the_reference_example_byte_for_byte():
    paragraphs = bounce_paragraph("bill@irs.gov", BILL) + bounce_paragraph("joe@example.org", JOE)
    expected = (
        b"Date: 26 Sep 1995 04:46:53 -0000\n"
        b"From: MAILER-DAEMON@oracle.test\n"
        b"To: bob@oracle.test\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at oracle.test.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
        b"\n"
        b"<bill@irs.gov>:\n"
        b"Sorry, no mailbox here by that name. (#5.1.1)\n"
        b"\n"
        b"<joe@example.org>:\n"
        b"1.2.3.4 does not like recipient.\n"
        b"Remote host said: 550 unknown user\n"
        b"Giving up on 1.2.3.4.\n"
        b"\n"
        b"--- Below this line is a copy of the message.\n"
        b"\n"
        b"Return-Path: <bob@oracle.test>\n"
    ) + MESS
    assert make_bounce("bob@oracle.test", paragraphs, MESS, T, HOSTS) == expected


def test_double_bounce_text_break_line_and_empty_return_path():
    expected = (
        b"Date: 26 Sep 1995 04:46:53 -0000\n"
        b"From: MAILER-DAEMON@oracle.test\n"
        b"To: postmaster@oracle.test\n"
        b"Subject: failure notice\n"
        b"\n"
        b"Hi. This is the qmail-send program at oracle.test.\n"
        b"I tried to deliver a bounce message to this address, but the bounce bounced!\n"
        b"\n"
        b"<bob@gone.test>:\n" + BILL + b"\n"
        b"--- Below this line is the original bounce.\n"
        b"\n"
        b"Return-Path: <>\n"
    ) + MESS
    paragraph = bounce_paragraph("bob@gone.test", BILL)
    assert make_bounce("", paragraph, MESS, T, HOSTS) == expected


def test_verp_sender_is_reduced_in_to_and_return_path():
    bounce = make_bounce("owner-@lists.test-@[]", b"", MESS, T, HOSTS)
    assert b"\nTo: owner-@lists.test\n" in bounce
    assert b"\nReturn-Path: <owner-@lists.test>\n" in bounce


def test_to_and_return_path_are_rfc822_quoted():
    bounce = make_bounce('a b"c@x.test', b"", MESS, T, HOSTS)
    assert b'\nTo: "a b\\"c"@x.test\n' in bounce
    assert b'\nReturn-Path: <"a b\\"c"@x.test>\n' in bounce


def test_triple_bounce_is_never_made():
    with pytest.raises(ValueError, match="triple"):
        make_bounce("#@[]", b"", MESS, T, HOSTS)


def test_parse_reads_the_bounce_as_delivered_with_received_line():
    paragraphs = bounce_paragraph("bill@irs.gov", BILL) + bounce_paragraph("joe@example.org", JOE)
    delivered = b"Received: (qmail 9326 invoked for bounce); 26 Sep 1995 04:46:53 -0000\n"
    parsed = parse_bounce(delivered + make_bounce("bob@oracle.test", paragraphs, MESS, T, HOSTS))
    assert parsed.intro == (
        b"Hi. This is the qmail-send program at oracle.test.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n"
    )
    assert parsed.recipients == (("bill@irs.gov", BILL), ("joe@example.org", JOE))
    assert parsed.double is False
    assert parsed.break_line == b"--- Below this line is a copy of the message."
    assert parsed.return_path == "bob@oracle.test"
    assert parsed.message == MESS


def test_parse_knows_a_double_bounce():
    parsed = parse_bounce(make_bounce("", bounce_paragraph("b@c", BILL), MESS, T, HOSTS))
    assert parsed.double is True
    assert parsed.break_line == b"--- Below this line is the original bounce."
    assert parsed.return_path == ""


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (b"", "no body"),
        (b"Subject: x\n", "no body"),
        (b"Subject: x\n\nHello there.\n", "does not begin"),
        (b"Subject: x\n\nHi. This is the x.\n\n<a@b>:\nfail\n", "no break"),
        (b"Subject: x\n\nHi. This is the x.\n\nnot a recipient\n\n--- b\n\n", "paragraph"),
        (b"Subject: x\n\nHi. This is the x.\n\n<>\nfail\n\n--- b\n\n", "paragraph"),
    ],
)
def test_parse_refuses_what_is_not_qsbmf(message, why):
    with pytest.raises(BadInput, match=why):
        parse_bounce(message)


def test_parse_accepts_a_bounce_without_return_path():
    parsed = parse_bounce(b"\nHi. This is the x.\n\n--- copy\n\nSubject: y\n\nbody\n")
    assert parsed.recipients == ()
    assert parsed.return_path is None
    assert parsed.message == b"Subject: y\n\nbody\n"


addresses = st.text(
    st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\n"), max_size=30
)
texts = (
    st.binary(max_size=200)
    .map(lambda b: b.replace(b"\0", b""))
    .filter(lambda b: not b.startswith(b"/") and b"\n/" not in b)
)


def newline_terminated(text: bytes) -> bytes:
    return text + b"\n" if text and not text.endswith(b"\n") else text


@settings(max_examples=150, deadline=None)
@given(
    sender=addresses.filter(lambda s: bounce_kind(s) is not BounceKind.TRIPLE),
    failures=st.lists(st.tuples(addresses, texts), max_size=4),
    mess=st.binary(max_size=300),
)
def test_make_then_parse_gives_back_every_failure_and_the_message(sender, failures, mess):
    paragraphs = b"".join(bounce_paragraph(r, t) for r, t in failures)
    parsed = parse_bounce(make_bounce(sender, paragraphs, mess, T, HOSTS))
    assert parsed.recipients == tuple((r, newline_terminated(t)) for r, t in failures)
    assert parsed.message == mess
    assert parsed.return_path == quote_address(strip_verp(sender))
    assert parsed.double is (bounce_kind(sender) is BounceKind.DOUBLE)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda b: b"\n\nHi. This is the" + b, st.binary()))
def test_parse_raises_nothing_but_bad_input(data):
    with contextlib.suppress(BadInput):
        parse_bounce(data)
