"""Reading qmail-send's log as stored: splogger's `seconds.micro` stamps or multilog's TAI64N.

The model's hosts log through splogger into `log/qmail-send.log` (see `sim.programs.splogger`);
recorded logs from real machines usually carry multilog's `@4000…` labels. Both become
(time, event) pairs for `sim.qmail.sendlog_metrics.analyze`. Lines that are not qmail-send's
(a folded continuation `stamp+…`, a stray message) are skipped: a log is evidence, not input
to trust.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sim.qmail.errors import BadInput
from sim.qmail.sendlog import Event, LogLine, Tai64n, parse_event, parse_line
from sim.qmail.text import b2s

_SPLOGGER = re.compile(r"(\d+)\.(\d{6}) (.*)")


def parse_send_log(data: bytes, epoch: float = 0.0) -> list[tuple[float | None, Event]]:
    """(seconds since `epoch` or None if unstamped, event) for each qmail-send line."""
    return list(iter_send_log(data, epoch))


def iter_send_log(data: bytes, epoch: float = 0.0) -> Iterator[tuple[float | None, Event]]:
    """`parse_send_log` one line at a time: a day's log is never held twice."""
    for raw in _lines(data):
        if not raw.strip():
            continue
        text = b2s(raw)
        try:
            if text.startswith("@"):
                line = parse_line(raw)
                yield (None if line.t is None else line.t - epoch, line.event)
                continue
            match = _SPLOGGER.fullmatch(text)
            if match:
                t = int(match[1]) - epoch + int(match[2]) / 1e6
                yield (round(t, 6), parse_event(match[3]))
            else:
                yield (None, parse_event(text))
        except BadInput:
            continue


def _lines(data: bytes) -> Iterator[bytes]:
    """The lines of `data`, without their newlines, one at a time (no copy of the whole)."""
    start, size = 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield data[start:end]
        start = end + 1


def log_lines(data: bytes, epoch: float = 0.0) -> Iterator[LogLine]:
    """The log as `LogLine`s stamped in seconds since `epoch`, for `analyze`, one by one."""
    for t, event in iter_send_log(data, epoch):
        yield LogLine(event, None if t is None else Tai64n.from_time(max(0.0, t)))
