"""The ledger of a run: every message and delivery, read from each host's qmail-send log.

As qmailanalog does, the truth is the log: `new msg` / `info msg` / `end msg`, the deliveries
and `bounce msg` lines, parsed by `sim.qmail.sendlog` and matched by `sendlog_metrics.analyze`.
What the log cannot say, the clients can: which message each arrival became. qmail-smtpd's
`250 ok … qp N` and qmail-inject's qmail-queue child give the pid that qmail-send's `info msg`
line repeats, so an arrival is joined to its queue id by (host, qp). A message qmail-send made
itself (a bounce) is recognised the same way, by the qp of its `bounce msg` line.

A message's status: `delivered` when it left the queue (`end msg`) with every recipient
successful; `bounced` when it left the queue after a permanent failure made a bounce (or a
triple bounce was discarded); `queued` while it has no `end msg`, including a message accepted
but not yet preprocessed (no `new msg` yet).

A monolith host (`mta = "monolith"`) writes no qmail-send log; its ledger comes from the
notes it makes (`monolith_ledger`): a message is born at its `queue` note (its qp is the pid
that made it, the pid its `250 ok` names), and each `delivery` note is one delivery that ran
from the process's previous mark (note or sleep) to the note. The connection's own process
delivers the message it just queued; a retry by the queue runner belongs to the oldest
message still waiting for that recipient. The monolith makes no bounces: a message with a
permanent failure counts as `bounced` all the same (it left the queue undelivered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sim.model.logs import log_lines
from sim.qmail.columns import NAME, Columns, Records
from sim.qmail.routing import RoutingConfig, rewrite
from sim.qmail.sendlog import BounceMsg, LogLine, StartingDelivery
from sim.qmail.sendlog_metrics import (
    Analyzer,
    DeliveryStats,
    DeliveryTable,
    LogSummary,
    MessageTable,
)

if TYPE_CHECKING:
    from sim.model.clients import OutcomeBook

MONOLITH_OUTCOMES = {"ok": "success", "defer": "deferral", "fail": "failure"}


@dataclass(slots=True)
class Message:
    """One message in a host's queue, or an accepted arrival not (yet) seen there."""

    host: str
    id: int | None
    # "workload", "bounce" (made by qmail-send) or "relay": acknowledged to no arrival of the
    # workload (from another host, or committed while a crash kept the 250 from its client)
    origin: str
    n: int | None = None  # the arrival's number, for a workload message
    sender: str | None = None
    size: int | None = None
    qp: int | None = None
    birth: float | None = None
    end: float | None = None
    bounced: bool = False

    @property
    def status(self) -> str:
        if self.end is None:
            return "queued"
        return "bounced" if self.bounced else "delivered"

    @property
    def qtime(self) -> float | None:
        return None if self.birth is None or self.end is None else self.end - self.birth


_FIELDS = ("host", "id", "origin", "n", "sender", "size", "qp", "birth", "end", "bounced")


class MessageBook(Records[Message]):
    """Messages in columns (a day has a million); a row reads back as a `Message`, and its
    fields change with `set`."""

    def __init__(self) -> None:
        self.table = Columns(
            host=NAME, id="q", origin=NAME, n="q", sender=NAME, size="q", qp="q",
            birth="d", end="d", bounced="b",
        )  # fmt: skip

    def append(self, m: Message) -> int:
        return self.table.append(*(getattr(m, f) for f in _FIELDS))

    def set(self, i: int, field: str, value: Any) -> None:
        self.table.set(i, field, value)

    def make(self, i: int) -> Message:
        return Message(*self.table.row(i))

    def statuses(self) -> Counter[tuple[str, str]]:
        """How many messages of each (origin, status)."""
        c, names = self.table.columns, self.table.names
        rows = zip(c["origin"], c["end"], c["bounced"], strict=True)
        counts = Counter((o, e == e, b) for o, e, b in rows)  # e == e: it has an end msg
        out: Counter[tuple[str, str]] = Counter()
        for (o, ended, bounced), n in counts.items():
            out[names[o], ("bounced" if bounced else "delivered") if ended else "queued"] += n
        return out

    def qtimes(self) -> list[float]:
        """The qtime of every message that left the queue, in order."""
        c = self.table.columns
        return [e - b for b, e in zip(c["birth"], c["end"], strict=True) if b == b and e == e]


@dataclass(slots=True)
class HostLedger:
    """One host's log, analysed."""

    host: str
    summary: LogSummary
    messages: MessageBook = field(default_factory=MessageBook)

    @property
    def deliveries(self) -> Sequence[DeliveryStats]:
        return self.summary.deliveries


def host_ledger(host: str, log: bytes, epoch: float) -> HostLedger:
    """Parse and match one host's whole log; messages in order of first appearance."""
    book = LogBook(host, epoch)
    book.feed(log)
    book.feed(b"\n")  # a last line without its newline is read all the same
    return book.ledger()


class LogBook:
    """A host's qmail-send log read as it is written, as qmailanalog reads syslog: each line
    is analysed once, so a day's log need not stay in memory for the summary."""

    def __init__(self, host: str, epoch: float) -> None:
        self.host, self.epoch = host, epoch
        self.analyzer = Analyzer()
        self.bounce_qps: set[int] = set()  # the qp of each bounce qmail-send injected
        self.pending = b""  # the start of a line whose newline has not been written yet

    def feed(self, data: bytes) -> None:
        """Read more of the log: each line it ends; the rest waits for its newline."""
        end = data.rfind(b"\n") + 1
        if not end:
            self.pending += data
            return
        lines, self.pending = self.pending + data[:end], data[end:]
        self.analyzer.feed(self._noting(log_lines(lines, self.epoch)))

    def end_file(self) -> None:
        """The log file ends here (a crash): a line left without its newline is read as is."""
        if self.pending:
            self.feed(b"\n")

    def _noting(self, lines: Iterable[LogLine]) -> Iterator[LogLine]:
        for line in lines:
            if isinstance(line.event, BounceMsg):
                self.bounce_qps.add(line.event.qp)
            yield line

    def ledger(self) -> HostLedger:
        """The host's ledger from the lines read so far. The model never reuses a queue id,
        so rows with one id are one message: one preprocessed again after a crash (a second
        `new msg`), or finished again (its lines after its `end msg`). It is its first row,
        with what the later ones say; the analyzer names the few ids to look at."""
        summary = self.analyzer.summary()
        repeated = set(self.analyzer.repeated)
        book = MessageBook()
        rows: dict[int, int] = {}  # a repeated id -> its message's row in `book`
        table = summary.messages.table  # type: ignore[attr-defined]
        for id, birth, end, size, sender, qp, bounced in table.rows():
            origin = "bounce" if qp in self.bounce_qps else "relay"
            seen = rows.get(id) if id in repeated else None
            if seen is None:
                message = Message(
                    self.host, id, origin, None, sender, size, qp, birth, end, bounced
                )
                row = book.append(message)
                if id in repeated:
                    rows[id] = row
                continue
            book.set(seen, "end", end)
            for field_, value in (("size", size), ("sender", sender), ("qp", qp)):
                if value is not None:
                    book.set(seen, field_, value)
            if qp is not None:
                book.set(seen, "origin", origin)  # the last info msg says whose it is
            if bounced:
                book.set(seen, "bounced", True)
            if birth is not None and book.table.get(seen, "birth") is None:
                book.set(seen, "birth", birth)
        return HostLedger(self.host, summary, book)


def monolith_ledger(
    host: str, notes: list[dict], locals_: tuple[str, ...], waiting: set[int]
) -> HostLedger:
    """A monolith host's ledger from its `queue`, `delivery` and `sleep` events, in order.

    `waiting` holds the qp of every message still in the monolith's queue/todo/ at the end
    (its files are named `qp.serial.time`): the disk, not the notes, says what is queued.
    """
    routing = RoutingConfig(locals=locals_)
    mark: dict[int, float] = {}  # pid -> when its current step began
    current: dict[int, Message] = {}  # connection pid -> the message it queued last
    messages: list[Message] = []
    left: dict[int, set[str]] = {}  # message id -> recipients deferred so far
    deliveries: list[DeliveryStats] = []
    for event in notes:
        pid, t, kind = event["pid"], event["t"], event["kind"]
        if kind == "queue":
            current[pid] = Message(host, len(messages) + 1, "relay", qp=pid, birth=t)
            messages.append(current[pid])
            left[len(messages)] = set()
        elif kind == "delivery":
            m = current.get(pid)
            if m is None:  # the queue runner: the oldest message still waiting for them
                m = next((x for x in messages if event["recipient"] in left[x.id or 0]), None)
            deliveries.append(_monolith_delivery(event, mark.get(pid), m, left, routing))
            deliveries[-1] = replace(deliveries[-1], delivery=len(deliveries))
        mark[pid] = t
    book, stats, table = MessageBook(), MessageTable(), DeliveryTable()
    for m in messages:
        m.end = None if m.qp in waiting else (m.end if m.end is not None else m.birth)
        book.append(m)
        stats.table.append(m.id or 0, m.birth, m.end, None, None, m.qp, m.bounced)
    for d in deliveries:
        table.append(d)
    return HostLedger(host, LogSummary(stats, table, (), {}), book)


def _monolith_delivery(
    event: dict,
    start: float | None,
    m: Message | None,
    left: dict[int, set[str]],
    routing: RoutingConfig,
) -> DeliveryStats:
    """One `delivery` note as a delivery record; its result noted on its message `m`."""
    recipient, t = event["recipient"], event["t"]
    outcome = MONOLITH_OUTCOMES.get(event["outcome"], "deferral")
    if m is not None:
        waits = left[m.id or 0]
        waits.discard(recipient)
        if outcome == "deferral":
            waits.add(recipient)
        m.end, m.bounced = t, m.bounced or outcome == "failure"
    channel = rewrite(recipient, routing).channel
    started = StartingDelivery(0, m.id or 0 if m else 0, channel, recipient)
    return DeliveryStats(0, outcome, start, t, m.birth if m else None, started)  # type: ignore[arg-type]


def join(ledgers: dict[str, HostLedger], outcomes: OutcomeBook) -> MessageBook:
    """Every message of the run: log messages, with accepted arrivals matched by (host, qp)."""
    everything = MessageBook()
    by_qp: dict[str, dict[int, int]] = {}  # host -> qp -> row
    for ledger in ledgers.values():
        rows = by_qp.setdefault(ledger.host, {})
        for m in ledger.messages:
            row = everything.append(m)
            if m.qp is not None:
                rows[m.qp] = row  # a message preprocessed twice: the later line
    for host, n, sender, qp in outcomes.accepted():
        found = by_qp.get(host, {}).get(qp) if qp is not None else None
        if found is None:
            everything.append(Message(host, None, "workload", n, sender, None, qp))
        else:
            everything.set(found, "origin", "workload")
            everything.set(found, "n", n)
    return everything
