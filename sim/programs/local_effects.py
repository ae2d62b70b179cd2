"""qmail-local's four ways to deliver, as effects: Maildir, mbox, program, forward.

Each function performs one `LocalDelivery` step and returns its `Outcome`; the decisions are
in `sim.qmail` (`maildir_child` and `mailfile` yield their filesystem operations, which
`perform` turns into effects one by one, so the order of create, write, fsync, link and unlink
is qmail's by construction).

Documented differences:
* Maildir: there is no alarm effect, so the 24-hour delivery timer is not armed; the host part
  of the file name is `control/me` (gethostname is not an effect).
* mbox: the exclusive lock is an flock (`Lock`, qmail's lock_exnb) tried every 0.1 s for at
  most 30 s (then "File has been locked for 30 seconds straight."), where qmail blocks in
  lock_ex under a 30-second alarm; it goes with the descriptor when the mbox is closed.
* Programs: `/bin/sh -c` is the registered program `sh` (`sim.programs.sh`), the one place
  that leaves the effect world to exec a real shell.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Generator, Mapping
from typing import Any

from sim.kernel import effects as fx
from sim.kernel.io import Call, write_all
from sim.programs.common import close_quietly, qmail_close, qmail_open
from sim.qmail import maildir as md
from sim.qmail import mbox as mb
from sim.qmail.dotqmail import program_outcome
from sim.qmail.envelope import qq_status
from sim.qmail.local import (
    HeaderLines,
    Outcome,
    error_str,
    forward_message,
    forward_outcome,
    report,
)

LOCK_RETRY = 0.1  # seconds between tries of a taken lock


class Files:
    """Open descriptors by the path the operations name."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}


def run_ops(ops: Generator[Any, Any, Any], files: Files) -> Call:
    """Drive an operation generator with effects; failures are thrown back into it."""
    value: Any = None
    error: OSError | None = None
    while True:
        try:
            op = ops.throw(error) if error is not None else ops.send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, error = (yield from perform(op, files)), None
        except OSError as failure:
            value, error = None, failure


def perform(op: Any, files: Files) -> Call:
    """One Maildir or mbox operation as effects; returns its result or raises OSError."""
    match op:
        case md.Chdir(path):
            yield fx.Chdir(path)
        case md.Stat(path):
            yield fx.Stat(path)
        case md.Sleep(seconds):
            yield fx.Sleep(seconds)
        case md.Alarm():
            return None  # no alarm effect: see the module docstring
        case md.CreateExclusive(path, mode):
            files.fds[path] = yield fx.Open(path, "w", create=True, exclusive=True, perm=mode)
        case mb.OpenAppend(path, mode):
            files.fds[path] = yield fx.Open(path, "a", create=True, perm=mode)
        case md.WriteAll(path, data):
            yield from write_all(files.fds[path], data)
        case md.Fsync(path):
            yield fx.Fsync(files.fds[path])
        case md.Close(path):
            yield from _close(path, files)
        case md.Link(src, dst):
            yield fx.Link(src, dst)
            yield fx.Note("deliver", {"link": dst}, "tmp/ linked into new/: the message is there")
        case md.FsyncDir(path):
            yield fx.FsyncDir(path)
        case md.Unlink(path):
            yield fx.Unlink(path)
        case mb.LockExclusive(path, timeout):
            yield from _lock(files.fds[path], path, timeout)
        case mb.SeekEnd(path):
            return (yield fx.Stat(fd=files.fds[path])).size
        case mb.Truncate(path, length):
            yield fx.Truncate(files.fds[path], length)
        case _:
            raise TypeError(f"not a delivery operation: {op!r}")
    return None


def _close(path: str, files: Files) -> Call:
    """Close the file (which lets go of its lock)."""
    yield fx.Close(files.fds.pop(path))


def _lock(fd: int, path: str, timeout: float) -> Call:
    """Lock `fd` exclusively; TimeoutError after `timeout` s of someone else's lock."""
    start = yield fx.Time()
    while True:
        try:
            yield fx.Lock(fd)
            return
        except BlockingIOError:
            now = yield fx.Time()
            if now - start >= timeout:
                raise TimeoutError(_errno.ETIMEDOUT, f"{path} locked too long") from None
            yield fx.Sleep(LOCK_RETRY)


def deliver_mbox(target: str, lines: HeaderLines, message: bytes) -> Call:
    """Append to an mbox file (qmail-local's mailfile), locked with flock while it writes."""
    files = Files()
    outcome = yield from run_ops(mb.mailfile(target, mb.mbox_bytes(lines, message)), files)
    for fd in files.fds.values():
        yield from close_quietly(fd)
    return outcome


def deliver_maildir(
    target: str, lines: HeaderLines, message: bytes, unique: Any, *, fsync_dirs: bool = True
) -> Call:
    """Fork the Maildir child (maildir_child's operations), wait, read its exit code.

    `unique(pid, now)` makes the child's `maildir.Unique` from its own pid and clock;
    `fsync_dirs=False` leaves out the fsync of `new/`, as qmail 1.03.
    """
    data = md.maildir_message(lines, message)

    def child() -> fx.Program:
        pid = yield fx.Getpid()
        now = yield fx.Time()
        ops = md.maildir_child(target, data, unique(pid, now), fsync_dirs=fsync_dirs)
        return (yield from run_ops(ops, Files()))

    try:
        pid = yield fx.Fork(child, "maildir")
    except OSError as exc:
        return report("fork", err=error_str(exc.errno))
    _, status = yield fx.Wait(pid)
    return md.maildir_outcome(None if status < 0 else status)


def run_program(command: str, env: Mapping[str, str]) -> Call:
    """`|command`: rewind the message, fork, exec `/bin/sh -c command`, map its exit code."""
    try:
        yield fx.Seek(0, 0)
    except OSError:
        return report("rewind")

    def child() -> fx.Program:
        try:
            yield fx.Exec("sh", ("-c", command), dict(env))
        except OSError as exc:
            text = report("run_sh", err=error_str(exc.errno)).output
            yield fx.Write(2, text)
            return 111
        return 111

    try:
        pid = yield fx.Fork(child, "sh")
    except OSError as exc:
        return report("fork", err=error_str(exc.errno))
    _, status = yield fx.Wait(pid)
    outcome = program_outcome(None if status < 0 else status)
    yield fx.Note(
        "deliver",
        {"program": command, "exit": status, "code": outcome.code, "stop": outcome.stop},
        "program exit 0: done; 99: done, skip the rest; 100 (64 65 70 76 77 78 112): "
        "bounce; anything else: defer",
    )
    return outcome


def forward(
    recipients: tuple[str, ...], newsender: str, dtline: str, message: bytes, env: Mapping[str, str]
) -> Call:
    """Inject the message afresh (Delivered-To added) through qmail-queue; (Outcome, qp)."""
    try:
        job = yield from qmail_open(env)
    except OSError as exc:
        return report("fork", err=error_str(exc.errno)), 0
    write_failed = False
    try:
        yield from write_all(job.message_fd, forward_message(dtline, message))
    except OSError:
        write_failed = True  # qmail-queue is gone; its exit code will say why
    status, code = yield from qmail_close(job, newsender, recipients)
    if write_failed and not status:
        status = qq_status(54)
    outcome: Outcome = forward_outcome(status)
    yield fx.Note(
        "forward",
        {"to": list(recipients), "sender": newsender, "qp": job.pid, "qq": code},
        f"re-injected through qmail-queue with envelope sender <{newsender}>",
    )
    return outcome, job.pid
