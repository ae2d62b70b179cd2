"""Which architecture edge a trace event travels: follows cwd and descriptors per process.

Theory of operation. A `write(5, …)` says nothing by itself; it is an edge of qmail's picture
only once we know fd 5 is the pipe whose other end qmail-queue holds, or the file
`mess/18/2214550`. `Flow` keeps, per pid, the working directory and a descriptor table
(inherited at fork, changed by open, pipe, dup2, close), and per pipe the pids holding each
end and the programs that have read or written it (a writer may close its end before the
reader's first read). An edge is named with `sim.arch`'s node names (programs, `queue/mess`,
`maildir`, `network`, …) and points the way data flows, as in `sim.arch.build_graph()`.

A child's events can reach the trace before its parent's `fork` event (both write to one
pipe), so a pid seen first gets a copy of its parent's table as it is then, which is the
table at the fork: the parent's later events come later in the same pipe.

A process is known by (host, pid): hosts number their processes alike, and a pipe or an open
file never joins two hosts. Events come typed (`tui.fields`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from sim.archtrace import edge_for_event
from sim.narrate import QUEUE_DIRS
from sim.qmail.queue import QUEUE_DIR
from tui.fields import is_int

Edge = tuple[str, str, str]  # (from, to, kind): kind as sim.arch.EDGE_KINDS
End = tuple  # ("pipe", id, 0 read | 1 write) or ("file", path, mode)
Who = tuple[str, int]  # (host, pid)
NEEDS = {"exec": "program", "open": "path"}  # what `edge_for_event` reads of these kinds
QUEUE_TOPS = frozenset(d.rstrip("/") for d in QUEUE_DIRS) | {"lock"}


def queue_relative(path: str) -> str | None:
    """`…/queue/mess/18/457` or `mess/18/457` → `mess/18/457`; None outside the queue."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if QUEUE_DIR in parts[:-1]:
        parts = parts[len(parts) - parts[::-1].index(QUEUE_DIR) :]
    elif path.startswith("/"):
        return None
    if not parts or parts[0] not in QUEUE_TOPS:
        return None
    return "/".join(parts)


class Flow:
    """Cwd and descriptors of every process in a trace, to name the edge each event uses."""

    def __init__(self) -> None:
        self.cwd: dict[Who, str] = {}
        self.fds: dict[Who, dict[int, End]] = {}
        self.at_fork: dict[Who, dict[int, End]] = {}
        self.live: set[Who] = set()  # not yet gone: the tables a rename may touch
        self.holders: dict[int, tuple[set[Who], set[Who]]] = {}  # pipe: who holds (read, write)
        self.talked: dict[int, tuple[set[str], set[str]]] = {}  # pipe: programs that (read, wrote)
        self.pipes = 0

    def copy(self) -> Flow:
        """A flow of its own, to follow on from where this one is."""
        twin = Flow()
        twin.cwd = dict(self.cwd)
        twin.fds = {who: dict(table) for who, table in self.fds.items()}
        twin.at_fork = {who: dict(table) for who, table in self.at_fork.items()}
        twin.live = set(self.live)
        twin.holders = {pipe: (set(r), set(w)) for pipe, (r, w) in self.holders.items()}
        twin.talked = {pipe: (set(r), set(w)) for pipe, (r, w) in self.talked.items()}
        twin.pipes = self.pipes
        return twin

    def resolve(self, who: Who, path: str) -> str:
        """A path as the process meant it: joined to its cwd, normalised."""
        if not path:
            return path
        return posixpath.normpath(posixpath.join(self.cwd.get(who, ""), path))

    def _table(self, who: Who, parent: Who | None) -> dict[int, End]:
        if who not in self.fds:
            table = self.at_fork.pop(who, None)
            if table is None:
                table = dict(self.fds.get(parent, {})) if parent is not None else {}
            self.fds[who] = table
            self.live.add(who)
            for end in table.values():
                self._hold(end, who)
            if parent in self.cwd:
                self.cwd.setdefault(who, self.cwd[parent])
        return self.fds[who]

    def _hold(self, end: End, who: Who) -> None:
        if end[0] == "pipe":
            self.holders[end[1]][end[2]].add(who)

    def _drop(self, table: dict[int, End], fd: int, who: Who) -> None:
        end = table.pop(fd, None)
        if end and end[0] == "pipe" and end not in table.values():
            self.holders[end[1]][end[2]].discard(who)

    def gone(self, who: Who) -> None:
        """The process exited: it holds no pipe end any more."""
        for fd in list(self.fds.get(who, {})):
            self._drop(self.fds[who], fd, who)
        self.live.discard(who)

    def follow(self, event: dict[str, Any], prog_of: Callable[[Who], str]) -> list[Edge]:
        """The edges one event travels; `prog_of(who)` names what another process runs now."""
        pid, kind, result = event.get("pid"), event.get("kind"), event.get("result")
        if pid is None or event.get("err"):
            return []
        host = event.get("host", "")
        who, ppid = (host, pid), event.get("ppid")
        table = self._table(who, None if ppid is None else (host, ppid))
        if kind == "chdir" and "path" in event:
            self.cwd[who] = self.resolve(who, event["path"])
        elif kind == "fork" and is_int(result) and (host, result) not in self.fds:
            self.at_fork[host, result] = dict(table)
        elif kind == "pipe" and isinstance(result, list) and len(result) == 2:
            if all(is_int(fd) for fd in result):
                self.pipes += 1
                self.holders[self.pipes] = (set(), set())
                for fd, side in zip(result, (0, 1), strict=True):
                    self._drop(table, fd, who)
                    table[fd] = ("pipe", self.pipes, side)
                    self._hold(table[fd], who)
        elif kind == "dup2" and "new" in event:
            old, new = event.get("old"), event["new"]
            end = table.get(old)
            self._drop(table, new, who)
            if end is not None:
                table[new] = end
                self._hold(end, who)
        elif kind == "close" and "fd" in event:
            self._drop(table, event["fd"], who)
        elif kind == "open" and is_int(result) and "path" in event:
            self._drop(table, result, who)
            table[result] = ("file", self.resolve(who, event["path"]), event.get("mode", "rw"))
        elif kind in ("link", "rename") and "src" in event:
            dst = self.resolve(who, event.get("dst", ""))
            self._renamed(host, self.resolve(who, event["src"]), dst)
        if kind in ("read", "write", "fsync") and event.get("fd") in table:
            return self._on_fd(table[event["fd"]], event, prog_of)
        if kind in NEEDS and NEEDS[kind] not in event:
            return []
        resolved = dict(event)
        for key in ("path", "src", "dst"):
            if key in event:
                resolved[key] = self.resolve(who, event[key])
        edge = edge_for_event(resolved)
        return [edge] if edge and not edge[0].startswith("path:") and "path:" not in edge[1] else []

    def _renamed(self, host: str, src: str, dst: str) -> None:
        """An open file got a new name (qmail-queue links pid/ to mess/, then drops pid/):
        its descriptors on that host now lead to the new name."""
        for who in self.live:
            if who[0] != host:
                continue
            table = self.fds[who]
            for fd, end in table.items():
                if end[:2] == ("file", src):
                    table[fd] = ("file", dst, end[2])

    def _on_fd(self, end: End, event: dict[str, Any], prog_of: Callable[[Who], str]) -> list[Edge]:
        who = (event.get("host", ""), event["pid"])
        prog, kind = str(event.get("prog")), event["kind"]
        if end[0] == "file":
            node = _file_node(end[1])
            if node is None or not _allows(end[2], kind):
                return []
            return [(node, prog, "read")] if kind == "read" else [(prog, node, "write")]
        if kind == "fsync":
            return []
        reading = kind == "read"
        talked = self.talked.setdefault(end[1], (set(), set()))
        talked[0 if reading else 1].add(prog)
        holding = {prog_of(other) for other in self.holders[end[1]][1 if reading else 0] - {who}}
        names = sorted((talked[1 if reading else 0] | holding) - {prog})
        return [(name, prog, "pipe") if reading else (prog, name, "pipe") for name in names]


def _allows(mode: str, kind: str) -> bool:
    """Could a descriptor opened with `mode` be read (written, fsynced) so? A trace at the
    model's "fast" detail leaves out closes, so a descriptor seen is not always still open:
    one used against its mode was closed and reused, and says nothing of its file."""
    return ("r" in mode) if kind == "read" else ("w" in mode or "a" in mode)


def _file_node(path: str) -> str | None:
    edge = edge_for_event({"kind": "open", "prog": "?", "path": path, "mode": "r"})
    return None if edge is None or edge[0].startswith("path:") else edge[0]
