"""SimKernel's processes: the process table's row, signals, and the process calls.

A process has a pid, ppid, account and a table of open file descriptions (`simfd`).
`Fork` copies the table; `Exec` swaps the program generator, keeping the pid; a finished
child stays a zombie until its parent's `Wait`. Signals not caught kill; caught ones
(`CatchSignals`) are reported by the next `Select`. `ProcessCalls` is mixed into
`SimKernel` and uses its process table, charging (`_settle`, `_block`) and tracing.
"""

from __future__ import annotations

import errno
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.kernel import effects as fx
from sim.kernel.memfs import fs_error
from sim.kernel.simfd import OpenFile
from sim.kernel.simwait import Waitable

INIT = 1  # the model: parent of spawned programs and of orphans, reaps them at once
SIGNALS = {"HUP": 1, "KILL": 9, "ALRM": 14, "TERM": 15}
CATCHABLE = frozenset({"HUP", "ALRM", "TERM"})
MAX_FINALLY_CALLS = 64  # calls a stopped program's `finally` blocks may still try to make

Sim = Generator[simpy.Event, Any, Any]


class ExecNow(Exception):
    """`Exec` succeeded: the process goes on running `gen`."""

    def __init__(self, gen: fx.Program) -> None:
        self.gen = gen


class ExitNow(Exception):
    """`Exit` was called: the process ends with `status`."""

    def __init__(self, status: int) -> None:
        self.status = status


class Die(Exception):
    """This process killed itself with a signal it does not catch."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


@dataclass(eq=False, slots=True)
class Proc:
    """One row of the process table, and the process's kernel state."""

    pid: int
    ppid: int
    prog: str
    user: str
    uid: int
    ruser: str
    ruid: int
    cwd: str
    env: dict[str, str] = field(repr=False)
    start: float
    label: str = ""
    state: str = "running"  # running, blocked, zombie, exited
    end: float | None = None
    status: int | None = None
    error: BaseException | None = None  # the bug that crashed it, if one did
    fds: dict[int, OpenFile] = field(default_factory=dict, repr=False)
    caught: set[str] = field(default_factory=set, repr=False)
    pending: list[str] = field(default_factory=list, repr=False)
    children: dict[int, Proc] = field(default_factory=dict, repr=False)
    zombies: list[Proc] = field(default_factory=list, repr=False)
    stdout: bytearray = field(default_factory=bytearray, repr=False)
    stderr: bytearray = field(default_factory=bytearray, repr=False)
    debt: float = field(default=0.0, repr=False)  # CPU seconds owed in "fast" detail
    killed: int = field(default=0, repr=False)  # the signal that is ending it
    exit_traced: bool = field(default=False, repr=False)
    gen: fx.Program | None = field(default=None, repr=False)
    process: simpy.Process | None = field(default=None, repr=False)
    done: simpy.Event | None = field(default=None, repr=False)
    signals: Waitable | None = field(default=None, repr=False)
    child_exit: Waitable | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.state in ("running", "blocked")


def finish(gen: fx.Program) -> None:
    """End a program generator stopped in the middle of a call, for good.

    `close()` alone is not enough: a `finally` that makes a call (closing a descriptor)
    yields again, `close()` raises "generator ignored GeneratorExit", and the generator
    stays suspended until the garbage collector complains. GeneratorExit is thrown at each
    call such a `finally` makes, so none of them runs and the generator ends.
    """
    for _ in range(MAX_FINALLY_CALLS):
        try:
            gen.throw(GeneratorExit)
        except (Exception, GeneratorExit):
            return


class ProcessCalls:
    """The handlers of the process calls, mixed into SimKernel."""

    def _fork(self, p: Proc, e: fx.Fork) -> Sim:
        yield from self._settle(p)
        c = self._new_proc(p.pid, p.prog, p.user, p.uid, p.ruser, p.ruid, p.cwd, dict(p.env))
        c.label, c.caught = e.label, set(p.caught)
        c.stdout, c.stderr = p.stdout, p.stderr
        for fd in sorted(p.fds):
            self._install(c, p.fds[fd], fd)
        p.children[c.pid] = c
        self._start(c, e.child)
        return c.pid

    def _exec(self, p: Proc, e: fx.Exec) -> None:
        try:
            main, setuid = self.resolve(e.prog)
        except KeyError:
            raise fs_error(errno.ENOENT, e.prog) from None
        env = dict(e.env if e.env is not None else p.env)
        self._record(p, e, None, None)
        if setuid:
            p.user, p.uid = setuid, self._uid(setuid, None)
        p.prog, p.env = e.prog, env
        p.caught, p.pending = set(), []  # exec resets caught signals to their default
        raise ExecNow(main([e.prog, *e.argv], env))

    def _exit(self, p: Proc, e: fx.Exit) -> Sim:
        yield from self._settle(p)
        self._record(p, e, None, None)
        raise ExitNow(e.status)

    def _wait(self, p: Proc, e: fx.Wait) -> Sim:
        if not p.children or (e.pid != -1 and e.pid not in p.children):
            raise fs_error(errno.ECHILD, str(e.pid))

        def zombie() -> Proc | None:
            return next((z for z in p.zombies if e.pid in (-1, z.pid)), None)

        if zombie() is None and e.nohang:
            return None
        yield from self._block(p, lambda: zombie() is not None, (p.child_exit,))  # type: ignore[arg-type]
        z: Proc = zombie()  # type: ignore[assignment]
        p.zombies.remove(z)
        del p.children[z.pid]
        z.state = "exited"
        return z.pid, z.status

    def _kill(self, p: Proc, e: fx.Kill) -> Sim:
        yield from self._settle(p)
        target = self.procs.get(e.pid)
        if target is None or target.state == "exited":
            raise fs_error(errno.ESRCH, str(e.pid))
        self._signal(target, e.sig, sender=p)

    def _catchsignals(self, p: Proc, e: fx.CatchSignals) -> None:
        bad = [s for s in e.signals if s not in CATCHABLE]
        if bad:
            raise fs_error(errno.EINVAL, bad[0])
        p.caught.update(e.signals)

    def _getpid(self, p: Proc, e: fx.Getpid) -> int:
        return p.pid

    def _setuid(self, p: Proc, e: fx.Setuid) -> None:
        p.user = p.ruser = e.user
        p.uid = p.ruid = self._uid(e.user, e.uid)

    def _getuid(self, p: Proc, e: fx.Getuid) -> tuple[str, int]:
        return p.ruser, p.ruid

    def _time(self, p: Proc, e: fx.Time) -> float:
        return self.time()

    def _sleep(self, p: Proc, e: fx.Sleep) -> Sim:
        if e.seconds < 0:
            raise fs_error(errno.EINVAL, "sleep")
        yield from self._settle(p)
        p.state = "blocked"
        try:
            yield self.env.timeout(e.seconds)
        finally:
            p.state = "running"
