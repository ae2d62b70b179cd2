"""sh: `/bin/sh -c command`, the shell qmail-local runs a `|program` line with.

The kernels have no effect for running an outside program, so this registered program is
the one door out of the effect world: it records the command in the trace, closes every
descriptor above 2 (the program gets only the message, and the pipe on fd 1 and fd 2, as
qmail's programs do), and really `execve`s /bin/sh, which replaces the process; the exit code
the parent waits for is then the shell's. If the exec fails it says so in qmail-local's words
(`Unable to run /bin/sh: …`) and exits 111, as qmail-local's child does. Under the model
(where the process is not an OS process of its own, so `Getpid` differs from the OS pid) it
refuses in the same words with ENOSYS, rather than exec a shell over the simulator; the model
may register its own `sh`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.qmail.local import error_str, report

SHELL = "/bin/sh"


def _close_extra_descriptors() -> None:
    """Mark every descriptor above 2 close-on-exec (the trace pipe, the queue's files)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 256))
    for fd in fds:
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Exec /bin/sh with our arguments (`-c command`); never returns unless the exec fails."""
    yield fx.Note("sh", {"argv": argv[1:]}, "a .qmail program line runs through /bin/sh -c")
    if (yield fx.Getpid()) != os.getpid():
        # Not a real process of our own (the model): exec'ing would replace the simulator.
        yield fx.Write(2, report("run_sh", err=error_str(errno.ENOSYS)).output)
        return 111
    _close_extra_descriptors()
    try:
        os.execve(SHELL, [SHELL, *argv[1:]], dict(env))
    except OSError as exc:
        yield fx.Write(2, report("run_sh", err=error_str(exc.errno)).output)
    return 111
