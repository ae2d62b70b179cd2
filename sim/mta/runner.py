"""Run one qmail program on the real kernel from the command line (qmail-inject, sendmail).

The program runs in a forked child with the caller's stdin, stdout and stderr, its cwd the
qmail home, and its trace appended to the home's `log/trace.jsonl` (one line per write, so it
interleaves cleanly with the running MTA's collector).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from sim.kernel.real import RealKernel
from sim.mta.daemon import Paths, me_of
from sim.programs.registry import resolve


def program_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a qmail program gets here: PATH, QMAILHOME, the user's mail names."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QMAILHOME": str(home)}
    for name in ("USER", "LOGNAME", "HOME", "PYTHONPATH", "QMAILUSER", "QMAILHOST", "QMAILNAME"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def run_program(
    home: Path, prog: str, argv: list[str], *, user: str | None = None, env: Mapping[str, str]
) -> int:
    """Run `prog` as a child process on RealKernel; returns its exit status (111 if it died)."""
    paths = Paths(home.resolve())
    host = me_of(paths.home)
    paths.log.mkdir(exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 111
        try:
            os.chdir(paths.home)
            fd = os.open(paths.trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            kernel = RealKernel(resolve, host=host, trace_fd=fd)
            status = kernel.run(prog, argv, env, user=user)
        except BaseException as exc:
            print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            os._exit(status & 0xFF)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 111
