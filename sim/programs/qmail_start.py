"""qmail-start: wire and start qmail's long-running programs (qmail-start.c).

`qmail-start [defaultdelivery [logger arg ...]]`: a logger reading qmail-send's log on its
fd 0, then six pipes and three children (qmail-lspawn, qmail-rspawn, qmail-clean), and finally
the process execs qmail-send, which thus inherits qmail-start's pid. The descriptor table is
qmail's (`WIRING`): qmail-send logs on fd 0, talks to the spawners on 1-4 and to qmail-clean on
5-6. Every child gets the account qmail gives it; qmail-start itself is root.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.programs.common import close_quietly

DEFAULT_DELIVERY = "./Mailbox"

# child: (account, index of the pipe it reads on fd 0, index of the pipe it writes on fd 1)
CHILDREN: tuple[tuple[str, str, int, int], ...] = (
    ("qmail-lspawn", "root", 0, 1),
    ("qmail-rspawn", "qmailr", 2, 3),
    ("qmail-clean", "qmailq", 4, 5),
)
# qmail-send's fds 1-6: write p1, read p2, write p3, read p4, write p5, read p6
SEND_FDS: tuple[tuple[int, int, int], ...] = (
    (1, 0, 1),  # (target fd, pipe index, end: 1 = write, 0 = read)
    (2, 1, 0),
    (3, 2, 1),
    (4, 3, 0),
    (5, 4, 1),
    (6, 5, 0),
)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Start the logger and the helpers, then become qmail-send; exit 111 on any failure."""
    delivery = argv[1] if len(argv) > 1 else DEFAULT_DELIVERY
    logger = argv[2:]
    try:
        for fd in range(2, 7):  # as qmail-start: fds 2-6 in use, so the pipes land above them
            try:
                yield fx.Stat(fd=fd)
            except OSError:
                yield fx.Dup2(0, fd)
        if logger:
            yield from _start_logger(logger, env)
        pipes = []
        for _ in range(6):
            pipes.append((yield fx.Pipe()))
        for name, user, read_i, write_i in CHILDREN:
            args = (delivery,) if name == "qmail-lspawn" else ()
            yield fx.Fork(_helper(name, user, args, pipes, read_i, write_i, env), name)
        yield fx.Dup2(1, 0)  # qmail-start.c's fd_copy(0,1): qmail-send logs on fd 0
        for fd, index, end in SEND_FDS:
            yield fx.Dup2(pipes[index][end], fd)
        for pair in pipes:
            for fd in pair:
                if fd > 6:
                    yield fx.Close(fd)
        yield fx.Setuid("qmails")
        yield fx.Exec("qmail-send", (), dict(env))
    except OSError:
        return 111
    return 111


def _start_logger(logger: list[str], env: Mapping[str, str]) -> fx.Program:
    """Fork the logger (uid qmaill) reading a pipe on fd 0; our fd 1 becomes its write end."""
    r, w = yield fx.Pipe()

    def child() -> fx.Program:
        yield fx.Close(w)
        yield fx.Dup2(r, 0)
        yield fx.Close(r)
        yield fx.Setuid("qmaill")
        try:
            yield fx.Exec(logger[0], tuple(logger[1:]), dict(env))
        except OSError:
            return 111
        return 111

    yield fx.Fork(child, logger[0])
    yield fx.Close(r)
    yield fx.Dup2(w, 1)
    yield fx.Close(w)


def _helper(
    name: str,
    user: str,
    args: tuple[str, ...],
    pipes: list[tuple[int, int]],
    read_i: int,
    write_i: int,
    env: Mapping[str, str],
):
    """The child: fd 0 and 1 on its two pipes, every other pipe closed, then exec."""

    def child() -> fx.Program:
        yield fx.Dup2(pipes[read_i][0], 0)
        yield fx.Dup2(pipes[write_i][1], 1)
        for pair in pipes:
            for fd in pair:
                if fd > 1:
                    yield fx.Close(fd)
        for fd in range(2, 7):  # the helpers run with only fds 0 and 1, as in qmail
            yield from close_quietly(fd)
        if user != "root":
            yield fx.Setuid(user)
        try:
            yield fx.Exec(name, args, dict(env))
        except OSError:
            return 111
        return 111

    return child
