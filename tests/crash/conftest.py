"""Power loss and kills in the model: the real qmail programs on a SimKernel, cut after any step.

Theory of operation. A `PowerRun` lays out a qmail home in a `MemFS` (everything durable, as
if it had been on disk at boot), boots the MTA as `qmailsim mta start` does (tcpserver and
qmail-start, as root, in the home), and sends messages from an SMTP client on another host
of the simulated network. Every call the kernel traces goes through `PowerRun.observe`: after
each call of the queue's and the Maildir's life cycle (`STEP_PROGS` × `STEP_KINDS`) it keeps
a `Cut`, with `fs.crash()`: what a power loss at that instant would leave. With `kills` it
also forks (`in_child`): the copy of the whole simulation drops every process at that instant
(SIGKILL to the MTA, the disk keeping all that was written) and reports its `Verdict`.
`recover` boots a fresh kernel on a disk (qmail-send's start-up scan finds todo/ and info/),
lets it drain, and boots once more 37 hours later so that qmail's 36-hour rule removes what
a dead qmail-queue left in `pid/` and `mess/`. `verdict` reads the final disk: which messages
were delivered, how often, whether every file in `Maildir/new` is complete, and what is left
in the queue. Two disks (`DISKS`): MemFS's journal (any fsync commits every name change, as
ext4) and `PosixFS`, which keeps only what POSIX promises.

A message counts as acknowledged once its qmail-queue has exited 0: that is qmail-queue's
promise ("the message is safely queued") and the moment qmail-smtpd may say 250, so it is
the strictest cut there is.

Everything is deterministic: the same messages and flags give the same run.
"""

from __future__ import annotations

import os
import pickle
import posixpath
import re
import traceback
from collections import Counter
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.kernel.costs import Costs
from sim.kernel.memfs import Inode, MemFS, Special
from sim.kernel.simkernel import SimKernel
from sim.kernel.simnet import Network
from sim.mta.home import layout
from sim.programs.registry import resolve
from sim.qmail.queue import KINDS, QUEUE_DIR

ROOT = "/var/qmail"
ME = "a.test"
CLIENT = "client.test"
USERS = ("alice", "bob")
SMTP_PORT = 25
HOUR = 3600.0
DRAIN = 1 * HOUR  # virtual time the recovered MTA gets to deliver everything
OSSIFIED_LATER = 37 * HOUR  # a second boot this much later: the 36-hour rule applies
STEP_PROGS = frozenset({"qmail-queue", "qmail-send", "qmail-clean", "qmail-local"})
STEP_KINDS = frozenset(
    {"open", "write", "fsync", "fsyncdir", "link", "unlink", "rename", "truncate", "utime"}
)
QUEUE_DIRS = (*KINDS, "pid")


@dataclass(frozen=True, slots=True)
class Message:
    """One test message: its recipients and a body whose last line is its end marker.

    `alice-defer@a.test` always defers (its .qmail runs a program, which the model refuses
    with a temporary error), so a message to it waits in the queue for its retries.
    """

    number: int
    recipients: tuple[str, ...]
    sender: str = "sender@client.test"
    lines: int = 20  # of about 20 bytes each

    @property
    def subject(self) -> str:
        return f"power-{self.number}"

    @property
    def body(self) -> bytes:
        lines = [f"Subject: {self.subject}", f"Message-ID: <{self.number}@{CLIENT}>", ""]
        lines += [f"line {n} of {self.subject}" for n in range(self.lines)] + [self.end_marker]
        return "".join(line + "\n" for line in lines).encode()

    @property
    def end_marker(self) -> str:
        return f"END {self.subject}"

    @property
    def defers(self) -> bool:
        """A recipient defers: the message stays queued (for a week)."""
        return any(r.split("@")[0].endswith("-defer") for r in self.recipients)

    def mailboxes(self) -> set[str]:
        """The users who get a copy: each recipient, or the sender's bounce for an unknown one
        (which waits, as qmail's bounces do, until no recipient is left to defer)."""
        users = {r.split("@")[0] for r in self.recipients if not r.split("@")[0].endswith("-defer")}
        bounced = {u for u in users if u not in USERS}
        bounce = {self.sender.split("@")[0]} if bounced and not self.defers else set()
        return (users - bounced) | bounce


def default_messages() -> list[Message]:
    """Three messages: to alice, to bob, and one to both (two marks in one channel file)."""
    return [
        Message(0, ("alice@a.test",)),
        Message(1, ("bob@a.test",)),
        Message(2, ("alice@a.test", "bob@a.test")),
    ]


class PosixFS(MemFS):
    """A disk that keeps no more than POSIX promises: an fsync makes one file's data, or
    one directory's names, durable, and nothing else (btrfs, for one, logs a file's fsync
    alone). `MemFS` itself commits every name change at any fsync, as ext4's journal does;
    qmail's order of fsyncs must be right for both."""

    def fsync(self, node: Inode) -> None:
        if node.is_dir:
            node.durable_entries = dict(node.entries)
        elif node.kind == "file":
            node.durable_data = bytes(node.data)
        node.dirty = 0


DISKS: dict[str, type[MemFS]] = {"journal": MemFS, "posix": PosixFS}


def fresh_disk(users: Iterable[str] = USERS, disk: str = "journal") -> MemFS:
    """A qmail home at ROOT as `qmailsim mta init` lays it out, all of it durable."""
    fs = DISKS[disk]()
    files: dict[str, bytes | Special] = {ROOT: Special.DIR}
    for entry in layout(ROOT, ME, users=list(users)):
        full = posixpath.join(ROOT, entry.path)
        kind = {"dir": Special.DIR, "fifo": Special.FIFO}.get(entry.kind)
        files[full] = kind if kind is not None else entry.data
    files[f"{ROOT}/home/alice/.qmail-defer"] = b"|exit 111\n"
    fs.populate(files)
    return fs


def program_env(fsync_dirs: bool) -> dict[str, str]:
    """What the boot script gives every program; QMAILSIM_FSYNC_DIRS=0 is qmail 1.03."""
    return {"PATH": "/usr/bin:/bin", "QMAILHOME": ROOT, "QMAILSIM_FSYNC_DIRS": str(int(fsync_dirs))}


def boot(
    env: simpy.Environment,
    fs: MemFS,
    *,
    fsync_dirs: bool,
    epoch: float,
    trace: Callable[[dict], None] | None = None,
    smtp: bool = True,
    send: bool = True,
    net: Network | None = None,
) -> SimKernel:
    """Start the MTA on `fs` as the daemon does: tcpserver (if `smtp`), qmail-start (if `send`)."""
    kernel = SimKernel(
        env, resolve, host=ME, costs=Costs(), trace=trace, fs=fs, net=net, epoch=epoch
    )
    env_vars = program_env(fsync_dirs)
    if smtp:
        argv = ["-1", "-u", "qmaild", "-l", ME, "0.0.0.0", str(SMTP_PORT), "qmail-smtpd"]
        kernel.spawn("tcpserver", argv, {**env_vars, "RELAYCLIENT": ""}, "root", ROOT)
    if send:
        kernel.spawn("qmail-start", ["./Maildir/", "splogger", "qmail"], env_vars, "root", ROOT)
    return kernel


def smtp_client(
    env: simpy.Environment, net: Network, messages: Iterable[Message], replies: dict[int, bytes]
) -> Generator[simpy.Event, Any, None]:
    """Send each message in its own SMTP session; `replies` gets the answer to the dot."""
    for message in messages:
        try:
            conn = yield net.connect(CLIENT, ME, SMTP_PORT, timeout=30)
        except OSError:
            return
        steps = [
            None,
            b"HELO client.test\r\n",
            f"MAIL FROM:<{message.sender}>\r\n".encode(),
            *(f"RCPT TO:<{r}>\r\n".encode() for r in message.recipients),
            b"DATA\r\n",
            message.body.replace(b"\n", b"\r\n") + b".\r\n",
            b"QUIT\r\n",
        ]
        for step in steps:
            try:
                if step is not None:
                    yield conn.send(step)
                reply = yield conn.recv_until(b"\n")
            except OSError:
                return  # the server is gone (the power went)
            if not reply:
                return
            if step is not None and step.endswith(b".\r\n"):
                replies[message.number] = reply
        conn.close()


@dataclass(frozen=True, slots=True)
class Cut:
    """A power loss right after one step: what the disk keeps, and what was acknowledged."""

    number: int
    step: dict  # the trace event of the step
    disk: MemFS
    at: float  # virtual time
    acked: frozenset[int]  # message numbers whose qmail-queue had exited 0

    def __str__(self) -> str:
        e = self.step
        what = e.get("path") or e.get("dst") or (f"fd {e['fd']}" if "fd" in e else "")
        return f"cut {self.number} after {e['prog']} {e['kind']} {what}".rstrip()


@dataclass
class PowerRun:
    """One run of the MTA on a fresh disk; at every step, what a power loss would leave."""

    messages: list[Message] = field(default_factory=default_messages)
    fsync_dirs: bool = True
    disk: str = "journal"  # or "posix" (`DISKS`)
    send: bool = True  # False: qmail-send is not running, the mail stays in todo/
    clients: int = 1  # concurrent SMTP clients, each sending its share in turn
    kills: bool = False  # also SIGKILL everything after each step (`killed`)...
    kill_if: Callable[[dict], bool] = lambda step: True  # ...or after the steps it picks
    cuts: list[Cut] = field(default_factory=list)
    killed: list[tuple[str, frozenset[int], Verdict]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    replies: dict[int, bytes] = field(default_factory=dict)  # the answers to the dot
    queued: dict[int, int] = field(default_factory=dict)  # qmail-queue pid -> queue id

    def run(self, until: float = 600.0) -> PowerRun:
        """Boot, send every message, run `until` virtual seconds; then power off."""
        self.env = simpy.Environment()
        self.net = Network(self.env, Costs(), seed=0)
        self.fs = fresh_disk(disk=self.disk)
        self.kernel = boot(
            self.env, self.fs, fsync_dirs=self.fsync_dirs, epoch=0.0, trace=self.observe,
            send=self.send, net=self.net,
        )  # fmt: skip
        for client in range(self.clients):
            mine = self.messages[client :: self.clients]
            self.env.process(smtp_client(self.env, self.net, mine, self.replies))
        self.env.run(until=until)
        self.cut({"t": self.env.now, "prog": "nothing", "kind": "for a while"})  # the last
        self.kernel.halt()  # the programs end here (their generators are closed, not dropped)
        self.env.run(until=until + 1)
        return self

    def observe(self, event: dict) -> None:
        """The kernel's trace: note acknowledgements; after each step, keep a `Cut`."""
        prog, kind = event.get("prog"), event.get("kind")
        if prog == "qmail-queue" and kind == "queue" and event.get("state") == "S4":
            self.queued[event["pid"]] = event["msg"]
        if prog == "qmail-queue" and kind == "exit" and event.get("status") == 0:
            self.acked.add(self.subject_of(self.queued[event["pid"]]))
        if prog in STEP_PROGS and kind in STEP_KINDS:
            self.cut(event)

    def cut(self, event: dict) -> None:
        """What a power loss (and, with `kills`, SIGKILL to all) would leave after `event`."""
        cut = Cut(len(self.cuts), event, self.fs.crash(), self.env.now, frozenset(self.acked))
        self.cuts.append(cut)
        if self.kills and self.kill_if(event):
            self.killed.append((str(cut), cut.acked, in_child(self.kill_everything)))

    def kill_everything(self) -> Verdict:
        """Every process dies now, the disk stays as it is (no power loss); recover, judge."""
        return verdict(recover(self.fs, self.env.now, fsync_dirs=self.fsync_dirs), self.messages)

    def subject_of(self, queue_id: int) -> int:
        """The message number in a queued message's Subject line."""
        data = bytes(self.fs.lookup(f"{ROOT}/{QUEUE_DIR}/mess/{queue_id % 23}/{queue_id}").data)
        return int(re.search(rb"Subject: power-(\d+)", data).group(1))  # type: ignore[union-attr]


def in_child(work: Callable[[], Any]) -> Any:
    """`work()` in a forked copy of this process: the simulation exactly as it is now.

    The child never goes back into the simulation (a fresh kernel takes over the disk), so a
    cut needs no re-run from the start; the result comes back pickled through a pipe.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as out:
                out.write(pickle.dumps(work()))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError("the forked recovery failed (its traceback is in the output)")
    return pickle.loads(data)


def recover(disk: MemFS, at: float, *, fsync_dirs: bool = True, later: bool = True) -> MemFS:
    """Boot on what the power loss left and drain; with `later`, boot again 37 hours on."""
    for epoch in (at + 1.0, at + OSSIFIED_LATER)[: 2 if later else 1]:
        env = simpy.Environment()
        kernel = boot(env, disk, fsync_dirs=fsync_dirs, epoch=epoch, smtp=False)
        env.run(until=DRAIN)
        kernel.halt()
        env.run(until=DRAIN + 1)
    return disk


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a disk says about each message and about the queue."""

    copies: dict[tuple[int, str], int]  # (message, user) -> files in Maildir/new
    partial: list[str]  # Maildir/new files that are not a whole message
    queued: frozenset[int]  # messages the queue still holds (mess/ and todo/ or info/)
    leftovers: list[str]  # queue files that are not those of a deferred message

    def delivered(self, message: Message) -> bool:
        """Every mailbox the message should reach has at least one copy."""
        return all(self.copies.get((message.number, user), 0) for user in message.mailboxes())

    def kept(self, message: Message) -> bool:
        """Delivered wherever it could be, and still queued for a recipient that defers."""
        return self.delivered(message) and (not message.defers or message.number in self.queued)

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values() if n > 1)


def verdict(fs: MemFS, messages: Iterable[Message], users: Iterable[str] = USERS) -> Verdict:
    """Read the Maildirs and the queue of a disk."""
    messages = list(messages)
    by_subject = {m.subject: m for m in messages}
    copies: Counter[tuple[int, str]] = Counter()
    partial = []
    for user in users:
        for path, data in fs.dump(f"{ROOT}/home/{user}/Maildir/new").items():
            found = re.search(rb"Subject: (power-\d+)\n", data)
            message = by_subject.get(found.group(1).decode()) if found else None
            if message is None or not data.endswith(message.body):
                partial.append(path)
                continue
            copies[message.number, user] += 1
    queue = f"{ROOT}/{QUEUE_DIR}"
    files = {kind: fs.dump(f"{queue}/{kind}") for kind in QUEUE_DIRS}
    number_of = {}  # queue id -> message number, from the Subject in mess/
    for path, data in files["mess"].items():
        if found := re.search(rb"Subject: power-(\d+)\n", data):
            number_of[posixpath.basename(path)] = int(found.group(1))
    ids = {kind: {posixpath.basename(p) for p in paths} for kind, paths in files.items()}
    queued = {n for i, n in number_of.items() if i in ids["todo"] | ids["info"]}
    by_number = {m.number: m for m in messages}
    waiting = {i for i, n in number_of.items() if n in queued and by_number[n].defers}
    leftovers = [
        p for paths in files.values() for p in paths if posixpath.basename(p) not in waiting
    ]
    return Verdict(dict(copies), partial, frozenset(queued), leftovers)
