"""Maildir delivery as filesystem operations, and the names readers see (maildir(5)).

Theory of operation. qmail-local delivers to a maildir in a forked child (`maildir_child`):
chdir to the maildir; pick a name and stat `tmp/<name>` (if it exists: sleep 2 s and try a
new name, 3 tries); start a 24-hour alarm; create `tmp/<name>` exclusively (mode 0600),
write Return-Path + Delivered-To + the message, fsync, close; link it to `new/<name>`;
fsync `new/` (the project, not qmail 1.03: the name then survives a power loss before
qmail-local reports success and qmail-send forgets the recipient); unlink the tmp name.
Any failure unlinks the tmp file. The child's exit code (0; 1 temporary; 2 chdir refused;
3 timeout; 4 unreadable message) becomes an Outcome in
`maildir_outcome`. A message is in `new/` complete or not at all: link is the commit point.

`maildir_child` is a generator that yields the operations below as frozen dataclasses and
receives their results; a failed operation is thrown into it as `OSError` (with its errno),
and the alarm as `TimeoutError`. It returns the child's exit code. `drive` runs one
against any callable, e.g. a fake filesystem in tests.

Deliberate difference: qmail 1.03 names the file `<time>.<pid>.<hostname>` and relies on one
delivery per process and on the stat loop. We use the modern name
`<time>.M<usec>P<pid>Q<n>.<hostname>` (Q: the process's delivery counter), unique even for
many deliveries per second from one process, so the stat practically never finds the name.
The stat-then-create race between processes is closed by the exclusive create (O_EXCL, as
qmail's open_excl and notqmail's retry loop): a clash fails the create instead of sharing a
file. The hostname is written with `/` as `\\057` and `:` as `\\072`, as the maildir spec says.
"""

from __future__ import annotations

import contextlib
import errno as _errno
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from sim.qmail.constants import MAILDIR_RETRY_SLEEP, MAILDIR_TIMER, MAILDIR_TRIES, OSSIFIED
from sim.qmail.errors import BadInput
from sim.qmail.frozen import quick_init_all
from sim.qmail.local import SUCCESS, HeaderLines, Outcome, is_temporary_errno, report
from sim.qmail.text import s2b


@dataclass(frozen=True, slots=True)
class Chdir:
    """Change directory (in the delivery child); ENOENT etc. refuse the maildir."""

    path: str


@dataclass(frozen=True, slots=True)
class Stat:
    """Stat a path; success means it exists, ENOENT that it is free."""

    path: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before retrying."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Alarm:
    """Start a timer; on expiry the interpreter throws TimeoutError into the generator."""

    seconds: int


@dataclass(frozen=True, slots=True)
class CreateExclusive:
    """Create and open for writing a file that must not exist yet (O_CREAT|O_EXCL)."""

    path: str
    mode: int = 0o600


@dataclass(frozen=True, slots=True)
class WriteAll:
    """Write all of `data` to the open file `path` (looping over short writes)."""

    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Fsync:
    """fsync the open file `path`: its data is on disk when this returns."""

    path: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the open file `path`; errors count (NFS reports write errors here)."""

    path: str


@dataclass(frozen=True, slots=True)
class Link:
    """Hard-link `src` to `dst` (fails with EEXIST if `dst` exists)."""

    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class FsyncDir:
    """fsync a directory: the names linked into it are on disk when this returns."""

    path: str


@dataclass(frozen=True, slots=True)
class Unlink:
    """Remove a name; a failure is ignored by the generator."""

    path: str


Op = (
    Chdir
    | Stat
    | Sleep
    | Alarm
    | CreateExclusive
    | WriteAll
    | Fsync
    | Close
    | Link
    | FsyncDir
    | Unlink
)
quick_init_all(*Op.__args__)
R = TypeVar("R")


def drive(ops: Generator[Any, Any, R], perform: Callable[[Any], Any]) -> tuple[list[Any], R]:
    """Run an operation generator: `perform(op)` returns its result or raises OSError."""
    done: list[Any] = []
    value: Any = None
    error: OSError | None = None
    while True:
        try:
            op = ops.throw(error) if error is not None else ops.send(value)
        except StopIteration as stop:
            return done, stop.value
        done.append(op)
        try:
            value, error = perform(op), None
        except OSError as failure:
            value, error = None, failure


def sanitize_hostname(hostname: str) -> str:
    """The hostname as a maildir name part: `/` -> `\\057`, `:` -> `\\072`."""
    return hostname.replace("/", "\\057").replace(":", "\\072")


@dataclass(frozen=True, slots=True)
class Unique:
    """What makes a delivery's file name unique: time, microseconds, pid, per-process counter."""

    t: int
    usec: int
    pid: int
    seq: int
    hostname: str

    def name(self, attempt: int = 0) -> str:
        """`<time>.M<usec>P<pid>Q<seq>.<host>`; a retry comes 2 s later, so its time is later."""
        t = self.t + attempt * MAILDIR_RETRY_SLEEP
        return f"{t}.M{self.usec}P{self.pid}Q{self.seq}.{sanitize_hostname(self.hostname)}"


def maildir_message(lines: HeaderLines, message: bytes) -> bytes:
    """The file's contents: Return-Path, Delivered-To, then the message as it is."""
    return s2b(lines.rpline + lines.dtline) + message


def _unlink(path: str) -> Generator[Op, Any, None]:
    with contextlib.suppress(OSError):
        yield Unlink(path)


def maildir_child(
    maildir: str, data: bytes, unique: Unique, *, fsync_dirs: bool = True
) -> Generator[Op, Any, int]:
    """Deliver `data` into `maildir`; yields operations, returns the child's exit code.

    `fsync_dirs=False` is qmail 1.03, which leaves `new/` to a synchronous filesystem.
    """
    try:
        yield Chdir(maildir)
    except OSError as failure:
        return 1 if is_temporary_errno(failure.errno) else 2
    for attempt in range(MAILDIR_TRIES):
        name = unique.name(attempt)
        try:
            yield Stat(f"tmp/{name}")
        except OSError as failure:
            if failure.errno == _errno.ENOENT:
                break
        if attempt == MAILDIR_TRIES - 1:
            return 1
        yield Sleep(MAILDIR_RETRY_SLEEP)
    tmp, new = f"tmp/{name}", f"new/{name}"
    yield Alarm(MAILDIR_TIMER)
    try:
        return (yield from _write_and_link(tmp, new, data, fsync_dirs))
    except TimeoutError:
        yield from _unlink(tmp)
        return 3


def _write_and_link(tmp: str, new: str, data: bytes, fsync_dirs: bool) -> Generator[Op, Any, int]:
    """Create, write, fsync, close, link (fsync new/); unlink the tmp name after the create."""
    try:
        yield CreateExclusive(tmp)
    except TimeoutError:
        raise
    except OSError:
        return 1
    try:
        yield from (WriteAll(tmp, data), Fsync(tmp), Close(tmp), Link(tmp, new))
        if fsync_dirs:
            yield FsyncDir(new.rpartition("/")[0])
    except TimeoutError:
        raise
    except OSError:
        yield from _unlink(tmp)
        return 1
    yield from _unlink(tmp)
    return 0


def maildir_ops(maildir: str, data: bytes, unique: Unique, *, fsync_dirs: bool = True) -> list[Op]:
    """The operations of a delivery that meets no error (a free name, every call succeeding)."""

    def perform(op: Op) -> None:
        if isinstance(op, Stat):
            raise FileNotFoundError(_errno.ENOENT, "file does not exist")

    return drive(maildir_child(maildir, data, unique, fsync_dirs=fsync_dirs), perform)[0]


_CHILD_EXITS = {0: "", 2: "maildir_chdir", 3: "maildir_timeout", 4: "maildir_read"}


def maildir_outcome(exit_code: int | None) -> Outcome:
    """qmail-local's reading of the child's exit code (None: it crashed)."""
    if exit_code is None:
        return report("child_crashed")
    key = _CHILD_EXITS.get(exit_code, "maildir_temporary")
    return report(key) if key else SUCCESS


# Reader side (qmail-pop3d, maildir2mbox).

FLAGS = {"D": "draft", "F": "flagged", "P": "passed", "R": "replied", "S": "seen", "T": "trashed"}


@dataclass(frozen=True, slots=True)
class Entry:
    """A message file in `new/` or `cur/`; the info (`2,FLAGS`) follows the first `:`."""

    subdir: str
    filename: str

    @property
    def path(self) -> str:
        """The path inside the maildir, e.g. `cur/123.M4P5Q0.host:2,S`."""
        return f"{self.subdir}/{self.filename}"

    @property
    def unique(self) -> str:
        """The name up to the first `:` (what qmail-pop3d's UIDL shows)."""
        return self.filename.split(":", 1)[0]

    @property
    def flags(self) -> str:
        """The flags of a `:2,` info, in ASCII order; "" for none or another info."""
        _, colon, info = self.filename.partition(":")
        return ordered_flags(info[2:]) if colon and info.startswith("2,") else ""


def parse_entry(subdir: str, filename: str) -> Entry | None:
    """A directory entry as a message; None for names readers skip (those starting with `.`)."""
    if subdir not in ("new", "cur"):
        raise BadInput(f"not a maildir message directory: {subdir!r}")
    if not filename or "/" in filename or "\0" in filename:
        raise BadInput(f"not a maildir file name: {filename!r}")
    return None if filename.startswith(".") else Entry(subdir, filename)


def ordered_flags(flags: str) -> str:
    """Flags as the info stores them: each once, in ASCII order (`SRF` -> `FRS`)."""
    return "".join(sorted(set(flags)))


def cur_name(entry: Entry, flags: str = "") -> str:
    """Where a reader moves the message: `new/x` -> `cur/x:2,`; in cur/ the flags are replaced."""
    base = entry.filename if entry.subdir == "new" else entry.unique
    return f"cur/{base}:2,{ordered_flags(flags)}"


def is_stale_tmp(atime: float, now: float) -> bool:
    """A tmp/ file not accessed for 36 hours is abandoned and may be removed."""
    return now > atime + OSSIFIED
