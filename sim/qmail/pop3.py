"""What the POP3 chain shares: command lines, outputs, and the checkpassword interface.

Theory of operation: qmail-popup and qmail-pop3d read commands the same way (qmail's
commands.c): a line ends at LF, one CR before it is dropped, the line stops at a NUL (it
is a C string), the verb runs to the first space and is matched without regard to case,
and the argument is what follows once the spaces are skipped. A partial line at end of
input is dropped. `CommandReader` does that on bytes fed to it; the two state machines
(`sim.qmail.popup`, `sim.qmail.pop3d`) turn each command into outputs that the program
performs: `Reply` bytes to write, `Exit` with a status, or a request particular to each.

Between them sits checkpassword (cr.yp.to/checkpwd/interface.html): qmail-popup writes
`user\\0password\\0timestamp\\0` on a pipe read as fd 3 (`encode_checkpassword`);
checkpassword reads at most 512 bytes of it (`parse_checkpassword`), looks the user up
and either execs the rest of its arguments as that user or exits 1, 2 or 111
(`checkpassword`). Our accounts hold plain passwords where the real one calls crypt(3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sim.qmail.constants import CHECKPASSWORD_MAX
from sim.qmail.errors import ProtocolError
from sim.qmail.text import b2s, s2b

OK = b"+OK \r\n"  # qmail's okay(): note the space after +OK

CHECKPASSWORD_EXIT: dict[str, int] = {
    "ok": 0,  # (after the exec: the exit of the program run, e.g. qmail-pop3d)
    "bad password": 1,  # also: unknown user, empty stored password, input too long
    "misuse": 2,  # no program to run, or fd 3 not in the interface's format
    "temporary": 111,  # cannot read fd 3, cannot chdir home, cannot set the environment
}


def err(text: str) -> bytes:
    """`-ERR <text>` CR LF, the way qmail-popup and qmail-pop3d write every error."""
    return b"-ERR " + s2b(text) + b"\r\n"


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to write to the client (fd 1), already CR LF-terminated."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Exit:
    """The program ends now with this status (after writing every earlier reply)."""

    status: int


class NeedData:
    """No complete command is buffered: read more from fd 0 (b"" at end of input)."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@dataclass(frozen=True, slots=True)
class Command:
    """One command line: the verb in lower case and its argument, as commands.c splits it."""

    verb: bytes
    arg: bytes


def parse_command(line: bytes) -> Command:
    """Split one line (without its LF) into verb and argument; never fails."""
    if line.endswith(b"\r"):
        line = line[:-1]
    line = line.split(b"\0", 1)[0]
    verb, _, arg = line.partition(b" ")
    return Command(verb.lower(), arg.lstrip(b" "))


class CommandReader:
    """Buffers the client's bytes and hands out whole command lines."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the client; `b""` means the client closed its side."""
        if self._eof and data:
            raise RuntimeError("receive_data after end of input")
        if not data:
            self._eof = True
        self._buffer += data

    def next_command(self) -> Command | None:
        """The next whole line's command, or None if no whole line is buffered."""
        end = self._buffer.find(b"\n")
        if end < 0:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return parse_command(line)

    @property
    def at_eof(self) -> bool:
        """True once the client closed and no whole line is left (a partial one is lost)."""
        return self._eof and b"\n" not in self._buffer

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet consumed as commands."""
        return bytes(self._buffer)


class CheckpasswordError(ProtocolError):
    """fd 3 broke the checkpassword interface; `exit_code` is how checkpassword exits."""

    def __init__(self, exit_code: int, problem: str) -> None:
        self.exit_code = exit_code
        super().__init__(problem)


@dataclass(frozen=True, slots=True)
class CheckpasswordInput:
    """What qmail-popup sends checkpassword on fd 3."""

    user: bytes
    password: bytes  # the PASS argument, or the APOP digest
    timestamp: bytes  # the greeting's `<pid.time@host>`


def encode_checkpassword(user: bytes, password: bytes, timestamp: bytes) -> bytes:
    """`user\\0password\\0timestamp\\0`: the fd 3 data qmail-popup writes."""
    for field in (user, password, timestamp):
        if b"\0" in field:
            raise ValueError(f"checkpassword field holds a NUL: {field!r}")
    return user + b"\0" + password + b"\0" + timestamp + b"\0"


def parse_checkpassword(data: bytes) -> CheckpasswordInput:
    """Read fd 3 as the reference checkpassword does (more data after the timestamp is fine).

    Raises:
        CheckpasswordError: exit 1 past 512 bytes; exit 2 without user and password fields.
    """
    if len(data) > CHECKPASSWORD_MAX:
        raise CheckpasswordError(
            CHECKPASSWORD_EXIT["bad password"], f"more than {CHECKPASSWORD_MAX} bytes on fd 3"
        )
    user, sep, rest = data.partition(b"\0")
    if not sep or not rest:
        raise CheckpasswordError(CHECKPASSWORD_EXIT["misuse"], "no password field on fd 3")
    password, sep, rest = rest.partition(b"\0")
    if not sep:
        raise CheckpasswordError(CHECKPASSWORD_EXIT["misuse"], "password not NUL-terminated")
    return CheckpasswordInput(user, password, rest.partition(b"\0")[0])


@dataclass(frozen=True, slots=True)
class Account:
    """A login checkpassword knows: its password and what the user runs as."""

    password: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"


@dataclass(frozen=True, slots=True)
class CheckpasswordDecision:
    """checkpassword's outcome: exit now with `exit_code`, or (0) become `user` and exec."""

    exit_code: int
    user: str | None = None
    account: Account | None = None

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        """The variables set before the exec: USER, HOME, SHELL."""
        if self.account is None or self.user is None:
            return ()
        return (("USER", self.user), ("HOME", self.account.home), ("SHELL", self.account.shell))


def checkpassword(
    fd3: bytes, accounts: Mapping[str, Account], program: Sequence[str]
) -> CheckpasswordDecision:
    """Decide as the reference checkpassword: misuse 2, refused 1, else switch and exec.

    `program` is the rest of checkpassword's arguments (e.g. `qmail-pop3d Maildir`). An
    account with an empty password never logs in. The timestamp is ignored.
    """
    if not program:
        return CheckpasswordDecision(CHECKPASSWORD_EXIT["misuse"])
    try:
        given = parse_checkpassword(fd3)
    except CheckpasswordError as error:
        return CheckpasswordDecision(error.exit_code)
    user = b2s(given.user)
    account = accounts.get(user)
    if account is None or not account.password or s2b(account.password) != given.password:
        return CheckpasswordDecision(CHECKPASSWORD_EXIT["bad password"])
    return CheckpasswordDecision(CHECKPASSWORD_EXIT["ok"], user, account)


def parse_pop3passwd(text: str) -> dict[str, Account]:
    """`name:password:uid:gid:home` lines; malformed lines are skipped, as getpwnam would."""
    accounts: dict[str, Account] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) != 5 or not (fields[2].isdigit() and fields[3].isdigit()):
            continue
        name, password, uid, gid, homedir = fields
        accounts.setdefault(name, Account(password, int(uid), int(gid), homedir))
    return accounts
