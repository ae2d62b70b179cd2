"""qmail-pop3d's dialogue over one Maildir, as a state machine with no I/O (qmail-pop3d(8)).

Theory of operation: the program lists `new/` and `cur/` (in that order, each as the
directory is read) with every file's size and mtime and builds `Pop3d` from that listing.
Names starting with `.` and files whose mtime is not before `now` are left out; the rest
are numbered 1..n by mtime, in the order qmail's priority queue pops them (`mailbox_order`).
The machine then answers commands from the numbers alone. Two commands need the program:
RETR and TOP emit `NeedMessage`, and the program answers with `message(bytes or None)`;
QUIT emits `Quit` with the unlinks and renames to do in order, and the program writes
`quit_reply(failed_unlinks)` and exits 0. End of input exits 0 with nothing changed.

Quirks kept from qmail: STAT counts deleted messages too (the size does not); DELE raises
LAST; RETR is TOP (`RETR 1 0` gives the header only); a message is sent with every line
ended by CR LF, a leading `.` doubled, a final partial line completed, and an extra blank
line before the terminating `.`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sim.qmail.maildir import is_stale_tmp
from sim.qmail.pop3 import NEED_DATA, OK, Command, CommandReader, Exit, NeedData, Reply, err
from sim.qmail.text import s2b

POP3D_EXIT = 0  # qmail-pop3d's die(): it always exits 0
ULONG = 2**64  # scan_ulong and fmt_ulong work modulo this

POP3D_ERRORS: dict[str, str] = {
    "nomaildir": "this user has no $HOME/Maildir",
    "nomem": "out of memory",
    "scan": "unable to scan $HOME/Maildir",
    "syntax": "syntax error",
    "unimpl": "unimplemented",
    "deleted": "already deleted",
    "nozero": "messages are counted from 1",
    "toobig": "not that many messages",
    "nosuch": "unable to open that message",
    "nounlink": "unable to unlink all deleted messages",
}


def pop3d_error(reason: str) -> bytes:
    """The error line for one of `POP3D_ERRORS`, e.g. `-ERR unimplemented` CR LF."""
    return err(POP3D_ERRORS[reason])


@dataclass(frozen=True, slots=True)
class MaildirEntry:
    """One file the program found in the Maildir: what readdir and stat said."""

    name: str
    subdir: str  # "new" or "cur"
    size: int
    mtime: int

    def __post_init__(self) -> None:
        if self.subdir not in ("new", "cur"):
            raise ValueError(f"a Maildir message lives in new or cur, not {self.subdir!r}")


@dataclass(frozen=True, slots=True)
class UnlinkMessage:
    """Unlink this file (relative to the Maildir)."""

    path: str


@dataclass(frozen=True, slots=True)
class RenameMessage:
    """Rename `source` to `target` (relative to the Maildir); a failure is ignored."""

    source: str
    target: str


@dataclass(frozen=True, slots=True)
class NeedMessage:
    """Open and read message `number` at `path`, then call `message` with its bytes."""

    number: int
    path: str


@dataclass(frozen=True, slots=True)
class Quit:
    """Do these in order, count the unlinks that failed, then write `quit_reply(count)`."""

    operations: tuple[UnlinkMessage | RenameMessage, ...]


Pop3dOutput = Reply | NeedMessage | Quit | Exit | NeedData


def mailbox_order(entries: Iterable[MaildirEntry | tuple], now: int) -> list[MaildirEntry]:
    """The messages qmail-pop3d numbers 1..n: visible, older than `now`, by mtime.

    Equal mtimes come out as qmail's binary heap (prioq) pops them, not in listing order.
    """
    heap: list[MaildirEntry] = []
    for entry in entries:
        entry = entry if isinstance(entry, MaildirEntry) else MaildirEntry(*entry)
        if entry.name.startswith(".") or not entry.mtime < now:
            continue
        j = len(heap)
        heap.append(entry)
        while j and heap[(j - 1) // 2].mtime > entry.mtime:  # sift up, stop on <=
            heap[j] = heap[(j - 1) // 2]
            j = (j - 1) // 2
        heap[j] = entry
    return [_pop_min(heap) for _ in range(len(heap))]


def _pop_min(heap: list[MaildirEntry]) -> MaildirEntry:
    """Remove and return the heap's first element, moving the last one down as prioq does."""
    first, last = heap[0], heap[-1]
    n = len(heap) - 1
    i = 0
    while (j := 2 * i + 2) <= n:
        if heap[j - 1].mtime <= heap[j].mtime:
            j -= 1
        if last.mtime <= heap[j].mtime:
            break
        heap[i] = heap[j]
        i = j
    heap[i] = last
    heap.pop()
    return first


def stale_tmp_files(tmp: Iterable[tuple[str, int]], now: int) -> list[UnlinkMessage]:
    """The `tmp/` files qmail-pop3d removes first: (name, atime) not read for 36 hours."""
    return [
        UnlinkMessage(f"tmp/{name}")
        for name, atime in tmp
        if not name.startswith(".") and is_stale_tmp(atime, now)
    ]


def stuff_message(data: bytes, limit: int = 0) -> bytes:
    """A message as RETR/TOP send it: CR LF lines, `.` doubled, blank line, `.` CR LF.

    `limit` is TOP's body line count plus one (0: the whole message).
    """
    lines = data.split(b"\n")
    if not lines[-1]:  # the message ended with LF (or was empty): no partial line
        lines.pop()
    out: list[bytes] = []
    in_header = True
    for line in lines:
        if limit and not in_header:
            limit -= 1
            if not limit:
                break
        if not line:
            in_header = False
        elif line.startswith(b"."):
            out.append(b".")
        out.append(line + b"\r\n")
    out.append(b"\r\n.\r\n")
    return b"".join(out)


def _scan_ulong(text: bytes) -> tuple[int, int]:
    """Leading decimal digits: (value modulo 2**64, how many digits)."""
    digits = len(text) - len(text.lstrip(b"0123456789"))
    value = 0
    for start in range(0, digits, 18):  # int() refuses very long digit strings
        chunk = text[start : min(start + 18, digits)]
        value = (value * 10 ** len(chunk) + int(chunk)) % ULONG
    return value, digits


@dataclass(slots=True)
class _Message:
    path: str  # "new/<name>" or "cur/<name>"
    size: int
    deleted: bool = False


class Pop3d:
    """One qmail-pop3d session over a Maildir listing taken at start."""

    def __init__(self, entries: Iterable[MaildirEntry | tuple], now: int) -> None:
        self._messages = [
            _Message(f"{e.subdir}/{e.name}", e.size) for e in mailbox_order(entries, now)
        ]
        self._reader = CommandReader()
        self._last = 0
        self._limit: int | None = None  # set while a NeedMessage waits for `message`
        self._state = "transaction"  # -> quitting -> done
        self._handlers: dict[bytes, Callable[[bytes], Pop3dOutput]] = {
            b"quit": self._quit,
            b"stat": self._stat,
            b"list": lambda arg: self._listing(arg, uidl=False),
            b"uidl": lambda arg: self._listing(arg, uidl=True),
            b"dele": self._dele,
            b"retr": self._top,
            b"rset": self._rset,
            b"last": lambda arg: Reply(b"+OK %d\r\n" % self._last),
            b"top": self._top,
            b"noop": lambda arg: Reply(OK),
        }

    @property
    def paths(self) -> tuple[str, ...]:
        """The messages' paths in number order (message i is `paths[i - 1]`)."""
        return tuple(m.path for m in self._messages)

    def greeting(self) -> bytes:
        """`+OK ` CR LF, written once the Maildir has been listed."""
        return OK

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the client; `b""` means end of input."""
        self._reader.receive_data(data)

    def next_output(self) -> Pop3dOutput:
        """The next thing to do: `Reply`, `NeedMessage`, `Quit`, `Exit` or `NEED_DATA`."""
        if self._limit is not None:
            raise RuntimeError("call message() to answer NeedMessage first")
        if self._state == "quitting":
            raise RuntimeError("call quit_reply() to answer Quit first")
        if self._state == "done":
            return Exit(POP3D_EXIT)
        command = self._reader.next_command()
        if command is None:
            if self._reader.at_eof:
                self._state = "done"
                return Exit(POP3D_EXIT)
            return NEED_DATA
        return self._dispatch(command)

    def message(self, data: bytes | None) -> bytes:
        """The reply to RETR/TOP given the message's bytes, or None if it would not open."""
        if self._limit is None:
            raise RuntimeError("message() without NeedMessage")
        limit, self._limit = self._limit, None
        if data is None:
            return pop3d_error("nosuch")
        return OK + stuff_message(data, limit)

    def quit_reply(self, failed_unlinks: int = 0) -> bytes:
        """What QUIT writes once its operations ran: one error per failed unlink, `+OK `."""
        if self._state != "quitting":
            raise RuntimeError("quit_reply() without Quit")
        self._state = "done"
        return pop3d_error("nounlink") * failed_unlinks + OK

    def _dispatch(self, command: Command) -> Pop3dOutput:
        handler = self._handlers.get(command.verb)
        if handler is None:
            return Reply(pop3d_error("unimpl"))
        return handler(command.arg)

    def _number(self, arg: bytes) -> int | Reply:
        """A message index from the argument, or the error reply (qmail's msgno)."""
        value, digits = _scan_ulong(arg)
        if not digits:
            return Reply(pop3d_error("syntax"))
        if not value:
            return Reply(pop3d_error("nozero"))
        if value > len(self._messages):
            return Reply(pop3d_error("toobig"))
        if self._messages[value - 1].deleted:
            return Reply(pop3d_error("deleted"))
        return value - 1

    def _stat(self, arg: bytes) -> Reply:
        total = sum(m.size for m in self._messages if not m.deleted) % ULONG
        return Reply(b"+OK %d %d\r\n" % (len(self._messages), total))

    def _entry(self, i: int, uidl: bool) -> bytes:
        message = self._messages[i]
        what = s2b(message.path[4:].split(":", 1)[0]) if uidl else b"%d" % message.size
        return b"%d " % (i + 1) + what + b"\r\n"

    def _listing(self, arg: bytes, uidl: bool) -> Reply:
        if arg:
            i = self._number(arg)
            return i if isinstance(i, Reply) else Reply(b"+OK " + self._entry(i, uidl))
        lines = [self._entry(i, uidl) for i, m in enumerate(self._messages) if not m.deleted]
        return Reply(OK + b"".join(lines) + b".\r\n")

    def _dele(self, arg: bytes) -> Reply:
        i = self._number(arg)
        if isinstance(i, Reply):
            return i
        self._messages[i].deleted = True
        self._last = max(self._last, i + 1)
        return Reply(OK)

    def _rset(self, arg: bytes) -> Reply:
        for message in self._messages:
            message.deleted = False
        self._last = 0
        return Reply(OK)

    def _top(self, arg: bytes) -> Reply | NeedMessage:
        i = self._number(arg)
        if isinstance(i, Reply):
            return i
        _, digits = _scan_ulong(arg)
        lines, digits = _scan_ulong(arg[digits:].lstrip(b" "))
        self._limit = (lines + 1) % ULONG if digits else 0
        return NeedMessage(i + 1, self._messages[i].path)

    def _quit(self, arg: bytes) -> Quit:
        operations: list[UnlinkMessage | RenameMessage] = []
        for message in self._messages:
            if message.deleted:
                operations.append(UnlinkMessage(message.path))
            elif message.path.startswith("new/"):
                operations.append(RenameMessage(message.path, f"cur/{message.path[4:]}:2,"))
        self._state = "quitting"
        return Quit(tuple(operations))
