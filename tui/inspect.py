"""Everything the trace knows about one thing: a message, a process, a queue file, an event
or a box of the picture, as a `Report` of titled sections of text lines (no Textual here).

The words for queue directories and states are INTERNALS' (via `sim.qmail.queue`), so the
inspector teaches the same vocabulary the code uses. Messages, processes and files are
selected by host too (each host numbers its own); the host is named when a trace has several.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sim.narrate import narrate
from sim.qmail.queue import STATE_MEANINGS
from tui.archview import graph
from tui.fields import is_number, typed
from tui.hosts import host_labels
from tui.picture import QUEUE
from tui.state import Key, TraceState

# ("message", (host, 457)), ("process", (host, 23481)), ("file", (host, path)), ("event", 12),
# ("node", "qmail-queue")
Selection = tuple[str, Any]

DIR_ROLES = {
    "pid": "qmail-queue's temporary name, made only to get an inode: the queue id",
    "mess": "the message itself, Received line first (mess/<id % 23>/<id>)",
    "intd": "the envelope while qmail-queue writes it (u, p, F, T records)",
    "todo": "the finished envelope, waiting for qmail-send to preprocess it",
    "info": "the envelope sender for qmail-send; its mtime is the message's birth",
    "local": "the local recipients, each T (to do) or D (done)",
    "remote": "the remote recipients, each T (to do) or D (done)",
    "bounce": "failure paragraphs, collected for one bounce message",
}
DIR_SHORT = {"pid": "inode", "mess": "message", "intd": "envelope…", "todo": "queued",
             "info": "sender", "local": "local rcpts", "remote": "remote rcpts",
             "bounce": "bounce text"}  # fmt: skip
RELATED = 12  # narrated lines shown under "what happened"
HIDDEN = ("t", "host")


@dataclass(slots=True)
class Report:
    """A title, then sections of lines, in the order a learner reads them."""

    title: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def add(self, heading: str, lines: list[str]) -> None:
        if lines:
            self.sections.append((heading, lines))


def report(state: TraceState, selection: Selection) -> Report:
    """The report for a selection; an unknown one says so (it may be later in the trace)."""
    kind, key = selection
    maker = {"message": _message, "process": _process, "file": _file, "event": _event,
             "node": _node}.get(kind)  # fmt: skip
    if maker is None:
        return Report(f"nothing to inspect: {kind}")
    return maker(state, key)


def _when(state: TraceState, index: int) -> str:
    t = state.events[index].get("t")
    if not is_number(t) or state.t0 is None:
        return f"#{index}"
    return f"#{index} +{t - state.t0:.3f}s"


def _on(state: TraceState, host: str) -> str:
    """` on beta.test` when the trace has several hosts; nothing when it has one."""
    return f" on {host or '?'}" if len(state.hosts) > 1 else ""


def _story(state: TraceState, indexes: list[int]) -> list[str]:
    lines = []
    for index in indexes:
        line = narrate(state.events[index])
        if line is None and state.events[index].get("why"):
            line = f"{state.events[index].get('kind')}: {state.events[index]['why']}"
        if line:
            lines.append(f"{_when(state, index)}  {line}")
    return lines[-RELATED:]


def _message(state: TraceState, key: Key) -> Report:
    message = state.messages.get(key)
    if message is None:
        return Report(f"message {key[1]}{_on(state, key[0])}: not in the trace so far")
    host, msg = key
    out = Report(f"message {msg}{_on(state, host)}")
    out.add("state", [f"{message.state}: {STATE_MEANINGS.get(message.state, '?')}",
                      *( [f"why: {message.why}"] if message.why else [])])  # fmt: skip
    envelope = [f"sender: {message.sender}"] if message.sender is not None else []
    envelope += [f"recipient: {r}" for r in message.recipients]
    out.add("envelope", envelope)
    out.add("files now", [f"{f.path}  ({DIR_SHORT.get(f.dir, f.dir)})"
                          for f in state.files_of(host, msg)])  # fmt: skip
    paths = _paths_of(state, message.events)
    gone = [f"{path}: {how} at {_when(state, i)}"
            for (where, path), ops in state.gone.items() for i, how in ops
            if where == host and path in paths]  # fmt: skip
    out.add("files gone", gone)
    out.add("state history", [f"{_when(state, i)}  {s}  {why}" for i, s, why in message.history])
    out.add("processes", [_who(state, (host, pid)) for pid in message.pids])
    out.add("what happened", _story(state, message.events))
    return out


def _paths_of(state: TraceState, indexes: list[int]) -> set[str]:
    paths = set()
    for index in indexes:
        event = state.events[index]
        for key in ("path", "src", "dst"):
            if isinstance(event.get(key), str):
                paths.add(event[key])
    return paths


def _who(state: TraceState, key: Key) -> str:
    """`qmail-queue[30] (qmailq), exit 0`, with its host's label when there are several."""
    process = state.processes.get(key)
    if process is None:
        return f"pid {key[1]}"
    label = host_labels(state.hosts).get(process.host)
    where = f"{label}: " if label else ""
    return f"{where}{process.prog}[{process.pid}] ({process.uid}), {process.state}"


def _process(state: TraceState, key: Key) -> Report:
    process = state.processes.get(key)
    host, pid = key
    if process is None:
        return Report(f"process {pid}{_on(state, host)}: not in the trace so far")
    out = Report(f"process {pid}{_on(state, host)}: {process.prog}")
    parent_key = (host, process.ppid)
    parent = f"{process.ppid} ({_who(state, parent_key)})" if parent_key in state.processes \
        else str(process.ppid)  # fmt: skip
    facts = [f"state: {process.state}", f"parent: {parent}"]
    facts.append(f"accounts: {' → '.join(process.accounts)}")
    facts.append(f"programs: {' → '.join(process.programs)}")
    if process.label:
        facts.append(f"forked as: {process.label}")
    if process.argv:
        facts.append(f"argv: {' '.join(process.argv)}")
    if process.msg is not None:
        facts.append(f"message: {process.msg}")
    out.add("process", facts)
    children = [_who(state, p.key) for p in state.processes.values()
                if p.ppid == pid and p.host == host]  # fmt: skip
    out.add("children", children)
    kinds = Counter(str(state.events[i].get("kind")) for i in process.events)
    out.add("calls", [", ".join(f"{k} {n}" for k, n in kinds.most_common())])
    out.add("what happened", _story(state, process.events))
    return out


def _file(state: TraceState, key: tuple[str, str]) -> Report:
    host, path = key
    directory = path.split("/", 1)[0]
    out = Report(f"queue file {path}{_on(state, host)}")
    now = state.files.get(key)
    facts = [f"{directory}/: {DIR_ROLES.get(directory, '?')}"]
    if now is not None:
        facts.append(f"made at {_when(state, now.made)} by {_who(state, (host, now.by))}")
        if now.msg is not None:
            message = state.messages.get((host, now.msg))
            facts.append(f"message {now.msg}: {message.state if message else '?'}")
    else:
        facts.append("not in the queue now")
    out.add("file", facts)
    out.add("gone", [f"{how} at {_when(state, i)}" for i, how in state.gone.get(key, [])])
    touching = [i for i, e in enumerate(state.events)
                if path in (e.get("path"), e.get("src"), e.get("dst"))
                and e.get("host", "") == host]  # fmt: skip
    out.add("what happened", _story(state, touching))
    return out


def _event(state: TraceState, index: int) -> Report:
    if not 0 <= index < len(state.events):
        return Report(f"event #{index}: not applied yet")
    event = state.events[index]
    host = typed(event).get("host", "")
    out = Report(f"event {_when(state, index)}: {event.get('kind')}{_on(state, host)}")
    line = narrate(event)
    out.add("story", [line] if line else [])
    if event.get("why"):
        out.add("why", [str(event["why"])])
    out.add("fields", [f"{k}: {v}" for k, v in event.items() if k not in HIDDEN])
    edges = state.edge_events.get(index, [])
    out.add("architecture", [f"{a} → {b} ({kind})" for a, b, kind in edges])
    who = (host, typed(event).get("pid"))
    if who in state.processes:
        near = [i for i in state.processes[who].events if abs(i - index) <= 40 and i != index]
        out.add(f"{_who(state, who)} around it", _story(state, near))
    return out


def _queue(state: TraceState) -> Report:
    out = Report("the queue (queue/)")
    counts = Counter(f.dir for f in state.files.values())
    out.add("directories", [f"{d}/ ({counts.get(d, 0)}): {role}" for d, role in DIR_ROLES.items()])
    labels = host_labels(state.hosts)
    out.add("messages", [f"{m.id}{_at(labels, m.host)}: {m.state} {STATE_MEANINGS.get(m.state, '')}"
                         for m in state.messages.values()])  # fmt: skip
    return out


def _node(state: TraceState, node: str) -> Report:
    if node == QUEUE:
        return _queue(state)
    g = graph()
    if node not in g:
        return Report(f"{node}: not in qmail's architecture")
    data = g.nodes[node]
    out = Report(f"{data.get('label', node)}".replace("\n", " "))
    keep = ("description", "user", "owner", "group", "lifetime", "started_by", "stage", "path")
    out.add("architecture", [f"{k}: {data[k]}" for k in keep if data.get(k) not in (None, "")])
    flows = [
        f"→ {v} ({d['kind']}): {d.get('detail', '')}" for _, v, d in g.out_edges(node, data=True)
    ]
    flows += [
        f"← {u} ({d['kind']}): {d.get('detail', '')}" for u, _, d in g.in_edges(node, data=True)
    ]
    out.add("talks to", flows)
    runs = [_who(state, p.key) for p in state.processes.values() if node in p.programs]
    out.add("in this trace", runs)
    return out


def _at(labels: dict[str, str], host: str) -> str:
    return f"@{labels[host]}" if host in labels else ""
