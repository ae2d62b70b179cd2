"""Bounce messages in qmail's QSBMF form: the failure paragraphs, the policy, the message.

Theory of operation: when a delivery ends in a `D` report, qmail-send appends one
*recipient paragraph* to `bounce/<id>` (`bounce_paragraph`). When the message is finally
eliminated, it decides what the bounce is (`bounce_envelope`: single, double or triple,
after reducing a VERP sender) and, unless a triple bounce is discarded, hands qmail-queue
the whole bounce (`make_bounce`): a few header lines, the intro paragraph, the collected
paragraphs, a break line, `Return-Path:` and the entire mess file. qmail-queue adds its own
Received line in front. `parse_bounce` reads such a bounce back, as a QSBMF reader would.

Inside a paragraph qmail keeps the text free of blank lines: every newline that directly
follows a newline (the last byte excepted) becomes `/`, so a run of k empty lines turns into
k slashes in front of the next line. `parse_bounce` turns leading slashes back into empty
lines, which is exact as long as no line of the failure text itself starts with `/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sim.qmail.dates import qmail_date
from sim.qmail.errors import BadInput
from sim.qmail.rfc822 import quote_address
from sim.qmail.text import b2s, s2b

VERP_SUFFIX = "-@[]"  # marks a VERP sender inside the queue: `x-@host-@[]`
DOUBLE_BOUNCE_SENDER = "#@[]"  # envelope sender of a double bounce
QSBMF_START = b"Hi. This is the"

BOUNCE_TEXT: dict[str, str] = {
    "subject": "failure notice",
    "hi": "Hi. This is the qmail-send program at {bouncehost}.",
    "single": (
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out."
    ),
    "double": "I tried to deliver a bounce message to this address, but the bounce bounced!",
    "break single": "--- Below this line is a copy of the message.",
    "break double": "--- Below this line is the original bounce.",
}

_BLANK_INSIDE = re.compile(rb"(?<=\n)\n(?!\Z)")


class BounceKind(StrEnum):
    """What qmail-send does with `bounce/<id>`, decided by the message's sender."""

    SINGLE = "single"  # back to the sender, from ""
    DOUBLE = "double"  # the message was a bounce: to the postmaster, from #@[]
    TRIPLE = "triple"  # a double bounce failed: discarded


class BounceHosts(Protocol):
    """The four control values a bounce needs (`sim.qmail.control.Control` has them)."""

    bouncefrom: str
    bouncehost: str
    doublebounceto: str
    doublebouncehost: str


@dataclass(frozen=True, slots=True)
class BounceEnvelope:
    """The bounce's envelope and the sender its copy is returned for (`Return-Path:`)."""

    kind: BounceKind
    sender: str  # envelope sender of the bounce: "" or #@[]; "" when discarded
    recipient: str  # envelope recipient, also the To: line; "" when discarded
    original_sender: str  # the message's sender, VERP suffix removed


@dataclass(frozen=True, slots=True)
class ParsedBounce:
    """A QSBMF bounce read back: intro, failures, break line and the returned message."""

    intro: bytes  # the intro paragraph, each line ending in LF
    recipients: tuple[tuple[str, bytes], ...]  # (address, failure text with its empty lines)
    double: bool
    break_line: bytes
    return_path: str | None  # what stood inside `Return-Path: <...>`, RFC 822-quoted
    message: bytes  # the original message (the mess file for qmail's bounces)


def bounce_paragraph(recipient: str, text: bytes) -> bytes:
    """The bytes appended to `bounce/<id>` for one `D` report (qmail-send's addbounce).

    `recipient` must already have its virtualdomains prepend removed; newlines in it
    become `_`. The text is newline-terminated, empty lines become `/`, then one blank line.
    """
    head = b"<" + s2b(recipient).replace(b"\n", b"_") + b">:\n"
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return _BLANK_INSIDE.sub(b"/", head + text) + b"\n"


def strip_verp(sender: str) -> str:
    """`x-@host-@[]` -> `x-@host`: the queue's VERP mark removed, as qmail-send does first."""
    return sender[: -len(VERP_SUFFIX)] if sender.endswith(VERP_SUFFIX) else sender


def bounce_kind(sender: str) -> BounceKind:
    """Single, double or triple bounce, judged on the sender after `strip_verp`."""
    sender = strip_verp(sender)
    if sender == "":
        return BounceKind.DOUBLE
    if sender == DOUBLE_BOUNCE_SENDER:
        return BounceKind.TRIPLE
    return BounceKind.SINGLE


def bounce_envelope(sender: str, hosts: BounceHosts) -> BounceEnvelope:
    """Who the bounce for a message from `sender` goes to, and from whom (qmail-send(8))."""
    kind = bounce_kind(sender)
    original = strip_verp(sender)
    if kind is BounceKind.SINGLE:
        return BounceEnvelope(kind, "", original, original)
    if kind is BounceKind.DOUBLE:
        postmaster = f"{hosts.doublebounceto}@{hosts.doublebouncehost}"
        return BounceEnvelope(kind, DOUBLE_BOUNCE_SENDER, postmaster, original)
    return BounceEnvelope(kind, "", "", original)


def make_bounce(
    sender: str, paragraphs: bytes, mess: bytes, now: float, hosts: BounceHosts
) -> bytes:
    """The bounce qmail-send feeds qmail-queue (which then adds its Received line).

    `paragraphs` is the content of `bounce/<id>`, `mess` the whole mess file, `now` the
    time for the Date line. A triple bounce is never made: check `bounce_kind` first.
    """
    envelope = bounce_envelope(sender, hosts)
    if envelope.kind is BounceKind.TRIPLE:
        raise ValueError(f"a triple bounce is discarded, not made (sender {sender!r})")
    kind = envelope.kind.value
    head = (
        f"Date: {qmail_date(now)}\n"
        f"From: {quote_address(f'{hosts.bouncefrom}@{hosts.bouncehost}')}\n"
        f"To: {quote_address(envelope.recipient)}\n"
        f"Subject: {BOUNCE_TEXT['subject']}\n"
        "\n"
        f"{BOUNCE_TEXT['hi'].format(bouncehost=hosts.bouncehost)}\n"
        f"{BOUNCE_TEXT[kind]}\n"
        "\n"
    )
    tail = (
        f"{BOUNCE_TEXT['break ' + kind]}\n"
        "\n"
        f"Return-Path: <{quote_address(envelope.original_sender)}>\n"
    )
    return s2b(head) + paragraphs + s2b(tail) + mess


def _line(body: bytes, pos: int) -> tuple[bytes, int]:
    """The line starting at `pos` (without its LF) and where the next one starts."""
    end = body.find(b"\n", pos)
    if end < 0:
        return body[pos:], len(body)
    return body[pos:end], end + 1


def _paragraph(body: bytes, pos: int) -> tuple[list[bytes], int]:
    """The non-blank lines from `pos` up to a blank line (or the end), and what follows."""
    lines: list[bytes] = []
    while pos < len(body):
        line, pos = _line(body, pos)
        if not line:
            break
        lines.append(line)
    return lines, pos


def _unslash(lines: list[bytes]) -> bytes:
    """Turn each line's leading `/`s back into the empty lines they stand for."""
    out = []
    for line in lines:
        rest = line.lstrip(b"/")
        out.append(b"\n" * (len(line) - len(rest)) + rest + b"\n")
    return b"".join(out)


def _body(message: bytes) -> bytes:
    """The body after the header's blank line; a QSBMF body begins `Hi. This is the`."""
    if message.startswith(b"\n"):
        start = 1
    elif (end := message.find(b"\n\n")) >= 0:
        start = end + 2
    else:
        raise BadInput("not a QSBMF bounce: the message has no body")
    if not message.startswith(QSBMF_START, start):
        raise BadInput("not a QSBMF bounce: the body does not begin with 'Hi. This is the'")
    return message[start:]


def _original(rest: bytes) -> tuple[str | None, bytes]:
    """Split qmail's `Return-Path: <...>` line off the returned message, if it is there."""
    line, after = _line(rest, 0)
    if line.startswith(b"Return-Path: <") and line.endswith(b">") and after > len(line):
        return b2s(line[len(b"Return-Path: <") : -1]), rest[after:]
    return None, rest


def parse_bounce(message: bytes) -> ParsedBounce:
    """Read a QSBMF bounce (cr.yp.to/proto/qsbmf.txt) as `make_bounce` writes it.

    Raises:
        BadInput: the message is not a QSBMF bounce or its paragraphs are malformed.
    """
    body = _body(message)
    intro_lines, pos = _paragraph(body, 0)
    recipients: list[tuple[str, bytes]] = []
    while pos < len(body):
        if body.startswith(b"\n", pos):  # extra blank lines end the previous text
            if recipients:
                address, text = recipients[-1]
                recipients[-1] = (address, text + b"\n")
            pos += 1
            continue
        lines, pos = _paragraph(body, pos)
        first = lines[0]
        if first.startswith(b"-"):
            return_path, original = _original(body[pos:])
            return ParsedBounce(
                intro=b"".join(line + b"\n" for line in intro_lines),
                recipients=tuple(recipients),
                double=s2b(BOUNCE_TEXT["double"]) in intro_lines,
                break_line=first,
                return_path=return_path,
                message=original,
            )
        if not (first.startswith(b"<") and first.endswith(b">:") and len(first) >= 3):
            raise BadInput(f"not a QSBMF bounce: paragraph starts with {first[:80]!r}")
        recipients.append((b2s(first[1:-2]), _unslash(lines[1:])))
    raise BadInput("not a QSBMF bounce: no break paragraph before the end")
