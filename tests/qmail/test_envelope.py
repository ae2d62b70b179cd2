"""The envelope on qmail-queue's fd 1, the stored queue files, and qmail-queue's exit codes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.envelope import (
    QQ_CRASHED,
    QQ_EXIT_CODES,
    QQ_OWN_EXIT_CODES,
    QQ_WAITPID_SURPRISE,
    BadEnvelope,
    ChannelRecord,
    Envelope,
    EnvelopeReader,
    QueueFile,
    encode_channel_file,
    encode_envelope,
    encode_info,
    encode_queue_envelope,
    encode_queue_file,
    is_permanent,
    mark_done,
    parse_channel_file,
    parse_envelope,
    parse_info,
    parse_queue_file,
    pending,
    qq_status,
)
from sim.qmail.errors import BadInput, EnvelopeError
from sim.qmail.text import b2s

# ---- fd 1 of qmail-queue ---------------------------------------------------------------


def test_reference_example_encodes_as_qmail_queue_8_shows():
    assert encode_envelope("joe@a", ["x@b", "y@c"]) == b"Fjoe@a\0Tx@b\0Ty@c\0\0"


def test_reference_example_parses():
    assert parse_envelope(b"Fjoe@a\0Tx@b\0Ty@c\0\0") == Envelope("joe@a", ("x@b", "y@c"))


def test_empty_sender_is_an_F_and_a_NUL():
    assert encode_envelope("", ["x@b"]) == b"F\0Tx@b\0\0"
    assert parse_envelope(b"F\0Tx@b\0\0") == Envelope("", ("x@b",))


def test_no_recipients_is_accepted_as_qmail_queue_does():
    assert parse_envelope(b"F\0\0") == Envelope("", ())


@pytest.mark.parametrize(
    ("data", "exit_code"),
    [
        (b"", 54),  # EOF before the first byte
        (b"F\0", 54),  # the bounce sender item alone: no final NUL
        (b"Fjoe@a", 54),
        (b"Fjoe@a\0Tx@b\0", 54),  # qmail_fail(): the caller stops writing
        (b"Fjoe@a\0Tx@b", 54),
        (b"Tx@b\0\0", 91),  # first byte not F
        (b"X", 91),
        (b"Fjoe@a\0Fx@b\0\0", 91),  # later item not T
        (b"Fjoe@a\0\n", 91),
        (b"F" + b"a" * 1003 + b"\0\0", 11),
        (b"F\0T" + b"a" * 1003 + b"\0\0", 11),
        (b"F\0T" + b"a" * 1003, 11),  # 1003 bytes without a NUL: decided before EOF
        (b"F\0T" + b"a" * 1002, 54),  # one byte short: qmail-queue is still reading
    ],
)
def test_bad_envelope_gives_qmail_queue_exit_code(data, exit_code):
    with pytest.raises(BadEnvelope) as caught:
        parse_envelope(data)
    assert caught.value.exit_code == exit_code
    assert isinstance(caught.value, EnvelopeError)


def test_address_of_1002_bytes_is_the_longest_accepted():
    long = "a" * 1002
    assert parse_envelope(encode_envelope(long, [long])) == Envelope(long, (long,))


def test_bytes_after_the_final_nul_are_not_read():
    reader = EnvelopeReader()
    assert reader.feed(b"Fa\0Tb\0\0garbage") == Envelope("a", ("b",))
    assert reader.consumed == len(b"Fa\0Tb\0\0")


def test_reader_accepts_the_envelope_a_byte_at_a_time():
    reader = EnvelopeReader()
    data = b"Fjoe@a\0Tx@b\0Ty@c\0\0"
    results = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == reader.eof() == Envelope("joe@a", ("x@b", "y@c"))


def test_reader_refuses_a_bad_item_as_soon_as_it_arrives():
    reader = EnvelopeReader()
    assert reader.feed(b"Fjoe@a\0") is None
    with pytest.raises(BadEnvelope) as caught:
        reader.feed(b"Q")
    assert caught.value.exit_code == 91


def test_encoding_an_address_with_a_nul_is_refused():
    with pytest.raises(EnvelopeError):
        encode_envelope("a\0b", [])


addresses = st.binary(max_size=40).filter(lambda b: b"\0" not in b).map(b2s)
long_addresses = st.binary(min_size=990, max_size=1002).filter(lambda b: b"\0" not in b).map(b2s)


@settings(max_examples=200, deadline=None)
@given(addresses, st.lists(addresses | long_addresses, max_size=6))
def test_envelope_round_trips(sender, recipients):
    assert parse_envelope(encode_envelope(sender, recipients)) == Envelope(
        sender, tuple(recipients)
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60) | st.builds(lambda a, b: a + b, st.just(b"F"), st.binary()))
def test_parse_envelope_raises_only_bad_envelope(data):
    try:
        parse_envelope(data)
    except BadEnvelope as e:
        assert e.exit_code in (11, 54, 91)
        assert isinstance(e, BadInput)


@settings(max_examples=100, deadline=None)
@given(addresses, st.lists(addresses, max_size=5), st.integers(1, 9))
def test_reader_gives_the_same_envelope_in_any_chunking(sender, recipients, step):
    data = encode_envelope(sender, recipients)
    reader = EnvelopeReader()
    for i in range(0, len(data), step):
        reader.feed(data[i : i + step])
    assert reader.eof() == parse_envelope(data)


# ---- the stored forms --------------------------------------------------------------------


def test_queue_file_is_u_p_F_T_without_the_final_nul():
    assert encode_queue_file(100, 4567, "joe@a", ["x@b", "y@c"]) == (
        b"u100\0p4567\0Fjoe@a\0Tx@b\0Ty@c\0"
    )


def test_queue_extra_goes_between_F_and_the_recipients():
    assert encode_queue_envelope("joe@a", ["x@b"], extra=b"Tlog\0") == b"Fjoe@a\0Tlog\0Tx@b\0"
    assert parse_queue_file(b"u1\0p2\0Fjoe@a\0Tlog\0Tx@b\0").recipients == ("log", "x@b")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 2**32), addresses, st.lists(addresses, max_size=5))
def test_queue_file_round_trips(uid, pid, sender, recipients):
    data = encode_queue_file(uid, pid, sender, recipients)
    assert parse_queue_file(data) == QueueFile(uid, pid, sender, tuple(recipients))


def test_queue_file_last_record_without_nul_is_ignored_as_qmail_send_does():
    assert parse_queue_file(b"u1\0p2\0F\0Tx@b\0Ty@").recipients == ("x@b",)


@pytest.mark.parametrize("data", [b"u1\0p2\0F\0Xjunk\0", b"u1\0\0F\0", b"u1\0p2\0Tx@b\0"])
def test_queue_file_with_unknown_record_or_no_sender_is_refused(data):
    with pytest.raises(EnvelopeError):
        parse_queue_file(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_parse_stored_files_raise_only_envelope_error(data):
    for parse in (parse_queue_file, parse_info, parse_channel_file):
        with contextlib.suppress(EnvelopeError):
            parse(data)


def test_info_file_is_F_sender_nul():
    assert encode_info("joe@a") == b"Fjoe@a\0"
    assert parse_info(b"Fjoe@a\0") == "joe@a"
    assert parse_info(encode_info("")) == ""


def test_channel_file_records_carry_their_byte_offsets():
    data = encode_channel_file(["x@b", "yy@c", "z@d"])
    assert data == b"Tx@b\0Tyy@c\0Tz@d\0"
    assert parse_channel_file(data) == [
        ChannelRecord(0, False, "x@b"),
        ChannelRecord(5, False, "yy@c"),
        ChannelRecord(11, False, "z@d"),
    ]


def test_marking_done_overwrites_one_byte():
    data = mark_done(encode_channel_file(["x@b", "yy@c"]), 5)
    assert data == b"Tx@b\0Dyy@c\0"
    assert [r.address for r in pending(parse_channel_file(data))] == ["x@b"]


def test_marking_anything_but_a_record_start_is_refused():
    with pytest.raises(EnvelopeError):
        mark_done(b"Tx@b\0", 1)


# ---- exit codes and the callers' status strings -----------------------------------------------

QQ_STATUS_ROWS = [
    (0, ""),
    (11, "Denvelope address too long for qq (#5.1.3)"),
    (115, "Denvelope address too long for qq (#5.1.3)"),
    (31, "Dmail server permanently rejected message (#5.3.0)"),
    (51, "Zqq out of memory (#4.3.0)"),
    (52, "Zqq timeout (#4.3.0)"),
    (53, "Zqq write error or disk full (#4.3.0)"),
    (54, "Zqq read error (#4.3.0)"),
    (55, "Zqq unable to read configuration (#4.3.0)"),
    (56, "Zqq trouble making network connection (#4.3.0)"),
    (61, "Zqq trouble in home directory (#4.3.0)"),
    (62, "Zqq trouble creating files in queue (#4.3.0)"),
    (63, "Zqq trouble creating files in queue (#4.3.0)"),
    (64, "Zqq trouble creating files in queue (#4.3.0)"),
    (65, "Zqq trouble creating files in queue (#4.3.0)"),
    (66, "Zqq trouble creating files in queue (#4.3.0)"),
    (71, "Zmail server temporarily rejected message (#4.3.0)"),
    (72, "Zconnection to mail server timed out (#4.4.1)"),
    (73, "Zconnection to mail server rejected (#4.4.1)"),
    (74, "Zcommunication with mail server failed (#4.4.2)"),
    (81, "Zqq internal bug (#4.3.0)"),
    (91, "Zqq internal bug (#4.3.0)"),
    (120, "Zunable to exec qq (#4.3.0)"),
    (12, "Dqq permanent problem (#5.3.0)"),
    (40, "Dqq permanent problem (#5.3.0)"),
    (10, "Zqq temporary problem (#4.3.0)"),
    (41, "Zqq temporary problem (#4.3.0)"),
    (75, "Zqq temporary problem (#4.3.0)"),
    (79, "Zqq temporary problem (#4.3.0)"),
    (82, "Zqq temporary problem (#4.3.0)"),
    (100, "Zqq temporary problem (#4.3.0)"),
    (111, "Zqq temporary problem (#4.3.0)"),
]


@pytest.mark.parametrize(("exit_code", "status"), QQ_STATUS_ROWS)
def test_qq_status_is_qmail_close_string(exit_code, status):
    assert qq_status(exit_code) == status


def test_exit_0_after_a_caller_write_error_is_a_read_error():
    assert qq_status(0, write_error=True) == "Zqq read error (#4.3.0)"


def test_crash_and_waitpid_texts():
    assert QQ_CRASHED == "Zqq crashed (#4.3.0)"
    assert QQ_WAITPID_SURPRISE == "Zqq waitpid surprise (#4.3.0)"


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (0, "success"),
        (11, "address too long"),
        (31, "mail server permanently refuses the message"),
        (51, "out of memory"),
        (52, "timeout"),
        (53, "write error, e.g. disk full"),
        (54, "unable to read message or envelope"),
        (55, "unable to read a configuration file"),
        (56, "problem making a network connection from this host"),
        (61, "problem with the qmail home directory"),
        (62, "problem with the queue directory"),
        (63, "problem with queue/pid"),
        (64, "problem with queue/mess"),
        (65, "problem with queue/intd"),
        (66, "problem with queue/todo"),
        (71, "mail server temporarily refuses"),
        (72, "connection to mail server timed out"),
        (73, "connection to mail server rejected"),
        (74, "connection succeeded but communication failed"),
        (81, "internal bug, e.g. segfault"),
        (91, "envelope format error"),
    ],
)
def test_exit_code_table_is_qmail_queue_8(code, meaning):
    assert QQ_EXIT_CODES[code] == meaning


def test_exit_code_table_has_no_other_codes():
    defined = {0, 11, 31, 51, 52, 53, 54, 55, 56, 61, 62, 63, 64, 65, 66, 71, 72, 73, 74, 81, 91}
    assert set(QQ_EXIT_CODES) == defined
    assert {31, 55, 56, 71, 72, 73, 74}.isdisjoint(QQ_OWN_EXIT_CODES)


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(0, False), (10, False), (11, True), (31, True), (40, True), (41, False), (91, False)],
)
def test_only_11_to_40_are_permanent(code, permanent):
    assert is_permanent(code) is permanent


@pytest.mark.parametrize("code", sorted(QQ_EXIT_CODES))
def test_status_letter_agrees_with_permanence(code):
    letter = qq_status(code)[:1]
    assert letter == ("" if code == 0 else "D" if is_permanent(code) else "Z")
