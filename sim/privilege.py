"""What an attacker who owns one program can reach, derived from uids, groups and file modes.

Theory of operation. A compromised program runs the attacker's code under its account, and
POSIX decides the rest: for every resource, the class the account falls in (owner, group or
other; root passes every check), the rwx bits of that class on each directory on the way
(x = may enter) and on the directory or file itself. Beyond its own permissions a program
can (1) use the descriptors it was handed: the graph's edges into it from resources its
account could not open (qmail-local's fd 0 on the message); (2) execute setuid programs,
which then do only what *they* do, with their owner's rights: the graph's write edges out
of them (qmail-queue adds one message, and nothing else); (3) signal processes of its own
account, and setuid children it started (their real uid is its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from sim.arch import BIN_DIR
from sim.qmail.errors import BadInput

WRITES = ("write", "link", "unlink")
QUEUE_TEXT = frozenset({"queue/mess", "queue/intd", "queue/todo"})
QUEUE_ROUTING = frozenset({"queue/info", "queue/local", "queue/remote"})


@dataclass(frozen=True, slots=True)
class Compromise:
    """The reach of one compromised program; `reasons` says why, resource by resource."""

    program: str
    account: str
    groups: tuple[str, ...]
    everything: bool
    can_read: tuple[str, ...]
    can_write: tuple[str, ...]
    can_execute: tuple[str, ...]
    can_signal: tuple[str, ...]
    affected_users: tuple[str, ...]
    affected_messages: tuple[str, ...]
    holds: Mapping[str, str]  # resource -> "read", "write": only through a descriptor handed to it
    through: Mapping[str, str]  # resource -> the setuid program that writes it on its behalf
    reasons: Mapping[str, str]  # resource -> the permission check, in words
    modes: Mapping[str, str]  # resource -> "owner:group mode", as ls would show it
    setuid: Mapping[str, str]  # executable program -> the account its setuid bit gives
    notes: tuple[str, ...]

    @property
    def verdict(self) -> str:
        """One line for a slide: everything, or what of the queue it can write."""
        if self.everything:
            return "EVERYTHING: root passes every permission check"
        queue = [r.removeprefix("queue/") for r in self.can_write if r.startswith("queue/")]
        mine = f"writes queue files {', '.join(queue)}" if queue else "writes no queue file"
        via = sorted(set(self.through.values()))
        return mine + (f"; adds messages only through {', '.join(via)}" if via else "")


def find_program(graph: nx.MultiDiGraph, name: str) -> str:
    """The node of program `name`; BadInput naming the known programs if there is none."""
    programs = {n: d for n, d in graph.nodes(data=True) if d["kind"] == "program"}
    if name in programs:
        return name
    for node, data in programs.items():
        if data["program"] == name:
            return node
    raise BadInput(f"unknown program {name!r}; known: {', '.join(sorted(programs))}")


def rwx(bits: int) -> str:
    """Three permission bits as ls shows them: 5 -> r-x."""
    return "".join(c if bits & b else "-" for c, b in zip("rwx", (4, 2, 1), strict=True))


def permission(account: str, groups: tuple[str, ...], owner: str, group: str, mode: int):
    """(class, bits): which triplet of `mode` applies to the account, and its bits."""
    if account == "root":
        return "root", 7
    if account == owner:
        return "owner", (mode >> 6) & 7
    if group in groups:
        return "group", (mode >> 3) & 7
    return "other", mode & 7


def access(node: Mapping, account: str, groups: tuple[str, ...]) -> tuple[bool, bool, str]:
    """(may read, may write, why) for one resource node, by its own permissions alone."""
    if account == "root":
        return True, True, "root passes every permission check"
    if node["rtype"] == "network":
        return True, True, "any account may open TCP connections"
    if node["rtype"] == "syslog":
        return False, True, "/dev/log is srw-rw-rw-: any account may log"
    if node["rtype"] == "socket":
        return False, False, f"listening on port {node['path'][1:]} takes root"
    for path, owner, group, mode in node["parents"]:
        cls, bits = permission(account, groups, owner, group, mode)
        if not bits & 1:
            where = f"{path}/ {owner}:{group} {mode:04o}"
            return False, False, f"cannot enter {where}: {account} is {cls}, {rwx(bits)}"
    owner, group, mode = node["owner"], node["group"], node["mode"]
    cls, bits = permission(account, groups, owner, group, mode)
    why = f"{owner}:{group} {mode:04o}: {account} is {cls}, {rwx(bits)}"
    if node["rtype"] != "dir":
        return bool(bits & 4), bool(bits & 2), why
    _, file_bits = permission(account, groups, owner, group, node["file_mode"])
    read = bool(bits & 1 and file_bits & 4)
    write = bits & 3 == 3 or bool(bits & 1 and file_bits & 2)
    return read, write, f"{why}; files {node['file_mode']:04o}: {rwx(file_bits)}"


def analyze(graph: nx.MultiDiGraph, program: str) -> Compromise:
    """What the attacker gets who runs code as `program`."""
    node = find_program(graph, program)
    me = graph.nodes[node]
    account, groups = me["user"], me["groups"]
    resources = [n for n, d in graph.nodes(data=True) if d["kind"] == "resource"]
    reads, writes, holds, reasons = [], [], {}, {}
    for res in resources:
        read, write, reasons[res] = access(graph.nodes[res], account, groups)
        held, detail = _handed(graph, node, res, read, write)
        if held:
            holds[res] = held
            reasons[res] += f"; but it is handed a descriptor: {detail}"
        reads += [res] * read
        writes += [res] * write
    executes, through = _executes(graph, account, groups, set(writes))
    for res, via in through.items():
        reasons[res] += f"; only through {via} (setuid {graph.nodes[via]['setuid_to']})"
    signals = _signals(graph, account)
    return Compromise(
        program=node,
        account=account,
        groups=groups,
        everything=account == "root",
        can_read=tuple(reads),
        can_write=tuple(writes),
        can_execute=executes,
        can_signal=signals,
        affected_users=_users(account, reads, writes),
        affected_messages=_messages(account, reads, writes, holds, through),
        holds=holds,
        through=through,
        reasons=reasons,
        modes={res: _mode(graph.nodes[res]) for res in resources},
        setuid={p: d["setuid_to"] for p, d in graph.nodes(data=True) if d.get("setuid")},
        notes=_notes(graph, node, through),
    )


def _mode(data: Mapping) -> str:
    mode = f" {data['mode']:04o}" if data["mode"] is not None else ""
    return f"{data['owner']}:{data['group']}{mode}" if data["owner"] else ""


def _handed(graph: nx.MultiDiGraph, node: str, res: str, read: bool, write: bool):
    """("read"/"write"/"read and write", edge detail) if it uses `res` beyond its permissions."""
    held, details = set(), []
    edges = [*graph.in_edges(node, data=True), *graph.out_edges(node, data=True)]
    for src, dst, data in edges:
        if res not in (src, dst):
            continue
        ways = {"read", "write"} if data["kind"] == "net" else {"read" if dst == node else "write"}
        ways -= {"read"} if read else set()
        ways -= {"write"} if write else set()
        if ways:
            held |= ways
            details.append(data["detail"])
    return " and ".join(sorted(held)), "; ".join(details)


def _executes(graph: nx.MultiDiGraph, account: str, groups: tuple[str, ...], writes: set[str]):
    """Programs whose binary the account may run, and what setuid ones write for it."""
    _, owner, group, mode = BIN_DIR
    if not permission(account, groups, owner, group, mode)[1] & 1:
        return (), {}
    executes, through = [], {}
    for node, data in graph.nodes(data=True):
        if data["kind"] != "program" or data["program"] in executes:
            continue
        bits = permission(account, groups, data["binary_owner"], group, data["binary_mode"])[1]
        if not bits & 1:
            continue
        executes.append(data["program"])
        if data["setuid"] and data["setuid_to"] != account:
            for _, res, kind in graph.out_edges(node, data="kind"):
                if kind in WRITES and res not in writes and graph.nodes[res]["kind"] == "resource":
                    through.setdefault(res, node)
    return tuple(executes), through


def _signals(graph: nx.MultiDiGraph, account: str) -> tuple[str, ...]:
    """Programs it may kill: same account, or setuid children its account started."""
    targets = []
    for node, data in graph.nodes(data=True):
        if data["kind"] != "program":
            continue
        parents = {
            graph.nodes[p]["user"] for p, _, k in graph.in_edges(node, "kind") if k == "fork-exec"
        }
        started = data["setuid"] and account in parents
        if account == "root" or data["user"] == account or started:
            targets.append(node)
    return tuple(targets)


def _users(account: str, reads: list, writes: list) -> tuple[str, ...]:
    if account == "root":
        return ("every user on the host",)
    users = []
    if "queue/mess" in reads or QUEUE_TEXT & set(writes):
        users.append("every sender and recipient with mail in the queue")
    if "maildir" in reads or {"maildir", "dotqmail"} & set(writes):
        users.append(f"{account}: its own Maildir and .qmail, no other user's")
    return tuple(users) or ("none directly",)


def _messages(account: str, reads: list, writes: list, holds: Mapping, through: Mapping) -> tuple:
    if account == "root":
        return ("every message: queued, in transit and delivered",)
    found, wrote = [], set(writes)
    if "queue/mess" in reads:
        found.append("read every queued message")
    if QUEUE_TEXT & wrote:
        found.append("rewrite or delete every queued message")
    if QUEUE_ROUTING & wrote:
        found.append("change or drop the recipients of every queued message")
    if "queue/todo" in through:
        found.append(f"add new messages through {through['queue/todo']}, as any local user can")
    if "queue/mess" in holds:
        found.append("read the one message it is delivering (fd 0)")
    if "maildir" in wrote:
        found.append("read, alter or delete the mail delivered to its user")
    return tuple(found) or ("none",)


def _notes(graph: nx.MultiDiGraph, node: str, through: Mapping[str, str]) -> tuple[str, ...]:
    data = graph.nodes[node]
    notes = [f"{node}: {data['description']}."]
    if data["user"] == "root":
        notes.append("It runs as root: it can read and write every file, run anything as "
                     "anyone and signal every process.")  # fmt: skip
    if data.get("starts_as"):
        notes.append(f"It starts as {data['starts_as']} only to bind its port, then runs "
                     f"as {data['user']}.")  # fmt: skip
    if data["group"] == "nofiles":
        notes.append("Its group, nofiles, owns no files.")
    for via in sorted(set(through.values())):
        v = graph.nodes[via]
        wrote = ", ".join(sorted(r for r, p in through.items() if p == via))
        how = f"mode {v['binary_mode']:04o}, setuid {v['setuid_to']}"
        notes.append(f"It reaches {wrote} only by running {via} ({how}), which does what {via} "
                     "does and no more.")  # fmt: skip
    return tuple(notes)


def _rows(c: Compromise) -> list[tuple[str, str, str, str, str]]:
    """(resource, owner:group mode, read, write, why) for every resource."""
    rows = []
    for res, why in c.reasons.items():
        held = c.holds.get(res, "")
        read = "yes" if res in c.can_read else "held" if "read" in held else "no"
        write = "yes" if res in c.can_write else "held" if "write" in held else "no"
        write = f"via {c.through[res]}" if res in c.through else write
        rows.append((res, c.modes[res], read, write, why))
    return rows


def _sections(c: Compromise) -> list[tuple[str, str]]:
    execs = [f"{p} (setuid {c.setuid[p]})" if p in c.setuid else p for p in c.can_execute]
    return [
        ("can execute", ", ".join(execs) or "nothing"),
        ("can signal", ", ".join(c.can_signal) or "nothing"),
        ("affected users", "; ".join(c.affected_users)),
        ("affected messages", "; ".join(c.affected_messages)),
        ("notes", " ".join(c.notes)),
    ]


def format_table(compromise: Compromise) -> str:
    """The compromise as a readable table (rich if installed, else plain text)."""
    c = compromise
    groups = ", ".join(c.groups) or "the caller's"
    head = f"If {c.program} is compromised, the attacker is {c.account} (groups: {groups})."
    head += f"\nVerdict: {c.verdict}"
    rows = [] if c.everything else _rows(c)
    if c.everything:
        head += f"\nIt can read and write all {len(c.reasons)} resources of the graph."
    sections = _sections(c)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return _plain(head, rows, sections)
    console = Console(width=120, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(head, highlight=False)
        if rows:
            table = Table("resource", "owner:group mode", "read", "write", "why", box=None)
            for row in rows:
                table.add_row(*row)
            console.print(table)
        for name, text in sections:
            console.print(f"{name}: {text}", highlight=False)
    return captured.get().rstrip() + "\n"


def _plain(head: str, rows: list, sections: list) -> str:
    lines = [head, ""]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
                  for r in rows]  # fmt: skip
        lines.append("")
    lines += [f"{name}: {text}" for name, text in sections]
    return "\n".join(lines) + "\n"
