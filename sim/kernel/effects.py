"""The system calls a qmail program may make: the only interface between programs and kernels.

A program is a generator that yields these values and receives each call's result; a failed
call is thrown into the program as `OSError` with the errno the real kernel would give, so a
program handles failure the same way on `RealKernel` and `SimKernel`. Each class documents
what the call returns. Nothing here knows which kernel runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.qmail.frozen import quick_init

Program = Generator["Effect", Any, int]
"""A running program: yields effects, receives their results, returns its exit status."""

ProgramMain = Callable[[list[str], Mapping[str, str]], Program]
"""A program's entry point: `main(argv, env)`."""


@dataclass(frozen=True, slots=True)
class Effect:
    """Base class of every system call."""


# -- processes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fork(Effect):
    """Start a child that runs `child()` (usually dup2s, then `Exec`). Returns the child's pid.

    A generator cannot be copied, so unlike fork(2) the child's code is given explicitly;
    it starts with a copy of the parent's descriptors, uid and environment.
    """

    child: Callable[[], Program]
    label: str = ""


@dataclass(frozen=True, slots=True)
class Exec(Effect):
    """Replace this process's program with the registered program `prog`. Never returns.

    Raises ENOENT for an unknown program. A setuid program (qmail-queue) takes its owner's uid.
    """

    prog: str
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Exit(Effect):
    """End this process with `status` (0 ok, 100 permanent, 111 temporary, …). Never returns."""

    status: int


@dataclass(frozen=True, slots=True)
class Wait(Effect):
    """Reap a child (`pid` or -1 for any). Returns (pid, status) or None with nohang.

    `status` is the exit code, or -signal for a child killed by a signal. ECHILD if none.
    """

    pid: int = -1
    nohang: bool = False


@dataclass(frozen=True, slots=True)
class Kill(Effect):
    """Send signal `sig` (a name: TERM, KILL, ALRM, HUP) to `pid`. ESRCH if it is gone."""

    pid: int
    sig: str


@dataclass(frozen=True, slots=True)
class CatchSignals(Effect):
    """Catch `signals` (names: TERM, ALRM, HUP) instead of dying; `Select` reports them."""

    signals: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Getpid(Effect):
    """Returns this process's pid."""


@dataclass(frozen=True, slots=True)
class Setuid(Effect):
    """Become the qmail account `user` (qmaild, qmailq, a mail user, …). Returns None.

    The trace records the new identity; see the README for what the live MTA does as root.
    `uid` defaults to the account's number in qmail's INSTALL.ids.
    """

    user: str
    uid: int | None = None


@dataclass(frozen=True, slots=True)
class Getuid(Effect):
    """Returns (real account, real uid number): qmail-queue records who invoked it."""


@dataclass(frozen=True, slots=True)
class Time(Effect):
    """Returns the current time in seconds (wall clock, or virtual time in the model)."""


@dataclass(frozen=True, slots=True)
class Sleep(Effect):
    """Wait `seconds`. Returns None."""

    seconds: float


# -- descriptors ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pipe(Effect):
    """Returns (read_fd, write_fd) of a new pipe."""


@dataclass(frozen=True, slots=True)
class Dup2(Effect):
    """Make `new` a copy of `old` (closing `new` first). Returns `new`. EBADF."""

    old: int
    new: int


@dataclass(frozen=True, slots=True)
class Close(Effect):
    """Close `fd`. Returns None. EBADF."""

    fd: int


@dataclass(frozen=True, slots=True)
class Read(Effect):
    """Read at most `size` bytes from `fd`; b"" at end of file. Returns bytes.

    With `timeout`, raises TimeoutError (ETIMEDOUT) if nothing arrives in time.
    """

    fd: int
    size: int = 65536
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Write(Effect):
    """Write all of `data` to `fd`. Returns the number of bytes. EPIPE, ENOSPC, ETIMEDOUT."""

    fd: int
    data: bytes
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Select(Effect):
    """Wait until a descriptor in `read` is readable (or `write` writable), or `timeout`.

    Returns (readable fds, writable fds, signals received since the last Select) so a
    long-running program such as qmail-send learns of TERM, ALRM and HUP between calls.
    """

    read: tuple[int, ...] = ()
    write: tuple[int, ...] = ()
    timeout: float | None = None


# -- files ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open(Effect):
    """Open `path`; mode "r", "w" (truncate), "a" (append), "rw". Returns an fd.

    `create` makes a missing file; `exclusive` fails with EEXIST if it exists (O_EXCL);
    `perm` is the permission for a created file; `nonblock` for FIFOs (the trigger).
    """

    path: str
    mode: str = "r"
    create: bool = False
    exclusive: bool = False
    perm: int = 0o644
    nonblock: bool = False


@dataclass(frozen=True, slots=True)
class Fsync(Effect):
    """Flush `fd` (a file, or a directory opened with `Open(dir)`) to disk. Returns None."""

    fd: int


@dataclass(frozen=True, slots=True)
class FsyncDir(Effect):
    """Flush the directory `path`'s entries to disk, so links and unlinks in it survive a crash."""

    path: str


@dataclass(frozen=True, slots=True)
class Link(Effect):
    """Hard-link `src` to `dst`. EEXIST if `dst` exists. Returns None."""

    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class Rename(Effect):
    """Atomically rename `src` to `dst`. Returns None."""

    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class Unlink(Effect):
    """Remove the name `path`. ENOENT if absent. Returns None."""

    path: str


@dataclass(frozen=True, slots=True)
class Truncate(Effect):
    """Cut the open file `fd` to `length` bytes (mbox recovery). Returns None."""

    fd: int
    length: int


@dataclass(frozen=True, slots=True)
class Lock(Effect):
    """Take an exclusive lock on the open file `fd` without waiting (qmail's lock_exnb, an
    flock(2)). Returns None; EWOULDBLOCK (BlockingIOError) if another open file holds it.
    The lock goes when every descriptor of the open file is closed (at exit, at the latest).
    """

    fd: int


@dataclass(frozen=True, slots=True)
class Seek(Effect):
    """Move `fd`'s offset to `offset` from the start. Returns the new offset."""

    fd: int
    offset: int


@dataclass(frozen=True, slots=True)
class Stat(Effect):
    """Returns a `StatResult` for `path` (or for an open descriptor if `fd` is given). ENOENT."""

    path: str = ""
    fd: int | None = None


@dataclass(frozen=True, slots=True)
class Utime(Effect):
    """Set `path`'s access and modification time to `mtime` (qmail-send keeps retry times so)."""

    path: str
    mtime: float


@dataclass(frozen=True, slots=True)
class Readdir(Effect):
    """Returns the sorted names in directory `path`, without `.` and `..`."""

    path: str


@dataclass(frozen=True, slots=True)
class Mkdir(Effect):
    """Create directory `path` with permission `perm`. EEXIST. Returns None."""

    path: str
    perm: int = 0o700


@dataclass(frozen=True, slots=True)
class Mkfifo(Effect):
    """Create the named pipe `path` (queue/lock/trigger). Returns None."""

    path: str
    perm: int = 0o622


@dataclass(frozen=True, slots=True)
class Chdir(Effect):
    """Change the working directory; relative paths of later calls start there."""

    path: str


# -- network ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listen(Effect):
    """Bind a TCP socket to (host, port) and listen. Returns (fd, actual port)."""

    host: str
    port: int
    backlog: int = 64


@dataclass(frozen=True, slots=True)
class Accept(Effect):
    """Wait for a connection on listening `fd`. Returns (fd, (remote ip, remote port))."""

    fd: int


@dataclass(frozen=True, slots=True)
class Connect(Effect):
    """Open a TCP connection. Returns an fd. ECONNREFUSED, ETIMEDOUT after `timeout`."""

    host: str
    port: int
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Sockname(Effect):
    """Returns ((local ip, port), (remote ip, port)) of a connected socket `fd`."""

    fd: int


# -- the trace --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note(Effect):
    """Record a protocol step in the trace (smtp, queue, deliver, bounce, …). Returns None.

    The one way a program speaks to the trace: `kind` names the step, `why` says what qmail
    decided and why, `msg` is the queue id where there is one.
    """

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""
    msg: int | None = None


@dataclass(frozen=True, slots=True)
class StatResult:
    """What `Stat` returns: the fields qmail's programs look at."""

    ino: int
    size: int
    mode: int
    uid: int
    mtime: float
    atime: float
    nlink: int = 1
    is_dir: bool = False
    is_file: bool = True
    is_fifo: bool = False


ALL_EFFECTS: tuple[type[Effect], ...] = tuple(
    cls
    for cls in Effect.__subclasses__()
    if cls.__module__ == __name__ and globals().get(cls.__name__) is cls
)
"""Every system call; each kernel must handle them all (a test checks). (`__subclasses__`
also lists the classes `dataclass(slots=True)` replaced, until they are collected.)"""

for _cls in (*ALL_EFFECTS, StatResult):
    quick_init(_cls)
