"""Reading qmail-send's log as stored: splogger's `seconds.micro` stamps or multilog's TAI64N.

The model's hosts log through splogger into `log/qmail-send.log` (see `sim.programs.splogger`);
recorded logs from real machines usually carry multilog's `@4000…` labels. Both become
(time, event) pairs for `sim.qmail.sendlog_metrics.analyze`. Lines that are not qmail-send's
(a folded continuation `stamp+…`, a stray message) are skipped: a log is evidence, not input
to trust.
"""

from __future__ import annotations

import re

from sim.qmail.errors import BadInput
from sim.qmail.sendlog import Event, LogLine, Tai64n, parse_event, parse_line
from sim.qmail.text import b2s

_SPLOGGER = re.compile(r"(\d+)\.(\d{6}) (.*)")


def parse_send_log(data: bytes, epoch: float = 0.0) -> list[tuple[float | None, Event]]:
    """(seconds since `epoch` or None if unstamped, event) for each qmail-send line."""
    out: list[tuple[float | None, Event]] = []
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        text = b2s(raw)
        try:
            if text.startswith("@"):
                line = parse_line(raw)
                out.append((None if line.t is None else line.t - epoch, line.event))
                continue
            match = _SPLOGGER.fullmatch(text)
            if match:
                t = int(match[1]) - epoch + int(match[2]) / 1e6
                out.append((round(t, 6), parse_event(match[3])))
            else:
                out.append((None, parse_event(text)))
        except BadInput:
            continue
    return out


def log_lines(data: bytes, epoch: float = 0.0) -> list[LogLine]:
    """The log as `LogLine`s stamped in seconds since `epoch`, for `analyze`."""
    return [
        LogLine(event, None if t is None else Tai64n.from_time(max(0.0, t)))
        for t, event in parse_send_log(data, epoch)
    ]
