"""Starting, stopping and inspecting a live mini-MTA: the part a boot script plays for qmail.

`start` forks a supervisor in its own session (so `stop` can reach every process of it),
which starts the trace collector, then the long-running qmail programs on a `RealKernel`,
each in its own OS process: tcpserver (which forks one qmail-smtpd per connection) and
qmail-start (which wires up qmail-send and its helpers). The supervisor writes
`run/mta.pid`; tcpserver's `-1` reports the port it listens on, so `start` returns only once
the MTA accepts connections. Logs and the trace live under `log/`.

For tests, QMAILSIM_SMTP_FSIZE=<bytes> in the environment makes the receiving side behave as
on a full disk: tcpserver, and so every qmail-smtpd and qmail-queue it starts, gets that
RLIMIT_FSIZE (soft limit only) with SIGXFSZ ignored, so a write past it fails with EFBIG.
Raising the soft limit of the running tcpserver (`prlimit`) gives the space back.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.kernel.real import RealKernel
from sim.mta.collector import collect
from sim.programs.registry import resolve
from sim.qmail.control import incoming_limit
from sim.qmail.errors import BadInput

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
STOP_NOTICE = 2.0  # seconds of waiting for the programs to end before `stop` says so
GRACE = 2.0  # seconds the session's other processes have to end on TERM at a stop
SMTP_FSIZE_ENV = "QMAILSIM_SMTP_FSIZE"


class _Stop(Exception):
    """TERM or INT reached the supervisor."""


class MtaError(BadInput):
    """Something the user should fix (wrong directory, already running, …): no traceback."""


@dataclass(frozen=True, slots=True)
class Paths:
    """Where a qmail home keeps what the live MTA adds to qmail's layout."""

    home: Path

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def log(self) -> Path:
        return self.home / "log"

    @property
    def pidfile(self) -> Path:
        return self.run / "mta.pid"

    @property
    def smtpfile(self) -> Path:
        return self.run / "smtp"

    @property
    def pop3file(self) -> Path:
        return self.run / "pop3"

    @property
    def trace(self) -> Path:
        return self.log / "trace.jsonl"

    @property
    def sendlog(self) -> Path:
        return self.log / "qmail-send.log"

    @property
    def errors(self) -> Path:
        return self.log / "mta.log"

    @property
    def rules(self) -> Path:
        return self.home / "etc" / "tcp.smtp"


def running_pid(paths: Paths) -> int | None:
    """The supervisor's pid if it is alive, else None. A stale pid file is ignored: one of
    an earlier boot, or whose pid now names another process (it started at another time)."""
    try:
        pid, _, *rest = paths.pidfile.read_text().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if rest[:1] and rest[0] != boot_id():
        return None
    if rest[1:2] and rest[1] != str(_started(pid)):
        return None
    return pid if _alive(pid) else None


def _started(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rfind(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """True for a live process; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def me_of(home: Path) -> str:
    """The host name in control/me, which names the host in the trace."""
    try:
        return (home / "control" / "me").read_text().splitlines()[0].strip()
    except (OSError, IndexError):
        raise MtaError(f"{home} is not a qmail home: control/me is missing") from None


def start(
    home: Path,
    smtp: tuple[str, int],
    smtp_env: Mapping[str, str],
    *,
    exec_mode: bool = False,
    programs: Sequence[str] = ("tcpserver", "qmail-start"),
    pop3: tuple[str, int] | None = None,
) -> tuple[int, int]:
    """Start the MTA; returns (supervisor pid, SMTP port) once it accepts connections.

    With `pop3`, a second tcpserver serves POP3 there (qmail-popup, checkpassword,
    qmail-pop3d); its port is written to run/pop3. (`wait_stopped` then keeps a caller in
    the foreground.)
    """
    paths = Paths(home.resolve())
    host = me_of(paths.home)
    if pid := running_pid(paths):
        raise MtaError(f"already running (pid {pid}); stop it with: qmailsim mta stop {home}")
    if left := leftovers(paths):
        raise MtaError(
            f"what is left of an MTA whose supervisor died still runs here (pids "
            f"{', '.join(map(str, left))}); end it with: qmailsim mta stop {home}"
        )
    paths.run.mkdir(exist_ok=True)
    paths.log.mkdir(exist_ok=True)
    for path in (paths.smtpfile, paths.pop3file):
        path.unlink(missing_ok=True)  # a port file says where this start listens, or nothing
    logged = paths.errors.stat().st_size if paths.errors.exists() else 0
    ready_r, ready_w = os.pipe()
    listen = {"smtp": (smtp, ready_w)}
    if pop3 is not None:
        pop3_r, pop3_w = os.pipe()
        listen["pop3"] = (pop3, pop3_w)
        programs = (*programs, "tcpserver-pop3")
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        status = 111
        try:
            os.setsid()
            if os.fork():  # the supervisor is a grandchild: no zombie, no controlling tty
                os._exit(0)
            status = _supervise(paths, host, listen, dict(smtp_env), exec_mode, programs)
        finally:
            os._exit(status)
    for _, write in listen.values():
        os.close(write)
    os.waitpid(pid, 0)
    try:
        port = _await_ready(ready_r, paths, logged)
    except MtaError:
        if pop3 is not None:
            os.close(pop3_r)
        _abandon(home, pid)
        raise
    paths.smtpfile.write_text(f"{smtp[0]}:{port}\n")
    if pop3 is not None:
        try:
            paths.pop3file.write_text(f"{pop3[0]}:{_await_ready(pop3_r, paths, logged)}\n")
        except MtaError:
            _abandon(home, pid)
            raise
    return running_pid(paths) or 0, port


def _abandon(home: Path, sid: int) -> None:
    """A start that failed: stop what did start (the supervisor, qmail-send, ...), which
    would otherwise run on with no SMTP, and forget its ports."""
    paths = Paths(home.resolve())
    stop(home)
    _kill_session(sid)  # the session the first child made, in case there was no pid file
    for path in (paths.smtpfile, paths.pop3file):
        path.unlink(missing_ok=True)


def _await_ready(ready_r: int, paths: Paths, logged: int) -> int:
    """Read the port tcpserver prints once it listens; explain a failure from what this start
    added to the MTA's log (past `logged` bytes: not an earlier start's complaints)."""
    deadline = time.monotonic() + START_TIMEOUT
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([ready_r], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(ready_r, 64)
        if not chunk:
            break
        line += chunk
    os.close(ready_r)
    try:
        return int(line.strip())
    except ValueError:
        try:
            with paths.errors.open("rb") as log:
                log.seek(logged)
                detail = log.read().decode(errors="replace")[-2000:]
        except OSError:
            detail = ""
        raise MtaError(f"the MTA did not start listening; {paths.errors}:\n{detail}") from None


def _supervise(
    paths: Paths,
    host: str,
    listen: dict[str, tuple[tuple[str, int], int]],
    smtp_env: dict[str, str],
    exec_mode: bool,
    programs: Sequence[str],
) -> int:
    """Run in the supervisor process: collector, then the qmail programs; TERM stops them all."""
    errors = os.open(paths.errors, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(errors, 2)
    os.dup2(errors, 1)
    os.close(devnull)
    os.close(errors)
    me = os.getpid()
    paths.pidfile.write_text(f"{me} {os.getsid(0)} {boot_id()} {_started(me)}\n")
    trace_r, trace_w = os.pipe()
    supervisor = os.getpid()
    collector = os.fork()
    if collector == 0:
        _die_with_parent(supervisor)
        os.close(trace_w)
        for _, write in listen.values():
            os.close(write)
        collect(trace_r, paths.trace, host)
        os._exit(0)
    os.close(trace_r)
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "QMAILHOME": str(paths.home),
    }
    for name, value in os.environ.items():  # PYTHONPATH, and QMAILSIM_TIMESCALE for tests
        if name == "PYTHONPATH" or name.startswith("QMAILSIM_"):
            base_env[name] = value
    children: dict[int, str] = {}
    for prog in programs:
        run, argv, env, user, stdout = _argv_for(prog, paths, listen, smtp_env, base_env)
        pid = os.fork()
        if pid == 0:
            status = 111
            try:
                _die_with_parent(supervisor)
                os.chdir(paths.home)
                if stdout is not None:
                    os.dup2(stdout, 1)
                # A program starts with fds 0-2 and the trace only, as under a boot script.
                os.closerange(3, trace_w)
                os.closerange(trace_w + 1, 4096)
                if prog == "tcpserver":
                    _limit_file_size(base_env.get(SMTP_FSIZE_ENV, ""))
                kernel = RealKernel(resolve, host=host, trace_fd=trace_w, exec_mode=exec_mode)
                status = kernel.run(run, argv, env, user=user)
            except BaseException as exc:  # our bug: say so in the log, exit as qmail does
                print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                os._exit(status & 0xFF)
        children[pid] = prog
    for _, write in listen.values():
        os.close(write)
    os.close(trace_w)
    return _wait_for_term(children, collector, paths)


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _die_with_parent(parent: int) -> None:
    """In a child of the supervisor (pid `parent`, taken before the fork): get TERM when it
    dies, however it dies (a SIGKILL, a crash), so that no long-running qmail program runs
    on unseen. Linux only."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the call: nobody would send the signal
        os.kill(os.getpid(), signal.SIGTERM)


def _limit_file_size(value: str) -> None:
    """QMAILSIM_SMTP_FSIZE: files this process (and its children) write stop at that size."""
    if not value.strip():
        return
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as a full disk
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(value), hard))


def _argv_for(
    prog: str,
    paths: Paths,
    listen: dict[str, tuple[tuple[str, int], int]],
    smtp_env: dict[str, str],
    base_env: dict[str, str],
) -> tuple[str, list[str], dict[str, str], str, int | None]:
    """How the boot script runs each long-running program: program, argv, env, account, fd 1."""
    smtp, ready_w = listen["smtp"]
    if prog == "tcpserver-pop3":  # qmail-popup must start as root: checkpassword setuids
        (host, port), pop3_w = listen["pop3"]
        argv = ["-1", "-c", "40", host, str(port), "qmail-popup", me_of(paths.home)]
        argv += ["checkpassword", "qmail-pop3d", "Maildir"]
        return "tcpserver", argv, dict(base_env), "root", pop3_w
    run, argv, env, user, stdout = prog, *_smtp_side(prog, paths, smtp, smtp_env, base_env)
    return run, argv, env, user, (ready_w if stdout else None)


def _smtp_side(
    prog: str,
    paths: Paths,
    smtp: tuple[str, int],
    smtp_env: dict[str, str],
    base_env: dict[str, str],
) -> tuple[list[str], dict[str, str], str, bool]:
    """argv, environment, account, and whether fd 1 reports the SMTP port."""
    if prog == "tcpserver":
        # -X -x: the rules are read for each connection, as tcpserver does, so a file made
        # or edited while it runs counts from the next connection; none: everyone allowed
        argv = ["-1", "-c", str(concurrency_incoming(paths.home)), "-X", "-x", str(paths.rules)]
        argv += ["-u", "qmaild", "-l", me_of(paths.home), smtp[0], str(smtp[1]), "qmail-smtpd"]
        return argv, {**base_env, **smtp_env}, "root", True
    if prog == "qmail-start":
        return ["./Maildir/", "splogger", "qmail"], dict(base_env), "root", False
    if prog == "mta-monolith":  # the comparison: one root daemon, no qmail programs
        return ["-1", smtp[0], str(smtp[1])], {**base_env, **smtp_env}, "root", True
    raise MtaError(f"no way to start {prog}")


def concurrency_incoming(home: Path) -> int:
    """tcpserver's -c, from the home's control/concurrencyincoming (see `incoming_limit`)."""
    try:
        text = (home / "control" / "concurrencyincoming").read_text(encoding="latin-1")
    except OSError:
        text = None
    return incoming_limit(text)


def _wait_for_term(children: dict[int, str], collector: int, paths: Paths) -> int:
    """Wait until TERM (or every program has ended), then stop the programs and the collector."""

    def on_term(signum: int, frame: object) -> None:
        raise _Stop  # breaks out of waitpid, which Python would otherwise resume

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # HUP: its terminal went
        signal.signal(signum, on_term)
    try:
        while children:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(-1, 0)
                if pid in children:
                    code = os.waitstatus_to_exitcode(status)
                    print(f"{children.pop(pid)} exited with status {code}", file=sys.stderr)
    except _Stop:
        pass
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    _signal_all(children, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while children and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.05)
            children.pop(pid, None)
    _signal_all(children, signal.SIGKILL)
    _end_the_rest(collector)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(collector, 0)  # it ends when every writer of the trace has
    with contextlib.suppress(OSError):
        paths.pidfile.unlink()
    return 0


def _end_the_rest(collector: int) -> None:
    """Once the long-running programs have ended: what they left in the session (a
    qmail-smtpd with a client, a POP3 session, a delivery, the monolith's queue runner) gets
    TERM, then KILL after `GRACE` seconds. Each holds the trace open, so the collector, and
    this stop, would otherwise wait for the slowest client. Nothing acknowledged is lost:
    a message is acknowledged only once it is in the queue."""
    rest = [p for p in session_pids(os.getsid(0)) if p not in (os.getpid(), collector)]
    _signal_all(rest, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while (left := [p for p in rest if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_all(left, signal.SIGKILL)


def stop(home: Path, notice: Callable[[str], None] | None = None) -> bool:
    """Stop the MTA, or end what is left of one whose supervisor died; returns False if
    nothing of it was running. `notice` hears once if the programs take a while to end
    (qmail-send waits for the deliveries in progress)."""
    paths = Paths(home.resolve())
    pid = running_pid(paths)
    if pid is None:
        left = leftovers(paths)
        _signal_all(left, signal.SIGKILL)
        with contextlib.suppress(OSError):
            paths.pidfile.unlink()
        return bool(left)
    sid = session_of(paths, pid)
    os.kill(pid, signal.SIGTERM)
    began = time.monotonic()
    deadline = began + STOP_TIMEOUT + 5
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        if notice is not None and time.monotonic() - began > STOP_NOTICE:
            notice(f"waiting for the deliveries in progress (at most {deadline - began:.0f} s)")
            notice = None
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGKILL)
    _kill_session(sid)
    return True


def wait_stopped(
    home: Path, notice: Callable[[str], None] | None = None, poll: float = 0.2
) -> None:
    """Stay in the foreground while the MTA runs: INT, TERM or HUP (the terminal went away)
    stop it (`notice` as for `stop`); returns once it has stopped."""
    paths = Paths(home.resolve())

    def on_signal(signum: int, frame: object) -> None:
        stop(home, notice)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    while running_pid(paths) is not None:
        time.sleep(poll)


def leftovers(paths: Paths) -> list[int]:
    """Processes of an MTA whose supervisor died without cleaning up (its pid file is still
    there): those of its session that work in this home, from /proc.

    The session id is only trusted while it can still be the MTA's: in the boot that wrote
    it, with its leader gone (the MTA's leader exits as soon as it has forked the
    supervisor; a session that reused the number has its own leader, usually alive), and
    never the caller's own session."""
    try:
        pid, sid, *boot = paths.pidfile.read_text().split()
        pid, sid = int(pid), int(sid)
    except (OSError, ValueError):
        return []
    if running_pid(paths) or _alive(sid) or boot[:1] != [boot_id()] or sid == os.getsid(0):
        return []
    home = str(paths.home)
    return [p for p in session_pids(sid) if p != os.getpid() and _works_in(p, home)]


def boot_id() -> str:
    """This boot's id (Linux): a pid file from an earlier boot names no process of ours."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "-"


def _works_in(pid: int, home: str) -> bool:
    """True if the process's directory is in `home`, or its command line names it: a pid
    file's session id may have been reused by processes that are none of ours."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if cwd == home or cwd.startswith(home + "/"):
        return True
    named = (os.path.realpath(os.path.join(cwd, os.fsdecode(a))) for a in args if a)
    return home in named


def session_of(paths: Paths, pid: int) -> int:
    """The MTA's session id, from the pid file (the supervisor's pid if not recorded)."""
    try:
        return int(paths.pidfile.read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return pid


def session_pids(sid: int) -> list[int]:
    """Every live process in session `sid` (the supervisor and all it started), from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return sorted(pids)


def _kill_session(sid: int) -> None:
    """Leftovers after the supervisor (an smtpd still in a session, a delivery): end them."""
    _signal_all(session_pids(sid), signal.SIGKILL)


def _signal_all(pids: Iterable[int], signum: int) -> None:
    """Send `signum` to each process that is still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
