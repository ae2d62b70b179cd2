"""qmailanalog's metrics from parsed qmail-send log lines (`sim.qmail.sendlog`).

`analyze` replays parsed lines as qmailanalog's matchup does: a message lives from `new msg` to
`end msg` (qtime), a delivery from `starting delivery N` to `delivery N:` (ddelay), and xdelay
runs from the message's `new msg` to the delivery's result. Queue ids are inode numbers and get
reused, so a message is matched to the most recent `new msg` with its id.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.qmail.sendlog import (
    OUTCOMES,
    AlertLine,
    BounceMsg,
    Delivery,
    EndMsg,
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

    def __getitem__(self, i: int) -> ConcurrencyPoint:  # type: ignore[override]
        t = self.t[i]
        return ConcurrencyPoint(None if math.isnan(t) else t, self.local[i], self.remote[i])


@dataclass(frozen=True, slots=True)
class LogSummary:
    """What `analyze` found: messages, deliveries, concurrency over time, and counts."""

    messages: tuple[MessageStats, ...]
    deliveries: tuple[DeliveryStats, ...]
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
    messages: list[dict[str, Any] | MessageStats] = []  # a record once its message ends
    live: dict[int, dict[str, Any]] = {}  # queue id -> the message now using it
    at: dict[int, int] = {}  # queue id -> its live message's place in `messages`
    started: dict[int, tuple[StartingDelivery, float | None, float | None]] = {}
    deliveries: list[DeliveryStats] = []
    running = {"local": 0, "remote": 0}
    points = Concurrency()
    counts = dict.fromkeys([*_COUNTED.values(), *OUTCOMES.values(), "mangled"], 0)

    def message(id: int) -> dict[str, Any]:
        if id not in live:
            live[id] = {"id": id}
            at[id] = len(messages)
            messages.append(live[id])
        return live[id]

    for line in lines:
        event, t = line.event, line.t
        kind = event.outcome if isinstance(event, Delivery) else _COUNTED.get(type(event))
        if kind:
            counts[kind] += 1
        if isinstance(event, NewMsg):
            live.pop(event.id, None)
            at.pop(event.id, None)
            message(event.id)["birth"] = t
        elif isinstance(event, InfoMsg):
            message(event.id).update(size=event.size, sender=event.sender)
        elif isinstance(event, EndMsg):
            ended = message(event.id)
            ended["end"] = t
            del live[event.id]
            messages[at.pop(event.id)] = MessageStats(**ended)
        elif isinstance(event, StartingDelivery):
            started[event.delivery] = (event, t, message(event.id).get("birth"))
            running[event.channel] += 1
            points.append(t, running["local"], running["remote"])
        elif isinstance(event, Delivery):
            start, t0, birth = started.pop(event.delivery, (None, None, None))
            deliveries.append(DeliveryStats(event.delivery, event.outcome, t0, t, birth, start))
            if start is not None:
                running[start.channel] -= 1
                points.append(t, running["local"], running["remote"])
    for start, t0, birth in started.values():
        deliveries.append(DeliveryStats(start.delivery, None, t0, None, birth, start))
    stats = tuple(m if isinstance(m, MessageStats) else MessageStats(**m) for m in messages)
    return LogSummary(stats, tuple(deliveries), points, counts)
