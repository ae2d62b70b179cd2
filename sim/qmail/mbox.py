"""mbox delivery: the bytes appended for one message and the operations around them (mbox(5)).

Theory of operation. qmail-local appends one delivery to an mbox file (`mailfile`): open
for append (created 0600), take an exclusive lock (waiting at most 30 s: then it gives up
temporarily; if locking fails otherwise it goes on unlocked), remember the end offset, write
(`mbox_bytes`): the From_ line, Return-Path, Delivered-To, the message with every line
matching `^>*From ` given one more `>`, a final newline if the message lacked one, and one
blank line; then fsync. On a write error with the lock held it truncates the file back to
the remembered end, so readers never see half a message; the failure is temporary.

`mailfile` is a generator like `sim.qmail.maildir.maildir_child`: it yields operations,
receives their results, has failures thrown in as OSError (the lock timeout as
TimeoutError), and returns the step's Outcome. `split_mbox` reads the format back (">From"
quoting undone), for tests and tools.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from sim.qmail.constants import MBOX_LOCK_WAIT
from sim.qmail.errors import BadInput
from sim.qmail.local import SUCCESS, HeaderLines, Outcome, error_str, report
from sim.qmail.maildir import Close, Fsync, WriteAll, drive
from sim.qmail.text import s2b


@dataclass(frozen=True, slots=True)
class OpenAppend:
    """Open `path` for appending, creating it with `mode` if missing."""

    path: str
    mode: int = 0o600


@dataclass(frozen=True, slots=True)
class LockExclusive:
    """Take an exclusive lock (flock or lockf); after `timeout` s throw TimeoutError instead."""

    path: str
    timeout: int = MBOX_LOCK_WAIT


@dataclass(frozen=True, slots=True)
class SeekEnd:
    """Move to the end of the open file; returns the offset (the length before this delivery)."""

    path: str


@dataclass(frozen=True, slots=True)
class Truncate:
    """Cut the open file back to `length` bytes, undoing a partial append."""

    path: str
    length: int


Op = OpenAppend | LockExclusive | SeekEnd | WriteAll | Fsync | Truncate | Close

_FROM_LINE = re.compile(rb"^(?=>*From )", re.MULTILINE)
_QUOTED_FROM = re.compile(rb"^>(?=>*From )", re.MULTILINE)


def quote_from(message: bytes) -> bytes:
    """Give every line matching `^>*From ` one more leading `>` (undone by `unquote_from`)."""
    return _FROM_LINE.sub(b">", message)


def unquote_from(text: bytes) -> bytes:
    """Take one `>` off every line matching `^>+From `."""
    return _QUOTED_FROM.sub(b"", text)


def mbox_bytes(lines: HeaderLines, message: bytes) -> bytes:
    """The bytes one delivery appends to an mbox."""
    body = quote_from(message)
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return s2b(lines.ufline + lines.rpline + lines.dtline) + body + b"\n"


def _quietly(op: Op) -> Generator[Op, Any, None]:
    """An operation whose failure qmail does not check."""
    with contextlib.suppress(OSError):
        yield op


def mailfile(path: str, data: bytes) -> Generator[Op, Any, Outcome]:
    """Append `data` (from `mbox_bytes`) to the mbox `path`: yield operations, return an Outcome."""
    try:
        yield OpenAppend(path)
    except OSError as failure:
        return report("mbox_open", file=path, err=error_str(failure.errno))
    try:
        yield LockExclusive(path)
        locked = True
    except TimeoutError:
        yield from _quietly(Close(path))
        return report("slow_lock")
    except OSError:
        locked = False  # qmail goes on without the lock
    try:
        end = yield SeekEnd(path)
    except OSError:
        end = None
    try:
        yield WriteAll(path, data)
        yield Fsync(path)
    except OSError as failure:
        if locked and end is not None:
            yield from _quietly(Truncate(path, end))
        yield from _quietly(Close(path))
        return report("mbox_write", file=path, err=error_str(failure.errno))
    yield from _quietly(Close(path))
    return SUCCESS


def mbox_ops(path: str, data: bytes) -> list[Op]:
    """The operations of an append that meets no error."""
    return drive(mailfile(path, data), lambda op: 0 if isinstance(op, SeekEnd) else None)[0]


@dataclass(frozen=True, slots=True)
class MboxMessage:
    """One message read back: its From_ line and the text after it, quoting undone."""

    from_line: bytes
    message: bytes


def split_mbox(data: bytes) -> list[MboxMessage]:
    """The messages of an mbox written by `mbox_bytes`; BadInput if it is not one."""
    if not data:
        return []
    if not data.startswith(b"From "):
        raise BadInput("not an mbox: it does not start with a From_ line")
    starts = [0, *(m.start() + 1 for m in re.finditer(rb"\nFrom ", data))]
    messages = []
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        head, newline, rest = data[start:end].partition(b"\n")
        if not newline:
            raise BadInput("not an mbox: a From_ line without a newline")
        if rest.endswith(b"\n"):
            rest = rest[:-1]  # the blank line that ends every message
        messages.append(MboxMessage(head + b"\n", unquote_from(rest)))
    return messages
