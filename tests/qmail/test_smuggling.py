"""SMTP smuggling, pure: no end-of-data variant ends a message, inbound or outbound.

The attack (SEC Consult, 2023): a message carries a fake end of data such as `\\n.\\n`
followed by SMTP commands. A sender that passes it through unchanged and a receiver that takes
the fake for the real `\\r\\n.\\r\\n` disagree on where the message ends, and the commands after
the fake become a second, forged message. qmail-smtpd's blast only ends at `CR LF . CR LF`,
and refuses any bare LF (451); our qmail-remote side never sends a bare CR or LF at all.
The live counterpart (real sockets, the queue counted) is tests/mta/test_bad_input.py.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.smtp_data import BareLineFeed, DataDecoder, DataEncoder, encode_data
from sim.qmail.smtpd import (
    Close,
    EndOfData,
    MessageData,
    Reply,
    SmtpdConfig,
    SmtpdSession,
    SmtpdState,
    StartQueue,
)

REAL_END = b"\r\n.\r\n"
# Every fake end of data: bare LF and bare CR around the dot, in every combination.
VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "LF.CR": b"\n.\r",
    "CR.LF": b"\r.\n",
}
# qmail's verdict on each: a bare LF is refused with 451, the others are message text.
REFUSED = {"LF.LF", "LF.CRLF", "CRLF.LF", "LF.CR", "CR.LF"}
# What blast stores for the variants it keeps, after `hello` and before `MAIL` (LF line ends).
STORED = {"CR.CR": b"hello\r.\rMAIL", "CR.CRLF": b"hello\r.\nMAIL", "CRLF.CR": b"hello\n.\rMAIL"}

SMUGGLED = (
    b"MAIL FROM:<forged@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
    b"Subject: forged\r\n\r\nsmuggled"
)
HEADER = b"Subject: outer\r\n\r\nhello"
ENVELOPE = b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
CONFIG = SmtpdConfig(greeting="example.test", rcpthosts=frozenset({"example.test"}))


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given positions."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def run_session(pieces: list[bytes]) -> tuple[list, SmtpdSession]:
    """A qmail-smtpd session fed `pieces` one read at a time; qmail-queue always succeeds."""
    s = SmtpdSession(CONFIG)
    events = s.start()
    for piece in pieces:
        if s.state is SmtpdState.CLOSED:
            break
        step = s.receive(piece)
        while step:
            events += step
            if s.state is SmtpdState.QUEUE_STARTING:
                step = s.queue_started(812345679)
            elif s.state is SmtpdState.QUEUE_CLOSING:
                step = s.queue_result(0, 4242, 812345679)
            else:
                step = []
    return events, s


def messages(events: list) -> list[tuple[str, bytes]]:
    """(sender, stored body) of each message handed to qmail-queue with its envelope."""
    found, body = [], b""
    for event in events:
        if isinstance(event, StartQueue):
            body = b""
        elif isinstance(event, MessageData) and not event.data.startswith(b"Received: from"):
            body += event.data
        elif isinstance(event, EndOfData):
            found.append((event.sender, body))
    return found


# -- the decoder: blast against each fake end of data ----------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("commands", [SMUGGLED, b""], ids=["with commands", "alone"])
def test_a_fake_end_of_data_never_ends_the_message(name: str, commands: bytes) -> None:
    raw = HEADER + VARIANTS[name] + commands + REAL_END + b"QUIT\r\n"
    for chunk in (0, 1, 2, 3):
        decoder = DataDecoder()
        pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
        stored, consumed = b"", 0
        try:
            for piece in pieces:
                decoded = decoder.feed(piece)
                stored, consumed = stored + decoded.data, consumed + decoded.consumed
                if decoded.done:
                    break
        except BareLineFeed:
            assert name in REFUSED
            continue
        assert name not in REFUSED
        assert decoder.done and raw[consumed:] == b"QUIT\r\n"  # ends at the real end only
        assert stored.startswith(b"Subject: outer\n\n")
        if commands:
            assert STORED[name] in stored and stored.endswith(b"smuggled\n")


def blast_oracle(raw: bytes) -> tuple[str, int]:
    """Where blast must stop, from the bytes alone: ("bare LF" | "end" | "more", offset).

    The DATA line's own CR LF comes first, so the message ends at the first CR LF . CR LF of
    CR LF + raw, unless an LF with no CR before it comes earlier.
    """
    seen = b"\r\n" + raw
    end = seen.find(REAL_END)
    limit = len(seen) if end < 0 else end + len(REAL_END)
    bare = re.search(rb"(?<!\r)\n", seen[:limit])
    if bare:
        return "bare LF", bare.start() - 2
    return ("end", limit - 2) if end >= 0 else ("more", len(raw))


# Bytes that build every variant and more, so hypothesis explores the neighbourhood of a dot.
pieces_near_a_dot = st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"x", b"\r\n", b"..", REAL_END, b"MAIL FROM:<f@x>"]),
    max_size=24,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(pieces_near_a_dot | st.binary(max_size=64), st.lists(st.integers(min_value=0), max_size=6))
def test_blast_ends_exactly_at_the_first_crlf_dot_crlf(raw: bytes, cuts: list[int]) -> None:
    verdict, offset = blast_oracle(raw)
    decoder, consumed = DataDecoder(), 0
    try:
        for piece in splits(raw, cuts):
            decoded = decoder.feed(piece)
            consumed += decoded.consumed
            if decoded.done:
                break
    except BareLineFeed:
        assert verdict == "bare LF"
        return
    assert verdict == ("end" if decoder.done else "more")
    assert consumed == offset


# -- the whole session: one message at most, never the forged envelope -----------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("commands", [SMUGGLED, b""], ids=["with commands", "alone"])
def test_session_queues_at_most_the_one_real_message(name: str, commands: bytes) -> None:
    fake = ENVELOPE + HEADER + VARIANTS[name]
    wire = fake + commands + REAL_END + b"QUIT\r\n"
    # one read for everything, then the fake end of data alone at the end of a read
    for pieces in (
        [wire],
        [fake, wire[len(fake) :]],
        [wire[: len(fake) - 1], wire[len(fake) - 1 :]],
    ):
        events, s = run_session(pieces)
        texts = [e.text for e in events if isinstance(e, Reply)]
        found = messages(events)
        if name in REFUSED:
            assert found == []
            assert texts[-1] == b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
            assert events[-1] == Close(1)
        else:
            assert [sender for sender, _ in found] == ["bob@example.test"]
            assert texts[-2:] == [b"250 ok 812345679 qp 4242\r\n", b"221 example.test\r\n"]
        assert sum(isinstance(e, StartQueue) for e in events) == 1
        assert s.state is SmtpdState.CLOSED


@pytest.mark.parametrize("cut", range(len(REAL_END) + 1))
def test_a_real_end_of_data_split_anywhere_ends_the_message_once(cut: int) -> None:
    head = ENVELOPE + b"Subject: s\r\n\r\nbody"
    tail = REAL_END + b"QUIT\r\n"
    events, _ = run_session([head + tail[:cut], tail[cut:]])
    assert messages(events) == [("bob@example.test", b"Subject: s\n\nbody\n")]
    texts = [e.text for e in events if isinstance(e, Reply)]
    assert texts[-2:] == [b"250 ok 812345679 qp 4242\r\n", b"221 example.test\r\n"]


# -- outbound: what our qmail-remote sends can be misread by no receiver ----------------------

stored_bodies = (st.binary(max_size=200) | pieces_near_a_dot).map(
    lambda body: body if body.endswith(b"\n") else body + b"\n"
)
ANY_END = re.compile(b"|".join(re.escape(v) for v in [REAL_END, *VARIANTS.values()]))


@settings(max_examples=400, deadline=None)
@given(stored_bodies, st.lists(st.integers(min_value=0), max_size=6))
def test_encoder_sends_one_end_of_data_at_the_end_and_no_bare_cr_or_lf(body, cuts) -> None:
    encoder = DataEncoder()
    wire = b"".join(encoder.feed(piece) for piece in splits(body, cuts)) + encoder.finish()
    after_data = b"\r\n" + wire  # the DATA command's own line end comes first
    assert after_data.count(REAL_END) == 1 and after_data.endswith(REAL_END)
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", wire) is None
    # even a receiver that takes any variant for the end finds the end only at the end
    assert ANY_END.search(after_data).start() == len(after_data) - len(REAL_END)
    verdict, offset = blast_oracle(wire)
    assert (verdict, offset) == ("end", len(wire))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_encoder_turns_every_stored_variant_into_plain_lines(name: str) -> None:
    body = b"hello" + VARIANTS[name] + SMUGGLED.replace(b"\r\n", b"\n") + b"\n"
    wire = encode_data(body)
    assert ANY_END.search(b"\r\n" + wire).start() == len(wire) - 3
    decoded = DataDecoder().feed(wire)
    assert decoded.done and decoded.consumed == len(wire)


def test_qmail_103s_encoder_would_pass_a_bare_cr_variant_through() -> None:
    """Why we differ from 1.03 (see sim.qmail.smtp_data): it sends stored CRs as they are."""
    wire = encode_data(b"hello\r.\rMAIL FROM:<f@x>\n", qmail103=True)
    assert b"\r.\r" in wire
    assert b"\r.\r" not in encode_data(b"hello\r.\rMAIL FROM:<f@x>\n")
