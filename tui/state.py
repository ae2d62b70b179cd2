"""What a trace has shown so far, folded from its events: the model every panel draws.

Theory of operation. `TraceState.apply` takes one event at a time, in trace order, and keeps
what a learner asks about: the processes (pid, parent, account, program, exit status), the
files in the queue and the message each belongs to, each message's INTERNALS state (S1–S5),
the narrated lines of the event log, and which edge of qmail's architecture each event used.
There is no Textual here and no clock: the same events always give the same state, so
stepping back is folding again from the start.

A *step* ends at each narrated event (`sim.narrate`): the plumbing between two narrated events
(closes, dup2s, the reads and writes on pipes) belongs to the step that ends at the next one.
`step` counts the steps so far; an edge or program remembers the step it was last used in,
which is how the architecture view knows what is lit now and what glowed a moment ago.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.narrate import narrate
from sim.qmail.errors import BadInput
from sim.qmail.queue import KINDS, message_state, parse_queue_path
from tui.flow import Edge, Flow, queue_relative

MESSAGE_DIRS = frozenset(KINDS)  # a message's own files; pid/ names have no id yet
QUEUE_NOTE = "queue"


@dataclass(slots=True)
class Process:
    """One process as the trace shows it; `status` is set once its exit is known."""

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

    id: int
    state: str = "S1"
    why: str = ""
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    history: list[tuple[int, str, str]] = field(default_factory=list)  # (event, state, why)
    notes: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One narrated event for the event log."""

    index: int
    text: str
    pid: int | None
    prog: str
    msg: int | None


@dataclass(slots=True)
class TraceState:
    """Everything the events so far say, kept current by `apply`."""

    events: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[int, Process] = field(default_factory=dict)
    files: dict[str, QueueFile] = field(default_factory=dict)
    gone: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # path: (event, op)
    messages: dict[int, Message] = field(default_factory=dict)
    log: list[LogLine] = field(default_factory=list)
    edges: dict[Edge, tuple[int, int | None]] = field(default_factory=dict)  # (step, msg)
    edge_events: dict[int, list[Edge]] = field(default_factory=dict)
    programs: dict[str, tuple[int, str, int | None]] = field(default_factory=dict)  # step, uid, msg
    step: int = 0
    t0: float | None = None
    flow: Flow = field(default_factory=Flow)

    @classmethod
    def fold(cls, events: list[dict[str, Any]]) -> TraceState:
        """The state after all these events."""
        state = cls()
        for event in events:
            state.apply(event)
        return state

    @property
    def t(self) -> float:
        """Seconds since the trace began, at the last event applied."""
        if not self.events or self.t0 is None:
            return 0.0
        return float(self.events[-1].get("t", self.t0)) - self.t0

    def apply(self, event: dict[str, Any]) -> bool:
        """Fold one event in; True if it ends a step (it is narrated)."""
        index = len(self.events)
        self.events.append(event)
        if self.t0 is None and isinstance(event.get("t"), (int, float)):
            self.t0 = float(event["t"])
        pid = event.get("pid")
        if not isinstance(pid, int):
            return False
        process = self._process(event, index)
        own = process.own  # before an exec makes it so
        edges = self.flow.follow(event, self._prog_of)
        msg = self.msg_of(event)  # before an unlink forgets the file
        self._effects(event, index, process)
        msg = self.msg_of(event) if msg is None else msg
        if msg is not None:
            process.msg = msg
            message = self._message(msg)
            message.events.append(index)
            if pid not in message.pids:
                message.pids.append(pid)
        line = narrate(event) or _decision(event)
        stops = line is not None
        at = self.step + 1  # the step this event belongs to
        if stops:
            self.step = at
            prog = str(event.get("prog", process.prog))  # who the line names
            self.log.append(LogLine(index, line, pid, prog, process.msg))
        prog = str(event.get("prog", process.prog))
        before = self.programs.get(prog, (0, process.uid, None))[1]
        self.programs[prog] = (at, process.uid if own else before, process.msg)
        if edges:
            self.edge_events[index] = edges
            for edge in edges:
                self.edges[edge] = (at, process.msg)
        return stops

    # -- who ---------------------------------------------------------------------------

    def _prog_of(self, pid: int) -> str:
        process = self.processes.get(pid)
        return process.prog if process else "?"

    def _process(self, event: dict[str, Any], index: int) -> Process:
        pid, uid, prog = event["pid"], str(event.get("uid", "?")), str(event.get("prog", "?"))
        process = self.processes.get(pid)
        if process is None:
            process = Process(pid, event.get("ppid"), uid, prog, index)
            parent = self.processes.get(event.get("ppid"))
            process.own = parent is None or parent.prog != prog  # else: forked, not yet exec'd
            process.programs.append(prog)
            process.accounts.append(uid)
            self.processes[pid] = process
        if uid != process.uid:
            process.uid = uid
            process.accounts.append(uid)
        if event.get("ppid") is not None:
            process.ppid = event["ppid"]
        process.events.append(index)
        return process

    def _effects(self, event: dict[str, Any], index: int, process: Process) -> None:
        kind, result, failed = event["kind"], event.get("result"), bool(event.get("err"))
        if kind == "fork" and isinstance(result, int) and not failed:
            child = self.processes.get(result)
            if child is None:
                child = Process(result, process.pid, process.uid, process.prog, index)
                child.programs.append(process.prog)
                child.accounts.append(process.uid)
                self.processes[result] = child
            child.label = str(event.get("label") or "")
            child.own = len(child.programs) > 1
            if child.msg is None:
                child.msg = process.msg  # qmail-lspawn forks qmail-local for this message
        elif kind == "exec" and not failed:
            process.prog = str(event.get("program", process.prog))
            process.argv = tuple(event.get("argv") or ())
            process.programs.append(process.prog)
            process.own = True
        elif kind == "exit":
            self._ended(process, event.get("status"), index)
        elif kind == "crash":
            self._ended(process, None, index)
        elif kind == "wait" and isinstance(result, list) and len(result) == 2:
            child = self.processes.get(result[0])
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
                self._message(msg).notes.append(index)

    def _ended(self, process: Process, status: Any, index: int) -> None:
        process.status = status if isinstance(status, int) else None
        process.exited_at = index
        self.flow.gone(process.pid)

    # -- the queue -----------------------------------------------------------------------

    def msg_of(self, event: dict[str, Any]) -> int | None:
        """The queue id an event is about: its `msg`, a queue note's `id`, or a queue path."""
        for key in ("msg", "id"):
            if isinstance(event.get(key), int) and (key == "msg" or event["kind"] == QUEUE_NOTE):
                return event[key]
        pid = event.get("pid")
        for key in ("dst", "src", "path"):
            if isinstance(event.get(key), str) and isinstance(pid, int):
                path = queue_relative(self.flow.resolve(pid, event[key]))
                if path and (msg := _id_in(path, self.files)) is not None:
                    return msg
        return None

    def _message(self, msg: int) -> Message:
        if msg not in self.messages:
            self.messages[msg] = Message(msg)
        return self.messages[msg]

    def _queue_note(self, event: dict[str, Any], index: int) -> None:
        msg = self.msg_of(event)
        if msg is None:
            return
        message = self._message(msg)
        message.state, message.why = event["state"], str(event.get("why", ""))
        if message.history and message.history[-1][1] == message.state:
            message.history.pop()  # the note says why the files say so
        message.history.append((index, message.state, message.why))
        if isinstance(event.get("sender"), str):
            message.sender = event["sender"]
        if isinstance(event.get("recipients"), list):
            message.recipients = [str(r) for r in event["recipients"]]

    def _queue_file_op(self, event: dict[str, Any], index: int, process: Process) -> None:
        kind = event["kind"]
        path = self._queue_arg(event, "path", process.pid)
        if kind == "open" and event.get("create") and path:
            self._add_file(path, index, process.pid, None)
        elif kind in ("link", "rename"):
            src = self._queue_arg(event, "src", process.pid)
            dst = self._queue_arg(event, "dst", process.pid)
            before = self.files.get(src) if src else None
            if dst:
                self._add_file(dst, index, process.pid, before.msg if before else None)
                if before and before.msg is None:
                    before.msg = _id_in(dst, self.files)
            if kind == "rename" and src:
                self._remove_file(src, index, "renamed")
        elif kind == "unlink" and path:
            self._remove_file(path, index, "unlinked")

    def _queue_arg(self, event: dict[str, Any], key: str, pid: int) -> str | None:
        value = event.get(key)
        if not isinstance(value, str):
            return None
        path = queue_relative(self.flow.resolve(pid, value))
        return path if path and path.split("/", 1)[0] in MESSAGE_DIRS | {"pid"} else None

    def _add_file(self, path: str, index: int, pid: int, msg: int | None) -> None:
        msg = _id_in(path, self.files) if msg is None else msg
        self.files[path] = QueueFile(path, msg, index, pid)
        self._restate(msg, index)

    def _remove_file(self, path: str, index: int, how: str) -> None:
        gone = self.files.pop(path, None)
        self.gone.setdefault(path, []).append((index, how))
        if gone is not None:
            self._restate(gone.msg, index)

    def _restate(self, msg: int | None, index: int) -> None:
        """After a file op: the state INTERNALS gives the message's files (if it is one)."""
        if msg is None:
            return
        message = self._message(msg)
        kinds = {f.dir for f in self.files.values() if f.msg == msg and f.dir in MESSAGE_DIRS}
        state = message_state(kinds)
        if state is not None and state != message.state:
            message.state = state
            message.why = "its files: " + (", ".join(sorted(kinds)) or "none")
            message.history.append((index, state, message.why))

    def files_of(self, msg: int | None) -> list[QueueFile]:
        """The queue files of a message now (msg None: the pid/ files with no id yet)."""
        return [f for f in self.files.values() if f.msg == msg]

    def _note(self, event: dict[str, Any]) -> bool:
        return "why" in event or event["kind"] in ("deliver", "delivered", "defer", "failure")


def _id_in(path: str, files: dict[str, QueueFile]) -> int | None:
    """The queue id a queue path names: its last part in a message directory, or the id a
    pid/ file got when qmail-queue linked it into mess/."""
    try:
        return parse_queue_path(path)[1]
    except BadInput:
        pass
    known = files.get(path)
    return known.msg if known else None


def _decision(event: dict[str, Any]) -> str | None:
    """A line for a decision narrate does not word (a note with a `why`)."""
    why = event.get("why")
    if not why:
        return None
    who = f"{event.get('prog', '?')}[{event.get('pid', '?')}] ({event.get('uid', '?')})"
    return f"{who} {event['kind']}: {why}"


def is_stop(event: dict[str, Any]) -> bool:
    """Does this event end a step (is it narrated)?"""
    return isinstance(event.get("pid"), int) and (narrate(event) or _decision(event)) is not None
