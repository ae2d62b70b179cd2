"""The POP3 chain's shared parts: command lines as commands.c reads them, and checkpassword."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput, ProtocolError
from sim.qmail.pop3 import (
    CHECKPASSWORD_EXIT,
    Account,
    CheckpasswordDecision,
    CheckpasswordError,
    CheckpasswordInput,
    Command,
    CommandReader,
    checkpassword,
    encode_checkpassword,
    err,
    parse_checkpassword,
    parse_command,
)


@pytest.mark.parametrize(
    ("line", "verb", "arg"),
    [
        (b"USER bob", b"user", b"bob"),
        (b"user   bob ", b"user", b"bob "),
        (b"PASS two words\r", b"pass", b"two words"),
        (b"noop\r\r", b"noop\r", b""),
        (b"user a\0b", b"user", b"a"),
        (b"\0user bob", b"", b""),
        (b"", b"", b""),
        (b"RETR", b"retr", b""),
        (b"TOP 1 5", b"top", b"1 5"),
        (b"user\tbob", b"user\tbob", b""),
    ],
)
def test_parse_command_splits_like_qmails_commands_c(line, verb, arg):
    assert parse_command(line) == Command(verb, arg)


def test_reader_waits_for_lf_and_keeps_the_rest():
    reader = CommandReader()
    reader.receive_data(b"US")
    assert reader.next_command() is None
    reader.receive_data(b"ER bob\r\nPASS x\r\nNO")
    assert reader.next_command() == Command(b"user", b"bob")
    assert reader.next_command() == Command(b"pass", b"x")
    assert reader.next_command() is None
    assert reader.pending == b"NO"
    assert not reader.at_eof


def test_reader_drops_a_partial_line_at_end_of_input():
    reader = CommandReader()
    reader.receive_data(b"NOOP\nQUIT")
    reader.receive_data(b"")
    assert not reader.at_eof
    assert reader.next_command() == Command(b"noop", b"")
    assert reader.next_command() is None
    assert reader.at_eof


def test_err_writes_dash_err_space_text_crlf():
    assert err("syntax error") == b"-ERR syntax error\r\n"


def test_checkpassword_exit_codes():
    assert CHECKPASSWORD_EXIT == {"ok": 0, "bad password": 1, "misuse": 2, "temporary": 111}


STAMP = b"<5690.812090813@oracle.test>"


def test_encode_checkpassword_is_user_nul_password_nul_timestamp_nul():
    data = encode_checkpassword(b"alice", b"secret", STAMP)
    assert data == b"alice\0secret\0<5690.812090813@oracle.test>\0"


def test_encode_checkpassword_refuses_a_nul_inside_a_field():
    with pytest.raises(ValueError):
        encode_checkpassword(b"al\0ice", b"x", STAMP)


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b"alice\0secret\0" + STAMP + b"\0", CheckpasswordInput(b"alice", b"secret", STAMP)),
        (b"alice\0secret\0", CheckpasswordInput(b"alice", b"secret", b"")),
        (b"alice\0secret\0stamp\0more data", CheckpasswordInput(b"alice", b"secret", b"stamp")),
        (b"alice\0secret\0stamp", CheckpasswordInput(b"alice", b"secret", b"stamp")),
        (b"\0\0", CheckpasswordInput(b"", b"", b"")),
        (b"a\0" + b"p" * 509 + b"\0", CheckpasswordInput(b"a", b"p" * 509, b"")),
    ],
)
def test_parse_checkpassword_reads_fd3(data, parsed):
    assert parse_checkpassword(data) == parsed


@pytest.mark.parametrize(
    ("data", "exit_code"),
    [
        (b"", 2),
        (b"alice", 2),
        (b"alice\0", 2),
        (b"alice\0secret", 2),
        (b"a\0" + b"p" * 510 + b"\0", 1),  # 513 bytes: more than checkpassword reads
    ],
)
def test_parse_checkpassword_refuses_with_checkpasswords_exit_code(data, exit_code):
    with pytest.raises(CheckpasswordError) as caught:
        parse_checkpassword(data)
    assert caught.value.exit_code == exit_code
    assert isinstance(caught.value, ProtocolError)


fields = st.binary(max_size=160).map(lambda b: b.replace(b"\0", b""))


@settings(max_examples=100, deadline=None)
@given(fields, fields, fields)
def test_checkpassword_input_round_trips(user, password, timestamp):
    parsed = parse_checkpassword(encode_checkpassword(user, password, timestamp))
    assert parsed == CheckpasswordInput(user, password, timestamp)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_parse_checkpassword_raises_nothing_but_bad_input(data):
    with contextlib.suppress(BadInput):
        parse_checkpassword(data)


ALICE = Account("secret", 1001, 1001, "/home/alice")
ACCOUNTS = {"alice": ALICE, "nopass": Account("", 1002, 1002, "/home/nopass")}
POP3D = ["qmail-pop3d", "Maildir"]


@pytest.mark.parametrize(
    ("data", "program", "exit_code"),
    [
        (b"alice\0secret\0" + STAMP + b"\0", POP3D, 0),
        (b"alice\0wrong\0" + STAMP + b"\0", POP3D, 1),
        (b"alice\0\0" + STAMP + b"\0", POP3D, 1),
        (b"bob\0secret\0" + STAMP + b"\0", POP3D, 1),
        (b"\0secret\0" + STAMP + b"\0", POP3D, 1),
        (b"nopass\0\0" + STAMP + b"\0", POP3D, 1),
        (b"nopass\0x\0" + STAMP + b"\0", POP3D, 1),
        (b"alice\0secret\0" + STAMP + b"\0", [], 2),
        (b"alice", POP3D, 2),
        (b"alice\0secret\0" + b"x" * 600, POP3D, 1),
    ],
)
def test_checkpassword_exit_code(data, program, exit_code):
    assert checkpassword(data, ACCOUNTS, program).exit_code == exit_code


def test_checkpassword_success_names_the_user_and_his_environment():
    decision = checkpassword(b"alice\0secret\0" + STAMP + b"\0", ACCOUNTS, POP3D)
    assert decision == CheckpasswordDecision(0, "alice", ALICE)
    assert decision.env == (("USER", "alice"), ("HOME", "/home/alice"), ("SHELL", "/bin/sh"))


def test_checkpassword_refusal_carries_no_account():
    decision = checkpassword(b"alice\0wrong\0\0", ACCOUNTS, POP3D)
    assert decision.account is None
    assert decision.env == ()


def test_pop3passwd_lines_become_accounts() -> None:
    from sim.qmail.pop3 import Account, parse_pop3passwd

    accounts = parse_pop3passwd("alice:s3cret:1001:100:/h/alice\nbroken:line\nbob:pw:x:1:/h\n")
    assert accounts == {"alice": Account("s3cret", 1001, 100, "/h/alice")}
