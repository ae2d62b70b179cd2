"""The envelope: what qmail-queue reads on fd 1, and the record files made from it.

Theory of operation. An envelope is a sender and a list of recipients. It travels in four
byte forms, all made of NUL-terminated records tagged by one letter (SECURITY: "don't parse"):

* qmail-queue's fd 1 (qmail-queue(8)): `F<sender>\\0`, `T<recipient>\\0` per recipient, then
  one extra `\\0`. `EnvelopeReader` checks it in qmail-queue's order, a byte at a time in
  effect, so the first fault qmail-queue would meet decides the exit code: a first byte other
  than `F` or an item not starting with `T` is 91, an address of 1003 bytes or more is 11
  (decided as soon as the 1003rd byte arrives without a NUL), end of input before the final
  extra NUL is 54. Bytes after the final NUL are never read.
* `intd/<id>` and `todo/<id>`: `u<uid>\\0p<pid>\\0F<sender>\\0` [QUEUE_EXTRA] `T<rcpt>\\0`...,
  without the final extra NUL (`encode_queue_file` / `parse_queue_file`).
* `info/<split>/<id>`: `F<sender>\\0`; its mtime is the message's birth.
* `local/<split>/<id>`, `remote/<split>/<id>`: `T<addr>\\0` per recipient not yet done; qmail-send
  marks one done by overwriting its `T` with `D` at the record's byte offset (no fsync).

Faults raise `BadEnvelope`, an `EnvelopeError` (so a `BadInput`) that carries the exit code
qmail-queue would use. qmail-queue prints nothing: its exit code is its whole answer, and its
callers (qmail.c's qmail_close) turn the code into a status string, `D...` permanent, `Z...`
temporary, empty for success (`qq_status`).
Readers of the stored files follow qmail-send: a last record without its NUL is ignored, a
record with an unknown type letter is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.qmail.constants import ADDRESS_MAX_QUEUE
from sim.qmail.errors import EnvelopeError
from sim.qmail.text import b2s, s2b

EXIT_TOO_LONG = 11
EXIT_READ = 54
EXIT_FORMAT = 91

# qmail-queue(8) EXIT CODES for 1.03: 0 queued, 11-40 permanent, everything else temporary.
# 75-79 are not defined; 82 (custom text on fd 6) exists only in notqmail 1.09.
QQ_EXIT_CODES: dict[int, str] = {
    0: "success",
    11: "address too long",
    31: "mail server permanently refuses the message",
    51: "out of memory",
    52: "timeout",
    53: "write error, e.g. disk full",
    54: "unable to read message or envelope",
    55: "unable to read a configuration file",
    56: "problem making a network connection from this host",
    61: "problem with the qmail home directory",
    62: "problem with the queue directory",
    63: "problem with queue/pid",
    64: "problem with queue/mess",
    65: "problem with queue/intd",
    66: "problem with queue/todo",
    71: "mail server temporarily refuses",
    72: "connection to mail server timed out",
    73: "connection to mail server rejected",
    74: "connection succeeded but communication failed",
    81: "internal bug, e.g. segfault",
    91: "envelope format error",
}
# The codes qmail-queue itself exits with; the others are for QMQP clients and filters.
QQ_OWN_EXIT_CODES = frozenset({0, 11, 51, 52, 53, 54, 61, 62, 63, 64, 65, 66, 81, 91})

# qmail.c's qmail_close: exit code -> the caller's status string.
QQ_STATUS: dict[int, str] = {
    0: "",
    11: "Denvelope address too long for qq (#5.1.3)",
    115: "Denvelope address too long for qq (#5.1.3)",  # "compatibility"
    31: "Dmail server permanently rejected message (#5.3.0)",
    51: "Zqq out of memory (#4.3.0)",
    52: "Zqq timeout (#4.3.0)",
    53: "Zqq write error or disk full (#4.3.0)",
    54: "Zqq read error (#4.3.0)",
    55: "Zqq unable to read configuration (#4.3.0)",
    56: "Zqq trouble making network connection (#4.3.0)",
    61: "Zqq trouble in home directory (#4.3.0)",
    62: "Zqq trouble creating files in queue (#4.3.0)",
    63: "Zqq trouble creating files in queue (#4.3.0)",
    64: "Zqq trouble creating files in queue (#4.3.0)",
    65: "Zqq trouble creating files in queue (#4.3.0)",
    66: "Zqq trouble creating files in queue (#4.3.0)",
    71: "Zmail server temporarily rejected message (#4.3.0)",
    72: "Zconnection to mail server timed out (#4.4.1)",
    73: "Zconnection to mail server rejected (#4.4.1)",
    74: "Zcommunication with mail server failed (#4.4.2)",
    81: "Zqq internal bug (#4.3.0)",
    91: "Zqq internal bug (#4.3.0)",
    120: "Zunable to exec qq (#4.3.0)",
}
QQ_OTHER_PERMANENT = "Dqq permanent problem (#5.3.0)"  # any other code in 11..40
QQ_OTHER_TEMPORARY = "Zqq temporary problem (#4.3.0)"  # anything else
QQ_CRASHED = "Zqq crashed (#4.3.0)"  # qmail-queue died of a signal
QQ_WAITPID_SURPRISE = "Zqq waitpid surprise (#4.3.0)"  # waitpid returned another child


def is_permanent(exit_code: int) -> bool:
    """qmail-queue(8): exit codes 11 to 40 are permanent failures, all others temporary."""
    return 11 <= exit_code <= 40


def qq_status(exit_code: int, *, write_error: bool = False) -> str:
    """The status a caller reports for qmail-queue's exit code; "" means queued.

    `write_error`: the caller failed writing to qmail-queue, so even exit 0 is a read error.
    """
    if exit_code == 0 and write_error:
        return QQ_STATUS[54]
    if exit_code in QQ_STATUS:
        return QQ_STATUS[exit_code]
    return QQ_OTHER_PERMANENT if is_permanent(exit_code) else QQ_OTHER_TEMPORARY


class BadEnvelope(EnvelopeError):
    """An envelope qmail-queue refuses; `exit_code` is the code it exits with (11, 54 or 91)."""

    def __init__(self, exit_code: int, detail: str) -> None:
        self.exit_code = exit_code
        super().__init__(f"{QQ_EXIT_CODES[exit_code]} (qmail-queue exit {exit_code}): {detail}")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A sender (`""` for a bounce) and its recipients, in order."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueFile:
    """The contents of `intd/<id>` or `todo/<id>`: who queued it, and the envelope."""

    uid: int
    pid: int
    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """One recipient line of a `local/` or `remote/` file; `offset` is where its tag byte is."""

    offset: int
    done: bool
    address: str


def _address_bytes(address: str) -> bytes:
    """An address as record bytes; a NUL would end the record early, so it is refused."""
    data = s2b(address)
    if b"\0" in data:
        raise EnvelopeError(f"address contains a NUL byte: {address!r}")
    return data


def encode_envelope(sender: str, recipients: Iterable[str]) -> bytes:
    """The bytes a caller writes to qmail-queue's fd 1: `F<sender>\\0T<rcpt>\\0...\\0`."""
    parts = [b"F" + _address_bytes(sender) + b"\0"]
    parts += [b"T" + _address_bytes(r) + b"\0" for r in recipients]
    return b"".join(parts) + b"\0"


_FIRST, _ADDRESS, _ITEM = "first byte", "address", "item"  # where EnvelopeReader is


class EnvelopeReader:
    """qmail-queue's fd 1 reader, sans I/O: feed bytes as they arrive, then `eof()`.

    `feed` returns the `Envelope` once the final NUL has arrived (and keeps returning it),
    or None while more input is needed; `consumed` counts the envelope's bytes.
    Raises `BadEnvelope` with exit code 91 or 11 as soon as the input shows the fault;
    `eof()` raises it with exit code 54 if the envelope is incomplete.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._state = _FIRST
        self._sender: str | None = None
        self._recipients: list[str] = []
        self._result: Envelope | None = None

    @property
    def consumed(self) -> int:
        """How many input bytes belong to the envelope so far."""
        return self._pos

    def feed(self, data: bytes) -> Envelope | None:
        """Take more bytes of fd 1; the envelope once complete, else None."""
        if self._result is None:
            self._buf += data
            while self._result is None and self._step():
                pass
        return self._result

    def eof(self) -> Envelope:
        """End of fd 1: the envelope, or exit 54 if the final NUL never came."""
        if self._result is None:
            raise BadEnvelope(EXIT_READ, "end of input before the final NUL")
        return self._result

    def _step(self) -> bool:
        """Consume one type byte or one address; False when more input is needed."""
        if self._pos >= len(self._buf):
            return False
        if self._state == _ADDRESS:
            return self._address()
        tag = self._buf[self._pos]
        self._pos += 1
        if self._state == _FIRST and tag != ord("F"):
            raise BadEnvelope(EXIT_FORMAT, f"first byte is {bytes([tag])!r}, not F")
        if self._state == _ITEM and tag == 0:
            assert self._sender is not None
            self._result = Envelope(self._sender, tuple(self._recipients))
            return True
        if self._state == _ITEM and tag != ord("T"):
            raise BadEnvelope(EXIT_FORMAT, f"item starts with {bytes([tag])!r}, not T")
        self._state = _ADDRESS
        return True

    def _address(self) -> bool:
        """Read one address up to its NUL, refusing 1003 bytes or more (exit 11)."""
        end = self._buf.find(b"\0", self._pos, self._pos + ADDRESS_MAX_QUEUE)
        if end < 0:
            if len(self._buf) - self._pos >= ADDRESS_MAX_QUEUE:
                raise BadEnvelope(EXIT_TOO_LONG, f"an address of {ADDRESS_MAX_QUEUE}+ bytes")
            return False
        address = b2s(bytes(self._buf[self._pos : end]))
        self._pos = end + 1
        if self._sender is None:
            self._sender = address
        else:
            self._recipients.append(address)
        self._state = _ITEM
        return True


def parse_envelope(data: bytes) -> Envelope:
    """All of fd 1 at once (qmail-queue(8)); raises `BadEnvelope` with 91, 11 or 54."""
    reader = EnvelopeReader()
    reader.feed(data)
    return reader.eof()


def queue_file_head(uid: int, pid: int) -> bytes:
    """The records qmail-queue writes to `intd/<id>` before copying the envelope: u and p."""
    return b"u%d\0p%d\0" % (uid, pid)


def encode_queue_envelope(sender: str, recipients: Iterable[str], extra: bytes = b"") -> bytes:
    """The envelope as stored after the head: F, QUEUE_EXTRA, the T records, no final NUL."""
    head = b"F" + _address_bytes(sender) + b"\0" + extra
    return head + b"".join(b"T" + _address_bytes(r) + b"\0" for r in recipients)


def encode_queue_file(
    uid: int, pid: int, sender: str, recipients: Iterable[str], extra: bytes = b""
) -> bytes:
    """All of `intd/<id>` (and so of `todo/<id>`), as qmail-queue leaves it."""
    return queue_file_head(uid, pid) + encode_queue_envelope(sender, recipients, extra)


def records(data: bytes) -> list[tuple[int, bytes]]:
    """The NUL-terminated records with their offsets; a last unterminated one is ignored."""
    found, pos = [], 0
    while (end := data.find(b"\0", pos)) >= 0:
        found.append((pos, data[pos:end]))
        pos = end + 1
    return found


def _number(digits: bytes) -> int:
    """qmail's scan_ulong: the leading decimal digits, 0 if there are none."""
    n = 0
    for byte in digits:
        if not 0x30 <= byte <= 0x39:
            break
        n = n * 10 + byte - 0x30
    return n


def parse_queue_file(data: bytes) -> QueueFile:
    """A `todo/<id>` file read as qmail-send's preprocessing reads it.

    `u` and `p` give the uid and pid (leading digits), the first `F` gives the sender, each `T`
    a recipient; any other record is qmail-send's "unknown record type". No `F` at all is also
    refused, since qmail-send could not write an info file for it.
    """
    uid = pid = 0
    sender: str | None = None
    recipients: list[str] = []
    for _, record in records(data):
        tag, rest = record[:1], record[1:]
        if tag == b"u":
            uid = _number(rest)
        elif tag == b"p":
            pid = _number(rest)
        elif tag == b"F":
            sender = b2s(rest) if sender is None else sender
        elif tag == b"T":
            recipients.append(b2s(rest))
        else:
            raise EnvelopeError(f"unknown record type {tag!r} in queue file")
    if sender is None:
        raise EnvelopeError("queue file has no F record")
    return QueueFile(uid, pid, sender, tuple(recipients))


def encode_info(sender: str) -> bytes:
    """The `info/<split>/<id>` file: `F<sender>\\0`."""
    return b"F" + _address_bytes(sender) + b"\0"


def parse_info(data: bytes) -> str:
    """The sender in an info file; qmail-send gives up on a file not starting with an F record."""
    found = records(data)
    if not found or found[0][1][:1] != b"F":
        raise EnvelopeError("info file does not start with an F record")
    return b2s(found[0][1][1:])


def encode_channel_file(addresses: Iterable[str]) -> bytes:
    """A fresh `local/` or `remote/` file: `T<addr>\\0` per recipient, none done yet."""
    return b"".join(b"T" + _address_bytes(a) + b"\0" for a in addresses)


def parse_channel_file(data: bytes) -> list[ChannelRecord]:
    """Each recipient with its byte offset and DONE flag, as a qmail-send pass reads them."""
    out = []
    for offset, record in records(data):
        tag = record[:1]
        if tag not in (b"T", b"D"):
            raise EnvelopeError(f"unknown record type {tag!r} in channel file at byte {offset}")
        out.append(ChannelRecord(offset, tag == b"D", b2s(record[1:])))
    return out


def mark_done(data: bytes, offset: int) -> bytes:
    """The channel file after qmail-send overwrites the `T` at `offset` with `D`."""
    if data[offset : offset + 1] not in (b"T", b"D"):
        raise EnvelopeError(f"no recipient record at byte {offset}")
    return data[:offset] + b"D" + data[offset + 1 :]


def pending(records_: Sequence[ChannelRecord]) -> list[ChannelRecord]:
    """The recipients still NOT DONE (a pass feeds these to the spawner and skips the rest)."""
    return [r for r in records_ if not r.done]
