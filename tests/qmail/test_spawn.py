"""The qmail-send ⇄ spawner protocol and the lspawn / rspawn result mapping."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import ProtocolError
from sim.qmail.spawn import (
    SPAWN_FAILURES,
    TRUNCATED,
    CommandParser,
    ResultParser,
    SpawnCommand,
    SpawnResult,
    check_command,
    encode_command,
    encode_result,
    handshake,
    is_trash_address,
    lspawn_report,
    refusal,
    rspawn_report,
    spawn_limit,
    truncate_output,
    verp_sender,
)


def test_spawner_handshake_is_one_byte_of_conf_spawn():
    assert handshake() == b"\x78"


@pytest.mark.parametrize(("byte", "wanted", "got"), [(b"\x78", 10, 10), (b"\x05", 20, 5)])
def test_concurrency_capped_by_spawner_slots(byte, wanted, got):
    assert spawn_limit(byte, wanted) == got


def test_spawner_that_says_nothing_stops_qmail_send():
    with pytest.raises(ProtocolError, match=r"hath the daemon spawn no fire\?"):
        spawn_limit(b"", 10)


def test_command_bytes_as_in_the_reference():
    command = SpawnCommand.for_message(3, 26902, "joe@heaven.af.mil", "fred@heaven.af.mil")
    assert encode_command(command) == b"\x0315/26902\0joe@heaven.af.mil\0fred@heaven.af.mil\0"


@pytest.mark.parametrize(
    ("sender", "recipient", "expanded"),
    [
        ("owner-@host-@[]", "joe@x.org", "owner-joe=x.org@host"),
        ("list-@lists.test-@[]", "a@b", "list-a=b@lists.test"),
        ("joe@a", "fred@b", "joe@a"),
        ("", "fred@b", ""),
        ("owner-@host-@[]", "nohost", "owner-@host-@[]"),
        ("nohost-@[]", "joe@x.org", "nohost-@[]"),
    ],
)
def test_verp_sender_expanded_per_recipient(sender, recipient, expanded):
    assert verp_sender(sender, recipient) == expanded


def test_command_carries_verp_expanded_sender():
    command = SpawnCommand.for_message(0, 46, "owner-@host-@[]", "joe@x.org")
    assert command == SpawnCommand(0, "0/46", "owner-joe=x.org@host", "joe@x.org")


def test_command_parser_takes_bytes_one_at_a_time():
    data = b"\x0015/26902\0\0fred@a\0\x07" + b"1/24\0bob@b\0al@c\0"
    parser = CommandParser()
    got = [c for i in range(len(data)) for c in parser.feed(data[i : i + 1])]
    assert got == [
        SpawnCommand(0, "15/26902", "", "fred@a"),
        SpawnCommand(7, "1/24", "bob@b", "al@c"),
    ]


def test_command_parser_waits_for_the_last_nul():
    parser = CommandParser()
    assert parser.feed(b"\x0115/26902\0joe@a\0fred@b") == []
    assert parser.feed(b"\0") == [SpawnCommand(1, "15/26902", "joe@a", "fred@b")]


SPAWN_TEXTS = {
    "nomem": b"Zqmail-spawn out of memory. (#4.3.0)\n",
    "delnum_negative": b"ZInternal error: delnum negative. (#4.3.5)\n",
    "delnum_too_big": b"ZInternal error: delnum too big. (#4.3.5)\n",
    "delnum_in_use": b"ZInternal error: delnum in use. (#4.3.5)\n",
    "messid_nonnumerics": b"DInternal error: messid has nonnumerics. (#5.3.5)\n",
    "messid_too_long": b"DInternal error: messid too long. (#5.3.5)\n",
    "messid_too_short": b"DInternal error: messid too short. (#5.3.5)\n",
    "no_host": b"DSorry, address must include host name. (#5.1.3)\n",
    "open": b"Zqmail-spawn unable to open message. (#4.3.0)\n",
    "fstat": b"Zqmail-spawn unable to fstat message. (#4.3.0)\n",
    "wrong_type": b"ZSorry, message has wrong type. (#4.3.5)\n",
    "wrong_owner": b"ZSorry, message has wrong owner. (#4.3.5)\n",
    "pipe": b"Zqmail-spawn unable to create pipe. (#4.3.0)\n",
    "fork": b"Zqmail-spawn unable to fork. (#4.3.0)\n",
}


@pytest.mark.parametrize(("name", "text"), SPAWN_TEXTS.items())
def test_spawner_refusal_texts_word_for_word(name, text):
    assert SPAWN_FAILURES[name] == text
    assert encode_result(refusal(9, name)) == b"\x09" + text + b"\0"


CHECKS = [
    (SpawnCommand(0, "15/26902", "joe@a", "fred@b"), set(), None),
    (SpawnCommand(120, "15/26902", "joe@a", "fred@b"), set(), "delnum_too_big"),
    (SpawnCommand(4, "15/26902", "joe@a", "fred@b"), {4}, "delnum_in_use"),
    (SpawnCommand(4, "15/2690x", "joe@a", "fred@b"), set(), "messid_nonnumerics"),
    (SpawnCommand(4, "/15", "joe@a", "fred@b"), set(), "messid_nonnumerics"),
    (SpawnCommand(4, "1/" + "9" * 97, "joe@a", "fred@b"), set(), None),  # 99 bytes + NUL
    (SpawnCommand(4, "9" * 100, "joe@a", "fred@b"), set(), "messid_too_long"),
    (SpawnCommand(4, "", "joe@a", "fred@b"), set(), "messid_too_short"),
    (SpawnCommand(4, "15/26902", "joe@a", "fred"), set(), "no_host"),
    (SpawnCommand(4, "15/26902", "", "@oracle.test"), set(), None),
    (SpawnCommand(200, "x", "joe@a", "fred"), {200}, "delnum_too_big"),  # first failure wins
    (SpawnCommand(4, "x" * 200, "joe@a", "fred"), {5}, "messid_nonnumerics"),
]


@pytest.mark.parametrize(("command", "in_use", "failure"), CHECKS)
def test_spawner_checks_command_before_opening_message(command, in_use, failure):
    expected = None if failure is None else refusal(command.delnum, failure)
    assert check_command(command, in_use) == expected


def test_result_bytes_and_parse():
    result = SpawnResult(12, "K", b"did 1+0+0\n")
    assert encode_result(result) == b"\x0cKdid 1+0+0\n\0"
    assert ResultParser().feed(b"\x0cKdid 1+0+0\n\0") == [result]


def test_results_arrive_in_any_order_and_slot_zero_is_a_nul_byte():
    data = b"\x00Zdeferred\n\0\x05D\0\x00K\0"
    assert ResultParser().feed(data) == [
        SpawnResult(0, "Z", b"deferred\n"),
        SpawnResult(5, "D", b""),
        SpawnResult(0, "K", b""),
    ]


@pytest.mark.parametrize(
    ("data", "result"),
    [(b"\x03Xwhat\0", SpawnResult(3, "X", b"what")), (b"\x03\0", SpawnResult(3, "\0", b""))],
)
def test_unknown_status_is_report_mangled(data, result):
    assert ResultParser().feed(data) == [result]
    assert result.mangled


def test_qmail_send_keeps_reportmax_bytes_of_a_report():
    text = bytes(range(1, 256)) * 80  # 20400 bytes, no NUL
    (result,) = ResultParser().feed(b"\x01D" + text + b"\0")
    assert result.text == text[:9998]  # slot + status + text = 10000 bytes


CHDIR = b"Unable to chdir to maildir. (#4.2.1)\n"
NOBOX = b"Sorry, no mailbox here by that name. (#5.1.1)\n"
LSPAWN = [
    (None, b"ignored", "Z", b"qmail-local crashed.\n"),
    (0, b"did 1+0+0\n", "K", b"did 1+0+0\n"),
    (0, b"did 0+1+0\nqp 1234\n", "K", b"did 0+1+0\nqp 1234\n"),
    (111, CHDIR, "Z", CHDIR),
    (71, b"x", "Z", b"x"),
    (74, b"x", "Z", b"x"),
    (75, b"x", "Z", b"x"),
    (100, NOBOX, "D", NOBOX),
    (1, b"odd", "D", b"odd"),
    (101, b"bug", "D", b"bug"),
    (0, b"before\0after", "K", b"before"),
    (117, b"x", "Z", b"Trouble reading users/cdb in qmail-lspawn.\n"),
    (119, b"x", "Z", b"Out of memory in qmail-lspawn.\n"),
    (118, b"x", "Z", b"Temporary failure in qmail-lspawn.\n"),
    (116, b"x", "Z", b"Unable to find alias user!\n"),
    (113, b"x", "Z", b"Not allowed to perform deliveries as root.\n"),
    (112, b"x", "Z", b"Internal qmail-lspawn bug.\n"),
    (115, b"x", "Z", b"NFS failure in qmail-local.\n"),
    (126, b"x", "D", b"Unable to run qmail-local.\n"),
    (120, b"x", "Z", b"Unable to run qmail-local.\n"),
    (121, b"x", "Z", b"Unable to run qmail-getpw.\n"),
]  # fmt: skip


@pytest.mark.parametrize(("exit_code", "output", "status", "text"), LSPAWN)
def test_lspawn_maps_qmail_local_exit_to_result(exit_code, output, status, text):
    assert lspawn_report(7, exit_code, output) == SpawnResult(7, status, text)


@pytest.mark.parametrize(
    ("size", "kept"), [(2999, 2999), (3000, 3000), (3001, 2966), (100000, 2966)]
)
def test_lspawn_truncates_long_output(size, kept):
    output = b"e" * size
    truncated = truncate_output(output)
    if kept == size:
        assert truncated == output
    else:
        assert truncated == b"e" * kept + b"\nError report too long, sorry.\n"
        assert len(truncated) == 2997
    assert TRUNCATED == b"\nError report too long, sorry.\n"


def test_rspawn_does_not_truncate():
    assert truncate_output(b"e" * 5000, limit=0) == b"e" * 5000


@pytest.mark.parametrize(
    ("recipient", "trash"),
    [("@oracle.test", True), ("alice@oracle.test", False), ("a@b@oracle.test", False)],
)
def test_empty_local_part_is_the_trash_address(recipient, trash):
    assert is_trash_address(recipient) is trash


def test_trash_address_result_is_k_with_no_text():
    assert encode_result(lspawn_report(2, 0, b"")) == b"\x02K\0"


RSPAWN = [
    # the reference's two examples
    (
        0,
        b"r\0K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\0",
        "K",
        b"1.2.3.4 accepted message.\nRemote host said: 250 ok\n",
    ),
    (
        0,
        b"h1.2.3.4 does not like recipient.\nRemote host said: 550 ...\n\0"
        b"DGiving up on 1.2.3.4.\n\0",
        "D",
        b"1.2.3.4 does not like recipient.\nRemote host said: 550 ...\nGiving up on 1.2.3.4.\n",
    ),
    # a temporary recipient refusal makes the whole result temporary
    (
        0,
        b"s1.2.3.4 does not like recipient.\nRemote host said: 450 later\n\0"
        b"DGiving up on 1.2.3.4.\n\0",
        "Z",
        b"1.2.3.4 does not like recipient.\nRemote host said: 450 later\nGiving up on 1.2.3.4.\n",
    ),
    (
        0,
        b"r\0Z1.2.3.4 failed after I sent the message.\nRemote host said: 451 oops\n\0",
        "Z",
        b"1.2.3.4 failed after I sent the message.\nRemote host said: 451 oops\n",
    ),
    (
        0,
        b"ZConnected to 1.2.3.4 but greeting failed.\nRemote host said: 421 busy\n\0",
        "Z",
        b"Connected to 1.2.3.4 but greeting failed.\nRemote host said: 421 busy\n",
    ),
    (
        0,
        b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\0",
        "Z",
        b"Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n",
    ),
    # a permanent refusal with an accepted message (two recipients): the message text is dropped
    (0, b"h1.2.3.4 no\n\0K1.2.3.4 accepted message.\n\0", "D", b"1.2.3.4 no\n"),
    (0, b"no report ends", "D", b""),
    (None, b"r\0K\0", "Z", b"qmail-remote crashed.\n"),
    (111, b"r\0K\0", "Z", b"Unable to run qmail-remote.\n"),
    (100, b"r\0K\0", "D", b"Unable to run qmail-remote.\n"),
    (1, b"", "D", b"Unable to run qmail-remote.\n"),
    (0, b"", "Z", b"qmail-remote produced no output.\n"),
]


@pytest.mark.parametrize(("exit_code", "output", "status", "text"), RSPAWN)
def test_rspawn_collapses_qmail_remote_reports(exit_code, output, status, text):
    assert rspawn_report(4, exit_code, output) == SpawnResult(4, status, text)


@pytest.mark.parametrize(
    "bad",
    [SpawnResult(256, "K", b""), SpawnResult(1, "KZ", b""), SpawnResult(1, "K", b"a\0b")],
)
def test_unencodable_result_is_our_bug(bad):
    with pytest.raises(ValueError):
        encode_result(bad)


def test_unencodable_command_is_our_bug():
    with pytest.raises(ValueError):
        encode_command(SpawnCommand(1, "1/1", "a\0b", "c@d"))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


no_nul = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=30)
commands = st.builds(SpawnCommand, st.integers(0, 255), no_nul, no_nul, no_nul)
results = st.builds(
    SpawnResult,
    st.integers(0, 255),
    st.characters(min_codepoint=1, max_codepoint=255),
    st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"")),
)
cuts = st.lists(st.integers(0, 10_000), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(commands, max_size=4), cuts)
def test_command_round_trip_with_any_chunking(sent, where):
    parser = CommandParser()
    data = b"".join(encode_command(c) for c in sent)
    assert [c for chunk in split(data, where) for c in parser.feed(chunk)] == sent


@settings(max_examples=200, deadline=None)
@given(st.lists(results, max_size=4), cuts)
def test_result_round_trip_with_any_chunking(sent, where):
    parser = ResultParser()
    data = b"".join(encode_result(r) for r in sent)
    assert [r for chunk in split(data, where) for r in parser.feed(chunk)] == sent


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(0, 255)))
def test_parsers_and_reports_accept_any_bytes(data, exit_code):
    CommandParser().feed(data)
    ResultParser().feed(data)
    assert rspawn_report(1, exit_code, data).status in ("K", "Z", "D")
    assert lspawn_report(1, exit_code, data).status in ("K", "Z", "D")


def test_result_as_status_and_text_for_the_dying_rewrite():
    result = SpawnResult(3, "Z", b"mailbox busy\n")
    assert result.report == b"Zmailbox busy\n"
    assert SpawnResult.from_report(3, b"Zmailbox busy\n") == result
    assert SpawnResult.from_report(3, b"").mangled
