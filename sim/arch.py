"""qmail's architecture as a graph: who starts whom, who talks to whom, through what.

Theory of operation. Nodes are programs (`kind="program"`: the account each runs as, its
group, whether its binary is setuid, how long it lives, who starts it) and resources
(`kind="resource"`: queue directories, control files, Maildirs, sockets, the network, each
with owner, group and mode). Edges are interactions, `kind` one of `EDGE_KINDS`; an edge
points the way data flows: a parent to the child it fork/execs, a writer to the reader of a
pipe, a file to the program reading it, a program to the file it writes, links or unlinks,
a socket to the server that answers on it, a client to the network. Pipes carry the fd
numbers at both ends (`src_fd`, `dst_fd`, None where any descriptor does) and what flows.

Accounts and groups come from `sim.qmail.constants`, the queue's owners and modes from
`sim.qmail.queue.QUEUE_LAYOUT`, its file modes from `sim.qmail.lifecycle`, the setuid bit
from the program registry. What no code states yet (install modes of the binaries, who
starts whom, the fds of the pipes) is written below from qmail's hier.c and qmail-start.c.

`sim.archtrace.check_trace` holds the graph to reality against a trace.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from sim.programs.registry import PROGRAMS as REGISTRY
from sim.qmail.constants import QMAIL_GIDS, QMAIL_UIDS
from sim.qmail.control import SMTP_PORT
from sim.qmail.lifecycle import QUEUE_MODE, SEND_MODE
from sim.qmail.maildir import CreateExclusive
from sim.qmail.queue import QUEUE_DIR, QUEUE_LAYOUT

VARIANTS = ("qmail", "monolith")
EDGE_KINDS = ("fork-exec", "pipe", "read", "write", "link", "unlink", "net")
STAGES = ("injection", "queue", "delivery", "retrieval")
USER = "user"  # stands for a mail user: the recipient (or alias), or whoever sends
POP3_PORT = 110

# INSTALL.ids: qmail's accounts and their groups (GROUP_OVERRIDE: qmail-start's gid qmail).
GROUP_OF = {"root": "root", "alias": "nofiles", "qmaild": "nofiles", "qmaill": "nofiles",
            "qmailp": "nofiles", "qmailq": "qmail", "qmailr": "qmail", "qmails": "qmail",
            USER: USER}  # fmt: skip

# name: (account, lifetime, stage, what it does). Who starts it comes from FORK_EXECS.
PROGRAM_FACTS: dict[str, tuple[str, str, str, str]] = {
    "tcpserver": ("qmaild", "long-running", "injection",
                  "binds port 25 as root, drops to qmaild, forks one qmail-smtpd per connection"),
    "qmail-smtpd": ("qmaild", "per connection", "injection",
                    "speaks SMTP on fd 0/1; hands each message to qmail-queue"),
    "sendmail": (USER, "per message", "injection",
                 "sendmail-compatible front end: translates flags, execs qmail-inject"),
    "qmail-inject": (USER, "per message", "injection",
                     "fills in header and envelope of a local message, runs qmail-queue"),
    "qmail-queue": ("qmailq", "per message", "queue",
                    "setuid qmailq: stores one message safely in the queue, pulls the trigger"),
    "qmail-start": ("root", "long-running", "queue",
                    "wires the pipes, starts the daemons, becomes qmail-send"),
    "splogger": ("qmaill", "long-running", "queue",
                 "copies qmail-send's log lines to syslog"),
    "qmail-send": ("qmails", "long-running", "queue",
                   "the queue manager: preprocesses, schedules, retries, bounces"),
    "qmail-clean": ("qmailq", "long-running", "queue",
                    "unlinks queue files that qmail-send (qmails) may not remove"),
    "qmail-lspawn": ("root", "long-running", "delivery",
                     "root so it can setuid: forks qmail-local as the recipient"),
    "qmail-getpw": ("qmailp", "per delivery", "delivery",
                    "looks the recipient up in the password file"),
    "qmail-local": (USER, "per delivery", "delivery",
                    "follows the user's .qmail: Maildir, mbox, program or forward"),
    "qmail-rspawn": ("qmailr", "long-running", "delivery",
                     "forks one qmail-remote per remote delivery"),
    "qmail-remote": ("qmailr", "per delivery", "delivery",
                     "SMTP client: hands one message to a remote MTA"),
    "qmail-popup": ("root", "per connection", "retrieval",
                    "reads USER and PASS, runs checkpassword"),
    "checkpassword": ("root", "per connection", "retrieval",
                      "checks the password, setuids to the user, execs qmail-pop3d"),
    "qmail-pop3d": (USER, "per connection", "retrieval",
                    "serves the user's Maildir over POP3"),
}  # fmt: skip
# A second tcpserver, for POP3 (FAQ 5.3 runs qmail-popup as root): same program, own node.
INSTANCES = {"tcpserver-pop3": ("tcpserver", "root", "binds port 110, forks qmail-popup")}
GIDS = {**QMAIL_GIDS, "root": 0}
GROUP_OVERRIDE = {"qmail-start": "qmail", "qmail-lspawn": "qmail"}
STARTS_AS = {"tcpserver": "root"}  # accounts a program holds before it drops privileges
OUTSIDE_STARTERS = {"tcpserver": "boot script", "tcpserver-pop3": "boot script",
                    "qmail-start": "boot script", "sendmail": "the user's mail client",
                    "qmail-inject": "the user"}  # fmt: skip

# hier.c: bin/ is root:qmail 0755; each binary (owner, mode). tcpserver, checkpassword: 0755.
BINARY_MODES = {"qmail-queue": ("qmailq", 0o4711), "qmail-lspawn": ("root", 0o700),
                "qmail-start": ("root", 0o700)}  # fmt: skip
BINARY_MODES |= {name: ("root", 0o711) for name in ("qmail-getpw", "qmail-local",
                 "qmail-remote", "qmail-rspawn", "qmail-clean", "qmail-send", "splogger",
                 "qmail-popup")}  # fmt: skip
BIN_DIR = ("bin", "root", "qmail", 0o755)

HOME = ("~user", USER, USER, 0o755)  # a home directory: conf-patrn forbids world-writable
MAILDIR_FILE_MODE = CreateExclusive("").mode

# id: (type, label, path, owner, group, mode, mode of the files inside, parents, stage)
RESOURCE_FIELDS = ("rtype", "label", "path", "owner", "group", "mode", "file_mode", "parents",
                   "stage")  # fmt: skip
OTHER_RESOURCES: dict[str, tuple[str, str, str, str, str, int | None, int | None, tuple, str]] = {
    "smtp-socket": ("socket", f"port {SMTP_PORT}\n(SMTP)", f":{SMTP_PORT}", "root", "root",
                    None, None, (), "injection"),
    "tcprules": ("file", "tcp.smtp.cdb", "/etc/tcp.smtp.cdb", "root", "root", 0o644, None, (),
                 "injection"),
    "control": ("dir", "control/", "control", "root", "qmail", 0o755, 0o644, (), "queue"),
    "log": ("syslog", "syslog", "/dev/log", "root", "root", 0o666, None, (), "queue"),
    "users": ("dir", "users/\nassign, cdb", "users", "root", "qmail", 0o755, 0o644, (),
              "delivery"),
    "passwd": ("file", "/etc/passwd", "/etc/passwd", "root", "root", 0o644, None, (),
               "delivery"),
    "alias": ("dir", "alias/\n.qmail-*", "alias", "alias", "qmail", 0o2755, 0o644, (),
              "delivery"),
    "home": ("dir", "~user/", "~user", USER, USER, 0o755, 0o644, (), "delivery"),
    "dotqmail": ("file", "~user/.qmail", "~user/.qmail", USER, USER, 0o644, None, (HOME,),
                 "delivery"),
    "maildir": ("dir", "~user/Maildir/", "~user/Maildir", USER, USER, 0o700, MAILDIR_FILE_MODE,
                (HOME,), "delivery"),
    "network": ("network", "remote MTAs\n(the Internet)", "", "", "", None, None, (),
                "delivery"),
    "pop3-socket": ("socket", f"port {POP3_PORT}\n(POP3)", f":{POP3_PORT}", "root", "root",
                    None, None, (), "retrieval"),
}  # fmt: skip

Edge = tuple[str, str, str]
MESSAGE, ENVELOPE = "the message", "the envelope: F sender, T recipient…"
SPAWN_IN, SPAWN_OUT = "deliveries: slot, id, sender, recipient", "results: slot, K/Z/D + text"

# (src, dst, src fd, dst fd, what flows, short label for the picture)
PIPES: tuple[tuple[str, str, int | None, int | None, str, str], ...] = (
    *((p, "qmail-queue", None, 0, MESSAGE, "fd 0 msg, fd 1 env")
      for p in ("qmail-smtpd", "qmail-inject", "qmail-send", "qmail-local")),
    *((p, "qmail-queue", None, 1, ENVELOPE, "fd 0 msg, fd 1 env")
      for p in ("qmail-smtpd", "qmail-inject", "qmail-send", "qmail-local")),
    ("qmail-send", "splogger", 0, 0, "log lines (qmail-log(5))", "fd 0 log"),
    ("qmail-send", "qmail-lspawn", 1, 0, SPAWN_IN, "1→0 jobs"),
    ("qmail-lspawn", "qmail-send", 1, 2, "concurrency byte, then " + SPAWN_OUT, "1→2 K/Z/D"),
    ("qmail-send", "qmail-rspawn", 3, 0, SPAWN_IN, "3→0 jobs"),
    ("qmail-rspawn", "qmail-send", 1, 4, "concurrency byte, then " + SPAWN_OUT, "1→4 K/Z/D"),
    ("qmail-send", "qmail-clean", 5, 0, "todo/<id> or foop/<id>: what to unlink", "5→0 todo/foop"),
    ("qmail-clean", "qmail-send", 1, 6, "one byte: + done, ! failed, x bad command", "1→6 +/!"),
    ("qmail-getpw", "qmail-lspawn", 1, None, "user, uid, gid, home, dash, ext", "user, home"),
    ("qmail-local", "qmail-lspawn", 1, None, "report text (fd 1 and 2), exit code", "report"),
    ("qmail-remote", "qmail-rspawn", 1, None, "r/h/s/K/Z/D reports", "reports"),
    ("qmail-popup", "checkpassword", None, 3, "user, password, timestamp", "fd 3 user+pass"),
)  # fmt: skip

# (src, dst, kind, detail); which end is the program follows the direction of data flow.
FILE_EDGES: tuple[tuple[str, str, str, str], ...] = (
    ("tcprules", "tcpserver", "read", "which clients may connect, with RELAYCLIENT"),
    ("smtp-socket", "tcpserver", "net", "accepts connections"),
    ("smtp-socket", "qmail-smtpd", "net", "SMTP on fd 0 and 1"),
    *(("control", p, "read", "control files") for p in
      ("qmail-smtpd", "qmail-inject", "qmail-send", "qmail-remote")),
    ("qmail-queue", "queue/pid", "write", "creates pid/<pid>.<time>.<seq> for its inode"),
    ("qmail-queue", "queue/pid", "unlink", "removes the pid name once linked"),
    ("qmail-queue", "queue/mess", "link", "pid/ name → mess/<split>/<id>"),
    ("qmail-queue", "queue/mess", "write", "Received line + the message, fsync"),
    ("qmail-queue", "queue/intd", "write", "u, p, F, T records, fsync"),
    ("qmail-queue", "queue/todo", "link", "intd/<id> → todo/<id>: now queued"),
    ("qmail-queue", "queue/lock/trigger", "write", "one byte: wake qmail-send"),
    ("queue/lock/trigger", "qmail-send", "read", "select(): new mail"),
    ("qmail-send", "queue/lock/trigger", "write", "opened for writing too: no EOF (trigger.c)"),
    ("qmail-send", "queue/lock/sendmutex", "write", "exclusive lock: one qmail-send"),
    ("queue/todo", "qmail-send", "read", "new envelopes to preprocess"),
    ("queue/mess", "qmail-send", "read", "message size; the text of bounces"),
    *((f"queue/{d}", "qmail-send", "read", "its own records") for d in
      ("info", "local", "remote", "bounce")),
    *(("qmail-send", f"queue/{d}", "write", "sender, recipients, T→D marks, bounce text")
      for d in ("info", "local", "remote", "bounce")),
    *(("qmail-send", f"queue/{d}", "unlink", "when the message is done")
      for d in ("info", "local", "remote", "bounce")),
    ("queue/pid", "qmail-clean", "read", "looks for files 36 hours old"),
    *(("qmail-clean", f"queue/{d}", "unlink", "on qmail-send's request")
      for d in ("pid", "intd", "todo", "mess")),
    ("splogger", "log", "write", "syslog lines"),
    ("queue/mess", "qmail-lspawn", "read", "opens the message for qmail-local's fd 0"),
    ("queue/mess", "qmail-rspawn", "read", "opens the message for qmail-remote's fd 0"),
    ("queue/mess", "qmail-local", "read", "fd 0: the message, opened by qmail-lspawn"),
    ("queue/mess", "qmail-remote", "read", "fd 0: the message, opened by qmail-rspawn"),
    ("users", "qmail-lspawn", "read", "users/cdb: the recipient's uid and home"),
    ("passwd", "qmail-getpw", "read", "getpwnam()"),
    ("home", "qmail-getpw", "read", "stat(): the home exists and the user owns it"),
    ("alias", "qmail-getpw", "read", "stat() of ~alias, the home of the alias user"),
    ("home", "qmail-local", "read", "chdir; refuses a world-writable home"),
    ("control", "qmail-local", "read", "control/me for Maildir names (1.03: gethostname)"),
    ("dotqmail", "qmail-local", "read", "delivery instructions"),
    ("alias", "qmail-local", "read", "instructions for addresses no user owns"),
    ("qmail-local", "maildir", "write", "tmp/<name>, fsync"),
    ("qmail-local", "maildir", "link", "tmp/ → new/: delivered"),
    ("qmail-local", "maildir", "unlink", "the tmp/ name"),
    ("qmail-rspawn", "queue/lock/tcpto", "write", "zeroed at start"),
    ("queue/lock/tcpto", "qmail-remote", "read", "hosts that timed out"),
    ("qmail-remote", "queue/lock/tcpto", "write", "records a timeout"),
    ("qmail-remote", "network", "net", f"SMTP client, port {SMTP_PORT}"),
    ("pop3-socket", "tcpserver-pop3", "net", "accepts connections"),
    ("pop3-socket", "qmail-popup", "net", "USER and PASS on fd 0 and 1"),
    ("pop3-socket", "qmail-pop3d", "net", "POP3 on fd 0 and 1"),
    ("passwd", "checkpassword", "read", "the user's password and home"),
    ("maildir", "qmail-pop3d", "read", "new/ and cur/"),
    ("qmail-pop3d", "maildir", "link", "new/ → cur/ (rename)"),
    ("qmail-pop3d", "maildir", "unlink", "DELE"),
)  # fmt: skip

EXEC_ONLY = {
    ("qmail-start", "qmail-send"),
    ("sendmail", "qmail-inject"),
    ("checkpassword", "qmail-pop3d"),
}  # no fork: the process becomes the child
FORK_EXECS: tuple[tuple[str, str], ...] = (
    ("tcpserver", "qmail-smtpd"), ("sendmail", "qmail-inject"),
    ("qmail-smtpd", "qmail-queue"), ("qmail-inject", "qmail-queue"),
    ("qmail-send", "qmail-queue"), ("qmail-local", "qmail-queue"),
    ("qmail-start", "splogger"), ("qmail-start", "qmail-lspawn"),
    ("qmail-start", "qmail-rspawn"), ("qmail-start", "qmail-clean"),
    ("qmail-start", "qmail-send"), ("qmail-lspawn", "qmail-getpw"),
    ("qmail-lspawn", "qmail-local"), ("qmail-rspawn", "qmail-remote"),
    ("tcpserver-pop3", "qmail-popup"), ("qmail-popup", "checkpassword"),
    ("checkpassword", "qmail-pop3d"),
)  # fmt: skip


def build_graph(variant: str = "qmail") -> nx.MultiDiGraph:
    """The architecture of qmail 1.03, or of the sendmail-like monolith it replaced."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    graph = nx.MultiDiGraph(variant=variant, queue_dir=_queue_entry(QUEUE_DIR))
    _add_resources(graph)
    if variant == "monolith":
        _add_monolith(graph)
        return graph
    for name, facts in PROGRAM_FACTS.items():
        _add_program(graph, name, name, *facts)
    for node, (program, user, description) in INSTANCES.items():
        _add_program(graph, node, program, user, PROGRAM_FACTS[program][1], "retrieval",
                     description)  # fmt: skip
    for parent, child in FORK_EXECS:
        graph.add_edge(parent, child, kind="fork-exec", label="", detail=_how(graph, parent, child))
    for node, data in graph.nodes(data=True):
        if data["kind"] == "program":
            starters = [*graph.predecessors(node), OUTSIDE_STARTERS.get(node)]
            data["started_by"] = ", ".join(s for s in starters if s)
    for src, dst, src_fd, dst_fd, flows, label in PIPES:
        detail = f"{_fd(src_fd)} → {_fd(dst_fd)}: {flows}"
        graph.add_edge(src, dst, kind="pipe", src_fd=src_fd, dst_fd=dst_fd, flows=flows,
                       label=label, detail=detail)  # fmt: skip
    for src, dst, kind, detail in FILE_EDGES:
        graph.add_edge(src, dst, kind=kind, label="", detail=detail)
    return graph


def _fd(fd: int | None) -> str:
    return "a pipe" if fd is None else f"fd {fd}"


def _how(graph: nx.MultiDiGraph, parent: str, child: str) -> str:
    """How a child gets its account: the setuid bit, a setuid() before exec, or inherited."""
    node, fork = graph.nodes[child], "" if (parent, child) in EXEC_ONLY else "fork, "
    if node["setuid"]:
        return f"{fork}exec; the setuid bit makes it {node['setuid_to']}"
    if node["user"] != graph.nodes[parent]["user"]:
        return f"{fork}setuid {node['user']}, exec"
    return f"{fork}exec"


def _add_program(graph: nx.MultiDiGraph, node: str, program: str, user: str, lifetime: str,
                 stage: str, description: str) -> None:  # fmt: skip
    """One program node; uid, gid and the setuid bit come from qmail's tables."""
    setuid_to = REGISTRY.get(program, ("", None))[1]
    owner, mode = BINARY_MODES.get(program, ("root", 0o755))
    group = GROUP_OVERRIDE.get(node) or GROUP_OF.get(user, user)
    groups: tuple[str, ...] = (group,)
    if setuid_to:  # the setuid bit changes the user only: the group stays the caller's
        group, groups = "the caller's", ()
    graph.add_node(
        node, kind="program", program=program, label=program, user=user,
        uid=QMAIL_UIDS.get(user), group=group, gid=GIDS.get(group), groups=groups,
        setuid=bool(setuid_to), setuid_to=setuid_to, binary_owner=owner, binary_mode=mode,
        starts_as=STARTS_AS.get(node), lifetime=lifetime, started_by="", stage=stage,
        description=description,
    )  # fmt: skip


def _queue_entry(path: str) -> dict[str, Any]:
    entry = next(e for e in QUEUE_LAYOUT if e.path == path)
    return {"path": entry.path, "owner": entry.owner, "group": entry.group, "mode": entry.mode}


def _add_resources(graph: nx.MultiDiGraph) -> None:
    """Queue entries from QUEUE_LAYOUT (split subdirectories folded in), then the rest."""
    layout = {e.path: e for e in QUEUE_LAYOUT}
    for entry in QUEUE_LAYOUT:
        parts = entry.path.split("/")
        if parts[-1].isdigit() or entry.path in (QUEUE_DIR, f"{QUEUE_DIR}/lock"):
            continue  # split subdirectories, the queue and lock/ themselves: only traversed
        parents = tuple(
            (p.path, p.owner, p.group, p.mode)
            for p in (layout["/".join(parts[:i])] for i in range(1, len(parts)))
        )
        file_mode = None
        if entry.kind == "dir":
            file_mode = QUEUE_MODE if entry.owner == "qmailq" else SEND_MODE
        name = entry.path.removeprefix(f"{QUEUE_DIR}/")
        graph.add_node(
            entry.path, kind="resource", rtype=entry.kind, label=name + "/" * (entry.kind == "dir"),
            path=entry.path, owner=entry.owner, group=entry.group, mode=entry.mode,
            file_mode=file_mode, parents=parents, stage="queue",
        )  # fmt: skip
    for node, facts in OTHER_RESOURCES.items():
        graph.add_node(node, kind="resource", **dict(zip(RESOURCE_FIELDS, facts, strict=True)))


def _add_monolith(graph: nx.MultiDiGraph) -> None:
    """A sendmail-like MTA: one root daemon does SMTP, queueing and delivery in-process."""
    _add_program(graph, "mta", "mta-monolith", "root", "long-running", "queue",
                 "one root daemon that forks a copy per connection and per delivery: SMTP, "
                 "queue, routing and delivery in one program")  # fmt: skip
    _add_program(graph, "sendmail", "sendmail", "root", "per message", "injection",
                 "the same program, setuid root, run by users to queue mail")  # fmt: skip
    _add_program(graph, "forward-program", "forward-program", USER, "per delivery", "delivery",
                 "a program named in ~/.forward")  # fmt: skip
    starters = {
        "mta": "boot script",
        "sendmail": "the user's mail client",
        "forward-program": "mta",
    }
    for node, starter in starters.items():
        graph.nodes[node]["started_by"] = starter
    graph.nodes["sendmail"].update(setuid=True, setuid_to="root", binary_mode=0o4755)
    graph.nodes["dotqmail"]["label"] = "~user/.forward"
    root_dir = ("queue", "root", "root", 0o700)  # as sendmail's mqueue: root's alone
    graph.graph["queue_dir"] = dict(zip(("path", "owner", "group", "mode"), root_dir, strict=True))
    for node, data in graph.nodes(data=True):
        if node.startswith(f"{QUEUE_DIR}/"):
            file_mode = 0o600 if data["rtype"] == "dir" else None
            data.update(owner="root", group="root", mode=0o700 if file_mode else 0o600,
                        file_mode=file_mode, parents=(root_dir,))  # fmt: skip
    edges: list[tuple[str, str, str, str]] = [
        ("smtp-socket", "mta", "net", "accepts; a forked copy speaks SMTP"),
        ("control", "mta", "read", "sendmail.cf"),
        ("users", "mta", "read", "aliases"),
        ("passwd", "mta", "read", "getpwnam()"),
        ("alias", "mta", "read", "aliases"),
        ("dotqmail", "mta", "read", "~/.forward, read as root"),
        ("mta", "maildir", "write", "delivers as root"),
        ("mta", "maildir", "link", "tmp/ → new/"),
        ("mta", "maildir", "unlink", "removes tmp/ after the link"),
        ("mta", "network", "net", "SMTP client"),
        ("mta", "log", "write", "syslog"),
        ("mta", "forward-program", "fork-exec", "fork as root, setuid user, exec"),
        ("sendmail", "queue/mess", "write", "queues directly, as root"),
        ("sendmail", "queue/todo", "write", "queues directly, as root"),
    ]
    queue_dirs = [
        n for n, d in graph.nodes(data=True) if n.startswith(QUEUE_DIR) and d["file_mode"]
    ]
    for queue in queue_dirs:
        edges += [("mta", queue, "write", "as root"), (queue, "mta", "read", "as root"),
                  ("mta", queue, "unlink", "as root")]  # fmt: skip
    for src, dst, kind, detail in edges:
        graph.add_edge(src, dst, kind=kind, label="", detail=detail)
