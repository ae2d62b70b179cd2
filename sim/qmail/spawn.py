"""The qmail-send ⇄ qmail-lspawn / qmail-rspawn protocol, and how each spawner reports.

Theory of operation. At start each spawner writes one byte, its slot limit (conf-spawn);
qmail-send caps the channel's concurrency with it (`spawn_limit`). Then qmail-send writes one
*command* per delivery: a slot byte `delnum`, `<split>/<id>\\0`, `<sender>\\0`, `<recipient>\\0`
(`encode_command`; the spawner reads them with `CommandParser`, which accepts any bytes split
anywhere). The spawner checks the command (`check_command`, then the file checks of
`SPAWN_FAILURES`), runs its agent, and answers with a *result*: the slot byte, a status letter
(`K` delivered, `Z` deferred, `D` failed), human text and `\\0` (`encode_result`; qmail-send reads
them with `ResultParser`, cutting each at REPORTMAX). Results come back in any order.

A spawner turns its child's exit status and output into the result: `lspawn_report` for
qmail-local (with the 3000-byte truncation of `truncate_output`), `rspawn_report` for
qmail-remote (collapsing its per-recipient and message reports into one letter).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from sim.qmail.constants import LSPAWN_REPORTMAX, REPORTMAX, SPAWN, SPLIT
from sim.qmail.errors import ProtocolError
from sim.qmail.text import b2s, s2b

# The spawner's own refusals (spawn.c), each a status letter and a text, in the order checked.
SPAWN_FAILURES: dict[str, bytes] = {
    "nomem": b"Zqmail-spawn out of memory. (#4.3.0)\n",
    "delnum_negative": b"ZInternal error: delnum negative. (#4.3.5)\n",
    "delnum_too_big": b"ZInternal error: delnum too big. (#4.3.5)\n",
    "delnum_in_use": b"ZInternal error: delnum in use. (#4.3.5)\n",
    "messid_nonnumerics": b"DInternal error: messid has nonnumerics. (#5.3.5)\n",
    "messid_too_long": b"DInternal error: messid too long. (#5.3.5)\n",
    "messid_too_short": b"DInternal error: messid too short. (#5.3.5)\n",
    "no_host": b"DSorry, address must include host name. (#5.1.3)\n",
    "open": b"Zqmail-spawn unable to open message. (#4.3.0)\n",
    "fstat": b"Zqmail-spawn unable to fstat message. (#4.3.0)\n",
    "wrong_type": b"ZSorry, message has wrong type. (#4.3.5)\n",
    "wrong_owner": b"ZSorry, message has wrong owner. (#4.3.5)\n",
    "pipe": b"Zqmail-spawn unable to create pipe. (#4.3.0)\n",
    "fork": b"Zqmail-spawn unable to fork. (#4.3.0)\n",
}
MESSID_MAX = 100  # bytes including the terminating NUL


def handshake(spawn: int = SPAWN) -> bytes:
    """The one byte a spawner writes at start: its number of delivery slots."""
    return bytes([spawn])


def spawn_limit(first: bytes, concurrency: int) -> int:
    """qmail-send's concurrency after reading the spawner's handshake byte."""
    if not first:
        raise ProtocolError("cannot start: hath the daemon spawn no fire?")
    return min(concurrency, first[0])


def verp_sender(sender: str, recipient: str) -> str:
    """`owner-@host-@[]` with recipient `box@dom` -> `owner-box=dom@host` (else unchanged)."""
    if not sender.endswith("-@[]"):
        return sender
    at = sender.rfind("@", 0, len(sender) - 4)
    ra = recipient.rfind("@")
    if at < 0 or ra < 0:
        return sender
    return f"{sender[:at]}{recipient[:ra]}={recipient[ra + 1 :]}@{sender[at + 1 : -4]}"


@dataclass(frozen=True, slots=True)
class SpawnCommand:
    """One delivery order: slot, message path under queue/mess, sender, one recipient."""

    delnum: int
    messid: str
    sender: str
    recipient: str

    @classmethod
    def for_message(cls, delnum: int, id: int, sender: str, recipient: str) -> SpawnCommand:
        """The command qmail-send writes for message `id` (path `split/id`, VERP expanded)."""
        return cls(delnum, f"{id % SPLIT}/{id}", verp_sender(sender, recipient), recipient)


def encode_command(command: SpawnCommand) -> bytes:
    """The command's bytes on the spawner's fd 0."""
    fields = (command.messid, command.sender, command.recipient)
    if not 0 <= command.delnum <= 255 or any("\0" in f for f in fields):
        raise ValueError(f"cannot encode {command!r}")
    return bytes([command.delnum]) + b"".join(s2b(f) + b"\0" for f in fields)


class CommandParser:
    """The spawner's reader: any bytes are a valid command stream, split anywhere."""

    def __init__(self) -> None:
        self._delnum: int | None = None
        self._fields: list[bytes] = []
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[SpawnCommand]:
        """Take bytes as read; return the commands they complete."""
        commands: list[SpawnCommand] = []
        pos = 0
        while pos < len(data):
            if self._delnum is None:
                self._delnum = data[pos]
                pos += 1
                continue
            end = data.find(b"\0", pos)
            if end < 0:
                self._partial += data[pos:]
                break
            self._fields.append(bytes(self._partial + data[pos:end]))
            self._partial.clear()
            pos = end + 1
            if len(self._fields) == 3:
                messid, sender, recipient = (b2s(f) for f in self._fields)
                commands.append(SpawnCommand(self._delnum, messid, sender, recipient))
                self._delnum, self._fields = None, []
        return commands


def _messid_ok(messid: str) -> bool:
    """Digits, with `/` allowed anywhere but first."""
    return all(
        (ch.isascii() and ch.isdigit()) or (ch == "/" and i > 0) for i, ch in enumerate(messid)
    )


def check_command(
    command: SpawnCommand, in_use: Container[int], spawn: int = SPAWN
) -> SpawnResult | None:
    """The spawner's checks before it opens the message: a refusal, or None to go on."""
    checks = (
        ("delnum_too_big", command.delnum >= spawn),
        ("delnum_in_use", command.delnum in in_use),
        ("messid_nonnumerics", not _messid_ok(command.messid)),
        ("messid_too_long", len(command.messid) + 1 > MESSID_MAX),
        ("messid_too_short", not command.messid),
        ("no_host", "@" not in command.recipient),
    )
    for name, failed in checks:
        if failed:
            return refusal(command.delnum, name)
    return None


def refusal(delnum: int, name: str) -> SpawnResult:
    """The result for one of SPAWN_FAILURES (a check failed, or open/fstat/pipe/fork did)."""
    return SpawnResult.from_report(delnum, SPAWN_FAILURES[name])


@dataclass(frozen=True, slots=True)
class SpawnResult:
    """A spawner's answer for slot `delnum`: status `K`/`Z`/`D` (else "mangled") and text."""

    delnum: int
    status: str
    text: bytes

    @property
    def mangled(self) -> bool:
        """True if qmail-send would log "report mangled, will defer"."""
        return self.status not in ("K", "Z", "D")

    @property
    def report(self) -> bytes:
        """Status letter and text, the form `retry.rewrite_if_dying` takes."""
        return s2b(self.status) + self.text

    @classmethod
    def from_report(cls, delnum: int, report: bytes) -> SpawnResult:
        """The result for slot `delnum` from a status letter followed by text."""
        return cls(delnum, chr(report[0]) if report else "\0", report[1:])


def encode_result(result: SpawnResult) -> bytes:
    """The result's bytes on the spawner's fd 1."""
    if not 0 <= result.delnum <= 255 or len(result.status) != 1 or result.status == "\0":
        raise ValueError(f"cannot encode {result!r}")
    if b"\0" in result.text:
        raise ValueError("a result text cannot hold NUL")
    return bytes([result.delnum]) + s2b(result.status) + result.text + b"\0"


class ResultParser:
    """qmail-send's reader of spawner results; keeps at most REPORTMAX bytes of each."""

    def __init__(self, reportmax: int = REPORTMAX) -> None:
        self._reportmax = reportmax
        self._line = bytearray()

    def feed(self, data: bytes) -> list[SpawnResult]:
        """Take bytes as read; return the results they complete."""
        results: list[SpawnResult] = []
        pos = 0
        while pos < len(data):
            if not self._line:  # the slot byte, even when it is NUL (slot 0)
                self._line.append(data[pos])
                pos += 1
                continue
            end = data.find(b"\0", pos)
            chunk = data[pos:] if end < 0 else data[pos:end]
            self._line += chunk[: max(0, self._reportmax - len(self._line))]
            if end < 0:
                break
            line, self._line = bytes(self._line), bytearray()
            status = chr(line[1]) if len(line) > 1 else "\0"
            results.append(SpawnResult(line[0], status, line[2:]))
            pos = end + 1
        return results


# qmail-lspawn: qmail-local's exit status -> result (qmail-lspawn.c report(), qlx.h).
QLX_USAGE, QLX_ROOT, QLX_NFS, QLX_NOALIAS, QLX_CDB = 112, 113, 115, 116, 117
QLX_SYS, QLX_NOMEM, QLX_EXECSOFT, QLX_EXECPW, QLX_EXECHARD = 118, 119, 120, 121, 126
LSPAWN_FIXED: dict[int, bytes] = {
    QLX_CDB: b"ZTrouble reading users/cdb in qmail-lspawn.\n",
    QLX_NOMEM: b"ZOut of memory in qmail-lspawn.\n",
    QLX_SYS: b"ZTemporary failure in qmail-lspawn.\n",
    QLX_NOALIAS: b"ZUnable to find alias user!\n",
    QLX_ROOT: b"ZNot allowed to perform deliveries as root.\n",
    QLX_USAGE: b"ZInternal qmail-lspawn bug.\n",
    QLX_NFS: b"ZNFS failure in qmail-local.\n",
    QLX_EXECHARD: b"DUnable to run qmail-local.\n",
    QLX_EXECSOFT: b"ZUnable to run qmail-local.\n",
    QLX_EXECPW: b"ZUnable to run qmail-getpw.\n",
}
LSPAWN_STATUS: dict[int, str] = {0: "K", 111: "Z", 71: "Z", 74: "Z", 75: "Z"}  # others: D
LSPAWN_CRASHED = b"Zqmail-local crashed.\n"
TRUNCATED = b"\nError report too long, sorry.\n"


def truncate_output(output: bytes, limit: int = LSPAWN_REPORTMAX) -> bytes:
    """Cut an agent's output that grew past `limit`, as spawn.c does after each read."""
    if limit <= 100 or len(output) <= limit:
        return output
    return output[: limit - len(TRUNCATED) - 3] + TRUNCATED


def is_trash_address(recipient: str) -> bool:
    """True for `@domain`: qmail-lspawn's child exits 0 at once, so the result is `K`, no text."""
    return recipient.rfind("@") == 0


def lspawn_report(delnum: int, exit_code: int | None, output: bytes) -> SpawnResult:
    """qmail-lspawn's result from qmail-local's exit (None = crashed) and collected output."""
    if exit_code is None:
        return SpawnResult.from_report(delnum, LSPAWN_CRASHED)
    if exit_code in LSPAWN_FIXED:
        return SpawnResult.from_report(delnum, LSPAWN_FIXED[exit_code])
    text = output.split(b"\0", 1)[0]
    return SpawnResult(delnum, LSPAWN_STATUS.get(exit_code, "D"), text)


# qmail-rspawn: qmail-remote's exit and reports -> result (qmail-rspawn.c report()).
RSPAWN_FIXED: dict[str, bytes] = {
    "crashed": b"Zqmail-remote crashed.\n",
    "exit111": b"ZUnable to run qmail-remote.\n",
    "exit": b"DUnable to run qmail-remote.\n",
    "silent": b"Zqmail-remote produced no output.\n",
}
_SEVERITY = {"K": 1, "Z": 0, "D": -1}
_LETTER = {1: "K", 0: "Z", -1: "D"}


def _message_verdict(output: bytes) -> int:
    """The first complete report that is K, Z or D (a message report); none counts as D."""
    for report in output.split(b"\0")[:-1]:
        letter = chr(report[0]) if report else ""
        if letter in _SEVERITY:
            return _SEVERITY[letter]
    return -1


def rspawn_report(delnum: int, exit_code: int | None, output: bytes) -> SpawnResult:
    """Collapse qmail-remote's reports for the single recipient into one result."""
    if exit_code is None:
        return SpawnResult.from_report(delnum, RSPAWN_FIXED["crashed"])
    if exit_code:
        return SpawnResult.from_report(
            delnum, RSPAWN_FIXED["exit111" if exit_code == 111 else "exit"]
        )
    if not output:
        return SpawnResult.from_report(delnum, RSPAWN_FIXED["silent"])
    verdict = _message_verdict(output)
    final = {"s": 0, "h": -1}.get(chr(output[0]), verdict)
    first_end = output.find(b"\0", 1)
    if first_end < 0:
        return SpawnResult(delnum, _LETTER[final], b"")
    text = output[1:first_end]
    second = first_end + 1
    if verdict <= final and second < len(output) and chr(output[second]) in _SEVERITY:
        text += output[second + 1 :].split(b"\0", 1)[0]
    return SpawnResult(delnum, _LETTER[final], text)
