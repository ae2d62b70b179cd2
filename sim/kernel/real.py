"""RealKernel: performs the effects on the real OS, one OS process per qmail process.

Theory of operation. `run()` drives a program generator in the current OS process: it sends
each call's result back in, or throws the `OSError` the OS raised. `Fork` is a real
`os.fork()`; the child drives the given child generator and never returns into the parent's
loop (it ends with `os._exit`). `Exec` replaces the generator with the registered program's
`main(argv, env)` in the same process, which keeps a Python qmail's cost at one fork per
step as qmail's; with `exec_mode` it really `execve`s a fresh interpreter
(`python -m sim.kernel.boot`), for fidelity measurements. Descriptors are real descriptors,
so the pipes between programs are real pipes and the protocols on them are qmail's.

Identity: the live MTA runs as the invoking user. `Setuid` changes only the account the trace
records (qmaild, qmailq, …); the README says why. Every call is recorded as one trace event
written to `trace_fd` (a pipe to the collector) in one atomic write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import socket
import stat as S
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from sim.kernel import effects as fx
from sim.kernel import trace
from sim.qmail.constants import QMAIL_UIDS

Resolver = Callable[[str], tuple[fx.ProgramMain, str | None]]
"""Maps a program name to (main, setuid account or None); raises KeyError if unknown."""

TRACE_FD_MIN = 100
_SIGNALS = {"TERM": signal.SIGTERM, "ALRM": signal.SIGALRM, "HUP": signal.SIGHUP}
_SIGNAMES = {v: k for k, v in _SIGNALS.items()}


class _ExecNow(Exception):
    def __init__(self, gen: fx.Program) -> None:
        self.gen = gen


class _ExitNow(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


@dataclass(slots=True)
class Identity:
    """Who this process is, as the trace shows it."""

    prog: str
    user: str
    uid: int
    ruser: str
    ruid: int


def _errno_error(code: int, what: str) -> OSError:
    return OSError(code, f"{os.strerror(code)}: {what}")


class RealKernel:
    """Runs programs on the real OS; see the module docstring."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        host: str,
        trace_fd: int | None = None,
        exec_mode: bool = False,
        resolver_path: str = "sim.programs.registry:resolve",
    ) -> None:
        self.resolve = resolve
        self.host = host
        if trace_fd is not None and trace_fd < TRACE_FD_MIN:
            # Programs own the low descriptors (qmail-send uses 0-6): keep the trace above them.
            high = fcntl.fcntl(trace_fd, fcntl.F_DUPFD_CLOEXEC, TRACE_FD_MIN)
            os.close(trace_fd)
            trace_fd = high
        self.trace_fd = trace_fd
        self.exec_mode = exec_mode
        self.resolver_path = resolver_path
        user = os.environ.get("USER", "root")
        self.ident = Identity("?", user, os.getuid(), user, os.getuid())
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.pending_signals: list[str] = []
        self.env: dict[str, str] = dict(os.environ)  # the running program's environment
        self._wakeup: tuple[int, int] | None = None
        self.handlers: dict[type[fx.Effect], Callable[[Any], Any]] = {
            cls: getattr(self, "_" + cls.__name__.lower()) for cls in fx.ALL_EFFECTS
        }

    # -- the driver -----------------------------------------------------------------

    def run(self, prog: str, argv: list[str], env: Mapping[str, str], user: str | None) -> int:
        """Run program `prog` in this process as `user`; returns its exit status."""
        if user is not None:
            self._become(user, None, real=True)
        main, setuid = self.resolve(prog)
        if setuid:
            self._become(setuid, None, real=False)
        self.ident.prog = prog
        self.env = dict(env)
        return self._drive(main([prog, *argv], dict(env))) & 0xFF

    def _drive(self, gen: fx.Program) -> int:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = gen.send(value) if error is None else gen.throw(error)
            except StopIteration as stop:
                status = stop.value if isinstance(stop.value, int) else 0
                self.record(fx.Exit(status & 0xFF), None, None)
                return status
            value, error = None, None
            try:
                handler = self.handlers[type(effect)]
            except (KeyError, TypeError):
                raise TypeError(f"{self.ident.prog} yielded {effect!r}, not an effect") from None
            try:
                value = handler(effect)
            except _ExecNow as switch:
                gen.close()
                gen = switch.gen
                continue
            except _ExitNow as done:
                gen.close()
                return done.status
            except OSError as exc:
                error = exc
                self.record(effect, None, exc)
                continue
            if type(effect) not in trace.QUIET:
                self.record(effect, value, None)

    def record(self, effect: fx.Effect, result: Any, error: OSError | None) -> None:
        """Write one trace event for a call (no-op without a trace descriptor)."""
        if self.trace_fd is None:
            return
        event = {
            "t": round(time.time(), 6),
            "host": self.host,
            "pid": self.pid,
            "ppid": self.ppid,
            "uid": self.ident.user,
            "prog": self.ident.prog,
        }
        event.update(trace.call_fields(effect, result, error))
        try:
            os.write(self.trace_fd, trace.encode(event))
        except OSError:
            self.trace_fd = None  # the collector is gone; the mail still flows

    def _become(self, user: str, uid: int | None, real: bool) -> None:
        number = uid if uid is not None else QMAIL_UIDS.get(user, os.getuid())
        self.ident.user, self.ident.uid = user, number
        if real:
            self.ident.ruser, self.ident.ruid = user, number

    # -- processes -------------------------------------------------------------------

    def _fork(self, e: fx.Fork) -> int:
        pid = os.fork()
        if pid:
            return pid
        # The child: a new process that runs e.child() and never returns to the parent's loop.
        self.ppid, self.pid = self.pid, os.getpid()
        self.pending_signals = []
        status = 111
        try:
            status = self._drive(e.child())
        except BaseException:
            self._crash()
        os._exit(status & 0xFF)

    def _crash(self) -> None:
        """Our bug in a child: note it in the trace, then die by a signal, as a C crash would."""
        text = traceback.format_exc()
        self.record(fx.Note("crash", {"traceback": text[-1500:]}), None, None)
        self.record(fx.Exit(-signal.SIGKILL), None, None)
        sys.stderr.write(text)
        os.kill(os.getpid(), signal.SIGKILL)

    def _exec(self, e: fx.Exec) -> None:
        try:
            main, setuid = self.resolve(e.prog)
        except KeyError:
            raise _errno_error(errno.ENOENT, e.prog) from None
        env = dict(e.env if e.env is not None else self.env)
        self.record(e, None, None)
        if self.exec_mode:
            self._execve(e, env, setuid)
        if setuid:
            self._become(setuid, None, real=False)
        self.ident.prog = e.prog
        self.env = env
        for signum in _SIGNALS.values():  # exec resets caught signals, as POSIX does
            signal.signal(signum, signal.SIG_DFL)
        self.pending_signals = []
        raise _ExecNow(main([e.prog, *e.argv], env))

    def _execve(self, e: fx.Exec, env: dict[str, str], setuid: str | None) -> None:
        """Replace this process with a fresh interpreter running the program (exec mode)."""
        boot = {
            "host": self.host,
            "trace_fd": self.trace_fd,
            "ruser": self.ident.ruser,
            "ruid": self.ident.ruid,
            "user": setuid or self.ident.user,
            "uid": QMAIL_UIDS.get(setuid, self.ident.uid) if setuid else self.ident.uid,
            "ppid": self.ppid,
            "resolver": self.resolver_path,
        }
        for fd in [*range(3, 64)] + ([self.trace_fd] if self.trace_fd is not None else []):
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, True)
        env["QMAILSIM_KERNEL"] = json.dumps(boot)
        env.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        args = [sys.executable, "-m", "sim.kernel.boot", e.prog, *e.argv]
        try:
            os.execve(sys.executable, args, env)
        except OSError as exc:
            raise _errno_error(exc.errno or errno.ENOEXEC, e.prog) from None

    def _exit(self, e: fx.Exit) -> None:
        self.record(e, None, None)
        raise _ExitNow(e.status)

    def _wait(self, e: fx.Wait) -> tuple[int, int] | None:
        pid, status = os.waitpid(e.pid, os.WNOHANG if e.nohang else 0)
        if pid == 0:
            return None
        return pid, (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))

    def _kill(self, e: fx.Kill) -> None:
        if e.pid <= 0 or e.sig not in (*_SIGNALS, "KILL"):
            raise _errno_error(errno.EINVAL, f"kill {e.pid} {e.sig}")
        os.kill(e.pid, getattr(signal, "SIG" + e.sig))

    def _getpid(self, e: fx.Getpid) -> int:
        return self.pid

    def _getuid(self, e: fx.Getuid) -> tuple[str, int]:
        return self.ident.ruser, self.ident.ruid

    def _setuid(self, e: fx.Setuid) -> None:
        self._become(e.user, e.uid, real=True)

    def _catchsignals(self, e: fx.CatchSignals) -> None:
        if self._wakeup is None:
            self._wakeup = os.pipe()
            for fd in self._wakeup:
                os.set_blocking(fd, False)
        if any(name not in _SIGNALS for name in e.signals):
            raise _errno_error(errno.EINVAL, f"cannot catch {e.signals}")
        for name in e.signals:
            signal.signal(_SIGNALS[name], self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.pending_signals.append(_SIGNAMES[signum])
        if self._wakeup is not None:
            with contextlib.suppress(OSError):
                os.write(self._wakeup[1], b"!")

    def _time(self, e: fx.Time) -> float:
        return time.time()

    def _sleep(self, e: fx.Sleep) -> None:
        if e.seconds < 0:
            raise _errno_error(errno.EINVAL, f"sleep {e.seconds}")
        time.sleep(e.seconds)

    # -- descriptors -----------------------------------------------------------------

    def _pipe(self, e: fx.Pipe) -> tuple[int, int]:
        return os.pipe()

    def _dup2(self, e: fx.Dup2) -> int:
        return os.dup2(e.old, e.new)

    def _close(self, e: fx.Close) -> None:
        os.close(e.fd)

    def _wait_ready(self, fd: int, write: bool, timeout: float | None) -> None:
        if timeout is None:
            return
        r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], timeout)
        if not (r or w):
            raise TimeoutError(errno.ETIMEDOUT, "timed out")

    def _read(self, e: fx.Read) -> bytes:
        self._wait_ready(e.fd, False, e.timeout)
        return os.read(e.fd, e.size)

    def _write(self, e: fx.Write) -> int:
        view = memoryview(e.data)
        while view:
            self._wait_ready(e.fd, True, e.timeout)
            view = view[os.write(e.fd, view) :]
        return len(e.data)

    def _select(self, e: fx.Select) -> tuple[list[int], list[int], list[str]]:
        reads = list(e.read)
        if self._wakeup is not None:
            reads.append(self._wakeup[0])
        if not self.pending_signals:
            try:
                r, w, _ = select.select(reads, list(e.write), [], e.timeout)
            except InterruptedError:
                r, w = [], []
        else:
            r, w = [], []
        if self._wakeup is not None and self._wakeup[0] in r:
            r.remove(self._wakeup[0])
            try:
                while os.read(self._wakeup[0], 64):
                    pass
            except BlockingIOError:
                pass
        caught, self.pending_signals = self.pending_signals, []
        return r, w, caught

    # -- files -----------------------------------------------------------------------

    _MODES: ClassVar[dict[str, int]] = {
        "r": os.O_RDONLY,
        "w": os.O_WRONLY | os.O_TRUNC,
        "a": os.O_WRONLY | os.O_APPEND,
    }

    def _open(self, e: fx.Open) -> int:
        flags = self._MODES.get(e.mode, os.O_RDWR)
        if e.create:
            flags |= os.O_CREAT
        if e.exclusive:
            flags |= os.O_EXCL | os.O_CREAT
        if e.nonblock:
            flags |= os.O_NONBLOCK
        return os.open(e.path, flags, e.perm)

    def _fsync(self, e: fx.Fsync) -> None:
        os.fsync(e.fd)

    def _fsyncdir(self, e: fx.FsyncDir) -> None:
        fd = os.open(e.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _link(self, e: fx.Link) -> None:
        os.link(e.src, e.dst)

    def _rename(self, e: fx.Rename) -> None:
        os.rename(e.src, e.dst)

    def _unlink(self, e: fx.Unlink) -> None:
        os.unlink(e.path)

    def _truncate(self, e: fx.Truncate) -> None:
        os.ftruncate(e.fd, e.length)

    def _lock(self, e: fx.Lock) -> None:
        fcntl.flock(e.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _seek(self, e: fx.Seek) -> int:
        return os.lseek(e.fd, e.offset, os.SEEK_SET)

    def _stat(self, e: fx.Stat) -> fx.StatResult:
        st = os.fstat(e.fd) if e.fd is not None else os.stat(e.path)
        return fx.StatResult(
            ino=st.st_ino,
            size=st.st_size,
            mode=st.st_mode,
            uid=st.st_uid,
            mtime=st.st_mtime,
            atime=st.st_atime,
            nlink=st.st_nlink,
            is_dir=S.S_ISDIR(st.st_mode),
            is_file=S.S_ISREG(st.st_mode),
            is_fifo=S.S_ISFIFO(st.st_mode),
        )

    def _utime(self, e: fx.Utime) -> None:
        os.utime(e.path, (e.mtime, e.mtime))

    def _readdir(self, e: fx.Readdir) -> list[str]:
        return sorted(os.listdir(e.path))

    def _mkdir(self, e: fx.Mkdir) -> None:
        os.mkdir(e.path, e.perm)

    def _mkfifo(self, e: fx.Mkfifo) -> None:
        os.mkfifo(e.path, e.perm)

    def _chdir(self, e: fx.Chdir) -> None:
        os.chdir(e.path)

    # -- network ---------------------------------------------------------------------

    def _listen(self, e: fx.Listen) -> tuple[int, int]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((e.host, e.port))
            sock.listen(e.backlog)
        except OSError:
            sock.close()
            raise
        port = sock.getsockname()[1]
        return sock.detach(), port

    def _accept(self, e: fx.Accept) -> tuple[int, tuple[str, int]]:
        listener = socket.socket(fileno=e.fd)
        try:
            conn, addr = listener.accept()
        finally:
            listener.detach()
        return conn.detach(), (addr[0], addr[1])

    def _connect(self, e: fx.Connect) -> int:
        try:
            sock = socket.create_connection((e.host, e.port), timeout=e.timeout)
        except TimeoutError:
            raise _errno_error(errno.ETIMEDOUT, f"connect {e.host}:{e.port}") from None
        sock.settimeout(None)
        return sock.detach()

    def _sockname(self, e: fx.Sockname) -> tuple[tuple[str, int], tuple[str, int]]:
        sock = socket.socket(fileno=e.fd)
        try:
            local, remote = sock.getsockname(), sock.getpeername()
        finally:
            sock.detach()
        return (local[0], local[1]), (remote[0], remote[1])

    def _note(self, e: fx.Note) -> None:
        return None
