"""qmail-send's scheduler: priority queues, jobs, passes and delivery slots, with no I/O.

Theory of operation (qmail-send.c; reference §5). Each channel (local, remote) has a priority
queue of (time, id): when the message is next due on that channel. A *pass* takes the earliest
due message, reads its channel file and feeds its NOT DONE recipients to the spawner, one per
main-loop step, while a delivery slot is free and the channel's one-command buffer is empty.
One pass per channel at a time, so a message's recipients are all started before the next
message on that channel ("first seen, first served"). A *job* is one message on one channel
during one pass; the pass and each running delivery hold a reference to it. When the last
reference goes, either the pass read the whole file and every recipient it started is done
(the channel is finished: the program unlinks the file and, if the other channel's file is
gone too, puts the message in the `done` queue), or the message is queued again at the retry
time computed when the pass began. There are concurrencylocal + concurrencyremote job slots;
each channel has `concurrency` delivery slots, numbered `delnum` as the spawner sees them.

The program asks (`due_pass`, `step`, `due_done`, `wakeup`) and tells (`open_pass`,
`command_written`, `finish`); times are whatever clock the program keeps. `preprocess_plan`
and `outcome_ops` turn a todo entry and a delivery result into the queue operations of
`sim.qmail.lifecycle`, with the log lines in their place.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sim.qmail import lifecycle as lc
from sim.qmail import queue as q
from sim.qmail import sendlog
from sim.qmail.bounce import bounce_paragraph
from sim.qmail.envelope import ChannelRecord, QueueFile, parse_queue_file
from sim.qmail.retry import rewrite_if_dying
from sim.qmail.routing import Route, RoutingConfig, rewrite, strip_prepend
from sim.qmail.spawn import SpawnCommand, SpawnResult, encode_command
from sim.qmail.text import b2s

CHANNELS = q.CHANNELS


@dataclass(slots=True)
class Job:
    """One message on one channel for one pass (qmail-send's `struct job`)."""

    id: int
    channel: str
    sender: str
    retry: float  # when the message is due again if this pass leaves work undone
    dying: bool  # older than queuelifetime: a deferral becomes a failure
    refs: int = 1  # the pass, plus one per running delivery
    numtodo: int = 0  # recipients started and not yet done (K or D)
    hit_eof: bool = False  # the pass read the whole channel file


@dataclass(frozen=True, slots=True)
class Delivery:
    """A started delivery: its log number, spawner slot, recipient and the record's offset."""

    delid: int
    delnum: int
    channel: str
    id: int
    recipient: str
    offset: int


@dataclass(frozen=True, slots=True)
class Closed:
    """A job's last reference went: `finished` (unlink the channel file) or queued at `retry`."""

    id: int
    channel: str
    finished: bool
    retry: float


@dataclass(frozen=True, slots=True)
class Finished:
    """A spawner result applied: status K/Z/D (else mangled), text, and the job's fate."""

    delivery: Delivery
    status: str
    text: bytes
    dying_rewrite: bool  # a Z turned into a D because the message is too old
    closed: Closed | None


@dataclass(slots=True)
class _Pass:
    job: Job
    records: Sequence[ChannelRecord]
    pos: int = 0


@dataclass(slots=True)
class Scheduler:
    """The queues, jobs, passes and slots of qmail-send; see the module docstring."""

    concurrency: Mapping[str, int]
    queues: dict[str, list[tuple[float, int, int]]] = field(init=False)
    done_queue: list[tuple[float, int, int]] = field(init=False, default_factory=list)
    slots: dict[str, list[tuple[Delivery, Job] | None]] = field(init=False)
    passes: dict[str, _Pass | None] = field(init=False)
    commands: dict[str, bytes | None] = field(init=False)
    alive: dict[str, bool] = field(init=False)
    jobs: int = 0
    exitasap: bool = False
    next_delid: int = 1  # qmail-send numbers deliveries from 1
    _seq: itertools.count = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.concurrency = dict(self.concurrency)
        self.queues = {c: [] for c in CHANNELS}
        self.slots = {c: [None] * self.concurrency[c] for c in CHANNELS}
        self.passes = dict.fromkeys(CHANNELS)
        self.commands = dict.fromkeys(CHANNELS)
        self.alive = dict.fromkeys(CHANNELS, True)

    # -- the queues ---------------------------------------------------------------------

    def add(self, channel: str, id: int, when: float) -> None:
        """Queue message `id` on `channel`, due at `when` (pqadd, or a job requeued)."""
        heapq.heappush(self.queues[channel], (when, next(self._seq), id))

    def add_done(self, id: int, when: float) -> None:
        """Queue message `id` for elimination (messdone) at `when`."""
        heapq.heappush(self.done_queue, (when, next(self._seq), id))

    def run_now(self, now: float) -> None:
        """ALRM: every message queued on a channel is due now, in the order it was due."""
        for channel, heap in self.queues.items():
            ordered = sorted(heap)
            self.queues[channel] = [(now, next(self._seq), id) for _, _, id in ordered]

    def pending(self) -> list[tuple[str, int, float]]:
        """(channel, id, due time) of every queued job: TERM keeps these as file mtimes."""
        return [(c, id, when) for c in CHANNELS for when, _, id in sorted(self.queues[c])]

    def due_done(self, now: float) -> int | None:
        """The next message to eliminate, if one is due."""
        if self.done_queue and self.done_queue[0][0] <= now:
            return heapq.heappop(self.done_queue)[2]
        return None

    # -- slots --------------------------------------------------------------------------

    def used(self, channel: str) -> int:
        """Deliveries running on `channel`."""
        return sum(slot is not None for slot in self.slots[channel])

    def status(self) -> tuple[int, int, int, int, bool]:
        """The numbers of `status: local x/y remote x/y`, and the exitasap flag."""
        return (
            self.used("local"),
            self.concurrency["local"],
            self.used("remote"),
            self.concurrency["remote"],
            self.exitasap,
        )

    def delivery_available(self, channel: str) -> bool:
        """del_avail: the spawner lives, the command buffer is empty, a slot is free."""
        return (
            self.alive[channel]
            and self.commands[channel] is None
            and self.used(channel) < self.concurrency[channel]
        )

    def command_written(self, channel: str) -> None:
        """The buffered command reached the spawner: the channel may start another."""
        self.commands[channel] = None

    def spawn_died(self, channel: str) -> None:
        """The spawner's result pipe closed: its deliveries are lost, qmail-send leaves."""
        self.alive[channel] = False
        self.exitasap = True

    def can_exit(self) -> bool:
        """No delivery running on a channel whose spawner lives."""
        return all(not self.alive[c] or not self.used(c) for c in CHANNELS)

    # -- passes -------------------------------------------------------------------------

    def due_pass(self, channel: str, now: float) -> int | None:
        """The message a new pass on `channel` should open now, taken off the queue."""
        heap = self.queues[channel]
        if self.exitasap or self.passes[channel] or self.jobs >= sum(self.concurrency.values()):
            return None
        if not heap or heap[0][0] > now:
            return None
        return heapq.heappop(heap)[2]

    def open_pass(
        self,
        channel: str,
        id: int,
        sender: str,
        records: Sequence[ChannelRecord],
        retry: float,
        dying: bool,
    ) -> None:
        """Begin the pass over the channel file's records (`due_pass` gave `id`)."""
        self.jobs += 1
        self.passes[channel] = _Pass(Job(id, channel, sender, retry, dying), records)

    def step(self, channel: str) -> Delivery | Closed | None:
        """One step of the channel's pass: start a delivery, or end the pass at the file's end."""
        p = self.passes[channel]
        if self.exitasap or p is None or not self.delivery_available(channel):
            return None
        while p.pos < len(p.records) and p.records[p.pos].done:
            p.pos += 1
        if p.pos == len(p.records):
            p.job.hit_eof = True
            self.passes[channel] = None
            return self._close(p.job)
        record, job = p.records[p.pos], p.job
        p.pos += 1
        job.numtodo += 1
        job.refs += 1
        delnum = self.slots[channel].index(None)
        delivery = Delivery(self.next_delid, delnum, channel, job.id, record.address, record.offset)
        self.next_delid += 1
        self.slots[channel][delnum] = (delivery, job)
        command = SpawnCommand.for_message(delnum, job.id, job.sender, record.address)
        self.commands[channel] = encode_command(command)
        return delivery

    def finish(self, channel: str, result: SpawnResult) -> Finished | None:
        """Apply a spawner result; None if its slot is not running ("out of range")."""
        slots = self.slots[channel]
        if not 0 <= result.delnum < len(slots) or slots[result.delnum] is None:
            return None
        delivery, job = slots[result.delnum]  # type: ignore[misc]
        report = rewrite_if_dying(result.report, job.dying)
        status = result.status if report == result.report else "D"
        if status in ("K", "D"):
            job.numtodo -= 1
        closed = self._close(job)
        slots[result.delnum] = None
        text = report[1:]
        return Finished(delivery, status, text, report != result.report, closed)

    def _close(self, job: Job) -> Closed | None:
        """Drop one reference; at the last, the channel is finished or the job requeued."""
        job.refs -= 1
        if job.refs:
            return None
        self.jobs -= 1
        if job.hit_eof and not job.numtodo:
            return Closed(job.id, job.channel, True, job.retry)
        self.add(job.channel, job.id, job.retry)
        return Closed(job.id, job.channel, False, job.retry)

    def wakeup(self, now: float) -> float | None:
        """The earliest time a pass or an elimination is due (pass_selprep); None: none."""
        if self.exitasap:
            return None
        if any(self.passes[c] and self.delivery_available(c) for c in CHANNELS):
            return now
        times = [self.done_queue[0][0]] if self.done_queue else []
        if self.jobs < sum(self.concurrency.values()):
            idle = [c for c in CHANNELS if not self.passes[c] and self.queues[c]]
            times += [self.queues[c][0][0] for c in idle]
        return min(times, default=None)


# -- preprocessing and results as queue operations -----------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """A todo entry's preprocessing: the queue file, each recipient's route, the operations."""

    queue_file: QueueFile
    routes: tuple[tuple[str, Route], ...]  # (recipient as queued, its route)
    ops: list[q.QueueOp]


def preprocess_plan(id: int, todo: bytes, mess_size: int, config: RoutingConfig) -> Plan:
    """S4 -> S5 for `todo/<id>`: rewrite each recipient, then lifecycle's steps with the
    `info msg` line logged right after the info file's F record is written.

    Raises `EnvelopeError` for a todo file with an unknown record type.
    """
    queue_file = parse_queue_file(todo)
    routes = tuple((r, rewrite(r, config)) for r in queue_file.recipients)
    ops = lc.preprocess_ops(id, queue_file.sender, [(rt.channel, rt.address) for _, rt in routes])
    info = q.queue_path("info", id)
    line = sendlog.info_msg(id, mess_size, queue_file.sender, queue_file.pid, queue_file.uid)
    at = next(i for i, op in enumerate(ops) if isinstance(op, q.Write) and op.path == info)
    ops.insert(at + 1, q.Log(b2s(line).rstrip("\n")))
    return Plan(queue_file, routes, ops)


def outcome_ops(finished: Finished, config: RoutingConfig) -> list[q.QueueOp]:
    """After a result: K marks the recipient done; D appends its bounce paragraph, then marks."""
    d = finished.delivery
    if finished.status == "K":
        return lc.mark_done_ops(d.id, d.channel, d.offset)
    if finished.status == "D":
        paragraph = bounce_paragraph(strip_prepend(d.recipient, config), finished.text)
        return lc.failure_ops(d.id, d.channel, d.offset, paragraph)
    return []
