"""DATA transparency both ways: qmail-smtpd's blast decoder and qmail-remote's encoder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.smtp_data import (
    PARTIAL_FINAL_LINES,
    BareLineFeed,
    DataDecoder,
    DataEncoder,
    PartialFinalLine,
    encode_data,
)


def blast(raw: bytes, databytes: int = 0, chunk: int = 0) -> tuple[bytes, DataDecoder, int]:
    """Feed `raw` whole (or in `chunk`-byte pieces): stored bytes, the decoder, bytes consumed."""
    decoder = DataDecoder(databytes)
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    stored, consumed = b"", 0
    for piece in pieces:
        decoded = decoder.feed(piece)
        stored += decoded.data
        consumed += decoded.consumed
        if decoded.done:
            break
    return stored, decoder, consumed


def honest_client(message: bytes) -> bytes:
    """What a correct SMTP client sends for a stored message: LF -> CR LF, dots doubled."""
    lines = message.split(b"\n")[:-1]
    return b"".join((b"." if line.startswith(b".") else b"") + line + b"\r\n" for line in lines) + (
        b".\r\n"
    )


BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")

TRANSPARENCY_CASES = [
    (b".\r\n", b""),
    (b"a\r\n.\r\n", b"a\n"),
    (b"\r\n.\r\n", b"\n"),
    (b"..x\r\n.\r\n", b".x\n"),
    (b".x\r\n.\r\n", b"x\n"),
    (b"...\r\n.\r\n", b"..\n"),
    (b"a\r\n..\r\n.\r\n", b"a\n.\n"),
    (b"a\rb\r\n.\r\n", b"a\rb\n"),
    (b"a\r\r\n.\r\n", b"a\r\n"),
    (b"a\r\r\r\n.\r\n", b"a\r\r\n"),
    (b".\rx\r\n.\r\n", b".\rx\n"),
    (b".\r\r\n.\r\n", b".\r\n"),
    (b"a\r\n.x.\r\n.\r\n", b"a\nx.\n"),
    (b"\xff\x00\x80\r\n.\r\n", b"\xff\x00\x80\n"),
    (b"x\r\n .\r\n.\r\n", b"x\n .\n"),
]


@pytest.mark.parametrize(("raw", "stored"), TRANSPARENCY_CASES)
@pytest.mark.parametrize("chunk", [0, 1, 2, 3])
def test_blast_stores_what_qmail_stores(raw, stored, chunk):
    got, decoder, consumed = blast(raw, chunk=chunk)
    assert got == stored
    assert decoder.done
    assert consumed == len(raw)


def test_input_after_the_final_dot_is_left_for_the_next_command():
    got, _, consumed = blast(b"x\r\n.\r\nQUIT\r\n")
    assert got == b"x\n"
    assert consumed == len(b"x\r\n.\r\n")


def test_without_the_final_dot_the_message_is_not_done():
    got, decoder, _ = blast(b"x\r\n.\r")
    assert got == b"x\n"
    assert not decoder.done


@pytest.mark.parametrize(
    "raw", [b"\n", b"a\n", b"a\r\n\n", b".\n", b"a\r\n.\n", b"a\r\nb\n.\r\n", b"..\n"]
)
@pytest.mark.parametrize("chunk", [0, 1])
def test_bare_lf_in_data_is_refused(raw, chunk):
    with pytest.raises(BareLineFeed):
        blast(raw, chunk=chunk)


def header(received: int, delivered: int = 0) -> bytes:
    """A header with that many Received and Delivered-To lines, an empty line and a body."""
    lines = [b"Received: from a by b; x\r\n"] * received + [b"Delivered-To: joe@b\r\n"] * delivered
    return b"".join(lines) + b"Subject: hop\r\n\r\nbody\r\n.\r\n"


@pytest.mark.parametrize(
    ("received", "delivered", "too_many"),
    [
        (99, 0, False),
        (100, 0, True),
        (0, 99, False),
        (0, 100, True),
        (50, 49, False),
        (50, 50, True),
    ],
)
def test_hop_count_of_100_is_a_loop(received, delivered, too_many):
    _, decoder, _ = blast(header(received, delivered), chunk=7)
    assert decoder.hops == received + delivered
    assert decoder.too_many_hops is too_many
    assert decoder.done


@pytest.mark.parametrize(
    ("line", "counts"),
    [
        (b"Received: x", True),
        (b"RECEIVED: x", True),
        (b"rEcEiVeD", True),
        (b"Receivedxyz", True),
        (b"Receive: x", False),
        (b"X-Received: x", False),
        (b"Delivered-To: x", True),
        (b"delivered", True),
        (b"Delivere: x", False),
        (b" Received: x", False),
    ],
)
def test_hop_lines_start_with_received_or_delivered(line, counts):
    _, decoder, _ = blast(line + b"\r\n\r\n.\r\n", chunk=1)
    assert decoder.hops == int(counts)


def test_received_lines_after_the_header_are_not_counted():
    raw = b"Subject: x\r\n\r\n" + b"Received: y\r\n" * 150 + b".\r\n"
    _, decoder, _ = blast(raw)
    assert decoder.hops == 0


@pytest.mark.parametrize(
    ("size", "overflowed"), [(9, False), (10, False), (11, True), (5000, True)]
)
def test_databytes_counts_stored_bytes(size, overflowed):
    message = b"x" * (size - 1) + b"\n"
    got, decoder, consumed = blast(honest_client(message), databytes=10, chunk=3)
    assert decoder.overflowed is overflowed
    assert decoder.stored_bytes == size
    assert got == message[:10]
    assert decoder.done  # reading goes on to the final dot
    assert consumed == len(honest_client(message))


def test_databytes_counts_after_unstuffing_and_crlf():
    raw = b"..\r\n..\r\n.\r\n"  # stores ".\n.\n": four bytes
    assert not blast(raw, databytes=4)[1].overflowed
    assert blast(raw, databytes=3)[1].overflowed


def test_databytes_zero_means_no_limit():
    got, decoder, _ = blast(honest_client(b"y" * 100_000 + b"\n"))
    assert len(got) == 100_001
    assert not decoder.overflowed


def test_feeding_after_the_end_is_our_bug():
    decoder = DataDecoder()
    decoder.feed(b".\r\n")
    with pytest.raises(ValueError):
        decoder.feed(b"x")


stored_messages = st.binary(max_size=400).map(lambda b: b + b"\n") | st.just(b"")


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given positions."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(stored_messages, st.lists(st.integers(min_value=0), max_size=12))
def test_honest_client_message_arrives_byte_identical_in_any_split(message, cuts):
    raw = honest_client(message) + b"NEXT"
    decoder = DataDecoder()
    stored, consumed = b"", 0
    for piece in splits(raw, cuts):
        decoded = decoder.feed(piece)
        stored += decoded.data
        consumed += decoded.consumed
        if decoded.done:
            break
    assert stored == message
    assert decoder.done
    assert raw[consumed:] == b"NEXT"


ENCODE_CASES = [
    (b"", b".\r\n", b".\r\n"),
    (b"a\n", b"a\r\n.\r\n", b"a\r\n.\r\n"),
    (b".\n", b"..\r\n.\r\n", b"..\r\n.\r\n"),
    (b"a\n.b\n..\n", b"a\r\n..b\r\n...\r\n.\r\n", b"a\r\n..b\r\n...\r\n.\r\n"),
    (b"\n.\n", b"\r\n..\r\n.\r\n", b"\r\n..\r\n.\r\n"),
    (b"a\r\n", b"a\r\n.\r\n", b"a\r\r\n.\r\n"),
    (b"a\r.\rb\n", b"a\r\n..\r\nb\r\n.\r\n", b"a\r.\rb\r\n.\r\n"),
    (b"a\n.\r\n", b"a\r\n..\r\n.\r\n", b"a\r\n..\r\r\n.\r\n"),
    (b"\r\n.\n", b"\r\n..\r\n.\r\n", b"\r\r\n..\r\n.\r\n"),
    (b"\xff\x00\n", b"\xff\x00\r\n.\r\n", b"\xff\x00\r\n.\r\n"),
]


@pytest.mark.parametrize(("stored", "ours", "qmail103"), ENCODE_CASES)
def test_outbound_encoding(stored, ours, qmail103):
    assert encode_data(stored) == ours
    assert encode_data(stored, qmail103=True) == qmail103


@pytest.mark.parametrize("stored", [b"a", b"a\nb", b"a\n\r", b"\r"])
@pytest.mark.parametrize("qmail103", [False, True])
def test_partial_final_line_is_a_permanent_failure(stored, qmail103):
    with pytest.raises(PartialFinalLine) as caught:
        encode_data(stored, qmail103=qmail103)
    assert (
        caught.value.report == "DSMTP cannot transfer messages with partial final lines. (#5.6.2)"
    )
    assert caught.value.report == PARTIAL_FINAL_LINES


def encode_in_pieces(stored: bytes, cuts: list[int], qmail103: bool = False) -> bytes:
    encoder = DataEncoder(qmail103=qmail103)
    return b"".join(encoder.feed(piece) for piece in splits(stored, cuts)) + encoder.finish()


@settings(max_examples=300, deadline=None)
@given(stored_messages, st.lists(st.integers(min_value=0), max_size=8))
def test_outbound_encoding_has_one_terminator_and_no_bare_cr_or_lf(stored, cuts):
    wire = encode_in_pieces(stored, cuts)
    assert wire == encode_data(stored)
    assert BARE.search(wire) is None
    after_data_command = b"\r\n" + wire
    assert after_data_command.find(b"\r\n.\r\n") == len(after_data_command) - 5


@settings(max_examples=200, deadline=None)
@given(stored_messages, st.lists(st.integers(min_value=0), max_size=8))
def test_outbound_then_inbound_gives_the_message_with_cr_line_ends_as_lf(stored, cuts):
    got, decoder, _ = blast(encode_in_pieces(stored, cuts))
    assert decoder.done
    assert got == re.sub(rb"\r\n?", b"\n", stored)


@settings(max_examples=200, deadline=None)
@given(stored_messages, st.lists(st.integers(min_value=0), max_size=8))
def test_qmail103_to_qmail103_is_byte_identical(stored, cuts):
    wire = encode_in_pieces(stored, cuts, qmail103=True)
    assert wire == honest_client(stored)
    assert blast(wire)[0] == stored


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=8))
def test_decoder_raises_nothing_but_bare_line_feed(raw, cuts):
    decoder = DataDecoder(databytes=50)
    passed_on = 0
    try:
        for piece in splits(raw, cuts):
            if decoder.done:
                break
            passed_on += len(decoder.feed(piece).data)
    except BareLineFeed:
        assert b"\n" in raw
    assert passed_on <= 50
