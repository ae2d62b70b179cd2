"""qmail-smtpd's address parsing (addrparse), localiphost, badmailfrom and rcpthosts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.address import (
    addrparse,
    apply_localiphost,
    extract_address,
    in_badmailfrom,
    parse_smtp_address,
    rcpthosts_match,
    rcpthosts_verdict,
    scan_ip,
)
from sim.qmail.text import b2s

ADDRPARSE_CASES = [
    (b"FROM:<joe@a.example>", "joe@a.example"),
    (b"FROM:<>", ""),
    (b"from:<JOE@A.EXAMPLE>", "JOE@A.EXAMPLE"),
    (b"TO:<@a.example,@b.example:user@c.example>", "user@c.example"),
    (b"FROM: joe@a.example", "joe@a.example"),
    (b"FROM:joe@a.example SIZE=100", "joe@a.example"),
    (b"FROM:   <joe@a.example> SIZE=100", "joe@a.example"),
    (b"FROM:<joe@a.example> BODY=8BITMIME", "joe@a.example"),
    (b'FROM:<"joe smith"@a.example>', "joe smith@a.example"),
    (b'FROM:<"a>b"@c.example>', "a>b@c.example"),
    (b"FROM:<a\\>b@c.example>", "a>b@c.example"),
    (b"FROM:<a\\\\b@c.example>", "a\\b@c.example"),
    (b"FROM:<joe@a.example", "joe@a.example"),
    (b"FROM joe@a.example", ""),
    (b"joe@a.example", ""),
    (b"TO:<@foo.example>", ""),
    (b"TO:@a.example:b@c.example", "b@c.example"),
    (b"FROM:<a\0b@c.example>", "a"),
    (b"FROM:<\xe9t\xe9@a.example>", "\xe9t\xe9@a.example"),
    (b"FROM:x <y@z.example>", "y@z.example"),
]


@pytest.mark.parametrize(("arg", "address"), ADDRPARSE_CASES)
def test_addrparse_takes_what_qmail_smtpd_takes(arg, address):
    assert parse_smtp_address(arg) == address


def test_address_of_899_bytes_is_accepted():
    address = "a" * 894 + "@b.cd"
    assert len(address) == 899
    assert parse_smtp_address(b"FROM:<" + address.encode() + b">") == address


def test_address_of_900_bytes_is_refused():
    address = "a" * 895 + "@b.cd"
    assert parse_smtp_address(b"FROM:<" + address.encode() + b">") is None


LOCAL_IPS = frozenset({"127.0.0.1", "192.0.2.7"})

LOCALIPHOST_CASES = [
    ("box@[127.0.0.1]", "box@mx.example"),
    ("box@[192.0.2.7]", "box@mx.example"),
    ("box@[127.000.000.001]", "box@mx.example"),
    ("box@[127.0.0.257]", "box@mx.example"),  # ip_scan keeps each number modulo 256
    ("box@[10.0.0.1]", "box@[10.0.0.1]"),
    ("box@[127.0.0.1]x", "box@[127.0.0.1]x"),
    ("box@[127.0.0.1.5]", "box@[127.0.0.1.5]"),
    ("box@[127.0.0]", "box@[127.0.0]"),
    ("box@127.0.0.1", "box@127.0.0.1"),
    ("a@b@[127.0.0.1]", "a@b@mx.example"),
    ("[127.0.0.1]", "[127.0.0.1]"),
]


@pytest.mark.parametrize(("address", "rewritten"), LOCALIPHOST_CASES)
def test_localiphost_rewrites_our_ip_literals(address, rewritten):
    assert apply_localiphost(address, LOCAL_IPS, "mx.example") == rewritten


def test_localiphost_unset_rewrites_nothing():
    assert apply_localiphost("box@[127.0.0.1]", LOCAL_IPS, None) == "box@[127.0.0.1]"


def test_length_is_checked_after_localiphost():
    address = "a" * 880 + "@[127.0.0.1]"
    arg = b"TO:<" + address.encode() + b">"
    assert addrparse(arg, LOCAL_IPS, "x" * 20) is None
    assert addrparse(arg, LOCAL_IPS, "x" * 18) == "a" * 880 + "@" + "x" * 18


@pytest.mark.parametrize(
    ("text", "ip"),
    [("1.2.3.4", (1, 2, 3, 4)), ("256.0.0.1", (0, 0, 0, 1)), ("1.2.3", None), ("a.b.c.d", None)],
)
def test_scan_ip_reads_like_ip_scan(text, ip):
    assert scan_ip(text) == ip


BADMAILFROM = ["spammer@evil.example", "@junk.example"]


@pytest.mark.parametrize(
    ("sender", "listed"),
    [
        ("spammer@evil.example", True),
        ("SPAMMER@Evil.Example", True),
        ("other@evil.example", False),
        ("anyone@junk.example", True),
        ("anyone@JUNK.example", True),
        ("anyone@sub.junk.example", False),
        ("", False),
        ("junk.example", False),
    ],
)
def test_badmailfrom_matches_whole_sender_or_at_domain(sender, listed):
    assert in_badmailfrom(sender, BADMAILFROM) is listed


RCPTHOSTS = ["example.test", ".heaven.af.mil", "Upper.Example"]


@pytest.mark.parametrize(
    ("recipient", "accepted"),
    [
        ("joe@example.test", True),
        ("joe@EXAMPLE.TEST", True),
        ("joe@sub.example.test", False),
        ("joe@heaven.af.mil", False),
        ("joe@vax.heaven.af.mil", True),
        ("joe@a.b.heaven.af.mil", True),
        ("joe@upper.example", True),
        ("joe@elsewhere.test", False),
        ("joe@", False),
        ("joe", True),
        ("", True),
        ("a@b@example.test", True),
        ("joe@example.test.evil", False),
    ],
)
def test_rcpthosts_domain_or_dot_suffix(recipient, accepted):
    assert rcpthosts_verdict(recipient, RCPTHOSTS)[0] is accepted


def test_rcpthosts_folds_ascii_case_only():
    assert rcpthosts_match("\xc0.example", ["\xe0.example"]) is None
    assert rcpthosts_match("A.EXAMPLE", ["a.example"]) == "a.example"


def test_absent_rcpthosts_accepts_every_recipient():
    accepted, why = rcpthosts_verdict("joe@anywhere.test", None)
    assert accepted
    assert "absent" in why


def test_morercpthosts_is_consulted_after_rcpthosts():
    assert rcpthosts_verdict("joe@more.test", ["example.test"], ["more.test"])[0]
    assert not rcpthosts_verdict("joe@more.test", ["example.test"], [])[0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1200))
def test_addrparse_never_raises(arg):
    address = parse_smtp_address(arg)
    assert address is None or (isinstance(address, str) and len(address) < 900)
    addrparse(arg, ["127.0.0.1", "not an ip"], "mx.example")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200).filter(lambda b: b"\0" not in b))
def test_every_byte_escaped_comes_back(raw):
    escaped = b"".join(b"\\" + bytes((ch,)) for ch in raw)
    assert extract_address(b"FROM:<" + escaped + b">") == b2s(raw)
