"""qmail-send's activity log (qmail-log(5)): the lines it writes, a parser, and qmailanalog metrics.

Theory of operation. qmail-send writes plain lines on fd 0; text that came from outside
(addresses, delivery reports) goes through the *safe* filter first: newline becomes `/`, every
byte below 33 or above 126, and `%`, becomes `_`. The formatters below build each line shape as
bytes ending in LF. A logger such as multilog may prefix a TAI64N label (`@4000…`), decoded here
as `tai64nlocal` does (`Tai64n`). `parse_line` turns a line back into a frozen event value, and
`format_line` rebuilds it byte for byte: the filter is idempotent, so a parsed line round-trips.

The metrics qmailanalog computes from these lines are in `sim.qmail.sendlog_metrics`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from sys import intern  # a day's log names the same few addresses a million times
from typing import Literal

from sim.qmail.errors import BadInput
from sim.qmail.text import b2s, s2b

_SAFE = bytes(47 if b == 10 else b if 33 <= b <= 126 and b != 37 else 95 for b in range(256))


def safe(text: str | bytes) -> str:
    """qmail-send's logsafe(): the text up to any NUL, made printable and free of `%`."""
    if isinstance(text, str):
        try:
            text = s2b(text)
        except UnicodeEncodeError:  # not latin-1: anything past 255 is unsafe anyway
            text = bytes(min(ord(ch), 255) for ch in text)
    return b2s(text.split(b"\0", 1)[0].translate(_SAFE))


# -- TAI64N labels (multilog, tai64nlocal) ------------------------------------------------------

TAI64_UNIX = 2**62 + 10  # TAI64 label of UNIX time 0, as daemontools counts it


@dataclass(frozen=True, slots=True, order=True)
class Tai64n:
    """A TAI64N time stamp, kept as UNIX seconds and nanoseconds."""

    seconds: int
    nanoseconds: int = 0

    @property
    def t(self) -> float:
        """Seconds since the UNIX epoch, as a float."""
        return self.seconds + self.nanoseconds / 1e9

    @classmethod
    def from_time(cls, t: float) -> Tai64n:
        """The stamp for UNIX time `t`."""
        seconds = int(t // 1)
        return cls(seconds, min(round((t - seconds) * 1e9), 999_999_999))

    @classmethod
    def parse(cls, label: str) -> Tai64n:
        """`@4000000065a1b2c30a1b2c3d` -> Tai64n; BadInput if it is not a TAI64N label."""
        if not re.fullmatch(r"@[0-9a-f]{24}", label):
            raise BadInput(f"not a TAI64N label: {label!r}")
        return cls(int(label[1:17], 16) - TAI64_UNIX, int(label[17:], 16))

    def label(self) -> str:
        """The `@` + 24 hex digits form multilog writes."""
        return f"@{self.seconds + TAI64_UNIX:016x}{self.nanoseconds:08x}"


# -- events, one per line shape ----------------------------------------------------------------

Outcome = Literal["success", "deferral", "failure", "mangled"]
OUTCOMES: dict[str, Outcome] = {"K": "success", "Z": "deferral", "D": "failure"}
_LETTERS = {outcome: letter for letter, outcome in OUTCOMES.items()}


@dataclass(frozen=True, slots=True)
class NewMsg:
    """`new msg <id>`: qmail-send began preprocessing a message."""

    id: int


@dataclass(frozen=True, slots=True)
class InfoMsg:
    """`info msg <id>: bytes <n> from <sender> qp <pid> uid <uid>`."""

    id: int
    size: int
    sender: str
    qp: int
    uid: int


@dataclass(frozen=True, slots=True)
class StartingDelivery:
    """`starting delivery <n>: msg <id> to local|remote <recipient>`."""

    delivery: int
    id: int
    channel: Literal["local", "remote"]
    recipient: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """`delivery N: success|deferral|failure: text`, or `report mangled, will defer`."""

    delivery: int
    outcome: Outcome
    text: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """`status: local x/y remote x/y`, ` exitasap` after TERM."""

    local: int
    local_max: int
    remote: int
    remote_max: int
    exitasap: bool = False


@dataclass(frozen=True, slots=True)
class StatusExiting:
    """`status: exiting`."""


@dataclass(frozen=True, slots=True)
class BounceMsg:
    """`bounce msg <id> qp <pid>`: a bounce was injected."""

    id: int
    qp: int


@dataclass(frozen=True, slots=True)
class EndMsg:
    """`end msg <id>`: the message left the queue."""

    id: int


@dataclass(frozen=True, slots=True)
class TripleBounce:
    """`triple bounce: discarding bounce/<id>`."""

    id: int


@dataclass(frozen=True, slots=True)
class AlertLine:
    """`alert: <text>`: qmail-send needs help."""

    text: str


@dataclass(frozen=True, slots=True)
class WarningLine:
    """`warning: <text>`: something failed and will be retried."""

    text: str


Event = (
    NewMsg
    | InfoMsg
    | StartingDelivery
    | Delivery
    | Status
    | StatusExiting
    | BounceMsg
    | EndMsg
    | TripleBounce
    | AlertLine
    | WarningLine
)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line: its event and, if a logger stamped it, the time."""

    event: Event
    stamp: Tai64n | None = None

    @property
    def t(self) -> float | None:
        """The line's time in UNIX seconds, if stamped."""
        return None if self.stamp is None else self.stamp.t


# -- formatters: the bytes qmail-send writes ---------------------------------------------------


def _line(text: str) -> bytes:
    return s2b(text) + b"\n"


def new_msg(id: int) -> bytes:
    """`new msg 457`: preprocessing of a message began."""
    return _line(f"new msg {id}")


def info_msg(id: int, size: int, sender: str | bytes, qp: int, uid: int) -> bytes:
    """`info msg 457: bytes 1234 from <joe@a> qp 5678 uid 100`."""
    return _line(f"info msg {id}: bytes {size} from <{safe(sender)}> qp {qp} uid {uid}")


def starting_delivery(delivery: int, id: int, channel: str, recipient: str | bytes) -> bytes:
    """`starting delivery 12: msg 457 to local fred@heaven.af.mil`."""
    return _line(f"starting delivery {delivery}: msg {id} to {channel} {safe(recipient)}")


def delivery_report(delivery: int, status: str, text: str | bytes) -> bytes:
    """`delivery 12: success: did_1+0+0/` for K, deferral for Z, failure for D, else mangled."""
    outcome = OUTCOMES.get(status)
    if outcome is None:
        return _line(f"delivery {delivery}: report mangled, will defer")
    return _line(f"delivery {delivery}: {outcome}: {safe(text)}")


def status(
    local: int, local_max: int, remote: int, remote_max: int, exitasap: bool = False
) -> bytes:
    """`status: local 2/10 remote 3/20`, with ` exitasap` once TERM arrived."""
    tail = " exitasap" if exitasap else ""
    return _line(f"status: local {local}/{local_max} remote {remote}/{remote_max}{tail}")


def status_exiting() -> bytes:
    """`status: exiting`: qmail-send's last line."""
    return _line("status: exiting")


def bounce_msg(id: int, qp: int) -> bytes:
    """`bounce msg 457 qp 5690`: a bounce was injected, qp = its qmail-queue pid."""
    return _line(f"bounce msg {id} qp {qp}")


def end_msg(id: int) -> bytes:
    """`end msg 457`: the message left the queue."""
    return _line(f"end msg {id}")


def triple_bounce(id: int) -> bytes:
    """`triple bounce: discarding bounce/457`."""
    return _line(f"triple bounce: discarding bounce/{id}")


ALERTS: dict[str, str] = {
    "nomem": "out of memory, sleeping...",
    "opendir": "unable to opendir {dir}, sleeping...",
    "lost_spawn": "oh no! lost spawn connection! dying...",
    "lost_clean": "oh no! lost qmail-clean connection! dying...",
    "bounce_append": "unable to append to bounce message; HELP! sleeping...",
    "start_home": "cannot start: unable to switch to home directory",
    "start_controls": "cannot start: unable to read controls",
    "start_queue": "cannot start: unable to switch to queue directory",
    "start_mutex": "cannot start: unable to open mutex",
    "start_running": "cannot start: qmail-send is already running",
    "start_spawn": "cannot start: hath the daemon spawn no fire?",
    "reread_locals": "unable to reread control/locals",
    "reread_virtualdomains": "unable to reread control/virtualdomains",
    "reread_home": "unable to reread controls: unable to switch to home directory",
    "queue_back": "unable to switch back to queue directory; HELP! sleeping...",
}
WARNINGS: dict[str, str] = {
    "fsync": "trouble fsyncing {fn}",
    "mark": "trouble marking {fn}; message will be delivered twice!",
    "open_later": "trouble opening {fn}; will try again later",
    "read": "trouble reading {fn}",
    "read_later": "trouble reading {fn}; will try again later",
    "write": "trouble writing to {fn}",
    "create": "unable to create {fn}",
    "open": "unable to open {fn}",
    "stat": "unable to stat {fn}",
    "stat_later": "unable to stat {fn}; will try again later",
    "unlink": "unable to unlink {fn}",
    "unlink_later": "unable to unlink {fn}; will try again later",
    "utime": "unable to utime {fn}; message will be retried too soon",
    "todo_record": "unknown record type in {fn}",
    "channel_record": "unknown record type in {fn}!",
    "clean": "qmail-clean unable to clean up {fn}",
    "inject": "trouble injecting bounce message, will try later",
    "qmail_queue": "unable to start qmail-queue, will try later",
    "out_of_range": "internal error: delivery report out of range",
    "select": "trouble in select",
}


def alert(name: str, **fields: str) -> bytes:
    """`alert: ...`, one of ALERTS (file names are qmail's own, not filtered)."""
    return _line("alert: " + ALERTS[name].format(**fields))


def warning(name: str, **fields: str) -> bytes:
    """`warning: ...`, one of WARNINGS."""
    return _line("warning: " + WARNINGS[name].format(**fields))


_FORMAT: dict[type, Callable[..., bytes]] = {
    NewMsg: lambda e: new_msg(e.id),
    InfoMsg: lambda e: info_msg(e.id, e.size, e.sender, e.qp, e.uid),
    StartingDelivery: lambda e: starting_delivery(e.delivery, e.id, e.channel, e.recipient),
    Delivery: lambda e: delivery_report(e.delivery, _LETTERS.get(e.outcome, "?"), e.text),
    Status: lambda e: status(e.local, e.local_max, e.remote, e.remote_max, e.exitasap),
    StatusExiting: lambda e: status_exiting(),
    BounceMsg: lambda e: bounce_msg(e.id, e.qp),
    EndMsg: lambda e: end_msg(e.id),
    TripleBounce: lambda e: triple_bounce(e.id),
    AlertLine: lambda e: _line(f"alert: {e.text}"),
    WarningLine: lambda e: _line(f"warning: {e.text}"),
}


def format_event(event: Event) -> bytes:
    """The line qmail-send writes for `event`."""
    return _FORMAT[type(event)](event)


def format_line(line: LogLine) -> bytes:
    """The line as the logger stored it: the TAI64N label (if any), a space, the text."""
    text = format_event(line.event)
    return text if line.stamp is None else s2b(line.stamp.label() + " ") + text


# -- parser --------------------------------------------------------------------------------------

_N = r"(0|[1-9][0-9]*)"
_S = r"([!-$&-~]*)"  # what safe() can produce
_PARSE: list[tuple[re.Pattern[str], Callable[..., Event]]] = [
    (re.compile(rf"status: local {_N}/{_N} remote {_N}/{_N}( exitasap)?"),
     lambda a, b, c, d, x: Status(int(a), int(b), int(c), int(d), bool(x))),
    (re.compile(rf"starting delivery {_N}: msg {_N} to (local|remote) {_S}"),
     lambda n, i, c, r: StartingDelivery(int(n), int(i), intern(c), intern(r))),
    (re.compile(rf"delivery {_N}: (success|deferral|failure): {_S}"),
     lambda n, o, t: Delivery(int(n), o, t)),
    (re.compile(rf"delivery {_N}: report mangled, will defer"),
     lambda n: Delivery(int(n), "mangled")),
    (re.compile(rf"new msg {_N}"), lambda i: NewMsg(int(i))),
    (re.compile(rf"info msg {_N}: bytes {_N} from <{_S}> qp {_N} uid {_N}"),
     lambda i, b, s, q, u: InfoMsg(int(i), int(b), intern(s), int(q), int(u))),
    (re.compile(rf"end msg {_N}"), lambda i: EndMsg(int(i))),
    (re.compile(rf"bounce msg {_N} qp {_N}"), lambda i, q: BounceMsg(int(i), int(q))),
    (re.compile(rf"triple bounce: discarding bounce/{_N}"), lambda i: TripleBounce(int(i))),
    (re.compile(r"status: exiting"), lambda: StatusExiting()),
    (re.compile(r"alert: ([^\n]*)"), lambda t: AlertLine(t)),
    (re.compile(r"warning: ([^\n]*)"), lambda t: WarningLine(t)),
]  # fmt: skip


def parse_event(text: str) -> Event:
    """The event of one qmail-send line (no label, no LF); BadInput if it has no known form."""
    for pattern, build in _PARSE:
        match = pattern.fullmatch(text)
        if match:
            return build(*match.groups())
    raise BadInput(f"not a qmail-send log line: {text!r}")


def parse_line(line: bytes) -> LogLine:
    """One stored log line, with or without a TAI64N label and final LF."""
    text = b2s(line[:-1] if line.endswith(b"\n") else line)
    if text.startswith("@"):
        label, space, text = text.partition(" ")
        if not space:
            raise BadInput(f"a TAI64N label without a line: {label!r}")
        return LogLine(parse_event(text), Tai64n.parse(label))
    return LogLine(parse_event(text))


def parse_log(data: bytes) -> list[LogLine]:
    """Every line of a stored log."""
    return [parse_line(line) for line in data.split(b"\n")[: -1 if data.endswith(b"\n") else None]]
