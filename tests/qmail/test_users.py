"""users/assign, the users/cdb lookup and qmail-getpw (reference §3.5, §7.8)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput, ControlFileError, ProtocolError
from sim.qmail.users import (
    QLX_NOALIAS,
    AssignEntry,
    Assignment,
    PasswdEntry,
    format_assign,
    format_nughde,
    getpw,
    lookup_assign,
    lookup_user,
    parse_assign,
    parse_nughde,
    qmail_newu,
)

ASSIGN = (
    "=joe:joe:1001:100:/home/joe:::\n"
    "=Fred:fred:1002:100:/home/fred:-:sos:\n"
    "+list-:lists:1003:100:/var/lists:-:list-:\n"
    "+list-big-:big:1004:100:/var/big:-::\n"
    "+:alias:7790:2108:/var/qmail/alias:-::\n"
    "=joe:second:1:1:/nowhere:::\n"
    ".\n"
)
CDB = qmail_newu(parse_assign(ASSIGN))

PASSWD = {
    "fred": PasswdEntry(uid=1002, gid=100, home="/home/fred", home_owner_uid=1002),
    "joe": PasswdEntry(uid=1001, gid=100, home="/home/joe", home_owner_uid=1001),
    "root": PasswdEntry(uid=0, gid=0, home="/root", home_owner_uid=0),
    "ftp": PasswdEntry(uid=14, gid=50, home="/var/ftp", home_owner_uid=0),
    "gone": PasswdEntry(
        uid=1005, gid=100, home="/home/gone", home_owner_uid=1005, home_exists=False
    ),
    "Upper": PasswdEntry(uid=1006, gid=100, home="/home/Upper", home_owner_uid=1006),
    "a" * 31: PasswdEntry(uid=1007, gid=100, home="/home/long31", home_owner_uid=1007),
    "b" * 32: PasswdEntry(uid=1008, gid=100, home="/home/long32", home_owner_uid=1008),
    "alias": PasswdEntry(uid=7790, gid=2108, home="/var/qmail/alias", home_owner_uid=7790),
}


def test_parse_assign_reads_both_kinds_of_line() -> None:
    entries = parse_assign(ASSIGN)
    assert entries[0] == AssignEntry(False, "joe", "joe", 1001, 100, "/home/joe", "", "")
    assert entries[2] == AssignEntry(True, "list-", "lists", 1003, 100, "/var/lists", "-", "list-")
    assert len(entries) == 6


def test_lines_after_the_dot_are_ignored_and_text_after_seventh_colon_too() -> None:
    text = "=a:a:1:2:/a:::junk\n.\n=b:broken\n"
    assert parse_assign(text) == (AssignEntry(False, "a", "a", 1, 2, "/a", "", ""),)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("=joe:joe:1001:100:/home/joe::\n.\n", 1, "bad format: expected 7 fields"),
        ("=a:a:1:1:/a:::\n\n.\n", 2, "bad format: line must start with = or +"),
        ("=a:a:1:1:/a:::\n#comment\n.\n", 2, "bad format: line must start with = or +"),
        ("=a:a:x:1:/a:::\n.\n", 1, "bad format: uid is not a number: 'x'"),
        ("=a:a:1:-1:/a:::\n.\n", 1, "bad format: gid is not a number: '-1'"),
        ("=a:a:1:1:/a\0:::\n.\n", 1, "bad format: NUL in line"),
        ("=a:a:1:1:/a:::\n", 2, "missing the final line '.'"),
        ("=a:a:1:1:/a:::", 1, "missing the final line '.'"),
        ("", 1, "missing the final line '.'"),
    ],
)
def test_malformed_assign_names_the_line(text: str, line: int, problem: str) -> None:
    with pytest.raises(ControlFileError) as caught:
        parse_assign(text)
    assert str(caught.value).startswith(f"users/assign line {line}: {problem}")
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("joe", Assignment("joe", 1001, 100, "/home/joe", "", "")),  # first of two wins
        ("JOE", Assignment("joe", 1001, 100, "/home/joe", "", "")),
        ("fred", Assignment("fred", 1002, 100, "/home/fred", "-", "sos")),
        ("list-qmail", Assignment("lists", 1003, 100, "/var/lists", "-", "list-qmail")),
        ("LIST-Qmail", Assignment("lists", 1003, 100, "/var/lists", "-", "list-Qmail")),
        ("list-big-x", Assignment("big", 1004, 100, "/var/big", "-", "x")),  # longest wins
        ("list-", Assignment("lists", 1003, 100, "/var/lists", "-", "list-")),
        ("postmaster", Assignment("alias", 7790, 2108, "/var/qmail/alias", "-", "postmaster")),
        ("", Assignment("alias", 7790, 2108, "/var/qmail/alias", "-", "")),
    ],
)
def test_lookup_assign_exact_then_longest_wildcard(local: str, expected: Assignment) -> None:
    assert lookup_assign(CDB, local) == expected


def test_exact_entry_beats_wildcard() -> None:
    cdb = qmail_newu(parse_assign("+:alias:1:1:/a:-::\n=joe:joe:2:2:/j:::\n.\n"))
    assert lookup_assign(cdb, "joe") == Assignment("joe", 2, 2, "/j", "", "")


def test_wildcard_prefix_only_tried_where_it_ends_in_a_wildchar() -> None:
    cdb = qmail_newu(parse_assign("+ab:u:1:1:/u:-:p-:\n.\n"))
    assert lookup_assign(cdb, "abc") == Assignment("u", 1, 1, "/u", "-", "p-c")
    assert lookup_assign(cdb, "xyz") is None


def test_getpw_whole_local_is_a_user() -> None:
    assert getpw("fred", PASSWD) == Assignment("fred", 1002, 100, "/home/fred", "", "")


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("fred-sos", Assignment("fred", 1002, 100, "/home/fred", "-", "sos")),
        ("Fred-SOS", Assignment("fred", 1002, 100, "/home/fred", "-", "SOS")),
        ("fred-a-b", Assignment("fred", 1002, 100, "/home/fred", "-", "a-b")),
        ("joe-", Assignment("joe", 1001, 100, "/home/joe", "-", "")),
        ("a" * 31 + "-x", Assignment("a" * 31, 1007, 100, "/home/long31", "-", "x")),
    ],
)
def test_getpw_longest_prefix_before_a_dash(local: str, expected: Assignment) -> None:
    assert getpw(local, PASSWD) == expected


@pytest.mark.parametrize(
    "local",
    ["help", "root", "root-x", "ftp", "gone", "Upper", "upper", "b" * 32, "b" * 32 + "-x", "-fred"],
)
def test_getpw_falls_back_to_alias_with_whole_local_as_ext(local: str) -> None:
    assert getpw(local, PASSWD) == Assignment("alias", 7790, 2108, "/var/qmail/alias", "-", local)


def test_getpw_without_alias_user_is_qlx_noalias() -> None:
    passwd = {k: v for k, v in PASSWD.items() if k != "alias"}
    assert getpw("help", passwd) is None
    assert QLX_NOALIAS == 116


def test_pic_local2ext_and_local2alias() -> None:
    """PIC.local2ext: fred-sos -> fred ~fred - sos; PIC.local2alias: help -> alias - help."""
    assert lookup_user("fred-sos", None, PASSWD) == Assignment(
        "fred", 1002, 100, "/home/fred", "-", "sos"
    )
    assert lookup_user("help", None, PASSWD) == Assignment(
        "alias", 7790, 2108, "/var/qmail/alias", "-", "help"
    )


def test_lookup_user_uses_cdb_first_then_getpw() -> None:
    cdb = qmail_newu(parse_assign("=special:fred:1002:100:/srv/special:::\n.\n"))
    assert lookup_user("special", cdb, PASSWD) == Assignment(
        "fred", 1002, 100, "/srv/special", "", ""
    )
    assert lookup_user("joe", cdb, PASSWD) == Assignment("joe", 1001, 100, "/home/joe", "", "")


def test_nughde_wire_format() -> None:
    a = Assignment("fred", 1002, 100, "/home/fred", "-", "sos")
    assert format_nughde(a) == b"fred\x001002\x00100\x00/home/fred\x00-\x00sos\x00"
    assert parse_nughde(format_nughde(a)) == a


@pytest.mark.parametrize(
    "data", [b"", b"fred\0", b"fred\x001\x002\x00/h\x00-\x00x", b"f\x00x\x002\x00/h\x00\x00\x00"]
)
def test_bad_nughde_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_nughde(data)


@pytest.mark.parametrize("field", ["local", "user", "home", "dash", "ext"])
def test_entry_that_cannot_be_one_line_is_refused(field: str) -> None:
    values = {"local": "a", "user": "u", "home": "/h", "dash": "", "ext": ""}
    values[field] = "x:y"
    with pytest.raises(BadInput):
        AssignEntry(wildcard=False, uid=1, gid=1, **values)


def test_format_assign_writes_qmail_users_lines() -> None:
    entries = [
        AssignEntry(True, "", "alias", 7790, 2108, "/var/qmail/alias", "-", ""),
        AssignEntry(False, "joe", "joe", 1001, 100, "/home/joe", "", ""),
    ]
    assert format_assign(entries) == (
        "+:alias:7790:2108:/var/qmail/alias:-::\n=joe:joe:1001:100:/home/joe:::\n.\n"
    )


_FIELD = st.text(st.characters(blacklist_characters=":\n\0", codec="latin-1"), max_size=12)
_ENTRY = st.builds(
    AssignEntry,
    wildcard=st.booleans(),
    local=_FIELD,
    user=_FIELD,
    uid=st.integers(0, 2**32),
    gid=st.integers(0, 2**32),
    home=_FIELD,
    dash=st.sampled_from(["", "-"]),
    ext=_FIELD,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_ENTRY, max_size=8))
def test_assign_round_trip(entries: list[AssignEntry]) -> None:
    assert parse_assign(format_assign(entries)) == tuple(entries)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parse_assign_never_raises_anything_but_bad_input(text: str) -> None:
    try:
        parse_assign(text)
    except BadInput as error:
        assert str(error).startswith("users/assign line ")


def test_case_folding_is_ascii_only() -> None:
    cdb = qmail_newu(parse_assign("=\xc0b:u:1:1:/u:::\n.\n"))
    assert lookup_assign(cdb, "\xc0B") == Assignment("u", 1, 1, "/u", "", "")
    assert lookup_assign(cdb, "\xe0b") is None


def test_parse_passwd_first_line_wins_and_malformed_lines_are_skipped() -> None:
    from sim.qmail.users import parse_passwd

    text = (
        "alice:x:1001:100::/home/alice:/bin/sh\n# c:x:1:1::/c:\n"
        "bad:x:one:1::/b:\nalice:x:9:9::/x:\n"
    )
    assert parse_passwd(text) == {"alice": (1001, 100, "/home/alice")}
