"""Plumbing shared by several programs: reading control files, running qmail-queue.

These are the Python counterparts of qmail's control.c and qmail.c: small sub-generators a
program uses with `yield from`, so each program module stays plumbing around decisions.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all, write_all
from sim.qmail.envelope import encode_envelope, qq_status


def read_file(path: str) -> Call:
    """Returns the bytes of `path`, or None if it does not exist (other errors are raised)."""
    try:
        fd = yield fx.Open(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        return (yield from read_all(fd))
    finally:
        yield fx.Close(fd)


def read_controls(names: Iterable[str], directory: str = "control") -> Call:
    """Returns {name: text} for the control files that exist, read as qmail reads them."""
    texts: dict[str, str] = {}
    for name in names:
        data = yield from read_file(f"{directory}/{name}")
        if data is not None:
            texts[name] = data.decode("latin-1")
    return texts


def home(env: Mapping[str, str]) -> str:
    """The qmail home (conf-qmail's /var/qmail): QMAILHOME in the environment."""
    return env.get("QMAILHOME", "/var/qmail")


@dataclass(slots=True)
class QueueJob:
    """A qmail-queue being fed, as qmail.c's `struct qmail`: its pid and the two pipe ends."""

    pid: int
    message_fd: int
    envelope_fd: int


def qmail_open(env: Mapping[str, str]) -> Call:
    """Fork and exec qmail-queue with the message pipe on its fd 0 and the envelope on fd 1."""
    mr, mw = yield fx.Pipe()
    er, ew = yield fx.Pipe()

    def child() -> fx.Program:
        yield fx.Close(mw)
        yield fx.Close(ew)
        yield fx.Dup2(mr, 0)
        yield fx.Dup2(er, 1)
        yield fx.Close(mr)
        yield fx.Close(er)
        yield fx.Chdir(home(env))
        try:
            yield fx.Exec("qmail-queue", (), dict(env))
        except OSError:
            return 120
        return 120

    pid = yield fx.Fork(child, "qmail-queue")
    yield fx.Close(mr)
    yield fx.Close(er)
    return QueueJob(pid, mw, ew)


def qmail_close(job: QueueJob, sender: str, recipients: Iterable[str]) -> Call:
    """Send the envelope, wait for qmail-queue; returns (qq status text, exit code) as qmail.c.

    The text is "" on success, else begins with D (permanent) or Z (temporary).
    """
    write_error = False
    try:
        yield fx.Close(job.message_fd)
        yield from write_all(job.envelope_fd, encode_envelope(sender, list(recipients)))
    except OSError:
        write_error = True
    try:
        yield fx.Close(job.envelope_fd)
    except OSError:
        write_error = True
    _, status = yield fx.Wait(job.pid)
    if status < 0:
        return "Zqq crashed (#4.3.0)", status
    if status == 0 and write_error:
        return qq_status(54), 54
    return qq_status(status), status


def qmail_fail(job: QueueJob) -> Call:
    """Cancel: close both pipes without the envelope's final NUL; qmail-queue exits 54."""
    for fd in (job.message_fd, job.envelope_fd):
        yield from close_quietly(fd)
    yield fx.Wait(job.pid)


def close_quietly(fd: int) -> Call:
    """Close `fd`, ignoring errors (the far end may be gone): qmail ignores close's result."""
    try:
        yield fx.Close(fd)
    except OSError:
        return
