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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.model.clients import Outcome
from sim.model.logs import log_lines
from sim.qmail.sendlog import BounceMsg, InfoMsg, TripleBounce
from sim.qmail.sendlog_metrics import DeliveryStats, LogSummary, analyze


@dataclass(slots=True)
class Message:
    """One message in a host's queue, or an accepted arrival not (yet) seen there."""

    host: str
    id: int | None
    origin: str  # "workload", "bounce" (made by qmail-send) or "relay" (from another host)
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


@dataclass(slots=True)
class HostLedger:
    """One host's log, analysed."""

    host: str
    summary: LogSummary
    messages: list[Message] = field(default_factory=list)

    @property
    def deliveries(self) -> tuple[DeliveryStats, ...]:
        return self.summary.deliveries


def host_ledger(host: str, log: bytes, epoch: float) -> HostLedger:
    """Parse and match one host's log; messages in order of first appearance."""
    lines = log_lines(log, epoch)
    summary = analyze(lines)
    extra: dict[int, dict] = {}
    bounce_qps: set[int] = set()
    for line in lines:
        e = line.event
        if isinstance(e, InfoMsg):
            extra.setdefault(e.id, {})["qp"] = e.qp
        elif isinstance(e, BounceMsg):
            extra.setdefault(e.id, {})["bounced"] = True
            bounce_qps.add(e.qp)
        elif isinstance(e, TripleBounce):
            extra.setdefault(e.id, {})["bounced"] = True
    messages: dict[int, Message] = {}  # the model never reuses a queue id (see MemFS)
    for m in summary.messages:
        x = extra.get(m.id, {})
        qp = x.get("qp")
        seen = messages.get(m.id)
        if seen is not None:  # preprocessed again after a crash: one message all the same
            seen.end, seen.size, seen.sender = m.end, m.size or seen.size, m.sender or seen.sender
            continue
        origin = "bounce" if qp in bounce_qps else "relay"
        messages[m.id] = Message(
            host, m.id, origin, None, m.sender, m.size, qp, m.birth, m.end, x.get("bounced", False)
        )
    return HostLedger(host, summary, list(messages.values()))


def join(ledgers: dict[str, HostLedger], outcomes: list[Outcome]) -> list[Message]:
    """Every message of the run: log messages, with accepted arrivals matched by (host, qp)."""
    by_qp: dict[tuple[str, int], Message] = {}
    everything: list[Message] = []
    for ledger in ledgers.values():
        for m in ledger.messages:
            everything.append(m)
            if m.qp is not None:
                by_qp[(m.host, m.qp)] = m  # a message preprocessed twice: the later line
    for out in outcomes:
        if not out.accepted:
            continue
        a = out.arrival
        found = by_qp.get((a.host, out.qp)) if out.qp is not None else None
        if found is None:
            everything.append(Message(a.host, None, "workload", a.n, a.sender, None, out.qp))
        else:
            found.origin, found.n = "workload", a.n
    return everything
