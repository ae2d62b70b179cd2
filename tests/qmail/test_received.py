"""The Received lines of qmail-smtpd (received.c) and qmail-queue."""

from __future__ import annotations

import pytest

from sim.qmail.received import queue_received, safe, smtpd_received

T = 812345694  # 29 Sep 1995 03:34:54 GMT
DATE = "29 Sep 1995 03:34:54 -0000"

PEER = {"remote_host": "relay1.uu.net", "remote_ip": "1.2.3.4", "local_host": "research.att.com"}


def test_received_with_helo_and_info_is_qmails_example():
    line = smtpd_received(**PEER, now=T, helo="uunet.uu.net", remote_info="7")
    assert line == (
        b"Received: from relay1.uu.net (HELO uunet.uu.net) (7@1.2.3.4)\n"
        b"  by research.att.com with SMTP; " + DATE.encode() + b"\n"
    )


@pytest.mark.parametrize("helo", [None, "relay1.uu.net", "RELAY1.UU.Net"])
def test_helo_not_shown_when_absent_or_naming_the_remote_host(helo):
    line = smtpd_received(**PEER, now=T, helo=helo)
    assert line == (
        b"Received: from relay1.uu.net (1.2.3.4)\n"
        b"  by research.att.com with SMTP; " + DATE.encode() + b"\n"
    )


def test_empty_helo_is_shown_as_different():
    line = smtpd_received(**PEER, now=T, helo="")
    assert line.startswith(b"Received: from relay1.uu.net (HELO ) (1.2.3.4)\n")


def test_unsafe_characters_become_question_marks():
    line = smtpd_received(
        remote_host="unknown",
        remote_ip="1.2.3.4",
        local_host="mx.example",
        now=T,
        helo="evil\r\nX-Injected: yes (x)",
        remote_info="joe smith",
    )
    assert line.startswith(
        b"Received: from unknown (HELO evil??X-Injected:?yes??x?) (joe?smith@1.2.3.4)\n"
    )
    assert line.count(b"\n") == 2


def test_safe_keeps_letters_digits_and_the_eight_marks():
    assert safe("aZ09.@%+/=:-") == "aZ09.@%+/=:-"
    assert safe("\xe9 _!<>()[]") == "??????????"


@pytest.mark.parametrize("protocol", ["QMTP", "QMQP"])
def test_other_protocols_are_named(protocol):
    line = smtpd_received(**PEER, now=T, protocol=protocol)
    assert f"with {protocol}; ".encode() in line


ACCOUNTS = {7790: "alias", 7791: "qmaild", 7796: "qmails", 7792: "qmailq"}


@pytest.mark.parametrize(
    ("uid", "who"),
    [
        (7790, "by alias"),
        (7791, "from network"),
        (7796, "for bounce"),
        (7792, "by uid 7792"),
        (1000, "by uid 1000"),
        (0, "by uid 0"),
    ],
)
def test_queue_received_names_who_invoked_it(uid, who):
    line = queue_received(4567, uid, T, ACCOUNTS)
    assert line == f"Received: (qmail 4567 invoked {who}); {DATE}\n".encode()
