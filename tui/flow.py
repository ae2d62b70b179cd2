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
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from sim.archtrace import edge_for_event
from sim.narrate import QUEUE_DIRS
from sim.qmail.queue import QUEUE_DIR

Edge = tuple[str, str, str]  # (from, to, kind): kind as sim.arch.EDGE_KINDS
End = tuple  # ("pipe", id, 0 read | 1 write) or ("file", path)
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
        self.cwd: dict[int, str] = {}
        self.fds: dict[int, dict[int, End]] = {}
        self.at_fork: dict[int, dict[int, End]] = {}
        self.holders: dict[int, tuple[set[int], set[int]]] = {}  # pipe: pids at (read, write)
        self.talked: dict[int, tuple[set[str], set[str]]] = {}  # pipe: programs that (read, wrote)
        self.pipes = 0

    def resolve(self, pid: int, path: str) -> str:
        """A path as the process meant it: joined to its cwd, normalised."""
        if not path:
            return path
        return posixpath.normpath(posixpath.join(self.cwd.get(pid, ""), path))

    def _table(self, pid: int, ppid: int | None) -> dict[int, End]:
        if pid not in self.fds:
            table = self.at_fork.pop(pid, None)
            if table is None:
                table = dict(self.fds.get(ppid, {})) if ppid is not None else {}
            self.fds[pid] = table
            for end in table.values():
                self._hold(end, pid)
            if ppid in self.cwd:
                self.cwd.setdefault(pid, self.cwd[ppid])
        return self.fds[pid]

    def _hold(self, end: End, pid: int) -> None:
        if end[0] == "pipe":
            self.holders[end[1]][end[2]].add(pid)

    def _drop(self, table: dict[int, End], fd: int, pid: int) -> None:
        end = table.pop(fd, None)
        if end and end[0] == "pipe" and end not in table.values():
            self.holders[end[1]][end[2]].discard(pid)

    def gone(self, pid: int) -> None:
        """The process exited: it holds no pipe end any more."""
        for fd in list(self.fds.get(pid, {})):
            self._drop(self.fds[pid], fd, pid)

    def follow(self, event: dict[str, Any], prog_of: Callable[[int], str]) -> list[Edge]:
        """The edges one event travels; `prog_of(pid)` names what another process runs now."""
        pid, kind, result = event.get("pid"), event.get("kind"), event.get("result")
        if not isinstance(pid, int) or event.get("err"):
            return []
        table = self._table(pid, event.get("ppid"))
        if kind == "chdir" and isinstance(event.get("path"), str):
            self.cwd[pid] = self.resolve(pid, event["path"])
        elif kind == "fork" and isinstance(result, int) and result not in self.fds:
            self.at_fork[result] = dict(table)
        elif kind == "pipe" and isinstance(result, list) and len(result) == 2:
            self.pipes += 1
            self.holders[self.pipes] = (set(), set())
            for fd, side in zip(result, (0, 1), strict=True):
                self._drop(table, fd, pid)
                table[fd] = ("pipe", self.pipes, side)
                self._hold(table[fd], pid)
        elif kind == "dup2" and isinstance(event.get("new"), int):
            old, new = event.get("old"), event["new"]
            end = table.get(old)
            self._drop(table, new, pid)
            if end is not None:
                table[new] = end
                self._hold(end, pid)
        elif kind == "close" and isinstance(event.get("fd"), int):
            self._drop(table, event["fd"], pid)
        elif kind == "open" and isinstance(result, int) and isinstance(event.get("path"), str):
            self._drop(table, result, pid)
            table[result] = ("file", self.resolve(pid, event["path"]))
        elif kind in ("link", "rename") and isinstance(event.get("src"), str):
            self._renamed(self.resolve(pid, event["src"]), self.resolve(pid, event.get("dst", "")))
        if kind in ("read", "write", "fsync") and event.get("fd") in table:
            return self._on_fd(table[event["fd"]], event, prog_of)
        resolved = dict(event)
        for key in ("path", "src", "dst"):
            if isinstance(event.get(key), str):
                resolved[key] = self.resolve(pid, event[key])
        edge = edge_for_event(resolved)
        return [edge] if edge and not edge[0].startswith("path:") and "path:" not in edge[1] else []

    def _renamed(self, src: str, dst: str) -> None:
        """An open file got a new name (qmail-queue links pid/ to mess/, then drops pid/):
        its descriptors now lead to the new name."""
        for table in self.fds.values():
            for fd, end in table.items():
                if end == ("file", src):
                    table[fd] = ("file", dst)

    def _on_fd(self, end: End, event: dict[str, Any], prog_of: Callable[[int], str]) -> list[Edge]:
        pid, prog, kind = event["pid"], str(event.get("prog")), event["kind"]
        if end[0] == "file":
            node = _file_node(end[1])
            if node is None:
                return []
            return [(node, prog, "read")] if kind == "read" else [(prog, node, "write")]
        if kind == "fsync":
            return []
        reading = kind == "read"
        talked = self.talked.setdefault(end[1], (set(), set()))
        talked[0 if reading else 1].add(prog)
        holding = {prog_of(other) for other in self.holders[end[1]][1 if reading else 0] - {pid}}
        names = sorted((talked[1 if reading else 0] | holding) - {prog})
        return [(name, prog, "pipe") if reading else (prog, name, "pipe") for name in names]


def _file_node(path: str) -> str | None:
    edge = edge_for_event({"kind": "open", "prog": "?", "path": path, "mode": "r"})
    return None if edge is None or edge[0].startswith("path:") else edge[0]
