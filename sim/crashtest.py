"""Crash tests of the live mini-MTA: load, SIGKILL at random moments, restart, drain, account.

Theory of operation. Two real MTAs run on loopback: A (the one under test, users alice and
bob, `smtproutes` sending b.test to B) and B (user carol). Client threads send numbered
messages to A over SMTP, each in its own session with socket timeouts; a message is
*acknowledged* when A answers 250 to the dot (the reply names qmail-queue's pid, `qp`), and
an attempt that fails is retried later, so one message may be queued more than once. Each
message has a unique Message-ID and Subject and ends with the line `END crash-N`.

Meanwhile the controller kills. Kill moments are seeded: the k-th kill waits until a drawn
number of messages has been acknowledged. A process kill finds a live process of its kind
(qmail-smtpd, qmail-queue, qmail-local, qmail-remote, qmail-send) in A's trace
(`log/trace.jsonl`, read as it grows) and SIGKILLs it; qmail-send's death leaves the MTA
half alive, so A is stopped and started again (`daemon.stop`, `daemon.start` on the same
port). A `group` kill SIGKILLs A's whole session (its id is in `run/mta.pid`), as a crash of
the machine's processes would, and starts A again. Clients wait while A is down.

Then the controller drains: A and B must end with empty `todo/ info/ local/ remote/ bounce/`
and every acknowledged message delivered. What killed programs leave (`pid/`, and `mess/`
or `intd/` without `todo/` or `info/`, INTERNALS' S2 and S3) must be explained: a message
that reached every mailbox (qmail-send died while eliminating it) or an attempt never
acknowledged (`unexplained`); qmail-send's 36-hour rule then removes it once A restarts with
those files' atimes set 37 hours back. All along, a watcher reads each file that appears in
a `Maildir/new` once: every one must be a whole message. `Report` holds the figures.

Everything that runs is a child of this process: `run_crash_test` stops both MTAs whatever
happened, and every socket, wait and thread has a timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import re
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sim.mta import daemon
from sim.mta.home import init_home
from sim.programs.registry import PROGRAMS

KILLABLE = ("qmail-smtpd", "qmail-queue", "qmail-local", "qmail-remote", "qmail-send", "group")
RESTARTS = frozenset({"qmail-send", "group"})  # kills after which A is started again
MAILBOXES = {"alice": "a", "bob": "a", "carol": "b"}  # user -> instance
SENDER = "loadtest@a.test"  # unknown at A: a bounce would end in alias/Maildir
CLIENT_TIMEOUT = 20.0
FIND_TIMEOUT = 5.0  # how long a kill looks for a live process of its kind
OSSIFY = 37 * 3600  # seconds to set atimes back so that the 36-hour rule applies
QUEUE_BUSY = ("todo", "info", "local", "remote", "bounce")
PROGRAMS_STARTED = ("tcpserver", "qmail-start")  # the whole MTA, as `qmailsim mta start`


class CrashTestError(Exception):
    """A condition did not come true in time, or A could not be started."""


def wait_until(condition: Callable[[], object], what: str, timeout: float) -> object:
    """Poll `condition` until true; CrashTestError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise CrashTestError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return value


def preload_programs() -> None:
    """Import every program now, so the MTAs' forked processes do not import their own."""
    for target, _ in PROGRAMS.values():
        with contextlib.suppress(ImportError):
            importlib.import_module(target.partition(":")[0])


@dataclass(frozen=True, slots=True)
class Plan:
    """What one crash test does; every choice is drawn from `seed`."""

    messages: int = 500
    clients: int = 8
    kills: tuple[str, ...] = KILLABLE
    seed: int = 0
    big_every: int = 10  # every n-th message is ~64 KB: longer windows for a kill
    attempts: int = 6  # per message, before the client gives up on it
    drain_timeout: float = 90.0


@dataclass(frozen=True, slots=True)
class Message:
    """A numbered test message and where it goes."""

    number: int
    recipients: tuple[str, ...]
    size: int

    @property
    def end_marker(self) -> bytes:
        return f"END crash-{self.number}".encode()

    def body(self, seed: int) -> bytes:
        """RFC 822 with CRLF, ending with the end marker line."""
        head = [
            f"Message-ID: <{self.number}.{seed}@client.test>",
            f"Subject: crash-{self.number}",
            "",
        ]
        filler = [f"{self.number} line {i} " + "x" * 60 for i in range(self.size // 72)]
        lines = [*head, *filler, self.end_marker.decode()]
        return "".join(line + "\r\n" for line in lines).encode()

    def mailboxes(self) -> list[str]:
        return [r.split("@")[0] for r in self.recipients]


def messages_for(plan: Plan) -> list[Message]:
    """The plan's messages: local, remote, or both, a few of them big."""
    rng = random.Random(plan.seed)
    choices = [
        ("alice@a.test",),
        ("bob@a.test",),
        ("carol@b.test",),
        ("alice@a.test", "carol@b.test"),
        ("alice@a.test", "bob@a.test"),
    ]
    big = plan.big_every
    return [
        Message(n, rng.choice(choices), 65536 if big and n % big == big - 1 else 1024)
        for n in range(plan.messages)
    ]


@dataclass
class Report:
    """The figures of one crash test."""

    messages: int = 0
    attempts: int = 0
    acknowledged: set[int] = field(default_factory=set)
    qps: set[int] = field(default_factory=set)  # qmail-queue pids named in 250 replies
    refused: Counter[str] = field(default_factory=Counter)  # failed attempts, by reason
    kills: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)  # no live process found in time
    restarts: int = 0
    copies: Counter[tuple[int, str]] = field(default_factory=Counter)
    partial: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)  # files in new/ that are not ours
    tmp_left: int = 0  # Maildir/tmp files a killed delivery left (readers ignore tmp/)
    explained: list[str] = field(
        default_factory=list
    )  # S2/S3 and pid/ files of killed qmail-queues
    left: list[str] = field(default_factory=list)  # anything else still in a queue
    send_seconds: float = 0.0
    drain_seconds: float = 0.0

    def lost(self, messages: list[Message]) -> list[int]:
        """Acknowledged messages missing from one of their mailboxes."""
        return [
            m.number
            for m in messages
            if m.number in self.acknowledged
            and not all(self.copies[m.number, box] for box in m.mailboxes())
        ]

    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values() if n > 1)

    def summary(self, messages: list[Message]) -> str:
        copies = sum(self.copies.values())
        return (
            f"messages {self.messages}, attempts {self.attempts}, "
            f"acknowledged {len(self.acknowledged)}, refused {dict(self.refused)}, "
            f"kills {dict(self.kills)} (missed {dict(self.missed)}), restarts {self.restarts}, "
            f"copies {copies}, lost {len(self.lost(messages))}, duplicates {self.duplicates()}, "
            f"partial {len(self.partial)}, tmp/ leftovers {self.tmp_left}, "
            f"explained queue leftovers {len(self.explained)}, other leftovers {len(self.left)}, "
            f"send {self.send_seconds:.1f} s, drain {self.drain_seconds:.1f} s"
        )


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the MTAs the block starts (the daemon passes on QMAILSIM_*)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Instance:
    """One live MTA: its home, its fixed port, its session, its trace as it grows."""

    def __init__(self, home: Path, smtp_env: Mapping[str, str], env: Mapping[str, str]) -> None:
        self.home, self.smtp_env, self.env = home, dict(smtp_env), dict(env)
        self.port = 0
        self.trace = TraceTail(home / "log" / "trace.jsonl")

    def start(self) -> None:
        with environment(self.env):
            _, self.port = daemon.start(
                self.home, ("127.0.0.1", self.port), self.smtp_env, programs=PROGRAMS_STARTED
            )

    def stop(self) -> None:
        daemon.stop(self.home)

    def session(self) -> int | None:
        paths = daemon.Paths(self.home.resolve())
        pid = daemon.running_pid(paths)
        return None if pid is None else daemon.session_of(paths, pid)

    def kill_session(self) -> bool:
        """SIGKILL every process of the MTA at once; False if it was not running."""
        sid = self.session()
        if sid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGKILL)
        wait_until(lambda: not daemon.session_pids(sid), "the session to die", 10)
        return True

    def find(self, prog: str) -> int | None:
        """A live process of `prog` in this MTA's session, newest first, or None."""
        sid = self.session()
        if sid is None:
            return None
        members = set(daemon.session_pids(sid))
        return next((p for p in self.trace.running(prog) if p in members), None)

    def queue_files(self, *kinds: str) -> list[Path]:
        return [p for k in kinds for p in (self.home / "queue" / k).rglob("*") if p.is_file()]


class TraceTail:
    """Reads a growing trace file; knows which pids run which program (until their exit)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.pending = path, 0, b""
        self.prog: dict[int, str] = {}  # pid -> program, in the order last seen changing

    def update(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut by a killed writer
            pid = event.get("pid")
            if not isinstance(pid, int):
                continue
            prog = self.prog.pop(pid, None)
            if event.get("kind") != "exit":
                self.prog[pid] = event.get("prog") or prog or ""

    def running(self, prog: str) -> Iterator[int]:
        """Pids last seen running `prog` and not seen exiting, most recently active first."""
        self.update()
        return (pid for pid in reversed(self.prog) if self.prog[pid] == prog)


class Clients:
    """Client threads: each takes the next message, sends it, retries failures later."""

    def __init__(self, plan: Plan, messages: list[Message], report: Report, a: Instance) -> None:
        self.plan, self.messages, self.report, self.a = plan, messages, report, a
        self.todo = list(reversed(range(len(messages))))
        self.tries: Counter[int] = Counter()
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.up.set()
        self.threads = [
            threading.Thread(target=self.work, daemon=True) for _ in range(plan.clients)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def done(self) -> bool:
        return not any(t.is_alive() for t in self.threads)

    def acked(self) -> int:
        with self.lock:
            return len(self.report.acknowledged)

    def next(self) -> Message | None:
        with self.lock:
            while self.todo:
                n = self.todo.pop()
                if n not in self.report.acknowledged and self.tries[n] < self.plan.attempts:
                    self.tries[n] += 1
                    self.report.attempts += 1
                    return self.messages[n]
            return None

    def work(self) -> None:
        while (message := self.next()) is not None:
            self.up.wait(CLIENT_TIMEOUT)
            try:
                qp = self.send(message)
            except (OSError, smtplib.SMTPException) as exc:
                reason = getattr(exc, "smtp_code", None) or type(exc).__name__
                with self.lock:
                    self.report.refused[str(reason)] += 1
                    self.todo.insert(0, message.number)  # try again after the others
                continue
            with self.lock:
                self.report.acknowledged.add(message.number)
                self.report.qps.add(qp)

    def send(self, message: Message) -> int:
        """One SMTP session; the qp of the 250 reply, or an exception."""
        with smtplib.SMTP(
            "127.0.0.1", self.a.port, local_hostname="client.test", timeout=CLIENT_TIMEOUT
        ) as smtp:
            smtp.ehlo()
            code, text = smtp.mail(SENDER)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, text, SENDER)
            for rcpt in message.recipients:
                code, text = smtp.rcpt(rcpt)
                if code != 250:
                    raise smtplib.SMTPRecipientsRefused({rcpt: (code, text)})
            code, text = smtp.data(message.body(self.plan.seed))
            if code != 250:
                raise smtplib.SMTPDataError(code, text)
        found = re.search(rb"qp (\d+)", text)
        return int(found.group(1)) if found else 0


class Watcher:
    """Reads each file that appears in a Maildir/new once: it must be a whole message."""

    def __init__(
        self, dirs: list[Path], messages: list[Message], report: Report, seed: int
    ) -> None:
        self.dirs, self.messages, self.report = dirs, messages, report
        self.stored = {m.number: m.body(seed).replace(b"\r\n", b"\n") for m in messages}
        self.seen: set[Path] = set()
        self.lock = threading.Lock()  # the watcher thread and the drain both scan
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.05):
            self.scan()

    def scan(self) -> None:
        with self.lock:
            self._scan()

    def _scan(self) -> None:
        for new in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(new):
                    path = Path(entry.path)
                    if path not in self.seen:
                        self.seen.add(path)
                        self.check(path)

    def check(self, path: Path) -> None:
        data = path.read_bytes()
        found = re.search(rb"^Subject: crash-(\d+)$", data, re.M)
        box = path.parent.parent.parent.name
        if found is None:
            self.report.strangers.append(str(path))
            return
        number = int(found.group(1))
        if not data.endswith(self.stored.get(number, b"?")):  # the whole body, to its last line
            self.report.partial.append(str(path))
            return
        self.report.copies[number, box] += 1


def run_crash_test(root: Path, plan: Plan, log: Callable[[str], None] = print) -> Report:
    """The whole test in directory `root`: set up, load and kill, drain, account."""
    preload_programs()
    env = {"QMAILSIM_TIMESCALE": "0.001"}
    init_home(root / "b", "b.test", users=["carol"])
    init_home(root / "a", "a.test", users=["alice", "bob"])
    b = Instance(root / "b", {}, env)
    a = Instance(root / "a", {"RELAYCLIENT": ""}, env)
    messages, report = messages_for(plan), Report(messages=plan.messages)
    boxes = [root / MAILBOXES[u] / "home" / u / "Maildir" / "new" for u in MAILBOXES]
    watcher = Watcher(boxes, messages, report, plan.seed)
    try:
        b.start()
        (a.home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{b.port}\n")
        a.start()
        watcher.thread.start()
        started = time.monotonic()
        clients = Clients(plan, messages, report, a)
        clients.start()
        kill_on_schedule(plan, a, clients, report, log)
        wait_until(clients.done, "the clients", plan.messages * plan.attempts * CLIENT_TIMEOUT)
        report.send_seconds = time.monotonic() - started
        drain(plan, a, b, messages, report, watcher)
        report.drain_seconds = time.monotonic() - started - report.send_seconds
        clean_explained(a, messages, report)
        watcher.scan()
        count_leftovers(root, [a, b], report)
    finally:
        watcher.stop.set()
        for instance in (a, b):
            instance.stop()
            with contextlib.suppress(CrashTestError):
                instance.kill_session()
    return report


def kill_on_schedule(
    plan: Plan, a: Instance, clients: Clients, report: Report, log: Callable[[str], None]
) -> None:
    """Each kill once a drawn number of messages is acknowledged (spread over the load)."""
    rng = random.Random(plan.seed + 1)
    moments = sorted(
        rng.randrange(plan.messages // 20, plan.messages * 9 // 10) for _ in plan.kills
    )
    kinds = list(plan.kills)
    rng.shuffle(kinds)
    for moment, kind in zip(moments, kinds, strict=True):
        wait_until(
            lambda m=moment: clients.acked() >= m or clients.done(),
            f"{moment} acknowledged messages",
            plan.messages * CLIENT_TIMEOUT,
        )
        if clients.done():
            report.missed[kind] += 1
            continue
        if kill(kind, a, clients, report):
            log(f"killed {kind} after {clients.acked()} acknowledged")


def kill(kind: str, a: Instance, clients: Clients, report: Report) -> bool:
    """One kill of `kind` (restarting A if needed); False if no such process turned up."""
    if kind == "group":
        clients.up.clear()
        a.kill_session()
    else:
        deadline = time.monotonic() + FIND_TIMEOUT
        while (pid := a.find(kind)) is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if pid is None:
            report.missed[kind] += 1
            return False
        if kind in RESTARTS:
            clients.up.clear()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    report.kills[kind] += 1
    if kind in RESTARTS:
        a.stop()  # what qmail-send's death left running (tcpserver, the spawners) stops too
        a.start()
        report.restarts += 1
        clients.up.set()
    return True


def drain(
    plan: Plan, a: Instance, b: Instance, messages: list[Message], report: Report, w: Watcher
) -> None:
    """Wait until both queues are idle and every acknowledged message is delivered."""

    def idle() -> bool:
        w.scan()
        with w.lock:
            lost = report.lost(messages)
        return not lost and not (a.queue_files(*QUEUE_BUSY) or b.queue_files(*QUEUE_BUSY))

    try:
        wait_until(idle, "the queues to drain", plan.drain_timeout)
    except CrashTestError as exc:
        busy = [str(p) for i in (a, b) for p in i.queue_files(*QUEUE_BUSY)][:10]
        logs = [(i.home / "log" / "qmail-send.log").read_text()[-3000:] for i in (a, b)]
        detail = f"lost {report.lost(messages)[:20]}; still queued {busy}"
        raise CrashTestError(f"{exc}: {detail}\nA's log:\n{logs[0]}\nB's log:\n{logs[1]}") from None


def clean_explained(a: Instance, messages: list[Message], report: Report) -> None:
    """What killed programs left in A's queue (S2 and S3, `pid/`): explained, then removed
    by qmail's 36-hour rule, with the files' atimes set 37 hours back."""
    left = a.queue_files("pid", "mess", "intd")
    if not left:
        return
    for path in a.queue_files("mess"):
        if why := unexplained(path.read_bytes(), messages, report):
            report.left.append(f"{path}: {why}")
    report.explained += [str(p) for p in left]
    a.stop()
    back = time.time() - OSSIFY
    for path in left:
        with contextlib.suppress(FileNotFoundError):
            os.utime(path, (back, path.stat().st_mtime))
    a.start()  # qmail-clean sweeps pid/ at start; qmail-send's cleanup scan foops the rest
    wait_until(lambda: not a.queue_files("pid", "mess", "intd"), "the 36-hour cleanup", 30)


def unexplained(data: bytes, messages: list[Message], report: Report) -> str:
    """Why a message file with no todo/ or info/ should not be there ("" if it may).

    It may if it was cut short (its qmail-queue died writing it, before any 250), if its
    message reached every mailbox (qmail-send died while eliminating it: S2), or if the
    qmail-queue that wrote it was never acknowledged (pids are reused, so an acknowledged
    qp alone proves nothing).
    """
    found = re.search(rb"\nEND crash-(\d+)\n$", data)
    if found is None:
        return ""
    message = messages[int(found.group(1))]
    if all(report.copies[message.number, box] for box in message.mailboxes()):
        return ""
    qp = re.search(rb"\(qmail (\d+) invoked", data)
    if qp and int(qp.group(1)) in report.qps:
        return f"crash-{message.number} acknowledged (qp {int(qp.group(1))}), never delivered"
    return ""


def count_leftovers(root: Path, instances: list[Instance], report: Report) -> None:
    """Every queue file still there, and the tmp/ files killed deliveries left."""
    for instance in instances:
        report.left += [str(p) for p in instance.queue_files(*QUEUE_BUSY, "pid", "mess", "intd")]
    for user, host in MAILBOXES.items():
        report.tmp_left += len(list((root / host / "home" / user / "Maildir" / "tmp").iterdir()))
    alias = root / "a" / "alias" / "Maildir" / "new"
    report.strangers += [str(p) for p in alias.iterdir()]
