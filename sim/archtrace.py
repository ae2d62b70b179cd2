"""The architecture graph held to reality: which edge of `sim.arch` each trace event uses.

`check_trace` follows a trace's descriptors (pipes, sockets, open files, across fork, dup2
and exec) and reports every interaction that is not an edge of the graph; `check_uids`
reports programs that ran under an account the graph does not give them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from sim.arch import POP3_PORT, USER, Edge
from sim.qmail.constants import QMAIL_UIDS
from sim.qmail.control import SMTP_PORT
from sim.qmail.queue import QUEUE_DIR, QUEUE_LAYOUT

QUEUE_NAMES = frozenset(e.path.split("/")[1] for e in QUEUE_LAYOUT if e.path.count("/") == 1)
# A path component that names a resource (a trailing `*`: a name prefix), by precedence.
PATH_MARKERS: tuple[tuple[str, str], ...] = (
    ("Maildir", "maildir"), ("Mailbox", "maildir"), ("alias", "alias"), (".qmail*", "dotqmail"),
    ("control", "control"), ("users", "users"), ("passwd", "passwd"), ("shadow", "passwd"),
    ("tcp.*", "tcprules"), ("log", "log"), ("home", "home"),
)  # fmt: skip
# The socket a server's connection belongs to, by the program that talks on it.
SERVICE = {"qmail-smtpd": "smtp-socket", "qmail-popup": "pop3-socket",
           "qmail-pop3d": "pop3-socket", "mta-monolith": "smtp-socket"}  # fmt: skip
PORT_SERVICE = {SMTP_PORT: "smtp-socket", POP3_PORT: "pop3-socket"}
# fsyncdir is missing on purpose: it flushes a link or unlink already seen, nothing new.
PATH_KINDS = {"link": "link", "rename": "link", "unlink": "unlink", "mkdir": "write",
              "mkfifo": "write", "utime": "write", "stat": "read", "readdir": "read"}  # fmt: skip


def resource_for_path(path: str) -> str | None:
    """The resource node a path belongs to (`queue/mess/15/457` → `queue/mess`), or None."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    rest = None
    if QUEUE_DIR in parts:
        rest = parts[len(parts) - parts[::-1].index(QUEUE_DIR) :]
    elif parts and parts[0] in QUEUE_NAMES and not path.startswith("/"):
        rest = parts  # relative to the queue, where qmail's queue programs run
    if rest:
        name = "/".join(rest[:2]) if rest[0] == "lock" else rest[0]
        return f"{QUEUE_DIR}/{name}"
    for marker, node in PATH_MARKERS:
        prefix = marker.removesuffix("*")
        if any(p == marker or (prefix != marker and p.startswith(prefix)) for p in parts):
            return node
    return None


def _file(path: str) -> str:
    return resource_for_path(path) or f"path:{path}"


def edge_for_event(event: Mapping[str, Any]) -> Edge | None:
    """The edge (src, dst, kind) a trace event exercises, named by program and resource.

    Only what one event shows on its own: exec, connect, and calls naming a path (relative
    paths as the queue programs use them, or resolved by `check_trace`). An unknown path
    comes back as `path:<path>`, so the check reports it. Reads and writes on descriptors
    need the trace's history: `interactions` follows it.
    """
    kind, prog = event.get("kind"), event.get("prog")
    if event.get("err") or not prog:
        return None
    if kind == "exec":
        return prog, event["program"], "fork-exec"
    if kind == "connect":
        return prog, "network", "net"
    if kind == "open":
        if event.get("mode", "r") == "r":
            return _file(event["path"]), prog, "read"
        return prog, _file(event["path"]), "write"
    if kind in PATH_KINDS and (path := event.get("dst") or event.get("path")):
        if PATH_KINDS[kind] == "read":
            return _file(path), prog, "read"
        return prog, _file(path), PATH_KINDS[kind]
    return None


class Follower:
    """Follows a trace's processes (cwd, descriptors per pid, across fork and dup2): `follow`
    names the edges each event uses, one event at a time, as a live view needs."""

    def __init__(self) -> None:
        self.cwd: dict[int, str] = {}
        self.fds: dict[int, dict[int, tuple]] = {}
        self.at_fork: dict[int, dict[int, tuple]] = {}
        self.pipes: dict[int, tuple[set[str], set[str]]] = {}
        self.count = 0

    def _process(self, event: Mapping[str, Any]) -> dict[int, tuple]:
        pid, ppid = event["pid"], event.get("ppid")
        if pid not in self.fds:  # its parent's table as it was at the fork
            at_fork = self.at_fork.pop(pid, None)
            self.fds[pid] = at_fork if at_fork is not None else dict(self.fds.get(ppid, {}))
            if ppid in self.cwd:
                self.cwd[pid] = self.cwd[ppid]
        return self.fds[pid]

    def _resolve(self, pid: int, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd.get(pid, ""), path)) if path else path

    def follow(self, event: Mapping[str, Any]) -> list[Edge]:
        """The edges one event exercises, given everything before it."""
        if "pid" not in event or event.get("err"):
            return []
        pid, kind, result = event["pid"], event.get("kind"), event.get("result")
        table = self._process(event)
        event = dict(event)
        for key in ("path", "src", "dst"):
            if isinstance(event.get(key), str):
                event[key] = self._resolve(pid, event[key])
        if kind == "chdir":
            self.cwd[pid] = event["path"]
        elif kind == "fork" and isinstance(result, int) and result not in self.fds:
            self.at_fork[result] = dict(table)
        elif kind == "pipe" and result:
            self.count += 1
            self.pipes[self.count] = (set(), set())
            table[result[0]], table[result[1]] = ("pipe", self.count, 0), ("pipe", self.count, 1)
        elif kind == "dup2":
            if event["old"] in table:
                table[event["new"]] = table[event["old"]]
            else:
                table.pop(event["new"], None)
        elif kind == "close":
            table.pop(event["fd"], None)
        elif kind == "open" and isinstance(result, int):
            table[result] = ("file", _file(event["path"]), event["path"])
        elif kind in ("link", "rename"):  # an open file now also has the new name: qmail-queue
            for fd, thing in list(table.items()):  # writes mess/ through the pid/ descriptor
                if thing[0] == "file" and thing[2] == event["src"]:
                    table[fd] = ("file", _file(event["dst"]), event["dst"])
        elif kind == "listen" and result:
            table[result[0]] = ("listen", result[1])
        elif kind == "accept" and result and event["fd"] in table:
            table[result[0]] = ("conn", table[event["fd"]][1], event["prog"])
        elif kind == "connect" and isinstance(result, int):
            table[result] = ("out",)
        elif kind in ("read", "write", "fsync", "truncate") and event.get("fd") in table:
            return self._on_descriptor(table[event["fd"]], event["prog"], kind)
        edge = edge_for_event(event)
        return [edge] if edge else []

    def _on_descriptor(self, thing: tuple, prog: str, kind: str) -> list[Edge]:
        reading = kind == "read"
        if thing[0] == "pipe":
            writers, readers = self.pipes[thing[1]]
            (readers if reading else writers).add(prog)
            return [(w, r, "pipe") for w in writers for r in readers]
        if thing[0] == "file":
            return [(thing[1], prog, "read") if reading else (prog, thing[1], "write")]
        if thing[0] == "conn":
            socket = SERVICE.get(prog) or PORT_SERVICE.get(thing[1], f"socket:{thing[1]}")
            return [(socket, prog, "net"), (socket, thing[2], "net")]
        if thing[0] == "out":
            return [(prog, "network", "net")]
        return []


def interactions(events: Iterable[Mapping[str, Any]]) -> list[Edge]:
    """Every distinct interaction a trace shows, in order of first appearance."""
    follower, seen = Follower(), {}
    for event in events:
        for edge in follower.follow(event):
            seen.setdefault(edge, None)
    return list(seen)


def _name(graph: nx.MultiDiGraph, node: str) -> str:
    return graph.nodes[node].get("program", node)


def check_trace(graph: nx.MultiDiGraph, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The interactions seen in a trace that are not edges of the graph, one line each."""
    known = {(_name(graph, u), _name(graph, v), d["kind"]) for u, v, d in graph.edges(data=True)}
    return [f"{src} -[{kind}]-> {dst}" for src, dst, kind in interactions(events)
            if (src, dst, kind) not in known]  # fmt: skip


# The accounts of qmail's daemons: a mail user is any other (alias and root included).
DAEMON_ACCOUNTS = frozenset(QMAIL_UIDS) - {"root", "alias"}


def check_uids(graph: nx.MultiDiGraph, events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Programs that ran under an account the graph does not give them (or their children)."""
    allowed: dict[str, set[str]] = {}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "program":
            accounts = allowed.setdefault(data["program"], set())
            accounts |= {data["user"], data.get("starts_as") or data["user"]}
            accounts |= {graph.nodes[c]["user"] for _, c, k in graph.out_edges(node, "kind")
                         if k == "fork-exec"}  # fmt: skip
    problems: dict[str, None] = {}
    for event in events:
        prog, uid = event.get("prog"), event.get("uid")
        if prog not in allowed or uid is None or event.get("kind") == "exec":
            continue
        ok = uid in allowed[prog] or (USER in allowed[prog] and uid not in DAEMON_ACCOUNTS)
        if not ok:
            problems.setdefault(f"{prog} ran as {uid}; the graph says {sorted(allowed[prog])}")
    return list(problems)
