"""The queue's names and states: where each file of a message lives, and which state that is.

Theory of operation. A message's queue id is the inode number of the file qmail-queue
created in `pid/` (INTERNALS: "If mess/457 exists, it has inode number 457"). Its files are
named by the id: `mess/`, `info/`, `local/` and `remote/` are split into 23 subdirectories by
`id % 23` (conf-split), `intd/`, `todo/` and `bounce/` are not (qmail 1.03). Message paths
here are relative to the queue directory, where qmail's programs run; the install layout
(`QUEUE_LAYOUT`, for laying out a qmail home) is relative to the qmail home.

Every change to the queue is a single create, link or unlink, so whatever the moment of a
crash, each message is in one of INTERNALS' five states, defined by which of its seven files
exist (`message_state`). Any other combination is impossible, and a test says so.

The life cycle (`sim.qmail.lifecycle`) is written as ordered lists of the filesystem
operations defined here: small frozen values that the kernels interpret, each carrying what
the program does if it fails (`OnFail`: qmail-queue's exit code, qmail-send's warning, ...).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sim.qmail.constants import OSSIFIED, SPLIT
from sim.qmail.errors import BadInput
from sim.qmail.frozen import quick_init_all

CHANNELS = ("local", "remote")  # qmail-send's channel 0 and channel 1
KINDS = ("mess", "intd", "todo", "info", "local", "remote", "bounce")  # a message's files
SPLIT_KINDS = frozenset({"mess", "info", "local", "remote"})

QUEUE_DIR = "queue"  # under the qmail home; every message path is relative to it
LOCK_TRIGGER = "lock/trigger"
LOCK_SENDMUTEX = "lock/sendmutex"
LOCK_TCPTO = "lock/tcpto"
PID_SEQS = range(1, 10)  # qmail-queue tries pid/<pid>.<time>.1 to .9, then exits 63


class BadQueueName(BadInput):
    """A file name in the queue that is not a message's (not a canonical decimal id)."""


def is_ossified(atime: float, now: float) -> bool:
    """The 36-hour rule for stale `pid/` and `mess/` files: at least OSSIFIED seconds unread."""
    return now >= atime + OSSIFIED


def split_of(queue_id: int) -> int:
    """The subdirectory a split kind keeps the message in: id mod conf-split."""
    return queue_id % SPLIT


def queue_path(kind: str, queue_id: int) -> str:
    """`mess/<id%23>/<id>`, `todo/<id>`...: where the message's file of this kind lives."""
    if kind not in KINDS:
        raise ValueError(f"not a message file kind: {kind!r}")
    if kind in SPLIT_KINDS:
        return f"{kind}/{split_of(queue_id)}/{queue_id}"
    return f"{kind}/{queue_id}"


def split_dir(kind: str, queue_id: int) -> str:
    """The directory holding the message's file of this kind (`mess/15`, `todo`)."""
    return queue_path(kind, queue_id).rpartition("/")[0]


def pid_path(pid: int, start_time: int, seq: int) -> str:
    """`pid/<pid>.<time>.<seq>`: qmail-queue's temporary name, made only to get an inode."""
    return f"pid/{pid}.{start_time}.{seq}"


def is_queue_id(name: str) -> bool:
    """True for the name of a message file: decimal digits, no sign, no leading zero."""
    return name.isascii() and name.isdigit() and name[0] != "0"


def parse_queue_id(name: str) -> int:
    """A file name back to its queue id; a name that qmail would not have made is refused."""
    if not is_queue_id(name):
        raise BadQueueName(f"not a queue id: {name!r}")
    return int(name)


def parse_queue_path(path: str) -> tuple[str, int]:
    """`mess/15/26902` -> (`mess`, 26902), checking the split subdirectory matches the id."""
    parts = path.split("/")
    kind = parts[0]
    if kind not in KINDS or len(parts) != (3 if kind in SPLIT_KINDS else 2):
        raise BadQueueName(f"not a message file path: {path!r}")
    queue_id = parse_queue_id(parts[-1])
    if queue_path(kind, queue_id) != path:
        raise BadQueueName(f"{path!r} is in the wrong split subdirectory")
    return kind, queue_id


# INTERNALS: the message states, each as (files that must exist, files that must not).
# Files named in neither set may go either way (INTERNALS' `?`).
STATES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "S1": (frozenset(), frozenset(KINDS)),
    "S2": (frozenset({"mess"}), frozenset(KINDS) - {"mess"}),
    "S3": (frozenset({"mess", "intd"}), frozenset({"todo", "info", "local", "remote", "bounce"})),
    "S4": (frozenset({"mess", "todo"}), frozenset({"bounce"})),
    "S5": (frozenset({"mess", "info"}), frozenset({"intd", "todo"})),
}
STATE_MEANINGS: dict[str, str] = {
    "S1": "no message",
    "S2": "message being written, or being eliminated",
    "S3": "envelope being written",
    "S4": "queued",
    "S5": "preprocessed",
}


def message_state(existing: Collection[str]) -> str | None:
    """The INTERNALS state of a message whose files of these kinds exist; None if impossible."""
    present = frozenset(existing)
    if not present <= frozenset(KINDS):
        raise ValueError(f"not message file kinds: {sorted(present - frozenset(KINDS))}")
    for name, (plus, minus) in STATES.items():
        if plus <= present and not present & minus:
            return name
    return None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One directory or file of an installed queue, with owner and mode as qmail's hier.c."""

    path: str  # relative to the qmail home
    kind: str  # "dir", "file" or "fifo"
    owner: str
    mode: int
    group: str = "qmail"
    size: int = 0  # a file's initial length, in zero bytes


def _tree(name: str, owner: str, mode: int, split: bool) -> list[QueueEntry]:
    """A queue directory and, if split, its subdirectories 0..22."""
    top = f"{QUEUE_DIR}/{name}"
    entries = [QueueEntry(top, "dir", owner, mode)]
    if split:
        entries += [QueueEntry(f"{top}/{i}", "dir", owner, mode) for i in range(SPLIT)]
    return entries


QUEUE_LAYOUT: tuple[QueueEntry, ...] = (
    QueueEntry(QUEUE_DIR, "dir", "qmailq", 0o750),
    *_tree("pid", "qmailq", 0o700, split=False),
    *_tree("intd", "qmailq", 0o700, split=False),
    *_tree("todo", "qmailq", 0o750, split=False),
    *_tree("mess", "qmailq", 0o750, split=True),
    *_tree("info", "qmails", 0o700, split=True),
    *_tree("local", "qmails", 0o700, split=True),
    *_tree("remote", "qmails", 0o700, split=True),
    *_tree("bounce", "qmails", 0o700, split=False),
    *_tree("lock", "qmailq", 0o750, split=False),
    QueueEntry(f"{QUEUE_DIR}/{LOCK_TCPTO}", "file", "qmailr", 0o644, size=1024),
    QueueEntry(f"{QUEUE_DIR}/{LOCK_SENDMUTEX}", "file", "qmails", 0o600),
    QueueEntry(f"{QUEUE_DIR}/{LOCK_TRIGGER}", "fifo", "qmails", 0o622),
)


# ---- the filesystem operations of the life cycle -------------------------------------------


@dataclass(frozen=True, slots=True)
class OnFail:
    """What the program does when an operation fails (an unset field means: not that)."""

    exit_code: int | None = None  # qmail-queue: exit with this code...
    cleanup: bool = False  # ...after truncating and unlinking the files it made
    warning: str = ""  # qmail-send: log this line (without its newline) and give up the step
    retry_after: float | None = None  # try the whole step again this many seconds later
    ignore: bool = False  # carry on as if it had worked


GIVE_UP = OnFail()  # stop the sequence quietly
IGNORE = OnFail(ignore=True)


def exits(code: int, *, cleanup: bool = False) -> OnFail:
    """qmail-queue's way to fail: exit with `code`, cleaning up first for 53 and 54."""
    return OnFail(exit_code=code, cleanup=cleanup)


def warns(line: str, retry_after: float | None = None) -> OnFail:
    """qmail-send's way to fail: a `warning: ...` log line, the step left for later."""
    return OnFail(warning=line, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class Create:
    """Create a file (exclusively, as qmail's open_excl) with this mode after the umask."""

    path: str
    mode: int
    exclusive: bool = True
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Write:
    """Write these bytes to the file: at its end, or over the bytes at `offset`."""

    path: str
    data: bytes
    offset: int | None = None
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Append:
    """Open with O_APPEND (creating it with `mode`) and append these bytes: bounce/<id>."""

    path: str
    data: bytes
    mode: int
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Copy:
    """Copy what the program reads on descriptor `fd` (`what`) to the end of the file."""

    fd: int
    path: str
    what: str
    fail: OnFail = GIVE_UP  # a write error
    read_fail: OnFail = GIVE_UP  # a read error on `fd`


@dataclass(frozen=True, slots=True)
class Read:
    """Open the file and read all of it (the program parses it)."""

    path: str
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Stat:
    """Check that the path exists (or, with exists=False, that it does not); else `fail`."""

    path: str
    exists: bool
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Truncate:
    """Cut the file to zero bytes (qmail-queue's cleanup, before the unlink)."""

    path: str
    fail: OnFail = IGNORE


@dataclass(frozen=True, slots=True)
class Fsync:
    """Flush the file's data and inode to the disk."""

    path: str
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class FsyncDir:
    """Flush a directory, making the names linked into it durable (qmail 1.03 never does)."""

    path: str
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Link:
    """Hard-link `src` as `dst` (fails if `dst` exists)."""

    src: str
    dst: str
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Unlink:
    """Remove the name; with missing_ok, a name already gone counts as done."""

    path: str
    missing_ok: bool = False
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class OpenFifoWrite:
    """Open the FIFO write-only and non-blocking, write `data`, close (the trigger pull)."""

    path: str
    data: bytes
    fail: OnFail = IGNORE


@dataclass(frozen=True, slots=True)
class CleanRequest:
    """qmail-send asks qmail-clean to unlink files it may not; the reply must be `+`."""

    command: bytes
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class InjectBounce:
    """Queue bounce/<id> as a bounce message through qmail-queue; nothing if it is missing."""

    queue_id: int
    fail: OnFail = GIVE_UP


@dataclass(frozen=True, slots=True)
class Log:
    """qmail-send writes this log line (without its newline) at this point."""

    line: str


QueueOp = (
    Create
    | Write
    | Append
    | Copy
    | Read
    | Stat
    | Truncate
    | Fsync
    | FsyncDir
    | Link
    | Unlink
    | OpenFifoWrite
    | CleanRequest
    | InjectBounce
    | Log
)
quick_init_all(*QueueOp.__args__)
