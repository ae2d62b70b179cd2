"""Tiny programs for kernel tests, written against the effects only."""

from __future__ import annotations

from sim.kernel import effects as fx
from sim.kernel.io import read_all
from sim.programs.registry import register, resolve


def writer(argv, env):
    """Write argv[1] to fd 1, note it, exit 7."""
    yield fx.Write(1, argv[1].encode())
    yield fx.Note("said", {"text": argv[1]}, why="asked to")
    return 7


def parent(argv, env):
    """Fork a child that execs `t-writer` with its fd 1 on a pipe; read it; exit with its status."""
    r, w = yield fx.Pipe()

    def child():
        yield fx.Close(r)
        yield fx.Dup2(w, 1)
        yield fx.Close(w)
        yield fx.Setuid("qmaild")
        yield fx.Exec("t-writer", (argv[1],))

    pid = yield fx.Fork(child, "t-writer")
    yield fx.Close(w)
    data = yield from read_all(r)
    yield fx.Close(r)
    got_pid, status = yield fx.Wait(pid)
    assert got_pid == pid
    yield fx.Note("heard", {"data": data, "status": status})
    return status if data == argv[1].encode() else 1


def failing_open(argv, env):
    """Open a missing file; the OSError arrives in the program; exit 3 if it did."""
    try:
        yield fx.Open(argv[1])
    except FileNotFoundError:
        return 3
    return 0


def locker(argv, env):
    """Lock argv[1] without waiting (after argv[2] seconds, if given): 0 if it got the lock,
    11 (EWOULDBLOCK) if taken."""
    if len(argv) > 2:
        yield fx.Sleep(float(argv[2]))
    fd = yield fx.Open(argv[1], "w", create=True)
    try:
        yield fx.Lock(fd)
    except BlockingIOError:
        return 11
    return 0


def whoami(argv, env):
    """Report the real account (qmail-queue's question) as the exit status's source."""
    user, uid = yield fx.Getuid()
    yield fx.Note("whoami", {"user": user, "uid": uid})
    return 0


def crasher(argv, env):
    """A program with a bug: the kernel must make it look like a crash to its parent."""
    yield fx.Getpid()
    raise RuntimeError("bug")


def crash_parent(argv, env):
    def child():
        yield fx.Exec("t-crasher")

    pid = yield fx.Fork(child)
    _, status = yield fx.Wait(pid)
    return 9 if status < 0 else 1


register("t-writer", "tests.kernel.progs:writer")
register("t-parent", "tests.kernel.progs:parent")
register("t-open", "tests.kernel.progs:failing_open")
register("t-lock", "tests.kernel.progs:locker")
register("t-whoami", "tests.kernel.progs:whoami", setuid="qmailq")
register("t-crasher", "tests.kernel.progs:crasher")
register("t-crash-parent", "tests.kernel.progs:crash_parent")

__all__ = ["resolve"]
