"""Who gets a local address: users/assign (qmail-users(5)) and qmail-getpw's rule.

Theory of operation: qmail-lspawn turns the local part of a recipient into a *nughde*
(name, uid, gid, home, dash, ext), the arguments of qmail-local. It asks users/cdb first
(`qmail_newu` builds our stand-in from users/assign: exact keys, wildcard prefixes and the
set of characters that end a wildcard prefix) and then qmail-getpw, which looks the local
part up in the passwd table. Nothing here touches a file: users/assign arrives as text and
the passwd table (with what stat(2) would say of each home) as a mapping.

users/assign lines are `=local:user:uid:gid:homedir:dash:ext:` (exact) and
`+loc:user:uid:gid:homedir:dash:pre:` (wildcard prefix; the rest of the address is
appended to `pre`), and the file ends with a line starting with `.`. qmail-newu stops
with "bad format" on a malformed line; we say which line and why. Stricter than qmail:
a line must start with `=` or `+`, and uid and gid must be decimal numbers. Like qmail,
anything after the seventh colon is ignored and the first of two equal keys wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sim.qmail.constants import BREAK
from sim.qmail.errors import BadInput, ControlFileError, ProtocolError
from sim.qmail.text import case_lower

ASSIGN_FILE = "users/assign"
ALIAS_USER = "alias"
GETPW_USERLEN = 32  # qmail-getpw skips candidate names of 32 characters or more
QLX_NOALIAS = 116  # qmail-getpw's exit code when even the alias user is missing
_FIELD_FORBIDDEN = (":", "\n", "\0")


@dataclass(frozen=True, slots=True)
class Assignment:
    """A nughde: the user, ids, home, dash and extension qmail-local is run with."""

    user: str
    uid: int
    gid: int
    home: str
    dash: str
    ext: str


@dataclass(frozen=True, slots=True)
class AssignEntry:
    """One users/assign line; for a wildcard (`+`) line `ext` holds the `pre` field."""

    wildcard: bool
    local: str
    user: str
    uid: int
    gid: int
    home: str
    dash: str
    ext: str

    def __post_init__(self) -> None:
        """Refuse an entry that cannot be written as one users/assign line."""
        for text in (self.local, self.user, self.home, self.dash, self.ext):
            if any(ch in text for ch in _FIELD_FORBIDDEN):
                raise BadInput(f"users/assign field may not hold ':', newline or NUL: {text!r}")
        if self.uid < 0 or self.gid < 0:
            raise BadInput(f"users/assign uid and gid must not be negative: {self}")


@dataclass(frozen=True, slots=True)
class UsersCdb:
    """What qmail-newu writes into users/cdb: exact keys, wildcard keys, wildcard end chars."""

    exact: Mapping[str, Assignment]
    wildcard: Mapping[str, Assignment]
    wildchars: frozenset[str]


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    """A passwd account as qmail-getpw sees it: getpwnam plus stat of the home directory."""

    uid: int
    gid: int
    home: str
    home_owner_uid: int
    home_exists: bool = True


def _bad(number: int, problem: str) -> ControlFileError:
    return ControlFileError(ASSIGN_FILE, number, f"bad format: {problem}")


def _number(text: str, what: str, number: int) -> int:
    if not text.isascii() or not text.isdigit():
        raise _bad(number, f"{what} is not a number: {text!r}")
    return int(text)


def parse_assign_line(line: str, number: int) -> AssignEntry:
    """One `=`/`+` line (without its newline) into an entry; malformed -> ControlFileError."""
    if "\0" in line:
        raise _bad(number, "NUL in line")
    if line[:1] not in ("=", "+"):
        raise _bad(number, f"line must start with = or +: {line!r}")
    fields = line[1:].split(":", 7)
    if len(fields) < 8:
        raise _bad(number, f"expected 7 fields each ended by ':': {line!r}")
    local, user, uid, gid, home, dash, ext = fields[:7]
    return AssignEntry(
        wildcard=line[0] == "+",
        local=local,
        user=user,
        uid=_number(uid, "uid", number),
        gid=_number(gid, "gid", number),
        home=home,
        dash=dash,
        ext=ext,
    )


def parse_assign(text: str) -> tuple[AssignEntry, ...]:
    """users/assign text -> its entries, up to the line starting with `.`."""
    lines = text.split("\n")
    entries: list[AssignEntry] = []
    for number, line in enumerate(lines, 1):
        if line.startswith("."):
            return tuple(entries)
        if number == len(lines):
            break
        entries.append(parse_assign_line(line, number))
    raise ControlFileError(ASSIGN_FILE, len(lines), "missing the final line '.'")


def format_assign(entries: Iterable[AssignEntry]) -> str:
    """Write entries back as users/assign text, ending with the `.` line."""
    lines = [
        f"{'+' if e.wildcard else '='}{e.local}:{e.user}:{e.uid}:{e.gid}:{e.home}:{e.dash}:{e.ext}:"
        for e in entries
    ]
    return "".join(line + "\n" for line in [*lines, "."])


def qmail_newu(entries: Iterable[AssignEntry]) -> UsersCdb:
    """Build the users/cdb lookup tables; keys are lowercased and the first one wins."""
    exact: dict[str, Assignment] = {}
    wildcard: dict[str, Assignment] = {}
    wildchars: set[str] = set()
    for e in entries:
        value = Assignment(e.user, e.uid, e.gid, e.home, e.dash, e.ext)
        table = wildcard if e.wildcard else exact
        table.setdefault(case_lower(e.local), value)
        if e.wildcard and e.local:
            wildchars.add(e.local[-1])  # as written: qmail-newu does not lowercase it
    return UsersCdb(exact, wildcard, frozenset(wildchars))


def lookup_assign(cdb: UsersCdb, local: str) -> Assignment | None:
    """qmail-lspawn's users/cdb search: exact key, then the longest wildcard prefix.

    A prefix is tried only when it is empty (the `+:` catch-all) or ends in a character
    that ends some wildcard prefix; the rest of the local part, as given, is appended to
    the entry's `pre` to make `ext`.
    """
    lower = case_lower(local)
    if lower in cdb.exact:
        return cdb.exact[lower]
    for end in range(len(lower), -1, -1):
        prefix = lower[:end]
        if (not prefix or prefix[-1] in cdb.wildchars) and prefix in cdb.wildcard:
            found = cdb.wildcard[prefix]
            return Assignment(
                found.user, found.uid, found.gid, found.home, found.dash, found.ext + local[end:]
            )
    return None


def _is_user(entry: PasswdEntry | None) -> bool:
    """A "user": not root, home exists and is owned by the account."""
    return (
        entry is not None
        and entry.uid != 0
        and entry.home_exists
        and entry.home_owner_uid == entry.uid
    )


def getpw(local: str, passwd: Mapping[str, PasswdEntry]) -> Assignment | None:
    """qmail-getpw: the whole local part, then each prefix ending before a `-`, longest first.

    Each candidate is lowercased before the passwd lookup, so a name with uppercase
    letters is never a user. Without a match the `alias` user takes the whole local part
    as its extension. None means no alias user either: qmail-getpw exits QLX_NOALIAS (116).
    """
    for end in range(len(local), -1, -1):
        if end >= GETPW_USERLEN or (end < len(local) and local[end] != BREAK):
            continue
        name = case_lower(local[:end])
        entry = passwd.get(name)
        if entry is not None and _is_user(entry):
            whole = end == len(local)
            ext = "" if whole else local[end + 1 :]
            return Assignment(name, entry.uid, entry.gid, entry.home, "" if whole else "-", ext)
    alias = passwd.get(ALIAS_USER)
    if alias is None:
        return None
    return Assignment(ALIAS_USER, alias.uid, alias.gid, alias.home, "-", local)


def lookup_user(
    local: str, cdb: UsersCdb | None, passwd: Mapping[str, PasswdEntry]
) -> Assignment | None:
    """users/cdb (when there is one) first, then qmail-getpw; None is QLX_NOALIAS."""
    found = lookup_assign(cdb, local) if cdb is not None else None
    return found if found is not None else getpw(local, passwd)


def format_nughde(a: Assignment) -> bytes:
    """qmail-getpw's output on fd 1: six NUL-terminated fields, latin-1."""
    fields = (a.user, str(a.uid), str(a.gid), a.home, a.dash, a.ext)
    return b"".join(field.encode("latin-1") + b"\0" for field in fields)


def parse_nughde(data: bytes) -> Assignment:
    """qmail-lspawn's reading of qmail-getpw's output; anything else is a ProtocolError."""
    fields = data.split(b"\0")
    if len(fields) != 7 or fields[6] != b"":
        raise ProtocolError(f"qmail-getpw output is not six NUL-terminated fields: {data!r}")
    user, uid, gid, home, dash, ext = (f.decode("latin-1") for f in fields[:6])
    if not (uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
        raise ProtocolError(f"qmail-getpw output has a bad uid or gid: {data!r}")
    return Assignment(user, int(uid), int(gid), home, dash, ext)


def parse_passwd(text: str) -> dict[str, tuple[int, int, str]]:
    """passwd(5) lines `name:pw:uid:gid:gecos:home:shell` -> name: (uid, gid, home).

    Like getpwnam, the first line for a name wins; malformed lines are skipped.
    """
    accounts: dict[str, tuple[int, int, str]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 6 or not fields[0] or line.startswith("#"):
            continue
        uid, gid = fields[2], fields[3]
        if not (uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
            continue
        accounts.setdefault(fields[0], (int(uid), int(gid), fields[5]))
    return accounts
