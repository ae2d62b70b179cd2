"""tcprules text and tcpserver's rule lookup (tcprules(1), tcpserver(1))."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput, ControlFileError
from sim.qmail.tcprules import Decision, expand_address, match, match_rules, parse_tcprules

TCP_SMTP = """\
# relay for ourselves
127.:allow,RELAYCLIENT=""
127.0.0.1:allow,DATABYTES="1000",RELAYCLIENT=""
10.1.:deny
10.1.2.:allow,GREETING='hi there'
192.168.0.:allow,X=/a"b/ \t
=trusted.example:allow,RELAYCLIENT="@relay"
=.example:allow,FROMEXAMPLE="1"
joe@10.1.2.3:allow,IDENT="joe"
:allow
"""
RULES = parse_tcprules(TCP_SMTP)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("127.0.0.1", Decision(True, {"DATABYTES": "1000", "RELAYCLIENT": ""})),  # exact IP
        ("127.0.0.2", Decision(True, {"RELAYCLIENT": ""})),  # prefix 127.
        ("10.1.9.9", Decision(False)),
        ("10.1.2.3", Decision(True, {"GREETING": "hi there"})),  # longest prefix wins
        ("192.168.0.7", Decision(True, {"X": 'a"b'})),  # any quote character
        ("10.11.0.1", Decision(True)),  # `10.1.` is not a prefix of 10.11.
        ("8.8.8.8", Decision(True)),  # the empty rule
    ],
)
def test_longest_ip_prefix_rule_applies(ip: str, expected: Decision) -> None:
    assert match(RULES, ip) == expected


def test_no_rule_at_all_allows_with_no_env() -> None:
    assert match(parse_tcprules(""), "1.2.3.4") == Decision(True, {})


def test_catch_all_deny() -> None:
    rules = parse_tcprules("127.0.0.1:allow\n:deny\n")
    assert (match(rules, "127.0.0.1").allow, match(rules, "1.2.3.4").allow) == (True, False)


@pytest.mark.parametrize(
    ("ip", "host", "info", "expected"),
    [
        ("10.1.2.3", None, "joe", Decision(True, {"IDENT": "joe"})),  # info@ip first
        ("10.1.2.3", None, "bill", Decision(True, {"GREETING": "hi there"})),
        ("8.8.8.8", "trusted.example", None, Decision(True, {"RELAYCLIENT": "@relay"})),
        ("8.8.8.8", "mx.other.example", None, Decision(True, {"FROMEXAMPLE": "1"})),
        (
            "127.0.0.1",
            "trusted.example",
            None,
            Decision(True, {"DATABYTES": "1000", "RELAYCLIENT": ""}),
        ),
        ("10.1.9.9", "trusted.example", None, Decision(True, {"RELAYCLIENT": "@relay"})),
        ("10.1.9.9", "x.example", None, Decision(False)),  # IP prefixes before =.suffix
    ],
)
def test_host_and_info_rules_when_the_caller_knows_them(
    ip: str, host: str | None, info: str | None, expected: Decision
) -> None:
    assert match(RULES, ip, remote_host=host, remote_info=info) == expected


def test_host_rules_are_ignored_without_a_host() -> None:
    assert match(RULES, "8.8.8.8") == Decision(True)


def test_first_rule_for_an_address_wins() -> None:
    rules = parse_tcprules("1.2.3.4:deny\n1.2.3.4:allow\n")
    assert match(rules, "1.2.3.4") == Decision(False)


def test_later_setting_of_same_variable_wins_within_a_rule() -> None:
    assert match(parse_tcprules(':allow,A="1",A="2"\n'), "1.1.1.1").env == {"A": "2"}


def test_changing_a_returned_env_does_not_change_the_rules() -> None:
    match(RULES, "127.0.0.2").env["RELAYCLIENT"] = "@evil"
    assert match(RULES, "127.0.0.2").env == {"RELAYCLIENT": ""}


@pytest.mark.parametrize(
    ("address", "keys"),
    [
        ("10.0.0.1-3", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
        ("10.250-260.", [f"10.{n}." for n in range(250, 256)]),
        ("10.5-4.", []),
        ("10.0.0.7", ["10.0.0.7"]),
        ("=a-b.example", ["=a-b.example"]),
        ("joe@1.2.3.1-2", ["joe@1.2.3.1-2"]),
    ],
)
def test_address_ranges_are_expanded_as_tcprules_does(address: str, keys: list[str]) -> None:
    assert expand_address(address) == keys


def test_range_rule_matches_each_address_in_it() -> None:
    rules = parse_tcprules("10.0.0.1-3:deny\n")
    assert [match(rules, f"10.0.0.{n}").allow for n in range(5)] == [
        True,
        False,
        False,
        False,
        True,
    ]


def test_ipv6_address_with_colons_is_split_before_the_instruction() -> None:
    assert match(parse_tcprules('::1:allow,V="6"\n'), "::1") == Decision(True, {"V": "6"})


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("127.:permit\n", 1),
        ("# ok\n127.:allow,RELAYCLIENT\n", 2),  # no unset form in tcprules
        ('127.:allow,RELAYCLIENT="x\n', 1),  # unterminated value
        ("127.:allow,RELAYCLIENT=\n", 1),
        ('127.:allowRELAYCLIENT=""\n', 1),
        ('127.:allow,=""\n', 1),  # empty variable name (stricter than tcprules)
        ("no colon here\n", 1),
        ("ok:allow\n   \n", 2),
        ("1.2.x-5.:deny\n", 1),
    ],
)
def test_malformed_line_names_file_and_line(text: str, line: int) -> None:
    with pytest.raises(ControlFileError) as caught:
        parse_tcprules(text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"tcp.smtp line {line}: unable to parse this line: ")


def test_error_names_the_given_file() -> None:
    with pytest.raises(ControlFileError, match=r"^tcp\.qmqp line 1: "):
        parse_tcprules("junk\n", name="tcp.qmqp")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=20)), st.text(max_size=30))
def test_match_never_raises(ip: str, host: str | None, rule_address: str) -> None:
    try:
        rules = parse_tcprules(f"{rule_address}:allow\n1.:deny\n=x:deny\n")
    except BadInput:
        rules = parse_tcprules("")
    assert isinstance(match(rules, ip, remote_host=host, remote_info=host), Decision)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_bad_input(text: str) -> None:
    try:
        parse_tcprules(text)
    except BadInput as error:
        assert str(error).startswith("tcp.smtp line ")


def test_match_rules_is_match() -> None:
    assert match_rules is match
