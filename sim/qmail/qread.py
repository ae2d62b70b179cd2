"""qmail-qread's and qmail-qstat's reports, from what they read in the queue.

qmail-qread prints, per message, `<date> GMT  #<id>  <bytes>  <sender> ` (+ `bouncing` when a
bounce file exists), then one line per recipient `\\tlocal\\t<addr>` or `\\tremote\\t<addr>`,
prefixed `  done` once delivered; the date is the info file's mtime (the message's birth).
qmail-qstat counts the files in mess/ and in todo/.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.qmail.dates import qread_date


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One message as qmail-qread sees it: info/ (sender, birth), mess/ size, channel files."""

    id: int
    birth: float | None  # None: not preprocessed yet (no info file)
    size: int
    sender: str | None
    bouncing: bool
    recipients: Sequence[tuple[str, bool, str]]  # (channel, done, address)
    next_retry: float | None = None  # qmailsim's addition, shown after the recipients


def qread_lines(message: QueuedMessage) -> list[str]:
    """The lines qmail-qread prints for one message (without newlines)."""
    date = qread_date(message.birth) if message.birth is not None else "??? (not preprocessed)"
    sender = "???" if message.sender is None else message.sender
    head = f"{date}  #{message.id}  {message.size}  <{sender}> "
    if message.bouncing:
        head += " bouncing"
    lines = [head]
    for channel, done, address in message.recipients:
        lines.append(f"{'  done' if done else ''}\t{channel}\t{address}")
    if message.next_retry is not None:
        lines.append(f"\tnext retry {qread_date(message.next_retry)}")
    return lines


def qstat_lines(in_queue: int, in_todo: int) -> list[str]:
    """qmail-qstat's two lines."""
    return [
        f"messages in queue: {in_queue}",
        f"messages in queue but not yet preprocessed: {in_todo}",
    ]


def qread_report(messages: Iterable[QueuedMessage]) -> list[str]:
    """Every message, in queue id order (qmail-qread walks the split directories in order)."""
    out: list[str] = []
    for message in sorted(messages, key=lambda m: m.id):
        out += qread_lines(message)
    return out
