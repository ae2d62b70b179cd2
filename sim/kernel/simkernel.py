"""SimKernel: runs the same program generators as RealKernel, in SimPy virtual time.

Theory of operation. Each qmail process is a SimPy process (`_run`) that drives one program
generator exactly as `RealKernel._drive` does: it sends each call's result in, or throws the
`OSError` a real kernel would raise, with the same errno. A call first pays its CPU cost from
the cost table (holding one of `cores` CPUs, `servers.Server`, first come first served);
fsyncs hold one of `disks`; blocking waits (pipe reads, accept, wait, sleep, select) hold
nothing. In "fast" detail CPU costs become a debt paid when the process must wait. Files live
in a `MemFS`, which knows what a power loss would keep; pipes, FIFOs and sockets are `simchan`
channels.

This module is the process table, the driver, charging and tracing; the calls are handled
in `simproc` (processes and signals) and `simio` (descriptors, files, sockets), on the open
file descriptions of `simfd`. Orphans go to pid 1, which is the model and reaps them. Exit
statuses mean what RealKernel's do: the exit code (masked to 0..255), or -signal for a death
by signal; a program bug (an exception) is traced as a `crash` note and then looks like
SIGKILL, as the real kernel makes it. `shutdown` ends a run; `reap` keeps a long one small.

Same seed, same programs, same trace: pids come from a counter, ties resolve in SimPy's
event order, and nothing depends on set order, `id()` or the wall clock.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import math
import operator
import random
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from sim.kernel import effects as fx
from sim.kernel import trace as tr
from sim.kernel.costs import Costs
from sim.kernel.memfs import MemFS, fs_error
from sim.kernel.real import Resolver
from sim.kernel.servers import Server
from sim.kernel.simchan import Channel
from sim.kernel.simfd import Console, OpenFile
from sim.kernel.simio import DescriptorCalls
from sim.kernel.simnet import Network
from sim.kernel.simproc import (
    INIT,
    SIGNALS,
    Die,
    ExecNow,
    ExitNow,
    Proc,
    ProcessCalls,
    Sim,
    finish,
)
from sim.kernel.simwait import Waitable, wait_until
from sim.qmail.constants import QMAIL_UIDS

__all__ = ["Proc", "SimKernel"]

FIRST_PID = 100
FIRST_USER_UID = 1000  # uids for accounts not in qmail's INSTALL.ids
CRASH_SIGNAL = "KILL"
PS_KEYS = ("pid", "ppid", "user", "uid", "prog", "state", "start", "end", "status")
ps_row = operator.attrgetter(*PS_KEYS)  # a process's `ps` row, as a tuple


class Shutdown(BaseException):
    """Thrown into a process's driver by `SimKernel.shutdown`: the run is over."""


class SimKernel(ProcessCalls, DescriptorCalls):
    """Runs programs as SimPy processes on one simulated host; see the module docstring."""

    def __init__(
        self,
        env: simpy.Environment,
        resolve: Resolver,
        *,
        host: str,
        costs: Costs | None = None,
        trace: Callable[[dict], None] | None = None,
        cores: int = 2,
        disks: int = 1,
        seed: int = 0,
        fs: MemFS | None = None,
        net: Network | None = None,
        epoch: float = 0.0,
        trace_calls: bool | None = None,
        strict: bool = False,
    ) -> None:
        """`fs`/`net` share a filesystem or network; `epoch` is what `Time` says at t=0;
        `trace_calls` traces non-blocking calls in "fast" detail; `strict` re-raises bugs."""
        self.env, self.resolve, self.host = env, resolve, host
        self.costs = costs or Costs()
        self.trace = trace
        self.cpu = Server(env, cores)
        self.disk = Server(env, disks)
        self.rng = random.Random(seed)  # for the model; ephemeral ports use the network's
        self.epoch = epoch
        self.strict = strict
        self.fs = fs or MemFS()
        self.fs.clock = self.time
        self.net = net or Network(env, self.costs, seed=seed)
        self.net.add_host(host)
        self.procs: dict[int, Proc] = {}
        self.reaped: list[tuple[Any, ...]] = []  # `ps` rows (values) of processes reaped
        self.accounts = dict(QMAIL_UIDS)
        self.fifos: dict[int, Channel] = {}
        self.locks: dict[object, OpenFile] = {}  # flock()s: what is locked -> the holder
        self.next_pid = FIRST_PID
        self.fast = self.costs.fast
        calls = not self.fast if trace_calls is None else trace_calls
        self.traced = frozenset(
            c for c in fx.ALL_EFFECTS if c not in tr.QUIET and (calls or c in tr.ALWAYS)
        )
        self.calls = 0  # system calls the programs made (a Note is not one): the unit of work
        # per call: (handler, is it a generator, CPU cost before it, is it traced)
        self.dispatch: dict[type[fx.Effect], tuple[Callable[..., Any], bool, float, bool]] = {}
        for cls in fx.ALL_EFFECTS:
            fn = getattr(self, "_" + cls.__name__.lower())
            blocks = inspect.isgeneratorfunction(fn)
            self.dispatch[cls] = (fn, blocks, self.costs.before(cls), cls in self.traced)

    # -- the public side --------------------------------------------------------------

    def time(self) -> float:
        """What `Time` returns: virtual time since the epoch."""
        return self.epoch + self.env.now

    def spawn(
        self,
        prog: str,
        argv: list[str],
        env_vars: Mapping[str, str],
        user: str | None = None,
        cwd: str = "/",
        *,
        stdin: bytes = b"",
    ) -> int:
        """Start program `prog` as `user` (None: root) with `stdin` on fd 0; returns its pid.

        What it writes to fds 0 and 1 is kept in the process's `stdout`, fd 2 in `stderr`.
        KeyError if `prog` is unknown.
        """
        main, setuid = self.resolve(prog)
        name = user or "root"
        uid = self._uid(name, None)
        p = self._new_proc(INIT, prog, name, uid, name, uid, self.fs.abspath(cwd), dict(env_vars))
        if setuid:
            p.user, p.uid = setuid, self._uid(setuid, None)
        stdio = (Console(bytearray(stdin), p.stdout), Console(None, p.stdout))
        for fd, obj in enumerate((*stdio, Console(None, p.stderr))):
            self._install(p, obj, fd)
        self._start(p, lambda: main([prog, *argv], dict(env_vars)))
        return p.pid

    def done(self, pid: int) -> simpy.Event:
        """An event that fires with the process's exit status when it ends."""
        return self.procs[pid].done  # type: ignore[return-value]

    def kill(self, pid: int, sig: str) -> None:
        """Send a signal from outside (the model, an operator); ESRCH if it is gone."""
        target = self.procs.get(pid)
        if target is None or target.state == "exited":
            raise fs_error(errno.ESRCH, str(pid))
        self._signal(target, sig)

    def halt(self) -> None:
        """Power off: every live process dies at once (then see `fs.crash()`)."""
        for p in list(self.procs.values()):
            if p.alive:
                self._signal(p, "KILL")
        self.cpu.stop()
        self.disk.stop()

    def shutdown(self) -> None:
        """End the run: stop every live process where it is and release what it holds.

        Each process's driver is detached from SimPy and stopped; its program is ended by
        `finish`, so a `finally` that makes calls ends too, and nothing is left for the
        garbage collector to complain about; its descriptors are released (pipes, sockets,
        listening ports, CPU and disk). It is left exited as by SIGKILL, untraced: the run
        is over and its trace may be closed. The kernel runs nothing afterwards.
        """
        live = [p for p in self.procs.values() if p.alive]
        for p in live:
            self._stop(p)
            p.state = "exited"  # first, so that none becomes another's zombie below
        for p in live:
            if p.gen is not None:
                finish(p.gen)
            p.status, p.end = -SIGNALS["KILL"], float(self.env.now)
            self._bury(p)
        self.cpu.stop()
        self.disk.stop()

    def reap(
        self, before: float = math.inf, into: Callable[[tuple[Any, ...]], None] | None = None
    ) -> int:
        """Drop processes that exited before `before` and were collected (by their parent's
        `Wait`, or by init) from `procs`; `ps` keeps their rows, or `into` takes each (a
        `ps_row` tuple) to keep them its own way. Returns how many.

        A kernel otherwise keeps every process it ever ran, which over a long run is most
        of the memory; a pid still in `procs` can be looked up as before.
        """
        gone = [
            p.pid
            for p in self.procs.values()
            if p.state == "exited" and p.end is not None and p.end < before
        ]
        keep = self.reaped.append if into is None else into
        for pid in gone:
            p = self.procs.pop(pid)
            keep(ps_row(p))
            if p.gen is not None and p.gen.gi_frame is not None:
                finish(p.gen)  # stopped in the middle of a call (a crash's SIGKILL)
        return len(gone)

    def ps(self) -> list[dict[str, Any]]:
        """The process table as plain rows, in pid order, reaped processes included."""
        rows = [dict(zip(PS_KEYS, ps_row(p), strict=True)) for p in self.procs.values()]
        if not self.reaped:
            return rows
        rows += [dict(zip(PS_KEYS, values, strict=True)) for values in self.reaped]
        return sorted(rows, key=lambda row: row["pid"])

    # -- processes --------------------------------------------------------------------

    def _uid(self, user: str, uid: int | None) -> int:
        if uid is not None:
            return uid
        if user not in self.accounts:
            self.accounts[user] = FIRST_USER_UID + len(self.accounts) - len(QMAIL_UIDS)
        return self.accounts[user]

    def _new_proc(self, ppid: int, prog: str, *ident: Any) -> Proc:
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        p = Proc(pid, ppid, prog, *ident, start=float(self.env.now))
        p.done, p.signals, p.child_exit = self.env.event(), Waitable(self.env), Waitable(self.env)
        self.procs[pid] = p
        return p

    def _start(self, p: Proc, make: Callable[[], fx.Program]) -> None:
        p.process = self.env.process(self._run(p, make))

    def _run(self, p: Proc, make: Callable[[], fx.Program]) -> Sim:
        """The SimPy process of one qmail process, from start (or fork) to its end."""
        try:
            if p.killed:
                raise Die(p.killed)
            try:
                p.gen = make()
            except Exception as exc:
                status = self._crash(p, exc)
            else:
                status = yield from self._drive(p)
        except simpy.Interrupt as stop:
            status = -int(stop.cause)  # type: ignore[arg-type]
        except Die as death:
            status = -death.signum
        self._terminate(p, status)

    def _drive(self, p: Proc) -> Sim:
        """RealKernel's `_drive` in virtual time; returns the exit status."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = p.gen.send(value) if error is None else p.gen.throw(error)  # type: ignore[union-attr]
            except StopIteration as stop:
                if (hold := self._charge(p, self.costs.exit)) is not None:
                    yield hold
                yield from self._settle(p)
                return (stop.value if isinstance(stop.value, int) else 0) & 0xFF
            except Exception as exc:
                return self._crash(p, exc)
            value, error = None, None
            kind = type(effect)
            call = self.dispatch.get(kind)
            if call is None:
                bug = TypeError(f"{p.prog} yielded {effect!r}, not an effect")
                return self._crash(p, bug)
            handler, blocks, base, traced = call
            if kind is not fx.Note:
                self.calls += 1
            try:
                if base:
                    if self.fast:
                        p.debt += base
                    else:
                        yield self.cpu.hold(base)
                value = (yield from handler(p, effect)) if blocks else handler(p, effect)
            except (ExecNow, ExitNow) as switch:
                try:
                    p.gen.close()  # type: ignore[union-attr]
                except Exception as exc:  # a `finally` that makes calls: the program's bug
                    return self._crash(p, exc)
                if isinstance(switch, ExitNow):
                    return switch.status & 0xFF
                p.gen = switch.gen
                continue
            except OSError as exc:
                error = exc
                self._record(p, effect, None, exc)
                continue
            if traced:
                self._record(p, effect, value, None)

    def _crash(self, p: Proc, exc: BaseException) -> int:
        """Our bug in a program: trace it, then die as by SIGKILL (as RealKernel does)."""
        if self.strict:
            raise exc
        text = "".join(traceback.format_exception(exc))
        p.error = exc
        self._record(p, fx.Note("crash", {"traceback": text[-1500:]}), None, None)
        return -SIGNALS[CRASH_SIGNAL]

    def _terminate(self, p: Proc, status: int) -> None:
        """Trace its end, then bury it."""
        if p.gen is not None:
            finish(p.gen)  # a killed program runs no more system calls
        p.status, p.end = status, float(self.env.now)
        if not p.exit_traced and self.trace is not None:
            fields = tr.call_fields(fx.Exit(status))
            if status < 0:
                fields["signal"] = next(k for k, v in SIGNALS.items() if v == -status)
            self._emit(p, fields)
        self._bury(p)

    def _bury(self, p: Proc) -> None:
        """Close its descriptors, leave a zombie for the parent, hand children to init."""
        for fd in sorted(p.fds):
            self._release(p.fds.pop(fd))
        parent = self.procs.get(p.ppid)
        if parent is not None and parent.alive:
            p.state = "zombie"
            parent.zombies.append(p)
            parent.child_exit.notify()  # type: ignore[union-attr]
        else:
            p.state = "exited"
        for child in p.children.values():
            child.ppid = INIT
            if child.state == "zombie":
                child.state = "exited"
        p.children.clear()
        p.zombies.clear()
        p.done.succeed(p.status)  # type: ignore[union-attr]

    def _stop(self, p: Proc) -> None:
        """Stop the driver of a live process where it waits, releasing what it holds."""
        process = p.process
        if process is None or not process.is_alive:
            return
        target = process.target  # None while an interrupt is on its way: it will be ignored
        if target is not None and target.callbacks is not None:
            with contextlib.suppress(ValueError):
                target.callbacks.remove(process._resume)
        with contextlib.suppress(Shutdown, StopIteration):
            process._generator.throw(Shutdown())  # unwinds through `with` and `finally`
        process._ok, process._value = True, None  # SimPy's mark of a process that has ended

    def _signal(self, target: Proc, sig: str, sender: Proc | None = None) -> None:
        """Deliver `sig`: caught ones wait for Select, the rest kill."""
        if sig not in SIGNALS:
            raise fs_error(errno.EINVAL, sig)
        if not target.alive:
            return  # a zombie takes any signal and ignores it
        if sig in target.caught:
            target.pending.append(sig)
            target.signals.notify()  # type: ignore[union-attr]
            return
        if target.killed:
            return
        target.killed = SIGNALS[sig]
        if target is sender:
            raise Die(target.killed)
        if target.gen is not None:
            target.process.interrupt(target.killed)  # type: ignore[union-attr]

    # -- charging and tracing ---------------------------------------------------------

    def _charge(self, p: Proc, seconds: float) -> simpy.Event | None:
        """Charge CPU time: the event to wait for (teaching), or None once it is added to the
        debt paid before the next wait (fast). Not a generator: a call is hot."""
        if seconds > 0:
            if self.fast:
                p.debt += seconds
                return None
            return self.cpu.hold(seconds)
        return None

    def _settle(self, p: Proc) -> Sim:
        """Pay the CPU debt (fast) before waiting, exiting, or starting a process."""
        if p.debt > 0:
            debt, p.debt = p.debt, 0.0
            yield self.cpu.hold(debt)

    def _disk(self, p: Proc, seconds: float) -> Sim:
        yield from self._settle(p)
        if seconds <= 0:
            return
        p.state = "blocked"
        try:
            yield self.disk.hold(seconds)
        finally:
            p.state = "running"

    def _block(
        self,
        p: Proc,
        ready: Callable[[], bool],
        sources: tuple[Waitable, ...] | list[Waitable],
        timeout: float | None = None,
    ) -> Sim:
        """Wait, holding nothing, until `ready()`; TimeoutError after `timeout`.

        A call that need not wait pays no debt: in "fast" detail that is what lets the
        calls of a process between two waits cost one event instead of one each."""
        if ready():
            return
        yield from self._settle(p)
        p.state = "blocked"
        try:
            yield from wait_until(self.env, ready, sources, timeout)
        finally:
            p.state = "running"

    def _record(self, p: Proc, effect: fx.Effect, result: Any, error: BaseException | None):
        if self.trace is not None:
            self._emit(p, tr.call_fields(effect, result, error))  # type: ignore[arg-type]
            if isinstance(effect, fx.Exit):
                p.exit_traced = True

    def _emit(self, p: Proc, fields: dict[str, Any]) -> None:
        event = {
            "t": round(float(self.env.now), 9),
            "host": self.host,
            "pid": p.pid,
            "ppid": p.ppid,
            "uid": p.user,
            "prog": p.prog,
        }
        event.update(fields)
        self.trace(event)  # type: ignore[misc]
