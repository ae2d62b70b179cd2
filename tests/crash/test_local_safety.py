"""Local delivery safety, live: hostile extensions, writable .qmail and homes, loops, <>.

A real MTA (tcpserver and qmail-start) on loopback, its retry schedule a thousand times
faster. Each hostile address is queued with qmail-queue itself (SMTP would refuse some), and
the trace then shows every path qmail-local touched: each must lie inside the home directory
it switched to (or be qmail's own control/me). The A-to-B forwarding loop is in
tests/mta/test_delivery.py; here is the loop inside one host.
"""

from __future__ import annotations

import os
import posixpath
import signal
import smtplib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from sim.kernel import effects as fx
from sim.kernel.io import write_all
from sim.kernel.real import RealKernel
from sim.kernel.trace import read_events
from sim.mta import daemon
from sim.mta.home import init_home
from sim.mta.runner import program_env, run_program
from sim.programs.common import qmail_open
from sim.programs.registry import register, resolve
from tests.mta.conftest import WAIT, Mta, wait_for

FULL = ("tcpserver", "qmail-start")
BODY = b"Subject: safety\n\nThe end.\n"
PATH_KINDS = ("open", "stat", "link", "unlink", "rename", "chdir", "mkdir", "utime")
HOSTILE = {  # extensions that reach qmail-local through the queue (under 1,003 bytes)
    "dots": "..",
    "dots and slashes": "../../bob",
    "slash up and out": "x/../../../../etc/passwd",
    "absolute": "/etc/passwd",
    "dotqmail of another user": "../bob/.qmail",
    "990 characters": "a" * 977,  # alice-…@a.test: 990 bytes, qmail-queue's limit is 1,002
    "990 dots": "." * 977,
}
DIRECT = {  # extensions qmail-queue would refuse or cut: handed to qmail-local itself
    **HOSTILE,
    "10,000 characters": "a" * 10_000,
    "10,000 dots and slashes": "../" * 3_333,
    "NUL": "x\0/../../bob",
}


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMAILSIM_TIMESCALE", "0.001")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A qmail home with alice, bob and carol, stopped at the end whatever happens."""
    path = tmp_path / "a"
    init_home(path, "a.test", users=["alice", "bob", "carol"])
    yield path
    daemon.stop(path)


def start(home: Path) -> Mta:
    _, port = daemon.start(home, ("127.0.0.1", 0), {}, programs=FULL)
    return Mta(home, port)


def queue_program(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """`crash-queue SENDER RECIPIENT...`: the body on qmail-queue's fd 0, this envelope on fd 1.

    The envelope is written byte for byte (a NUL in an address included), as `qmail_close`
    would write it for clean addresses.
    """
    job = yield from qmail_open(env)
    yield from write_all(job.message_fd, BODY)
    yield fx.Close(job.message_fd)
    records = [b"F" + argv[1].encode()] + [b"T" + r.encode() for r in argv[2:]]
    yield from write_all(job.envelope_fd, b"".join(r + b"\0" for r in records) + b"\0")
    yield fx.Close(job.envelope_fd)
    _, status = yield fx.Wait(job.pid)
    return status


register("crash-queue", "tests.crash.test_local_safety:queue_program")


def queue(home: Path, sender: str, *recipients: str) -> int:
    """Queue a message with exactly this envelope; qmail-queue's exit code."""
    return run_program(home, "crash-queue", [sender, *recipients], env=program_env(home))


def maildir(home: Path, user: str) -> list[Path]:
    base = home / "alias" if user == "alias" else home / "home" / user
    return sorted((base / "Maildir" / "new").iterdir())


def sendlog(home: Path) -> str:
    path = home / "log" / "qmail-send.log"
    return path.read_text(errors="replace") if path.exists() else ""


def drained(mta: Mta) -> bool:
    return not any(mta.files(k) for k in ("todo", "info", "local", "remote", "bounce", "mess"))


def touched_paths(events: list[dict]) -> list[tuple[str, str]]:
    """(home the qmail-local process switched to, absolute path) for each path it used."""
    cwd: dict[int, str] = {}
    homes: dict[int, str] = {}
    out = []
    for e in events:
        if e.get("prog") != "qmail-local" or e.get("kind") not in PATH_KINDS:
            continue
        pid = e["pid"]
        cwd.setdefault(pid, cwd.get(e["ppid"], "/"))
        if e["ppid"] in homes:
            homes.setdefault(pid, homes[e["ppid"]])
        for key in ("path", "src", "dst"):
            if isinstance(e.get(key), str):
                full = posixpath.normpath(posixpath.join(cwd[pid], e[key]))
                if e["kind"] == "chdir" and "err" not in e:
                    homes.setdefault(pid, full)
                    cwd[pid] = full
                out.append((homes.get(pid, ""), full))
    return out


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_extension_never_touches_a_file_outside_the_users_home(home, name) -> None:
    outside = home / "home" / "bob" / ".qmail"  # what a traversal would reach: bob's own
    outside.write_text("./Maildir/\n")
    mta = start(home)
    before = {p for p in home.rglob("*") if "Maildir" not in p.parts}
    assert queue(home, "bob@a.test", f"alice-{HOSTILE[name]}@a.test") == 0
    wait_for(lambda: drained(mta), "the message to leave the queue")
    (bounce,) = maildir(home, "bob")  # no mailbox by that name: one bounce, nothing else
    assert b"Sorry, no mailbox here by that name. (#5.1.1)" in bounce.read_bytes()
    assert maildir(home, "alice") == []
    assert_inside_homes(home, mta.events())
    queue_dirs = ("queue", "log", "run")
    after = {p for p in home.rglob("*") if "Maildir" not in p.parts}
    assert {p for p in after - before if p.relative_to(home).parts[0] not in queue_dirs} == set()


def assert_inside_homes(home: Path, events: list[dict]) -> None:
    """Every path qmail-local used is in the home it switched to (or is control/me)."""
    control_me = str(home.resolve() / "control" / "me")
    touched = touched_paths(events)
    assert touched, "qmail-local ran"
    for user_home, path in touched:
        inside = user_home and (path == user_home or path.startswith(user_home + "/"))
        assert inside or path == control_me, (user_home, path[:200])


def run_local(home: Path, ext: str) -> tuple[int, bytes, list[dict]]:
    """qmail-local for alice-EXT run directly, as qmail-lspawn would: status, output, trace."""
    alice = home.resolve() / "home" / "alice"
    message, output, trace = home / "message", home / "output", home / "local.trace"
    message.write_bytes(BODY)
    argv = ["--", "alice", str(alice), f"alice-{ext}", "-", ext, "a.test", "bob@a.test"]
    argv.append("./Maildir/")
    pid = os.fork()
    if pid == 0:
        status = 111
        try:
            os.chdir(home)
            for fd, path, flags in (
                (0, message, os.O_RDONLY),
                (1, output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                (2, output, os.O_WRONLY | os.O_APPEND),
            ):
                os.dup2(os.open(path, flags, 0o600), fd)
            kernel = RealKernel(
                resolve, host="a.test", trace_fd=os.open(trace, os.O_WRONLY | os.O_CREAT, 0o600)
            )
            status = kernel.run("qmail-local", argv, program_env(home), user="alice")
        finally:
            os._exit(status & 0xFF)
    status = wait_child(pid)
    return status, output.read_bytes(), list(read_events(trace.read_text().splitlines()))


def wait_child(pid: int) -> int:
    """Reap a child within WAIT seconds (killing it if it hangs); its exit code."""
    deadline = time.monotonic() + WAIT
    while (reaped := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("qmail-local did not finish")
        time.sleep(0.005)
    return os.waitstatus_to_exitcode(reaped[1])


@pytest.mark.parametrize("name", DIRECT)
def test_qmail_local_given_a_hostile_extension_stays_in_the_home(home, name) -> None:
    (home / "home" / "bob" / ".qmail").write_text("./Maildir/\n")
    status, output, events = run_local(home, DIRECT[name])
    assert (status, output) == (100, b"Sorry, no mailbox here by that name. (#5.1.1)\n")
    assert_inside_homes(home, events)
    assert maildir(home, "alice") == maildir(home, "bob") == []


def test_a_10000_character_address_is_refused_by_qmail_queue(home) -> None:
    mta = start(home)
    assert queue(home, "bob@a.test", f"alice-{'a' * 10_000}@a.test") == 11  # address too long
    assert not mta.files("todo") and not mta.files("info")  # never queued: S3 at most,
    assert len(mta.files("mess")) <= 1  # which qmail-send's 36-hour rule removes


def test_a_nul_in_the_extension_cannot_reach_qmail_local(home) -> None:
    """The envelope is NUL-terminated: the address ends at the NUL and the rest is no record.

    qmail-queue refuses the envelope (91) before todo/ exists; what it made stays for the
    36-hour rule (S3), as qmail's does. (qmail-smtpd never gets this far: it cuts at the NUL.)
    """
    mta = start(home)
    assert queue(home, "bob@a.test", "alice-x\0/../../../etc/passwd@a.test") == 91
    assert not mta.files("todo") and len(mta.files("mess")) == 1


def test_a_world_writable_dotqmail_defers_until_it_is_fixed(home) -> None:
    dotqmail = home / "home" / "alice" / ".qmail-ww"
    dotqmail.write_text("./Maildir/\n")
    dotqmail.chmod(0o666)
    start(home)
    assert queue(home, "bob@a.test", "alice-ww@a.test") == 0
    writable = "deferral: Uh-oh:_.qmail_file_is_writable._(#4.7.0)/"
    wait_for(lambda: sendlog(home).count(writable) >= 2, "two deferrals")
    assert maildir(home, "alice") == [] and maildir(home, "bob") == []
    dotqmail.chmod(0o644)
    (delivered,) = wait_for(lambda: maildir(home, "alice"), "delivery once it is fixed")
    assert b"Delivered-To: alice-ww@a.test" in delivered.read_bytes()


def test_a_world_writable_home_defers(home) -> None:
    (home / "home" / "carol").chmod(0o777)
    start(home)
    assert queue(home, "bob@a.test", "carol@a.test") == 0
    writable = "deferral: Uh-oh:_home_directory_is_writable._(#4.7.0)/"
    wait_for(lambda: sendlog(home).count(writable) >= 2, "two deferrals")
    assert maildir(home, "carol") == [] and maildir(home, "bob") == []


def test_a_forwarding_loop_inside_one_host_ends_in_one_bounce(home) -> None:
    alice = home / "home" / "alice"
    (alice / ".qmail-loop1").write_text("&alice-loop2@a.test\n")
    (alice / ".qmail-loop2").write_text("&alice-loop1@a.test\n")
    mta = start(home)
    assert queue(home, "bob@a.test", "alice-loop1@a.test") == 0
    wait_for(lambda: maildir(home, "bob") and drained(mta), "the bounce, and an empty queue")
    (bounce,) = maildir(home, "bob")
    text = bounce.read_bytes()
    assert b"This message is looping: it already has my Delivered-To line. (#5.4.6)" in text
    assert maildir(home, "alice") == []
    assert sendlog(home).count("bounce msg") == 1


def test_mail_from_the_null_sender_to_an_unknown_user_double_bounces_to_postmaster(home) -> None:
    mta = start(home)
    with smtplib.SMTP("127.0.0.1", mta.port, local_hostname="c.test", timeout=WAIT) as smtp:
        smtp.sendmail("<>", ["nobody@a.test"], b"Subject: from <>\r\n\r\nbounce me\r\n")
    (double,) = wait_for(lambda: maildir(home, "alias"), "the double bounce at postmaster")
    wait_for(lambda: drained(mta), "an empty queue")
    text = double.read_bytes()
    assert text.startswith(b"Return-Path: <#@[]>\nDelivered-To: postmaster@a.test\n")
    assert b"Sorry, no mailbox here by that name. (#5.1.1)" in text
    log = sendlog(home)
    assert log.count("bounce msg") == 1
    deliveries = [
        line.split(" to ", 1)[1] for line in log.splitlines() if "starting delivery" in line
    ]
    assert deliveries == ["local nobody@a.test", "local postmaster@a.test"]
    assert all(not os.listdir(home / "home" / u / "Maildir" / "new") for u in ("alice", "bob"))
