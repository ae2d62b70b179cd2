"""qmailanalog's metrics from parsed qmail-send log lines (`sim.qmail.sendlog`).

`analyze` replays parsed lines as qmailanalog's matchup does: a message lives from `new msg` to
`end msg` (qtime), a delivery from `starting delivery N` to `delivery N:` (ddelay), and xdelay
runs from the message's `new msg` to the delivery's result. Queue ids are inode numbers and get
reused, so a message is matched to the most recent `new msg` with its id.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.qmail.columns import NAME, Columns, Records
from sim.qmail.sendlog import (
    OUTCOMES,
    AlertLine,
    BounceMsg,
    Delivery,
    EndMsg,
    Event,
    InfoMsg,
    LogLine,
    NewMsg,
    Outcome,
    StartingDelivery,
    TripleBounce,
    WarningLine,
)


def _delay(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


@dataclass(frozen=True, slots=True)
class MessageStats:
    """One message's stay in the queue: `new msg` (birth) to `end msg`."""

    id: int
    birth: float | None = None
    end: float | None = None
    size: int | None = None
    sender: str | None = None
    qp: int | None = None  # the pid of the qmail-queue that queued it (`info msg`)
    bounced: bool = False  # qmail-send bounced it (`bounce msg`, or a triple bounce)

    @property
    def qtime(self) -> float | None:
        """Time in the queue, from injection (new msg) to end msg."""
        return _delay(self.birth, self.end)


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """One delivery: its start line, result (None if the log ends first) and times."""

    delivery: int
    outcome: Outcome | None
    start: float | None
    end: float | None
    birth: float | None  # the message's new msg time
    started: StartingDelivery | None  # None if it started before the log

    @property
    def ddelay(self) -> float | None:
        """From the start of the delivery to its result."""
        return _delay(self.start, self.end)

    @property
    def xdelay(self) -> float | None:
        """From the message's injection to this delivery's result."""
        return _delay(self.birth, self.end)


@dataclass(frozen=True, slots=True)
class ConcurrencyPoint:
    """Deliveries in progress right after a start or a result (of those seen starting)."""

    t: float | None
    local: int
    remote: int


class Concurrency(Sequence[ConcurrencyPoint]):
    """The concurrency points of a log, in columns: a day's log has millions of them."""

    def __init__(self) -> None:
        self.t, self.local, self.remote = array("d"), array("l"), array("l")

    def append(self, t: float | None, local: int, remote: int) -> None:
        self.t.append(math.nan if t is None else t)
        self.local.append(local)
        self.remote.append(remote)

    def __len__(self) -> int:
        return len(self.t)

    def copy(self) -> Concurrency:
        twin = Concurrency()
        twin.t.extend(self.t)
        twin.local.extend(self.local)
        twin.remote.extend(self.remote)
        return twin

    def __getitem__(self, i: int) -> ConcurrencyPoint:  # type: ignore[override]
        t = self.t[i]
        return ConcurrencyPoint(None if math.isnan(t) else t, self.local[i], self.remote[i])


def _spans(starts: array, ends: array) -> list[float]:
    """end - start of each row where both are known (not NaN), in order."""
    return [e - s for s, e in zip(starts, ends, strict=True) if s == s and e == e]


class MessageTable(Records[MessageStats]):
    """The messages of a log in columns (a day's log has a million); rows change in place
    as their lines come."""

    def __init__(self) -> None:
        self.table = Columns(id="q", birth="d", end="d", size="q", sender=NAME, qp="q", bounced="b")

    def make(self, i: int) -> MessageStats:
        return MessageStats(*self.table.row(i))

    def qtimes(self) -> list[float]:
        """The qtime of every message that ended, in order."""
        return _spans(self.table.columns["birth"], self.table.columns["end"])


class DeliveryTable(Records[DeliveryStats]):
    """The deliveries of a log in columns; `started` is kept as its fields."""

    def __init__(self) -> None:
        self.table = Columns(
            delivery="q", outcome=NAME, start="d", end="d", birth="d",
            number="q", id="q", channel=NAME, recipient=NAME,
        )  # fmt: skip

    def append(self, d: DeliveryStats) -> None:
        s = d.started
        started = (None,) * 4 if s is None else (s.delivery, s.id, s.channel, s.recipient)
        self.table.append(d.delivery, d.outcome, d.start, d.end, d.birth, *started)

    def make(self, i: int) -> DeliveryStats:
        delivery, outcome, start, end, birth, number, id, channel, recipient = self.table.row(i)
        started = None if id is None else StartingDelivery(number, id, channel, recipient)
        return DeliveryStats(delivery, outcome, start, end, birth, started)

    def done(self) -> Counter[tuple[str, str | None]]:
        """How many deliveries had each (channel, outcome); "?" for a channel not seen."""
        t = self.table
        names = [*t.names, "?"]  # a missing name is -1: the last
        pairs = zip(t.columns["channel"], t.columns["outcome"], strict=True)
        return Counter({(names[c], names[o] if o >= 0 else None): n
                        for (c, o), n in Counter(pairs).items()})  # fmt: skip

    def ddelays(self) -> list[float]:
        return _spans(self.table.columns["start"], self.table.columns["end"])

    def xdelays(self) -> list[float]:
        return _spans(self.table.columns["birth"], self.table.columns["end"])


@dataclass(frozen=True, slots=True)
class LogSummary:
    """What `analyze` found: messages, deliveries, concurrency over time, and counts."""

    messages: Sequence[MessageStats]
    deliveries: Sequence[DeliveryStats]
    concurrency: Sequence[ConcurrencyPoint]
    counts: dict[str, int]


_COUNTED: dict[type, str] = {
    NewMsg: "new",
    EndMsg: "end",
    BounceMsg: "bounce",
    TripleBounce: "triple_bounce",
    StartingDelivery: "started",
    AlertLine: "alert",
    WarningLine: "warning",
}


def analyze(lines: Iterable[LogLine]) -> LogSummary:
    """Match a parsed log's lines into message and delivery records, as qmailanalog does."""
    analyzer = Analyzer()
    analyzer.feed(lines)
    return analyzer.summary()


_NUMBERS = {
    NewMsg: ("id",),
    EndMsg: ("id",),
    TripleBounce: ("id",),
    BounceMsg: ("id", "qp"),
    InfoMsg: ("id", "size", "qp"),
    StartingDelivery: ("delivery", "id"),
    Delivery: ("delivery",),
}


def _too_big(event: Event) -> bool:
    """Has the line a number no 64-bit column can keep (checked before any row changes)?"""
    return any(getattr(event, f) >= 2**63 for f in _NUMBERS.get(type(event), ()))


class Analyzer:
    """`analyze` for a log that is still being written: `feed` it lines as they come, and
    ask for the `summary` so far at any time (a day's log need never be kept whole).

    A summary keeps what it says: the first line fed after one copies the tables first.
    `repeated` holds each queue id that got a row other than by a plain `new msg`: a second
    `new msg` before its `end msg`, or a line for an id not live (a log that begins part
    way, or qmail-send finishing a message again after a crash), so that a reader who knows
    ids are never reused (the model) can join its rows. A line with a number too big to
    keep (2**63 or more) is skipped, as mangled evidence."""

    def __init__(self) -> None:
        self.messages = MessageTable()
        self.live: dict[int, int] = {}  # queue id -> the row of the message now using it
        self.started: dict[int, tuple[StartingDelivery, float | None, float | None]] = {}
        self.deliveries = DeliveryTable()
        self.running = {"local": 0, "remote": 0}
        self.points = Concurrency()
        self.counts = dict.fromkeys([*_COUNTED.values(), *OUTCOMES.values(), "mangled"], 0)
        self.repeated: set[int] = set()
        self.done = 0  # rows of `deliveries` with a result; the rest are unfinished
        self.last: LogSummary | None = None  # the summary given out since the last feed

    def _message(self, id: int, new: bool = False) -> int:
        row = self.live.get(id)
        if row is None:
            row = self.live[id] = self.messages.table.append(id, None, None, None, None, None, 0)
            if not new:
                self.repeated.add(id)
        return row

    def feed(self, lines: Iterable[LogLine]) -> None:
        for line in lines:
            if self.last is not None:  # leave the summary handed out as it was
                self.messages, self.deliveries = self.messages.copy(), self.deliveries.copy()
                self.points, self.last = self.points.copy(), None
                self.deliveries.table.truncate(self.done)  # less the summary's unfinished
            if not _too_big(line.event):
                self._line(line.event, line.t)
        if self.last is None:  # else no line came, and the summary's unfinished rows stay
            self.done = len(self.deliveries)

    def _line(self, event: Event, t: float | None) -> None:
        m, live, started, running = self.messages.table, self.live, self.started, self.running
        if isinstance(event, NewMsg):
            if live.pop(event.id, None) is not None:
                self.repeated.add(event.id)
            m.set(self._message(event.id, new=True), "birth", t)
        elif isinstance(event, InfoMsg):
            row = self._message(event.id)
            m.set(row, "qp", event.qp)
            m.set(row, "size", event.size)
            m.set(row, "sender", event.sender)
        elif isinstance(event, BounceMsg | TripleBounce):
            if event.id in live:
                m.set(live[event.id], "bounced", True)
        elif isinstance(event, EndMsg):
            m.set(self._message(event.id), "end", t)
            del live[event.id]
        elif isinstance(event, StartingDelivery):
            started[event.delivery] = (event, t, m.get(self._message(event.id), "birth"))
            running[event.channel] += 1
            self.points.append(t, running["local"], running["remote"])
        elif isinstance(event, Delivery):
            start, t0, birth = started.pop(event.delivery, (None, None, None))
            self.deliveries.append(
                DeliveryStats(event.delivery, event.outcome, t0, t, birth, start)
            )
            if start is not None:
                running[start.channel] -= 1
                self.points.append(t, running["local"], running["remote"])
        kind = event.outcome if isinstance(event, Delivery) else _COUNTED.get(type(event))
        if kind:
            self.counts[kind] += 1

    def summary(self) -> LogSummary:
        """What the lines so far say; a delivery still running is one without a result."""
        if self.last is None:
            self.deliveries.table.truncate(self.done)
            for start, t0, birth in self.started.values():
                self.deliveries.append(DeliveryStats(start.delivery, None, t0, None, birth, start))
            self.last = LogSummary(self.messages, self.deliveries, self.points, dict(self.counts))
        return self.last
