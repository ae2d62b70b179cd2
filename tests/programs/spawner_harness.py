"""Run qmail programs on RealKernel in forked processes, and talk to spawners as qmail-send does.

`Running` is one program in its own OS process with a pipe on its fd 0 and one on its fd 1;
`Spawner` adds qmail-send's side of the spawn protocol (handshake, commands, results).
Every read has a deadline, and `stop` kills whatever is still alive, so a broken program
fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sim.kernel import trace
from sim.kernel.real import RealKernel
from sim.programs.registry import register, resolve
from sim.qmail.queue import queue_path
from sim.qmail.spawn import ResultParser, SpawnCommand, SpawnResult, encode_command

DEADLINE = 20.0


def program_env(home: Path) -> dict[str, str]:
    """What the boot script gives every qmail program: PATH and the qmail home."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QMAILHOME": str(home)}


@dataclass
class Running:
    """One program in a child process: write to its fd 0, read its fd 1."""

    pid: int
    to_fd: int
    from_fd: int
    trace_path: Path
    status: int | None = None
    output: bytes = b""

    def read(self, deadline: float) -> bytes:
        """One read from the program's fd 1 (b"" at end of file); fails the test at the deadline."""
        ready, _, _ = select.select([self.from_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            pytest.fail("program did not answer in time")
        return os.read(self.from_fd, 65536)

    def write(self, data: bytes) -> None:
        os.write(self.to_fd, data)

    def close_input(self) -> None:
        if self.to_fd >= 0:
            os.close(self.to_fd)
            self.to_fd = -1

    def wait(self) -> int:
        """Close its fd 0, read its fd 1 to the end (kept in `output`), reap it; its status."""
        self.close_input()
        deadline = time.monotonic() + DEADLINE
        while data := self.read(deadline):
            self.output += data
        _, status = os.waitpid(self.pid, 0)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def stop(self) -> None:
        """Kill it if it is still running (test teardown) and close our pipe ends."""
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.status = -9
        self.close_input()
        with contextlib.suppress(OSError):
            os.close(self.from_fd)

    def events(self) -> list[dict]:
        return list(trace.read_events(self.trace_path.read_text().splitlines()))


def start(
    home: Path,
    prog: str,
    argv: list[str],
    *,
    user: str | None,
    host: str,
    exec_mode: bool = False,
    programs: Mapping[str, str] | None = None,
) -> Running:
    """Fork a process that runs `prog` on RealKernel with cwd the qmail home.

    With `exec_mode` every Exec is a real execve of a fresh interpreter; `programs`
    ({name: "module:main"}) replaces registered programs in that process only.
    """
    r0, w0 = os.pipe()
    r1, w1 = os.pipe()
    trace_path = home / "trace.jsonl"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 111
        try:
            os.dup2(r0, 0)
            os.dup2(w1, 1)
            for fd in (r0, w0, r1, w1):
                os.close(fd)
            os.chdir(home)
            for name, target in (programs or {}).items():
                register(name, target)
            fd = os.open(trace_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            kernel = RealKernel(resolve, host=host, trace_fd=fd, exec_mode=exec_mode)
            status = kernel.run(prog, argv, program_env(home), user=user)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status & 0xFF)
    os.close(r0)
    os.close(w1)
    return Running(pid, w0, r1, trace_path)


@dataclass
class Spawner:
    """qmail-send's end of a spawner's two pipes."""

    proc: Running
    first: bytes = b""
    parser: ResultParser = field(default_factory=ResultParser)
    waiting: list[SpawnResult] = field(default_factory=list)

    def handshake(self) -> bytes:
        self.first = self.proc.read(time.monotonic() + DEADLINE)[:1]
        return self.first

    def send(self, *commands: SpawnCommand) -> None:
        self.proc.write(b"".join(encode_command(c) for c in commands))

    def results(self, count: int) -> dict[int, SpawnResult]:
        """The next `count` results, by slot."""
        deadline = time.monotonic() + DEADLINE
        while len(self.waiting) < count:
            data = self.proc.read(deadline)
            if not data:
                pytest.fail(f"spawner closed fd 1 after {len(self.waiting)} of {count} results")
            self.waiting += self.parser.feed(data)
        got, self.waiting = self.waiting[:count], self.waiting[count:]
        return {r.delnum: r for r in got}


def put_message(home: Path, queue_id: int, data: bytes) -> None:
    """Place a message where qmail-queue would have: queue/mess/<id % 23>/<id>."""
    path = home / "queue" / queue_path("mess", queue_id)
    path.write_bytes(data)
    path.chmod(0o644)
