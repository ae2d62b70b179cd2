"""What a trace has shown so far, folded from its events: the model every panel draws.

Theory of operation. `TraceState.apply` takes one event at a time, in trace order, and keeps
what a learner asks about: the processes (pid, parent, account, program, exit status), the
files in the queue and the message each belongs to, each message's INTERNALS state (S1–S5),
the narrated lines of the event log, and which edge of qmail's architecture each event used.
There is no Textual here and no clock: the same events always give the same state, so
stepping back is folding again (from a checkpoint, see `tui.player`).

Each host numbers its own processes and messages, and a trace of several hosts uses the same
pids and queue ids on each: processes, messages and queue files are keyed by host too
(`Key`), and a process's descriptors and pipes are followed per host (`tui.flow`). The fold
reads `typed(event)`, so a wrongly typed field in a hand-made trace cannot stop the UI.

A *step* ends at each narrated event (`sim.narrate`): the plumbing between two narrated events
(closes, dup2s, the reads and writes on pipes) belongs to the step that ends at the next one.
`step` counts the steps so far; an edge or program remembers the step it was last used in,
which is how the architecture view knows what is lit now and what glowed a moment ago.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from sim.narrate import narrate
from sim.qmail.errors import BadInput
from sim.qmail.queue import KINDS, message_state, parse_queue_path
from tui.fields import is_int, is_number, typed
from tui.flow import Edge, Flow, queue_relative

MESSAGE_DIRS = frozenset(KINDS)  # a message's own files; pid/ names have no id yet
QUEUE_NOTE = "queue"
Key = tuple[str, int]  # (host, pid) or (host, queue id): each host numbers its own
Item = TypeVar("Item", "Process", "QueueFile", "Message")


@dataclass(slots=True)
class Process:
    """One process as the trace shows it; `status` is set once its exit is known."""

    host: str
    pid: int
    ppid: int | None
    uid: str
    prog: str
    first: int
    label: str = ""
    argv: tuple[str, ...] = ()
    status: int | None = None
    exited_at: int | None = None
    msg: int | None = None
    own: bool = True  # runs its own program: not a forked child that has yet to exec
    programs: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    @property
    def key(self) -> Key:
        return (self.host, self.pid)

    @property
    def state(self) -> str:
        """`running`, `exit 0`, `killed by signal 9` or `crashed`."""
        if self.status is None:
            return "running" if self.exited_at is None else "crashed"
        if self.status < 0:
            return f"killed by signal {-self.status}"
        return f"exit {self.status}"


@dataclass(slots=True)
class QueueFile:
    """A file that exists in the queue now: `mess/18/457`, `todo/457`, `pid/23481.…`."""

    host: str
    path: str
    msg: int | None
    made: int  # the event that created or linked it
    by: int  # the pid that did

    @property
    def dir(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(slots=True)
class Message:
    """A message by queue id: its state, envelope, and every event that named it."""

    host: str
    id: int
    state: str = "S1"
    why: str = ""
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    history: list[tuple[int, str, str]] = field(default_factory=list)  # (event, state, why)
    notes: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # on its host

    @property
    def key(self) -> Key:
        return (self.host, self.id)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One narrated event for the event log."""

    index: int
    text: str
    host: str
    pid: int | None
    prog: str
    msg: int | None


@dataclass(slots=True)
class TraceState:
    """Everything the events so far say, kept current by `apply`."""

    events: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[Key, Process] = field(default_factory=dict)
    files: dict[tuple[str, str], QueueFile] = field(default_factory=dict)  # (host, path)
    gone: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)  # (event, op)
    messages: dict[Key, Message] = field(default_factory=dict)
    log: list[LogLine] = field(default_factory=list)
    edges: dict[Edge, tuple[int, int | None]] = field(default_factory=dict)  # (step, msg)
    edge_events: dict[int, list[Edge]] = field(default_factory=dict)
    programs: dict[str, tuple[int, str, int | None]] = field(default_factory=dict)  # step, uid, msg
    step: int = 0
    t0: float | None = None
    flow: Flow = field(default_factory=Flow)
    hosts: dict[str, None] = field(default_factory=dict)  # in order of first sight

    @classmethod
    def fold(cls, events: list[dict[str, Any]]) -> TraceState:
        """The state after all these events."""
        state = cls()
        for event in events:
            state.apply(event)
        return state

    def copy(self) -> TraceState:
        """A state of its own to fold on from (`tui.player` keeps checkpoints): whatever
        `apply` changes in place is copied; events and log lines, never changed, are shared."""
        return TraceState(
            events=list(self.events),
            processes={key: _clone(p) for key, p in self.processes.items()},
            files={key: _clone(f) for key, f in self.files.items()},
            gone={key: list(ops) for key, ops in self.gone.items()},
            messages={key: _clone(m) for key, m in self.messages.items()},
            log=list(self.log),
            edges=dict(self.edges),
            edge_events=dict(self.edge_events),
            programs=dict(self.programs),
            step=self.step,
            t0=self.t0,
            flow=self.flow.copy(),
            hosts=dict(self.hosts),
        )

    @property
    def t(self) -> float:
        """Seconds since the trace began, at the last event applied."""
        if not self.events or self.t0 is None:
            return 0.0
        t = self.events[-1].get("t")
        return float(t) - self.t0 if is_number(t) else 0.0

    def apply(self, raw: dict[str, Any]) -> bool:
        """Fold one event in; True if it ends a step (it is narrated)."""
        index = len(self.events)
        self.events.append(raw)
        event = typed(raw)
        if self.t0 is None and "t" in event:
            self.t0 = float(event["t"])
        host = event.get("host", "")
        if host and host not in self.hosts:
            self.hosts[host] = None
        pid = event.get("pid")
        if pid is None:
            return False
        process = self._process(event, index)
        own = process.own  # before an exec makes it so
        edges = self.flow.follow(event, self._prog_of)
        msg = self.msg_of(event)  # before an unlink forgets the file
        self._effects(event, index, process)
        msg = self.msg_of(event) if msg is None else msg
        if msg is not None:
            process.msg = msg
            message = self._message(host, msg)
            message.events.append(index)
            if pid not in message.pids:
                message.pids.append(pid)
        line = narrate(raw) or _decision(raw)
        stops = line is not None
        at = self.step + 1  # the step this event belongs to
        if stops:
            self.step = at
            prog = str(event.get("prog", process.prog))  # who the line names
            self.log.append(LogLine(index, line, host, pid, prog, process.msg))
        prog = str(event.get("prog", process.prog))
        before = self.programs.get(prog, (0, process.uid, None))[1]
        self.programs[prog] = (at, process.uid if own else before, process.msg)
        if edges:
            self.edge_events[index] = edges
            for edge in edges:
                self.edges[edge] = (at, process.msg)
        return stops

    # -- who ---------------------------------------------------------------------------

    def _prog_of(self, key: Key) -> str:
        process = self.processes.get(key)
        return process.prog if process else "?"

    def _process(self, event: dict[str, Any], index: int) -> Process:
        host, pid = event.get("host", ""), event["pid"]
        uid, prog = event.get("uid", "?"), event.get("prog", "?")
        process = self.processes.get((host, pid))
        if process is None:
            process = Process(host, pid, event.get("ppid"), uid, prog, index)
            parent = self.processes.get((host, event.get("ppid")))
            process.own = parent is None or parent.prog != prog  # else: forked, not yet exec'd
            process.programs.append(prog)
            process.accounts.append(uid)
            self.processes[host, pid] = process
        if uid != process.uid:
            process.uid = uid
            process.accounts.append(uid)
        if event.get("ppid") is not None:
            process.ppid = event["ppid"]
        process.events.append(index)
        return process

    def _effects(self, event: dict[str, Any], index: int, process: Process) -> None:
        kind, result, failed = event.get("kind"), event.get("result"), bool(event.get("err"))
        host = process.host
        if kind == "fork" and is_int(result) and not failed:
            child = self.processes.get((host, result))
            if child is None:
                child = Process(host, result, process.pid, process.uid, process.prog, index)
                child.programs.append(process.prog)
                child.accounts.append(process.uid)
                self.processes[host, result] = child
            child.label = str(event.get("label") or "")
            child.own = len(child.programs) > 1
            if child.msg is None:
                child.msg = process.msg  # qmail-lspawn forks qmail-local for this message
        elif kind == "exec" and not failed:
            process.prog = event.get("program", process.prog)
            process.argv = tuple(event.get("argv") or ())
            process.programs.append(process.prog)
            process.own = True
        elif kind == "exit":
            self._ended(process, event.get("status"), index)
        elif kind == "crash":
            self._ended(process, None, index)
        elif kind == "wait" and isinstance(result, list) and len(result) == 2 and is_int(result[0]):
            child = self.processes.get((host, result[0]))
            if child is not None and child.exited_at is None:
                self._ended(child, result[1], index)
            if child is not None and child.msg is not None:
                process.msg = child.msg  # qmail-smtpd's "250 ok … qp N" is about N's message
        elif kind == QUEUE_NOTE and isinstance(event.get("state"), str):
            self._queue_note(event, index)
        elif not failed:
            self._queue_file_op(event, index, process)
        if kind not in ("fork", "exec", "exit", "wait", "crash") and self._note(event):
            msg = self.msg_of(event)
            if msg is not None:
                self._message(host, msg).notes.append(index)

    def _ended(self, process: Process, status: Any, index: int) -> None:
        process.status = status if is_int(status) else None
        process.exited_at = index
        self.flow.gone(process.key)

    # -- the queue -----------------------------------------------------------------------

    def msg_of(self, event: dict[str, Any]) -> int | None:
        """The queue id (on the event's host) an event is about: its `msg`, a queue note's
        `id`, or a queue path. `event` is typed (see `tui.fields`)."""
        for key in ("msg", "id"):
            if key in event and (key == "msg" or event.get("kind") == QUEUE_NOTE):
                return event[key]
        pid, host = event.get("pid"), event.get("host", "")
        for key in ("dst", "src", "path"):
            if key in event and pid is not None:
                path = queue_relative(self.flow.resolve((host, pid), event[key]))
                if path and (msg := self._id_in(host, path)) is not None:
                    return msg
        return None

    def _message(self, host: str, msg: int) -> Message:
        message = self.messages.get((host, msg))
        if message is None:
            message = self.messages[host, msg] = Message(host, msg)
        return message

    def _queue_note(self, event: dict[str, Any], index: int) -> None:
        msg = self.msg_of(event)
        if msg is None:
            return
        message = self._message(event.get("host", ""), msg)
        message.state, message.why = event["state"], str(event.get("why", ""))
        if message.history and message.history[-1][1] == message.state:
            message.history.pop()  # the note says why the files say so
        message.history.append((index, message.state, message.why))
        if isinstance(event.get("sender"), str):
            message.sender = event["sender"]
        if isinstance(event.get("recipients"), list):
            message.recipients = [str(r) for r in event["recipients"]]

    def _queue_file_op(self, event: dict[str, Any], index: int, process: Process) -> None:
        kind, host, pid = event.get("kind"), process.host, process.pid
        path = self._queue_arg(event, "path", process.key)
        if kind == "open" and event.get("create") and path:
            self._add_file(host, path, index, pid, None)
        elif kind in ("link", "rename"):
            src = self._queue_arg(event, "src", process.key)
            dst = self._queue_arg(event, "dst", process.key)
            before = self.files.get((host, src)) if src else None
            if dst:
                self._add_file(host, dst, index, pid, before.msg if before else None)
                if before and before.msg is None:
                    before.msg = self._id_in(host, dst)
            if kind == "rename" and src:
                self._remove_file(host, src, index, "renamed")
        elif kind == "unlink" and path:
            self._remove_file(host, path, index, "unlinked")

    def _queue_arg(self, event: dict[str, Any], key: str, who: Key) -> str | None:
        value = event.get(key)
        if value is None:
            return None
        path = queue_relative(self.flow.resolve(who, value))
        return path if path and path.split("/", 1)[0] in MESSAGE_DIRS | {"pid"} else None

    def _add_file(self, host: str, path: str, index: int, pid: int, msg: int | None) -> None:
        msg = self._id_in(host, path) if msg is None else msg
        self.files[host, path] = QueueFile(host, path, msg, index, pid)
        self._restate(host, msg, index)

    def _remove_file(self, host: str, path: str, index: int, how: str) -> None:
        gone = self.files.pop((host, path), None)
        self.gone.setdefault((host, path), []).append((index, how))
        if gone is not None:
            self._restate(host, gone.msg, index)

    def _restate(self, host: str, msg: int | None, index: int) -> None:
        """After a file op: the state INTERNALS gives the message's files (if it is one)."""
        if msg is None:
            return
        message = self._message(host, msg)
        kinds = {f.dir for f in self.files_of(host, msg) if f.dir in MESSAGE_DIRS}
        state = message_state(kinds)
        if state is not None and state != message.state:
            message.state = state
            message.why = "its files: " + (", ".join(sorted(kinds)) or "none")
            message.history.append((index, state, message.why))

    def files_of(self, host: str, msg: int | None) -> list[QueueFile]:
        """The queue files of a message on `host` now (msg None: the pid/ files, no id yet)."""
        return [f for f in self.files.values() if f.msg == msg and f.host == host]

    def _note(self, event: dict[str, Any]) -> bool:
        return "why" in event or event.get("kind") in ("deliver", "delivered", "defer", "failure")

    def _id_in(self, host: str, path: str) -> int | None:
        """The queue id a queue path names: its last part in a message directory, or the id
        a pid/ file got when qmail-queue linked it into mess/."""
        try:
            return parse_queue_path(path)[1]
        except BadInput:
            pass
        known = self.files.get((host, path))
        return known.msg if known else None


def _clone(item: Item) -> Item:
    """A copy whose lists are its own (its other fields are never changed in place); made
    slot by slot, as checkpoints copy thousands of these."""
    twin = object.__new__(type(item))
    for name in _slots(type(item)):
        value = getattr(item, name)
        setattr(twin, name, list(value) if type(value) is list else value)
    return twin


@functools.cache
def _slots(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _decision(event: dict[str, Any]) -> str | None:
    """A line for a decision narrate does not word (a note with a `why`)."""
    why = event.get("why")
    if not why:
        return None
    who = f"{event.get('prog', '?')}[{event.get('pid', '?')}] ({event.get('uid', '?')})"
    return f"{who} {event.get('kind')}: {why}"


def is_stop(event: dict[str, Any]) -> bool:
    """Does this event end a step (is it narrated)?"""
    return is_int(event.get("pid")) and (narrate(event) or _decision(event)) is not None
