"""qmail-send as real processes: wired as qmail-start wires it, with fake spawners, the real
qmail-queue, qmail-clean and splogger, on a temporary qmail home.

The fake spawners speak the spawn protocol and decide by the recipient's local part: `nosuch*`
fails (qmail-local's "no mailbox" text), `defer*` always defers, `flaky*` defers until the file
`up` exists in the qmail home, `slow*` answers only once `release` exists, `crash*` makes the
spawner exit, anything else is delivered. Each command is appended to `got/commands` and each
delivered message copied to `got/<recipient>-<id>`. This module also holds the harness the
other qmail-send tests use.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.kernel import effects as fx
from sim.kernel import trace
from sim.kernel.real import RealKernel
from sim.mta.home import init_home
from sim.programs.common import qmail_close, qmail_open
from sim.programs.registry import register, resolve
from sim.qmail.bounce import parse_bounce
from sim.qmail.spawn import CommandParser, SpawnResult, encode_result, handshake

ME = "test.example"
LOG, TRACE = "log/qmail-send.log", "trace.jsonl"
DEADLINE = 15.0
MESSAGE = "Subject: hello\n\nHi there.\n"
OUTCOMES: dict[str, bytes] = {
    "nosuch": b"DSorry, no mailbox here by that name. (#5.1.1)\n",
    "defer": b"ZMailbox busy. (#4.2.1)\n",
}


# -- programs the tests run ---------------------------------------------------------------


def fake_spawner(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """argv: channel [slots]. Answers each command by the recipient's local part."""
    home, channel = env["QMAILHOME"], argv[1]
    yield fx.Write(1, handshake(int(argv[2]) if len(argv) > 2 else 120))
    parser, held, eof = CommandParser(), [], False
    while not (eof and not held):
        readable, _, _ = yield fx.Select(() if eof else (0,), (), 0.01 if held else None)
        commands = []
        if 0 in readable:
            data = yield fx.Read(0, 4096)
            eof = not data
            commands = parser.feed(data)
        for command in commands:
            line = f"{channel} {command.messid} <{command.sender}> {command.recipient}\n"
            yield from append(f"{home}/got/commands", line.encode())
            if command.recipient.startswith("crash"):
                return 111  # the result pipe closes under qmail-send
        held += commands
        waiting = []
        for command in held:
            report = yield from outcome(home, command)
            if report is None:
                waiting.append(command)
                continue
            yield fx.Write(1, encode_result(SpawnResult.from_report(command.delnum, report)))
        held = waiting
    return 0


def outcome(home: str, command) -> fx.Program:
    """The report for a command, or None to hold it a while longer."""
    local = command.recipient.partition("@")[0]
    for prefix, report in OUTCOMES.items():
        if local.startswith(prefix):
            return report
    if local.startswith(("flaky", "slow")):
        flag = "up" if local.startswith("flaky") else "release"
        try:
            yield fx.Stat(f"{home}/{flag}")
        except FileNotFoundError:
            return OUTCOMES["defer"] if flag == "up" else None
    fd = yield fx.Open(f"{home}/queue/mess/{command.messid}")
    data = yield fx.Read(fd, 1 << 20)
    yield fx.Close(fd)
    id = command.messid.partition("/")[2]
    yield from append(f"{home}/got/{command.recipient}-{id}", data)
    return b"Kdid 1+0+0\n"


def append(path: str, data: bytes) -> fx.Program:
    fd = yield fx.Open(path, "a", create=True)
    yield fx.Write(fd, data)
    yield fx.Close(fd)


def no_fire(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """A spawner that dies before its handshake byte."""
    yield fx.Close(1)
    return 111


def starter(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """qmail-start's wiring (qmail-start.c) with the spawners named in argv, splogger logging."""
    lspawn, rspawn = argv[1].split(), argv[2].split()
    for fd in range(2, 7):
        try:
            yield fx.Stat(fd=fd)
        except OSError:
            yield fx.Dup2(0, fd)
    r, w = yield fx.Pipe()
    yield fx.Fork(_child(["splogger", "qmail"], "qmaill", [(r, 0)], [r, w], env), "splogger")
    yield fx.Close(r)
    yield fx.Dup2(w, 1)
    yield fx.Close(w)
    pipes = []
    for _ in range(6):
        pipes.append((yield fx.Pipe()))
    ends = [fd for pair in pipes for fd in pair]
    helpers = ((lspawn, "root", 0, 1), (rspawn, "qmailr", 2, 3), (["qmail-clean"], "qmailq", 4, 5))
    for args, user, ri, wi in helpers:
        wiring = [(pipes[ri][0], 0), (pipes[wi][1], 1)]
        yield fx.Fork(_child(args, user, wiring, ends, env), args[0])
    yield fx.Dup2(1, 0)  # qmail-send logs on fd 0
    for fd, (index, end) in enumerate(((0, 1), (1, 0), (2, 1), (3, 0), (4, 1), (5, 0)), 1):
        yield fx.Dup2(pipes[index][end], fd)
    for fd in ends:
        yield fx.Close(fd)
    yield fx.Setuid("qmails")
    yield fx.Exec("qmail-send", (), dict(env))
    return 111


def _child(args, user, wiring, close, env) -> Callable[[], fx.Program]:
    """A helper: its pipes on fd 0 (and 1), every other pipe and fds 2-6 closed, then exec."""

    def child() -> fx.Program:
        for old, new in wiring:
            yield fx.Dup2(old, new)
        for fd in [*close, *range(2, 7)]:
            with contextlib.suppress(OSError):
                yield fx.Close(fd)
        yield fx.Setuid(user)
        yield fx.Exec(args[0], tuple(args[1:]), dict(env))
        return 111

    return child


def injector(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """argv: sender recipient...; queue MESSAGE through the real qmail-queue; its exit code."""
    job = yield from qmail_open(env)
    yield fx.Write(job.message_fd, env.get("T_MESSAGE", MESSAGE).encode("latin-1"))
    _, code = yield from qmail_close(job, argv[1], argv[2:])
    return code


register("t-spawner", f"{__name__}:fake_spawner")
register("t-nofire", f"{__name__}:no_fire")
register("t-start", f"{__name__}:starter")
register("t-inject", f"{__name__}:injector")


# -- the harness --------------------------------------------------------------------------


def stamped(line: str) -> tuple[float, str]:
    """A splogger line: (its time, qmail-send's text)."""
    stamp, _, text = line.partition(" ")
    return float(stamp), text


@dataclass
class Mta:
    """qmail-send and its helpers on a qmail home, started by `start_send`."""

    home: Path
    env: dict[str, str]
    pid: int = 0
    status: int | None = None
    forks: list[int] = field(default_factory=list)
    since: dict[str, int] = field(default_factory=dict)  # where this run's log and trace begin

    def _read(self, name: str) -> str:
        path = self.home / name
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(self.since.get(name, 0))
            return f.read().decode("latin-1")

    @property
    def queue(self) -> Path:
        return self.home / "queue"

    def stamped_log(self) -> list[tuple[float, str]]:
        return [stamped(line) for line in self._read(LOG).splitlines()]

    def log(self) -> list[str]:
        return [text for _, text in self.stamped_log()]

    def line(self, start: str) -> str | None:
        """The first log line starting with `start`, if there is one yet."""
        return next((text for text in self.log() if text.startswith(start)), None)

    def events(self) -> list[dict]:
        lines = self._read(TRACE).splitlines()
        return list(trace.read_events(line for line in lines if line.endswith("}")))

    def wait_for(self, what: str | Callable[[], object], timeout: float = DEADLINE) -> object:
        """Poll until `what` (a log line, or a condition) holds; else fail, showing the log."""
        check = what if callable(what) else (lambda: what in self.log())
        deadline = time.monotonic() + timeout
        while not (found := check()):
            if time.monotonic() > deadline:
                log = "\n".join(self.log())
                pytest.fail(f"timed out waiting for {what!r}; qmail-send's log:\n{log}")
            time.sleep(0.01)
        return found

    def inject(self, sender: str, *recipients: str, message: str = MESSAGE) -> int:
        kernel = RealKernel(resolve, host=ME)
        return kernel.run(
            "t-inject", [sender, *recipients], {**self.env, "T_MESSAGE": message}, None
        )

    def kill(self, sig: str) -> None:
        os.kill(self.pid, getattr(signal, "SIG" + sig))

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        def reaped() -> bool:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            return bool(pid)

        if self.status is None:
            self.wait_for(reaped, timeout)
        return self.status  # type: ignore[return-value]

    def stop(self) -> int:
        """TERM, wait for qmail-send; then every process it forked must be gone."""
        if self.status is None:
            self.kill("TERM")
        status = self.wait_exit()
        self.forks = [e["result"] for e in self.events() if e["kind"] == "fork"]
        self.wait_for(lambda: not any(map(alive, self.forks)))
        return status

    def kill_all(self) -> None:
        """Teardown after a failure: nothing may outlive the test."""
        for pid in [self.pid, *(e["result"] for e in self.events() if e["kind"] == "fork")]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.status is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.status = -9


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for init counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def make_home(tmp_path: Path, **controls: str) -> Path:
    home = tmp_path / "qmail"
    init_home(home, ME)
    (home / "got").mkdir()
    for name, value in controls.items():
        (home / "control" / name).write_text(value + "\n")
    return home


def start_send(home: Path, lspawn: str = "t-spawner local", rspawn: str = "t-spawner remote",
               timescale: str = "1") -> Mta:  # fmt: skip
    """Fork the starter on RealKernel (cwd the home, trace in trace.jsonl); qmail-send runs."""
    env = {"PATH": os.environ.get("PATH", "/bin"), "QMAILHOME": str(home)}
    env["QMAILSIM_TIMESCALE"] = timescale
    mta = Mta(home, env)
    mta.since = {
        name: (home / name).stat().st_size for name in (LOG, TRACE) if (home / name).exists()
    }
    sys.stdout.flush()
    sys.stderr.flush()
    mta.pid = os.fork()
    if mta.pid == 0:
        status = 111
        try:
            os.chdir(home)
            fd = os.open(home / TRACE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            kernel = RealKernel(resolve, host=ME, trace_fd=fd)
            status = kernel.run("t-start", [lspawn, rspawn], env, user="root")
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status & 0xFF)
    return mta


def running_mtas():
    """The body of an `mtas` fixture: `mtas(home, ...)` starts a qmail-send; each one is
    killed with everything it forked at the end (a test stops it first to check its exit)."""
    started: list[Mta] = []

    def start(home: Path, **kwargs: str) -> Mta:
        mta = start_send(home, **kwargs)
        started.append(mta)
        mta.wait_for(mta.log)  # its first line: the status, or why it cannot start
        return mta

    yield start
    for mta in started:
        mta.kill_all()


@pytest.fixture
def mtas():
    yield from running_mtas()


def queue_is_empty(home: Path) -> bool:
    """No message file left anywhere in the queue (S1 for every message)."""
    for kind in ("mess", "info", "local", "remote"):
        if any(p.is_file() for p in (home / "queue" / kind).rglob("*")):
            return False
    return not any(any((home / "queue" / k).iterdir()) for k in ("todo", "intd", "bounce"))


def msg_id(log: list[str], line_start: str) -> int:
    """The queue id in the first log line starting with `line_start` (e.g. `info msg`)."""
    line = next(text for text in log if text.startswith(line_start))
    return int(line.split()[2].rstrip(":"))


# -- the tests ----------------------------------------------------------------------------


def test_local_and_remote_recipients_are_delivered_and_the_message_leaves(tmp_path, mtas):
    mta = mtas(make_home(tmp_path))
    assert mta.log() == ["status: local 0/10 remote 0/20"]
    assert mta.inject("alice@test.example", "bob@test.example", "carol@far.example") == 0
    id = int(mta.wait_for(lambda: mta.line("end msg")).split()[2])
    log = mta.log()
    size = (mta.home / "got" / f"bob@test.example-{id}").stat().st_size
    info = next(line for line in log if line.startswith("info msg"))
    assert info.startswith(f"info msg {id}: bytes {size} from <alice@test.example> qp ")
    assert log[1:3] == [f"new msg {id}", info]
    assert f"starting delivery 1: msg {id} to local bob@test.example" in log
    assert f"starting delivery 2: msg {id} to remote carol@far.example" in log
    assert "delivery 1: success: did_1+0+0/" in log and "delivery 2: success: did_1+0+0/" in log
    assert log[-2:] == ["status: local 0/10 remote 0/20", f"end msg {id}"]
    commands = (mta.home / "got" / "commands").read_text().splitlines()
    split = id % 23
    assert sorted(commands) == [
        f"local {split}/{id} <alice@test.example> bob@test.example",
        f"remote {split}/{id} <alice@test.example> carol@far.example",
    ]
    mta.wait_for(lambda: queue_is_empty(mta.home))  # end msg comes before the last unlinks
    assert mta.stop() == 0
    assert mta.log()[-2:] == [f"end msg {id}", "status: exiting"]


def test_routing_and_deliveries_are_noted_in_the_trace(tmp_path, mtas):
    home = make_home(tmp_path)
    (home / "control" / "virtualdomains").write_text("virt.example:fred\n")
    mta = mtas(home)
    mta.inject("alice@test.example", "dude@virt.example", "x@far.example")
    mta.wait_for(lambda: mta.line("end msg"))
    assert mta.stop() == 0
    routes = [e for e in mta.events() if e["kind"] == "route"]
    assert [(e["address"], e["channel"]) for e in routes] == [
        ("fred-dude@virt.example", "local"),
        ("x@far.example", "remote"),
    ]
    assert "virt.example in virtualdomains" in routes[0]["why"]
    assert {e["uid"] for e in routes} == {"qmails"}
    steps = [(e["kind"], e["recipient"]) for e in mta.events() if e["kind"].startswith("deliver")]
    assert steps[:2] == [("deliver", "fred-dude@virt.example"), ("deliver", "x@far.example")]
    assert sorted(steps[2:]) == [
        ("delivered", "fred-dude@virt.example"),
        ("delivered", "x@far.example"),
    ]


def test_a_failure_bounces_to_the_sender_in_qmails_format(tmp_path, mtas):
    mta = mtas(make_home(tmp_path))
    mta.inject("alice@test.example", "nosuch@test.example", "bob@test.example")
    mta.wait_for(lambda: len([x for x in mta.log() if x.startswith("end msg")]) == 2)
    log = mta.log()
    id = msg_id(log, "new msg")
    assert "delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/" in log
    bounce_line = next(x for x in log if x.startswith("bounce msg"))
    qp = int(bounce_line.split()[-1])
    assert bounce_line == f"bounce msg {id} qp {qp}"
    assert log.index(bounce_line) + 1 == log.index(f"end msg {id}")
    bounce_id = msg_id([x for x in log if x != f"new msg {id}"], "new msg")
    assert mta.line(f"info msg {bounce_id}: bytes ").endswith(f" from <> qp {qp} uid 7796")
    text = (mta.home / "got" / f"alice@test.example-{bounce_id}").read_bytes()
    assert text.startswith(f"Received: (qmail {qp} invoked for bounce); ".encode())
    assert b"\nFrom: MAILER-DAEMON@test.example\nTo: alice@test.example\n" in text
    assert (
        b"\nSubject: failure notice\n\nHi. This is the qmail-send program at test.example.\n"
        in text
    )
    bounce = parse_bounce(text[text.index(b"\n") + 1 :])
    assert bounce.recipients == (
        ("nosuch@test.example", b"Sorry, no mailbox here by that name. (#5.1.1)\n"),
    )
    assert bounce.return_path == "alice@test.example" and not bounce.double
    assert bounce.message.startswith(b"Received: (qmail ") and bounce.message.endswith(
        b"Hi there.\n"
    )
    mta.wait_for(lambda: queue_is_empty(mta.home))
    bounces = [e for e in mta.events() if e["kind"] == "bounce"]
    assert [e.get("stage") for e in bounces] == ["paragraph", None]
    assert (bounces[1]["bounce"], bounces[1]["to"], bounces[1]["qp"]) == (
        "single",
        "alice@test.example",
        qp,
    )
    assert mta.stop() == 0


def test_a_failed_bounce_double_bounces_to_postmaster_and_a_failed_double_is_dropped(
    tmp_path, mtas
):
    mta = mtas(make_home(tmp_path))
    mta.inject("", "nosuch@test.example")
    mta.wait_for(lambda: any(x.startswith("delivery") and "success" in x for x in mta.log()))
    log = mta.log()
    second = [int(x.split()[2]) for x in log if x.startswith("new msg")][1]
    assert " from <#@[]> qp " in mta.line(f"info msg {second}:")
    text = (mta.home / "got" / f"postmaster@test.example-{second}").read_bytes()
    bounce = parse_bounce(text[text.index(b"\n") + 1 :])
    assert bounce.double and bounce.return_path == ""
    assert bounce.break_line == b"--- Below this line is the original bounce."
    mta.wait_for(lambda: queue_is_empty(mta.home))  # the first chain has ended: its lines
    mta.inject("#@[]", "nosuch2@test.example")  # cannot come between the next ones
    triple = mta.wait_for(lambda: mta.line("triple bounce: discarding bounce/"))
    third = int(triple.rpartition("/")[2])
    line = f"triple bounce: discarding bounce/{third}"

    def ended() -> list[str] | None:  # the log once the end msg after that line is written
        log = mta.log()
        return log if f"end msg {third}" in log[log.index(line) :] else None

    log = mta.wait_for(ended)
    at = log.index(line)
    assert log[at + 1] == f"end msg {third}"  # (inodes are reused: the id may be an old one)
    assert len([x for x in log if x.startswith("bounce msg")]) == 1  # only the double bounce
    mta.wait_for(lambda: queue_is_empty(mta.home))
    assert mta.stop() == 0


def test_a_mess_file_unread_for_36_hours_with_no_todo_or_info_is_cleaned_up(tmp_path, mtas):
    home = make_home(tmp_path)
    stale, fresh = (home / "queue" / f"mess/{id % 23}/{id}" for id in (100, 101))
    stale.write_bytes(b"left by a qmail-queue that died\n")
    fresh.write_bytes(b"a qmail-queue is still writing this\n")
    old = time.time() - 129600 - 60
    os.utime(stale, (old, old))
    mta = mtas(home)
    seen = f"mess/{101 % 23}/101"
    mta.wait_for(lambda: any(e["kind"] == "stat" and e.get("path") == seen for e in mta.events()))
    mta.wait_for(lambda: not stale.exists())
    assert fresh.exists()
    (cleaned,) = [e for e in mta.events() if e["kind"] == "cleanup"]
    assert cleaned["msg"] == 100
    assert {"request": "foop/100", "reply": "+"}.items() <= next(
        e for e in mta.events() if e["kind"] == "clean"
    ).items()
    assert mta.stop() == 0
