"""Resource exhaustion: a full disk while queueing, and a queue of 100,000 messages.

A full disk, two ways:
* live, simulated with a file-size limit: `QMAILSIM_SMTP_FSIZE` makes the daemon give
  tcpserver (and so every qmail-smtpd and qmail-queue) an RLIMIT_FSIZE with SIGXFSZ ignored,
  so qmail-queue's write fails with EFBIG exactly where a full disk fails with ENOSPC;
  raising the limit of the running tcpserver (prlimit) is the space coming back;
* in the model, a MemFS with a capacity: writes past it fail with ENOSPC.
Either way qmail-queue exits 53 after removing what it made, qmail-smtpd answers 451, the
queue holds nothing of the message, and once there is space again mail flows.

A big queue: messages put straight into the queue with qmail-queue's own life cycle
(`build_queue`), then qmail-send starts and must deliver each one exactly once. By default
2,000 in the model and 500 on disk; `pytest -m soak` runs 100,000 in the model and 20,000 on
disk. The figures (wall and virtual drain time) are printed.
"""

from __future__ import annotations

import os
import resource
import smtplib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import simpy

from sim.crashtest import Instance, TraceTail, preload_programs, wait_until
from sim.kernel.costs import Costs
from sim.kernel.memfs import MemFS
from sim.kernel.simkernel import SimKernel
from sim.kernel.simnet import Network
from sim.mta import daemon
from sim.mta.home import init_home
from sim.programs.registry import resolve
from sim.qmail import lifecycle as lc
from sim.qmail import queue as q
from sim.qmail.constants import SLEEP_TODO
from sim.qmail.envelope import encode_queue_envelope
from sim.qmail.received import queue_received
from tests.crash.conftest import ROOT, Message, boot, fresh_disk, program_env, smtp_client
from tests.mta.conftest import WAIT

DISK_FULL = "qq write error or disk full (#4.3.0)"
QUEUE_KINDS = ("pid", "mess", "intd", "todo", "info", "local", "remote", "bounce")


# -- a full disk, live -------------------------------------------------------------------------


def smtp_send(port: int, body: bytes) -> tuple[int, bytes]:
    """One message to alice; the reply to the dot."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test", timeout=WAIT) as smtp:
        smtp.mail("bob@a.test")
        smtp.rcpt("alice@a.test")
        return smtp.data(body)


def queue_files(home: Path) -> list[Path]:
    return [p for k in QUEUE_KINDS for p in (home / "queue" / k).rglob("*") if p.is_file()]


def test_a_full_disk_while_queueing_is_451_leaves_nothing_and_recovers(tmp_path, monkeypatch):
    monkeypatch.setenv("QMAILSIM_SMTP_FSIZE", "8192")  # the disk has room for 8 KB files
    home = tmp_path / "a"
    init_home(home, "a.test", users=["alice"])
    a = Instance(home, {}, {})
    try:
        a.start()
        small = b"Subject: small\r\n\r\n" + b"s" * 1000 + b"\r\nEND small\r\n"
        big = b"Subject: big\r\n\r\n" + b"b" * 65536 + b"\r\nEND big\r\n"
        assert smtp_send(a.port, small)[0] == 250
        assert smtp_send(a.port, big) == (451, DISK_FULL.encode())
        new = home / "home" / "alice" / "Maildir" / "new"
        wait_until(lambda: len(os.listdir(new)) == 1 and not queue_files(home), "drain", WAIT)
        log = (home / "log" / "qmail-send.log").read_text()
        assert log.count("new msg") == 1  # the big one never reached todo/
        (tcpserver,) = TraceTail(home / "log" / "trace.jsonl").running("tcpserver")
        limit = resource.RLIM_INFINITY
        resource.prlimit(tcpserver, resource.RLIMIT_FSIZE, (limit, limit))  # space is back
        assert smtp_send(a.port, big)[0] == 250
        wait_until(lambda: len(os.listdir(new)) == 2 and not queue_files(home), "drain", WAIT)
        texts = {
            b"big" if b"END big" in p.read_bytes() else b"small": p.read_bytes()
            for p in new.iterdir()
        }
        assert texts[b"big"].endswith(b"b" * 65536 + b"\nEND big\n")
        assert texts[b"small"].endswith(b"s" * 1000 + b"\nEND small\n")
    finally:
        daemon.stop(home)


# -- a full disk, in the model ------------------------------------------------------------------


def model_mta(fs: MemFS, trace: Callable[[dict], None] | None = None):
    env = simpy.Environment()
    net = Network(env, Costs(), seed=0)
    boot(env, fs, fsync_dirs=True, epoch=0.0, net=net, trace=trace)
    return env, net


def send_in_model(env: simpy.Environment, net: Network, message: Message) -> bytes:
    replies: dict[int, bytes] = {}
    env.run(until=env.process(smtp_client(env, net, [message], replies)))
    return replies.get(message.number, b"")


def model_files(fs: MemFS, *kinds: str) -> list[str]:
    return [p for k in kinds for p in fs.dump(f"{ROOT}/queue/{k}")]


def alice_new(fs: MemFS) -> dict[str, bytes]:
    return fs.dump(f"{ROOT}/home/alice/Maildir/new")


def test_model_a_full_disk_while_queueing_is_451_and_leaves_nothing() -> None:
    fs = fresh_disk()
    env, net = model_mta(fs)
    fs.capacity = fs.used + 1024  # room for a small message, not for a big one
    big = Message(0, ("alice@a.test",), lines=500)
    assert send_in_model(env, net, big) == f"451 {DISK_FULL}\r\n".encode()
    assert model_files(fs, *QUEUE_KINDS) == []
    fs.capacity = None  # space is back
    assert send_in_model(env, net, big).startswith(b"250 ok ")
    env.run(until=env.now + 60)
    (delivered,) = alice_new(fs).values()
    assert delivered.endswith(big.body)
    assert model_files(fs, *QUEUE_KINDS) == []


def test_model_a_disk_full_after_queueing_holds_the_message_until_space_returns() -> None:
    """Preprocessing meets ENOSPC: qmail-send warns, keeps todo/, and retries later."""
    fs = fresh_disk()
    said: list[bytes] = []

    def fill_up(event: dict) -> None:  # the disk fills the moment the message is queued
        if event.get("prog") == "qmail-queue" and event.get("dst", "").startswith("todo/"):
            fs.capacity = fs.used
        if event.get("prog") == "qmail-send" and event.get("kind") == "write":
            said.append(event.get("data", "").encode())  # its log (the disk cannot keep it)

    env, net = model_mta(fs, fill_up)
    message = Message(0, ("alice@a.test",))
    assert send_in_model(env, net, message).startswith(b"250 ok ")
    env.run(until=env.now + 600)
    assert any(line.startswith(b"warning: trouble writing to info/") for line in said), said
    assert alice_new(fs) == {} and model_files(fs, "todo")  # still queued, not lost
    fs.capacity = None
    env.run(until=env.now + SLEEP_TODO + 100)  # past the next scan of todo/
    (delivered,) = alice_new(fs).values()
    assert delivered.endswith(message.body)
    assert model_files(fs, *QUEUE_KINDS) == []


# -- a big queue -------------------------------------------------------------------------------


class DiskQueue:
    """The queue directory of a live qmail home, written with plain system calls."""

    def __init__(self, home: Path) -> None:
        self.root, self.fds = home / "queue", {}

    def create(self, path: str, mode: int) -> int:
        fd = os.open(self.root / path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self.fds[path] = fd
        return os.fstat(fd).st_ino

    def moved(self, old: str, new: str) -> None:
        self.fds[new] = self.fds.pop(old)

    def link(self, src: str, dst: str) -> None:
        os.link(self.root / src, self.root / dst)

    def unlink(self, path: str) -> None:
        os.unlink(self.root / path)

    def write(self, path: str, data: bytes) -> None:
        os.write(self.fds[path], data)

    def fsync(self, path: str) -> None:
        return None  # nothing is killed here: 100,000 fsyncs would only be slow

    def done(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class MemQueue:
    """The queue directory of a qmail home in a MemFS, the model's disk."""

    def __init__(self, fs: MemFS) -> None:
        self.fs, self.root = fs, f"{ROOT}/queue"

    def create(self, path: str, mode: int) -> int:
        return self.fs.create(f"{self.root}/{path}", mode, 0).ino

    def moved(self, old: str, new: str) -> None:
        return None

    def link(self, src: str, dst: str) -> None:
        self.fs.link(f"{self.root}/{src}", f"{self.root}/{dst}")

    def unlink(self, path: str) -> None:
        self.fs.unlink(f"{self.root}/{path}")

    def write(self, path: str, data: bytes) -> None:
        node = self.fs.lookup(f"{self.root}/{path}")
        self.fs.write(node, len(node.data), data)

    def fsync(self, path: str) -> None:
        self.fs.fsync(self.fs.lookup(f"{self.root}/{path}"))

    def done(self) -> None:
        return None


def build_queue(queue: DiskQueue | MemQueue, count: int, now: float) -> None:
    """Queue `count` messages to alice as qmail-queue would (its `lifecycle` steps in order),
    minus the trigger: qmail-send is not running yet. Message n's body is `body(n)`."""
    envelope = encode_queue_envelope("bob@a.test", ["alice@a.test"])
    pid = os.getpid()
    for n in range(count):
        create = lc.pid_create(pid, int(now), n % 9 + 1)
        queue_id = queue.create(create.path, create.mode)
        queue.moved(create.path, q.queue_path("mess", queue_id))
        received = queue_received(pid, 0, now, {})
        data = {lc.MESSAGE: body(n), lc.ENVELOPE: envelope}
        for op in lc.ops_after_inode(queue_id, create.path, uid=0, pid=pid, received=received):
            if isinstance(op, q.Link):
                queue.link(op.src, op.dst)
            elif isinstance(op, q.Unlink):
                queue.unlink(op.path)
            elif isinstance(op, q.Create):
                queue.create(op.path, op.mode)
            elif isinstance(op, q.Write | q.Copy):
                queue.write(op.path, op.data if isinstance(op, q.Write) else data[op.what])
            elif isinstance(op, q.Fsync | q.FsyncDir):
                queue.fsync(op.path)
        queue.done()


def body(n: int) -> bytes:
    return f"Subject: queued-{n}\n\nmessage {n}\nEND queued-{n}\n".encode()


def check_each_once(messages: dict[str, bytes], count: int) -> None:
    ends = sorted(data[data.rindex(b"END queued-") :] for data in messages.values())
    assert ends == sorted(f"END queued-{n}\n".encode() for n in range(count))


def drain_in_model(count: int) -> None:
    fs = fresh_disk()
    build_queue(MemQueue(fs), count, 0.0)
    env = simpy.Environment()
    kernel = SimKernel(env, resolve, host="a.test", costs=Costs(detail="fast"), fs=fs)
    kernel.spawn(
        "qmail-start", ["./Maildir/", "splogger", "qmail"], program_env(True), "root", ROOT
    )
    new = fs.lookup(f"{ROOT}/home/alice/Maildir/new")
    started = time.monotonic()
    while len(new.entries) < count:
        before = len(new.entries)
        env.run(until=env.now + 10)
        assert len(new.entries) > before, f"stuck at {before} of {count}"
    wall = time.monotonic() - started
    print(f"\nmodel: {count} queued messages drained in {env.now:.0f} s virtual, {wall:.1f} s wall")
    check_each_once(alice_new(fs), count)
    env.run(until=env.now + 60)
    assert model_files(fs, *QUEUE_KINDS) == []


def drain_on_disk(tmp_path: Path, count: int, timeout: float) -> None:
    preload_programs()
    home = tmp_path / "a"
    init_home(home, "a.test", users=["alice"])
    started = time.monotonic()
    build_queue(DiskQueue(home), count, time.time())
    built = time.monotonic() - started
    assert len(os.listdir(home / "queue" / "todo")) == count
    a = Instance(home, {}, {})
    new = home / "home" / "alice" / "Maildir" / "new"
    try:
        started = time.monotonic()
        a.start()
        wait_until(lambda: len(os.listdir(new)) >= count, f"{count} deliveries", timeout)
        wait_until(lambda: not queue_files(home), "an empty queue", WAIT)
        drained = time.monotonic() - started
    finally:
        a.stop()
    print(f"\non disk: {count} queued messages built in {built:.1f} s, drained in {drained:.1f} s")
    check_each_once({p.name: p.read_bytes() for p in new.iterdir()}, count)


def test_a_queue_of_2000_messages_is_processed_in_the_model() -> None:
    drain_in_model(2_000)


def test_a_queue_of_500_messages_built_on_disk_is_processed_live(tmp_path: Path) -> None:
    drain_on_disk(tmp_path, 500, 60)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_a_queue_of_100000_messages_is_processed_in_the_model() -> None:
    drain_in_model(100_000)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_a_queue_of_20000_messages_built_on_disk_is_processed_live(tmp_path: Path) -> None:
    drain_on_disk(tmp_path, 20_000, 1800)
