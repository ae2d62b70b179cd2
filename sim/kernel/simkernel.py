"""SimKernel: runs the same program generators as RealKernel, in SimPy virtual time.

Theory of operation. Each qmail process is a SimPy process (`_run`) that drives one program
generator exactly as `RealKernel._drive` does: it sends each call's result in, or throws the
`OSError` a real kernel would raise, with the same errno. A call first pays its CPU cost from
the cost table (holding one of `cores` CPUs); fsyncs hold one of `disks`; blocking waits
(pipe reads, accept, wait, sleep, select) hold nothing. Files live in a `MemFS`, which knows
what a power loss would keep; pipes, FIFOs and sockets are `simnet` channels.

Processes have a pid, ppid, account and an fd table of shared, refcounted open file
descriptions, as in POSIX: `Fork` copies the table, `Dup2` shares one description, the last
close releases it (a pipe's last writer gives its reader end of file). A finished child
stays a zombie until its parent's `Wait`; orphans go to pid 1, which is the model and
reaps them. Exit statuses mean what RealKernel's do: the exit code (masked to 0..255), or
-signal for a death by signal; a program bug (an exception) is traced as a `crash` note and
then looks like SIGKILL, as the real kernel makes it. Signals not caught kill; caught ones
(`CatchSignals`) are reported by the next `Select`.

Same seed, same programs, same trace: pids come from a counter, ties resolve in SimPy's
event order, and nothing depends on set order, `id()` or the wall clock.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import random
import stat as S
import traceback
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.kernel import effects as fx
from sim.kernel import trace as tr
from sim.kernel.costs import Costs
from sim.kernel.memfs import Inode, MemFS, fs_error
from sim.kernel.real import Resolver
from sim.kernel.simnet import Channel, Endpoint, Listener, Network, Waitable, wait_until
from sim.qmail.constants import QMAIL_UIDS

INIT = 1  # the model: parent of spawned programs and of orphans, reaps them at once
FIRST_PID = 100
MAX_FDS = 1024
FIRST_USER_UID = 1000  # uids for accounts not in qmail's INSTALL.ids
SIGNALS = {"HUP": 1, "KILL": 9, "ALRM": 14, "TERM": 15}
CATCHABLE = frozenset({"HUP", "ALRM", "TERM"})
CRASH_SIGNAL = "KILL"

Sim = Generator[simpy.Event, Any, Any]

# Calls traced even in "fast" detail: process life, protocol steps, calls that wait.
ALWAYS_TRACED = frozenset(
    {
        fx.Note, fx.Fork, fx.Exec, fx.Exit, fx.Wait, fx.Sleep, fx.Select, fx.Kill,
        fx.Read, fx.Write, fx.Fsync, fx.FsyncDir, fx.Listen, fx.Accept, fx.Connect,
    }
)  # fmt: skip

BASE_COST: dict[type[fx.Effect], str | None] = {
    fx.Fork: "fork", fx.Exec: "exec", fx.Exit: "exit", fx.Wait: "wait", fx.Pipe: "pipe",
    fx.Close: "close", fx.Open: "open", fx.Link: "link", fx.Rename: "rename",
    fx.Unlink: "unlink", fx.Stat: "stat", fx.Readdir: "readdir", fx.Mkdir: "mkdir",
    fx.Mkfifo: "mkdir", fx.Listen: "listen", fx.Accept: "accept", fx.Connect: "connect",
    fx.Note: "note", fx.Read: None, fx.Write: None, fx.Fsync: None, fx.FsyncDir: None,
}  # fmt: skip
"""The cost field each call pays before it runs; "syscall" if not listed; None: the handler
charges by kind (file, pipe or socket I/O; fsyncs are all disk time)."""


def _error(code: int, what: str = "") -> OSError:
    return fs_error(code, what)


class _ExecNow(Exception):
    def __init__(self, gen: fx.Program) -> None:
        self.gen = gen


class _ExitNow(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Die(Exception):
    """This process killed itself with a signal it does not catch."""

    def __init__(self, signum: int) -> None:
        self.signum = signum


# -- open file descriptions -------------------------------------------------------------


class OpenFile:
    """An open file description: shared by dup2 and fork, released at its last close."""

    __slots__ = ("nonblock", "refs")
    reads = writes = False

    def __init__(self) -> None:
        self.refs = 0
        self.nonblock = False

    def release(self) -> None:
        """The last descriptor referring to it was closed."""

    def can_read(self) -> bool:
        return True

    def can_write(self) -> bool:
        return True

    def sources(self) -> tuple[Waitable, ...]:
        """What to wait on for a change in readiness."""
        return ()


class FileOpen(OpenFile):
    """A regular file, with its offset and access mode."""

    __slots__ = ("append", "inode", "offset", "reads", "writes")

    def __init__(self, inode: Inode, reads: bool, writes: bool, append: bool) -> None:
        super().__init__()
        self.inode, self.reads, self.writes, self.append = inode, reads, writes, append
        self.offset = 0


class DirOpen(OpenFile):
    """A directory opened for reading (to fsync it)."""

    __slots__ = ("inode",)

    def __init__(self, inode: Inode) -> None:
        super().__init__()
        self.inode = inode


class PipeEnd(OpenFile):
    """One or both ends of a pipe or FIFO; `seen` is the writer count at open (for HUP)."""

    __slots__ = ("channel", "reads", "seen", "writes")

    def __init__(self, channel: Channel, reads: bool, writes: bool, seen: int = 0) -> None:
        super().__init__()
        self.channel, self.reads, self.writes, self.seen = channel, reads, writes, seen

    def release(self) -> None:
        if self.reads:
            self.channel.close_reader()
        if self.writes:
            self.channel.close_writer()

    def can_read(self) -> bool:
        # Linux reports a hangup only once a writer has come and gone since this open.
        ch = self.channel
        return self.reads and (bool(ch.buf) or (ch.writers == 0 and ch.w_opens != self.seen))

    def can_write(self) -> bool:
        return self.writes and self.channel.writable()

    def sources(self) -> tuple[Waitable, ...]:
        return (self.channel,)


class SockOpen(OpenFile):
    """A connected TCP socket."""

    __slots__ = ("endpoint",)
    reads = writes = True

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def release(self) -> None:
        self.endpoint.close()

    def can_read(self) -> bool:
        return self.endpoint.rx.readable()

    def can_write(self) -> bool:
        return self.endpoint.tx.writable()

    def sources(self) -> tuple[Waitable, ...]:
        return (self.endpoint.rx, self.endpoint.tx)


class ListenOpen(OpenFile):
    """A listening socket."""

    __slots__ = ("listener",)

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self.listener = listener

    def release(self) -> None:
        self.listener.close()

    def can_read(self) -> bool:
        return bool(self.listener.queue)

    def can_write(self) -> bool:
        return False

    def sources(self) -> tuple[Waitable, ...]:
        return (self.listener,)


class Console(OpenFile):
    """A spawned program's terminal: reads take the given input (then end of file), writes
    are kept in a buffer. fd 0 is read-write as a tty is (qmail-send logs to fd 0)."""

    __slots__ = ("input", "output", "reads", "writes")

    def __init__(self, input: bytearray | None, output: bytearray) -> None:
        super().__init__()
        self.input, self.output = input, output
        self.reads, self.writes = input is not None, True


# -- processes --------------------------------------------------------------------------


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


class SimKernel:
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
        self.cpu = simpy.Resource(env, capacity=cores)
        self.disk = simpy.Resource(env, capacity=disks)
        self.rng = random.Random(seed)  # for the model; ephemeral ports use the network's
        self.epoch = epoch
        self.strict = strict
        self.fs = fs or MemFS()
        self.fs.clock = self.time
        self.net = net or Network(env, self.costs, seed=seed)
        self.net.add_host(host)
        self.procs: dict[int, Proc] = {}
        self.accounts = dict(QMAIL_UIDS)
        self.fifos: dict[int, Channel] = {}
        self.next_pid = FIRST_PID
        self.fast = self.costs.fast
        calls = not self.fast if trace_calls is None else trace_calls
        self.traced = frozenset(
            c for c in fx.ALL_EFFECTS if c not in tr.QUIET and (calls or c in ALWAYS_TRACED)
        )
        self.base = {c: self._base_cost(c) for c in fx.ALL_EFFECTS}
        self.handlers: dict[type[fx.Effect], tuple[Callable[..., Any], bool]] = {}
        for cls in fx.ALL_EFFECTS:
            fn = getattr(self, "_" + cls.__name__.lower())
            self.handlers[cls] = (fn, inspect.isgeneratorfunction(fn))

    def _base_cost(self, call: type[fx.Effect]) -> float:
        name = BASE_COST.get(call, "syscall")
        return getattr(self.costs, name) if name else 0.0

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
            raise _error(errno.ESRCH, str(pid))
        self._signal(target, sig)

    def halt(self) -> None:
        """Power off: every live process dies at once (then see `fs.crash()`)."""
        for p in list(self.procs.values()):
            if p.alive:
                self._signal(p, "KILL")

    def ps(self) -> list[dict[str, Any]]:
        """The process table as plain rows, in pid order."""
        keys = ("pid", "ppid", "user", "uid", "prog", "state", "start", "end", "status")
        return [{k: getattr(p, k) for k in keys} for p in self.procs.values()]

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
                raise _Die(p.killed)
            try:
                p.gen = make()
            except Exception as exc:
                status = self._crash(p, exc)
            else:
                status = yield from self._drive(p)
        except simpy.Interrupt as stop:
            status = -int(stop.cause)  # type: ignore[arg-type]
        except _Die as death:
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
                yield from self._cpu(p, self.costs.exit)
                yield from self._settle(p)
                return (stop.value if isinstance(stop.value, int) else 0) & 0xFF
            except Exception as exc:
                return self._crash(p, exc)
            value, error = None, None
            kind = type(effect)
            if kind not in self.handlers:
                bug = TypeError(f"{p.prog} yielded {effect!r}, not an effect")
                return self._crash(p, bug)
            handler, blocks = self.handlers[kind]
            try:
                if self.base[kind]:
                    yield from self._cpu(p, self.base[kind])
                value = (yield from handler(p, effect)) if blocks else handler(p, effect)
            except (_ExecNow, _ExitNow) as switch:
                try:
                    p.gen.close()  # type: ignore[union-attr]
                except Exception as exc:  # a `finally` that makes calls: the program's bug
                    return self._crash(p, exc)
                if isinstance(switch, _ExitNow):
                    return switch.status & 0xFF
                p.gen = switch.gen
                continue
            except OSError as exc:
                error = exc
                self._record(p, effect, None, exc)
                continue
            if kind in self.traced:
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
        """Close its descriptors, leave a zombie for the parent, hand children to init."""
        if p.gen is not None:
            with contextlib.suppress(Exception):
                p.gen.close()  # a killed program runs no more system calls
        p.status, p.end = status, float(self.env.now)
        if not p.exit_traced and self.trace is not None:
            fields = tr.call_fields(fx.Exit(status))
            if status < 0:
                fields["signal"] = next(k for k, v in SIGNALS.items() if v == -status)
            self._emit(p, fields)
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
        p.done.succeed(status)  # type: ignore[union-attr]

    def _signal(self, target: Proc, sig: str, sender: Proc | None = None) -> None:
        """Deliver `sig`: caught ones wait for Select, the rest kill."""
        if sig not in SIGNALS:
            raise _error(errno.EINVAL, sig)
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
            raise _Die(target.killed)
        if target.gen is not None:
            target.process.interrupt(target.killed)  # type: ignore[union-attr]

    # -- charging and tracing ---------------------------------------------------------

    def _hold(self, resource: simpy.Resource, seconds: float) -> Sim:
        with resource.request() as turn:
            yield turn
            yield self.env.timeout(seconds)

    def _cpu(self, p: Proc, seconds: float) -> Sim:
        """Pay CPU time: now (teaching) or as debt paid before the next wait (fast)."""
        if seconds <= 0:
            return
        if self.fast:
            p.debt += seconds
            return
        yield from self._hold(self.cpu, seconds)

    def _settle(self, p: Proc) -> Sim:
        """Pay the CPU debt before waiting or doing what another process can see."""
        if p.debt > 0:
            debt, p.debt = p.debt, 0.0
            yield from self._hold(self.cpu, debt)

    def _disk(self, p: Proc, seconds: float) -> Sim:
        yield from self._settle(p)
        if seconds <= 0:
            return
        p.state = "blocked"
        try:
            yield from self._hold(self.disk, seconds)
        finally:
            p.state = "running"

    def _block(
        self,
        p: Proc,
        ready: Callable[[], bool],
        sources: tuple[Waitable, ...] | list[Waitable],
        timeout: float | None = None,
    ) -> Sim:
        """Wait, holding nothing, until `ready()`; TimeoutError after `timeout`."""
        yield from self._settle(p)
        if ready():
            return
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

    # -- descriptors ------------------------------------------------------------------

    def _fd(self, p: Proc, fd: int) -> OpenFile:
        try:
            return p.fds[fd]
        except KeyError:
            raise _error(errno.EBADF, str(fd)) from None

    def _install(self, p: Proc, obj: OpenFile, fd: int | None = None) -> int:
        """Put `obj` at `fd`, or at the lowest free descriptor as open(2) does."""
        if fd is None:
            fd = next(i for i in range(MAX_FDS + 1) if i not in p.fds)
            if fd == MAX_FDS:
                raise _error(errno.EMFILE)
        obj.refs += 1
        p.fds[fd] = obj
        return fd

    def _release(self, obj: OpenFile) -> None:
        obj.refs -= 1
        if obj.refs == 0:
            obj.release()

    def _path(self, p: Proc, path: str) -> str:
        return self.fs.abspath(path, p.cwd)

    # -- handlers: processes ------------------------------------------------------------

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
            raise _error(errno.ENOENT, e.prog) from None
        env = dict(e.env if e.env is not None else p.env)
        self._record(p, e, None, None)
        if setuid:
            p.user, p.uid = setuid, self._uid(setuid, None)
        p.prog, p.env = e.prog, env
        p.caught, p.pending = set(), []  # exec resets caught signals to their default
        raise _ExecNow(main([e.prog, *e.argv], env))

    def _exit(self, p: Proc, e: fx.Exit) -> Sim:
        yield from self._settle(p)
        self._record(p, e, None, None)
        raise _ExitNow(e.status)

    def _wait(self, p: Proc, e: fx.Wait) -> Sim:
        if not p.children or (e.pid != -1 and e.pid not in p.children):
            raise _error(errno.ECHILD, str(e.pid))

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
            raise _error(errno.ESRCH, str(e.pid))
        self._signal(target, e.sig, sender=p)

    def _catchsignals(self, p: Proc, e: fx.CatchSignals) -> None:
        bad = [s for s in e.signals if s not in CATCHABLE]
        if bad:
            raise _error(errno.EINVAL, bad[0])
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
            raise _error(errno.EINVAL, "sleep")
        yield from self._settle(p)
        p.state = "blocked"
        try:
            yield self.env.timeout(e.seconds)
        finally:
            p.state = "running"

    # -- handlers: descriptors ----------------------------------------------------------

    def _pipe(self, p: Proc, e: fx.Pipe) -> tuple[int, int]:
        channel = Channel(self.env, self.costs.pipe_capacity)
        r = self._install(p, PipeEnd(channel, True, False))
        return r, self._install(p, PipeEnd(channel, False, True))

    def _dup2(self, p: Proc, e: fx.Dup2) -> int:
        obj = self._fd(p, e.old)
        if not 0 <= e.new < MAX_FDS:
            raise _error(errno.EBADF, str(e.new))
        if e.new != e.old:
            if e.new in p.fds:
                self._release(p.fds.pop(e.new))
            self._install(p, obj, e.new)
        return e.new

    def _close(self, p: Proc, e: fx.Close) -> None:
        self._fd(p, e.fd)
        self._release(p.fds.pop(e.fd))

    def _per_kib(self, n: int, cost: float) -> float:
        return n / 1024 * cost

    def _read(self, p: Proc, e: fx.Read) -> Sim:
        c, obj = self.costs, self._fd(p, e.fd)
        if isinstance(obj, DirOpen):
            raise _error(errno.EISDIR, str(e.fd))
        if isinstance(obj, ListenOpen):
            raise _error(errno.ENOTCONN, str(e.fd))
        if not obj.reads:
            raise _error(errno.EBADF, str(e.fd))
        if isinstance(obj, FileOpen):
            data = self.fs.read(obj.inode, obj.offset, e.size)
            obj.offset += len(data)
            yield from self._cpu(p, c.file_io + self._per_kib(len(data), c.file_io_per_kib))
            return data
        if isinstance(obj, Console):
            data = bytes(obj.input[: e.size])  # type: ignore[index]
            del obj.input[: e.size]  # type: ignore[union-attr]
            yield from self._cpu(p, c.pipe_io)
            return data
        channel = obj.endpoint.rx if isinstance(obj, SockOpen) else obj.channel  # type: ignore[attr-defined]
        yield from self._cpu(p, c.sock_io if isinstance(obj, SockOpen) else c.pipe_io)
        if e.timeout is not None:
            yield from self._block(p, obj.can_read, obj.sources(), e.timeout)
        if obj.nonblock and not channel.readable():
            raise _error(errno.EAGAIN, str(e.fd))
        yield from self._block(p, channel.readable, (channel,))
        data = channel.take(e.size)
        yield from self._cpu(p, self._per_kib(len(data), c.pipe_io_per_kib))
        return data

    def _write(self, p: Proc, e: fx.Write) -> Sim:
        c, obj, size = self.costs, self._fd(p, e.fd), len(e.data)
        if not obj.writes:
            raise _error(errno.EBADF, str(e.fd))
        if isinstance(obj, FileOpen):
            yield from self._cpu(p, c.file_io + self._per_kib(size, c.file_io_per_kib))
            offset = len(obj.inode.data) if obj.append else obj.offset
            obj.offset = offset + self.fs.write(obj.inode, offset, e.data)
            return size
        if isinstance(obj, Console):
            yield from self._cpu(p, c.pipe_io)
            obj.output += e.data
            return size
        sock = isinstance(obj, SockOpen)
        channel = obj.endpoint.tx if sock else obj.channel  # type: ignore[attr-defined]
        base = c.sock_io if sock else c.pipe_io
        yield from self._cpu(p, base + self._per_kib(size, c.pipe_io_per_kib))
        view = memoryview(e.data)
        while view:
            if obj.nonblock:
                yield from self._settle(p)
                if not channel.writable():
                    raise _error(errno.EAGAIN, str(e.fd))
            else:
                yield from self._block(p, channel.writable, (channel,), e.timeout)
            view = view[channel.put(view) :]
        return size

    def _select(self, p: Proc, e: fx.Select) -> Sim:
        reads = [(fd, self._fd(p, fd)) for fd in e.read]
        writes = [(fd, self._fd(p, fd)) for fd in e.write]

        def scan() -> tuple[list[int], list[int]]:
            readable = [fd for fd, o in reads if o.can_read()]
            return readable, [fd for fd, o in writes if o.can_write()]

        if p.pending:
            ready: tuple[list[int], list[int]] = ([], [])
        else:
            sources = [s for _, o in reads + writes for s in o.sources()]
            sources.append(p.signals)  # type: ignore[arg-type]
            woken = lambda: bool(p.pending or any(scan()))  # noqa: E731
            with contextlib.suppress(TimeoutError):
                yield from self._block(p, woken, sources, e.timeout)
            ready = scan()
        caught, p.pending = p.pending, []
        return ready[0], ready[1], caught

    # -- handlers: files ----------------------------------------------------------------

    def _open(self, p: Proc, e: fx.Open) -> Sim:
        path = self._path(p, e.path)
        reads, writes = e.mode in ("r", "rw") or e.mode not in ("w", "a"), e.mode != "r"
        try:
            node = self.fs.lookup(path)
        except FileNotFoundError:
            if not (e.create or e.exclusive):
                raise
            node = self.fs.create(path, e.perm, p.uid)
        else:
            if e.exclusive:
                raise _error(errno.EEXIST, path) from None
        if node.is_dir:
            if writes:
                raise _error(errno.EISDIR, path)
            return self._install(p, DirOpen(node))
        if node.kind == "fifo":
            return (yield from self._open_fifo(p, node, reads, writes, e.nonblock))
        if e.mode == "w":
            self.fs.truncate(node, 0)
        return self._install(p, FileOpen(node, reads, writes, e.mode == "a"))

    def _open_fifo(self, p: Proc, node: Inode, reads: bool, writes: bool, nonblock: bool) -> Sim:
        """FIFO opens as Linux: a nonblocking writer without a reader fails ENXIO; blocking
        opens wait for the other side; O_RDWR never waits."""
        channel = self.fifos.get(node.ino)
        if channel is None:
            channel = Channel(self.env, self.costs.pipe_capacity, readers=0, writers=0)
            self.fifos[node.ino] = channel
        if writes and not reads and nonblock and channel.readers == 0:
            raise _error(errno.ENXIO, f"fifo {node.ino}")
        end = PipeEnd(channel, reads, writes, channel.w_opens)
        end.nonblock = nonblock
        fd = self._install(p, end)  # installed first: a kill while waiting closes it
        if reads:
            channel.open_reader()
        if writes:
            channel.open_writer()
        if not nonblock and reads and not writes:
            yield from self._block(p, lambda: channel.w_opens != end.seen, (channel,))
        if not nonblock and writes and not reads:
            yield from self._block(p, lambda: channel.readers > 0, (channel,))
        return fd

    def _fsync(self, p: Proc, e: fx.Fsync) -> Sim:
        obj = self._fd(p, e.fd)
        if isinstance(obj, FileOpen):
            flush = obj.inode.dirty / self.costs.disk_bandwidth
            yield from self._disk(p, self.costs.fsync + flush)
        elif isinstance(obj, DirOpen):
            yield from self._disk(p, self.costs.fsync_dir)
        else:
            raise _error(errno.EINVAL, str(e.fd))
        self.fs.fsync(obj.inode)

    def _fsyncdir(self, p: Proc, e: fx.FsyncDir) -> Sim:
        node = self.fs.lookup(self._path(p, e.path))
        if not node.is_dir:
            raise _error(errno.ENOTDIR, e.path)
        yield from self._disk(p, self.costs.fsync_dir)
        self.fs.fsync(node)

    def _link(self, p: Proc, e: fx.Link) -> None:
        self.fs.link(self._path(p, e.src), self._path(p, e.dst))

    def _rename(self, p: Proc, e: fx.Rename) -> None:
        self.fs.rename(self._path(p, e.src), self._path(p, e.dst))

    def _unlink(self, p: Proc, e: fx.Unlink) -> None:
        self.fs.unlink(self._path(p, e.path))

    def _truncate(self, p: Proc, e: fx.Truncate) -> None:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, FileOpen) or not obj.writes:
            raise _error(errno.EINVAL, str(e.fd))
        self.fs.truncate(obj.inode, e.length)

    def _seek(self, p: Proc, e: fx.Seek) -> int:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, FileOpen | DirOpen):
            raise _error(errno.ESPIPE, str(e.fd))
        if e.offset < 0:
            raise _error(errno.EINVAL, str(e.fd))
        if isinstance(obj, FileOpen):
            obj.offset = e.offset
        return e.offset

    def _stat(self, p: Proc, e: fx.Stat) -> fx.StatResult:
        if e.fd is None:
            return self.fs.lookup(self._path(p, e.path)).stat()
        obj = self._fd(p, e.fd)
        if isinstance(obj, FileOpen | DirOpen):
            return obj.inode.stat()
        kind = {PipeEnd: S.S_IFIFO | 0o600, Console: S.S_IFCHR | 0o620}.get(
            type(obj), S.S_IFSOCK | 0o777
        )
        now = self.time()
        is_fifo = isinstance(obj, PipeEnd)
        return fx.StatResult(0, 0, kind, p.uid, now, now, 1, False, False, is_fifo)

    def _utime(self, p: Proc, e: fx.Utime) -> None:
        self.fs.utime(self._path(p, e.path), e.mtime)

    def _readdir(self, p: Proc, e: fx.Readdir) -> Sim:
        names = self.fs.readdir(self._path(p, e.path))
        yield from self._cpu(p, len(names) * self.costs.readdir_per_entry)
        return names

    def _mkdir(self, p: Proc, e: fx.Mkdir) -> None:
        self.fs.mkdir(self._path(p, e.path), e.perm, p.uid)

    def _mkfifo(self, p: Proc, e: fx.Mkfifo) -> None:
        self.fs.mkfifo(self._path(p, e.path), e.perm, p.uid)

    def _chdir(self, p: Proc, e: fx.Chdir) -> None:
        path = self._path(p, e.path)
        if not self.fs.lookup(path).is_dir:
            raise _error(errno.ENOTDIR, path)
        p.cwd = path

    # -- handlers: network --------------------------------------------------------------

    def _listen(self, p: Proc, e: fx.Listen) -> tuple[int, int]:
        listener = self.net.bind(self.host, e.host, e.port, e.backlog)
        return self._install(p, ListenOpen(listener)), listener.port

    def _accept(self, p: Proc, e: fx.Accept) -> Sim:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, ListenOpen):
            raise _error(errno.EINVAL if isinstance(obj, SockOpen) else errno.ENOTSOCK, str(e.fd))
        listener = obj.listener
        yield from self._block(p, lambda: bool(listener.queue), (listener,))
        endpoint = listener.queue.popleft()
        listener.notify()
        return self._install(p, SockOpen(endpoint)), endpoint.remote

    def _connect(self, p: Proc, e: fx.Connect) -> Sim:
        yield from self._settle(p)
        p.state = "blocked"
        try:
            endpoint = yield from self.net.handshake(self.host, e.host, e.port, e.timeout)
        finally:
            p.state = "running"
        return self._install(p, SockOpen(endpoint))

    def _sockname(self, p: Proc, e: fx.Sockname) -> tuple[tuple[str, int], tuple[str, int]]:
        obj = self._fd(p, e.fd)
        if isinstance(obj, ListenOpen):
            raise _error(errno.ENOTCONN, str(e.fd))
        if not isinstance(obj, SockOpen):
            raise _error(errno.ENOTSOCK, str(e.fd))
        return obj.endpoint.local, obj.endpoint.remote

    def _note(self, p: Proc, e: fx.Note) -> None:
        return None
