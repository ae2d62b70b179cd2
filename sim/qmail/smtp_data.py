"""SMTP DATA transparency both ways: qmail-smtpd's `blast` decoder and qmail-remote's encoder.

Theory of operation, inbound (`DataDecoder`, qmail-smtpd). After `354` the client sends the
message with CR LF line ends and leading dots doubled, ended by a line holding one dot. qmail
reads it a byte at a time through a five-state machine, written here as the table `BLAST`
(state x byte -> bytes stored, next state):

* CR LF is stored as LF; a CR not followed by LF is stored as it is (8-bit clean);
* at the start of a line a dot is dropped (`..x` -> `.x`, `.x` -> `x`), except that a dot
  followed by a lone CR keeps both; `.` CR LF ends the message;
* an LF that does not follow a CR is a bare LF: `451 See http://pobox.com/~djb/docs/smtplf.html.`
  and the connection is dropped (`BareLineFeed`).

The decoder is incremental: input may be split anywhere (one byte at a time, or the final
CR LF . CR LF across reads) and the decoded bytes stream out, so memory stays bounded with no
line-length limit; runs inside a line are copied in bulk. It reports how many input bytes it
consumed, since whatever follows the final dot is the next SMTP command. Beside it, `HopCounter`
counts header lines whose raw text starts with `Received` or `Delivered` (any ASCII case),
up to the first empty line; 100 or more means a mail loop (554 after the final dot). With
`databytes` set, only the first `databytes` stored bytes are passed on: one more cancels the
queue write (552 after the final dot); reading still goes on to the final dot.

Outbound (`DataEncoder`, qmail-remote). The stored message has LF line ends; qmail-remote
sends each LF as CR LF, doubles a leading dot and adds `.` CR LF. The message must end in LF
(`DSMTP cannot transfer messages with partial final lines. (#5.6.2)`). qmail 1.03 sends a CR
of the stored message as it is. We deliberately differ: a stored CR LF is sent as one CR LF and
any other CR as a CR LF line end (RFC 5321 2.3.8; Python's smtplib does the same), so the
output never holds a bare CR or LF, and CR LF . CR LF appears only as the terminator whatever
the stored bytes are (no `\\r.\\r` or `\\n.\\n` for a lenient receiver to misread: SMTP smuggling).
`qmail103=True` gives 1.03's exact bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.qmail.constants import MAXHOPS
from sim.qmail.errors import BadInput

CR, LF, DOT = 0x0D, 0x0A, 0x2E

# blast's states, numbered as in qmail-smtpd; END and BARE_LF stop the machine.
MID, LINE_START, AFTER_DOT, AFTER_DOT_CR, AFTER_CR = range(5)
END, BARE_LF = -1, -2
STATE_NAMES = {
    MID: "in a line",
    LINE_START: "after CR LF",
    AFTER_DOT: "after CR LF .",
    AFTER_DOT_CR: "after CR LF . CR",
    AFTER_CR: "after CR",
    END: "end of data",
    BARE_LF: "bare LF",
}

PARTIAL_FINAL_LINES = "DSMTP cannot transfer messages with partial final lines. (#5.6.2)"

_CR_OR_LF = re.compile(rb"[\r\n]")
_ANY_LINE_END = re.compile(rb"\r\n?")


class BareLineFeed(BadInput):
    """The client sent an LF without a CR inside DATA (qmail answers 451 and hangs up)."""

    def __init__(self) -> None:
        super().__init__("bare LF in DATA: see http://pobox.com/~djb/docs/smtplf.html")


class PartialFinalLine(BadInput):
    """The stored message does not end in LF, so SMTP cannot carry it (qmail-remote's D report)."""

    def __init__(self) -> None:
        self.report = PARTIAL_FINAL_LINES
        super().__init__(PARTIAL_FINAL_LINES[1:])


def _blast_step(state: int, ch: int) -> tuple[bytes, int]:
    """One input byte of qmail-smtpd's blast: the bytes it stores and the next state."""
    byte = bytes((ch,))
    if state == AFTER_CR:
        if ch == LF:
            return b"\n", LINE_START
        return (b"\r", AFTER_CR) if ch == CR else (b"\r" + byte, MID)
    if state == AFTER_DOT_CR:
        if ch == LF:
            return b"", END
        return (b".\r", AFTER_CR) if ch == CR else (b".\r" + byte, MID)
    if ch == LF:
        return b"", BARE_LF
    if ch == CR:
        return b"", AFTER_DOT_CR if state == AFTER_DOT else AFTER_CR
    if state == LINE_START and ch == DOT:
        return b"", AFTER_DOT
    return byte, MID


BLAST: dict[int, tuple[tuple[bytes, int], ...]] = {
    state: tuple(_blast_step(state, ch) for ch in range(256))
    for state in (MID, LINE_START, AFTER_DOT, AFTER_DOT_CR, AFTER_CR)
}


class HopCounter:
    """Counts raw header lines starting with Received/Delivered, as blast does on the fly."""

    __slots__ = ("_line", "hops", "in_header")

    def __init__(self) -> None:
        self.hops = 0
        self.in_header = True
        self._line = b""  # the first 9 raw bytes of the current line

    def feed(self, raw: bytes) -> None:
        """Look at more raw DATA input (CR LF line ends, dots still doubled)."""
        i, n = 0, len(raw)
        while self.in_header and i < n:
            j = raw.find(b"\n", i)
            end = n if j < 0 else j
            if len(self._line) < 9:
                self._line += raw[i : min(end, i + 9 - len(self._line))]
            if j < 0:
                return
            self._end_line()
            i = j + 1

    def _end_line(self) -> None:
        line, self._line = self._line.lower(), b""
        if line == b"\r":
            self.in_header = False
        elif line.startswith((b"received", b"delivered")):
            self.hops += 1


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one `DataDecoder.feed` produced: bytes to store, input used, final dot seen."""

    data: bytes
    consumed: int
    done: bool


class DataDecoder:
    """qmail-smtpd's blast, incremental: raw DATA input in, stored (LF) message bytes out."""

    __slots__ = ("_hop_counter", "_state", "databytes", "stored_bytes")

    def __init__(self, databytes: int = 0) -> None:
        if databytes < 0:
            raise ValueError("databytes must be 0 (no limit) or positive")
        self.databytes = databytes
        self.stored_bytes = 0  # every byte blast stored, passed on or not
        self._state = LINE_START
        self._hop_counter = HopCounter()

    @property
    def done(self) -> bool:
        """True once the final `.` line has been read."""
        return self._state == END

    @property
    def hops(self) -> int:
        """Received/Delivered header lines seen so far."""
        return self._hop_counter.hops

    @property
    def too_many_hops(self) -> bool:
        """qmail's loop test: MAXHOPS (100) or more hops."""
        return self.hops >= MAXHOPS

    @property
    def overflowed(self) -> bool:
        """True once the stored message is longer than databytes (when that is set)."""
        return 0 < self.databytes < self.stored_bytes

    def feed(self, data: bytes) -> Decoded:
        """Decode the next input bytes; stops right after the final dot line.

        Raises:
            BareLineFeed: an LF not preceded by CR; the session is then over.
        """
        if self._state in (END, BARE_LF):
            raise ValueError(f"DataDecoder fed after {STATE_NAMES[self._state]}")
        out: list[bytes] = []
        state, i, n = self._state, 0, len(data)
        while i < n:
            if state == MID:
                match = _CR_OR_LF.search(data, i)
                j = n if match is None else match.start()
                out.append(data[i:j])
                i = j
                if match is None:
                    break
            emit, state = BLAST[state][data[i]]
            i += 1
            if state < 0:
                break
            out.append(emit)
        self._state = state
        if state == BARE_LF:
            raise BareLineFeed()
        self._hop_counter.feed(data[:i] if i < n else data)
        return Decoded(self._pass_on(b"".join(out)), i, state == END)

    def _pass_on(self, stored: bytes) -> bytes:
        """Count stored bytes; with databytes, only the first databytes reach qmail-queue."""
        room = len(stored) if not self.databytes else max(0, self.databytes - self.stored_bytes)
        self.stored_bytes += len(stored)
        return stored[:room]


class DataEncoder:
    """qmail-remote's blast, incremental: a stored message (LF line ends) -> DATA bytes."""

    __slots__ = ("_last", "_line_start", "_pending_cr", "qmail103")

    def __init__(self, *, qmail103: bool = False) -> None:
        self.qmail103 = qmail103  # True: send stored CRs as they are, as qmail 1.03 does
        self._line_start = True
        self._pending_cr = False  # a CR ended the last chunk: is it part of CR LF?
        self._last: int | None = None  # the last stored byte seen

    def feed(self, stored: bytes) -> bytes:
        """Encode the next bytes of the stored message."""
        if not stored:
            return b""
        self._last = stored[-1]
        text = stored
        if not self.qmail103:
            text = (b"\r" if self._pending_cr else b"") + stored
            self._pending_cr = text.endswith(b"\r")
            text = _ANY_LINE_END.sub(b"\n", text[:-1] if self._pending_cr else text)
            if not text:
                return b""
        out = text.replace(b"\n.", b"\n..")
        if self._line_start and out.startswith(b"."):
            out = b"." + out
        self._line_start = text.endswith(b"\n")
        return out.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        """The terminating `.` CR LF.

        Raises:
            PartialFinalLine: the stored message does not end in LF.
        """
        if self._last is not None and self._last != LF:
            raise PartialFinalLine()
        return b".\r\n"


def encode_data(stored: bytes, *, qmail103: bool = False) -> bytes:
    """The whole DATA stream for a stored message, terminator included."""
    encoder = DataEncoder(qmail103=qmail103)
    return encoder.feed(stored) + encoder.finish()
