"""qmail's control files, read from their texts with qmail 1.03's defaults (qmail-control(5)).

Theory of operation: a program reads `/var/qmail/control/*` once at start; here the caller
hands `load_control` the *texts* (file name -> contents, absent files are absent keys) and
gets back one frozen `Control`. The reading rules are control.c's:

* a single-value file is its first line, with trailing spaces, tabs and the newline cut
  (a CR stays, as in qmail); a present but empty file gives "" (qmail does the same);
* "default: me" means the contents of `me` when the file is absent, else a literal word
  (`bouncehost`, `defaulthost`, ...) or nothing at all (`helohost`, `smtpgreeting`,
  `localiphost`: the program then refuses to run, that is its decision, not ours);
* a list file skips blank lines and lines starting with `#`; `locals` defaults to `me`;
* `virtualdomains` and `smtproutes` are constmaps: key up to the first `:`, lowercased,
  a later duplicate wins, a line without `:` is ignored;
* an integer file takes its leading digits. Where qmail silently keeps the default for a
  value with no leading digit, we raise `ControlFileError` naming the file and the line,
  so a typo is a clear error instead of a mystery. A concurrency above conf-spawn is capped.

Lists are kept as written; the judgements on them (rcpthosts, badmailfrom) live in
`sim.qmail.address`. Map keys are folded as constmap does, ASCII letters only. Unknown file
names in the mapping are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sim.qmail.constants import SPAWN, TCPSERVER_MAX_CONNECTIONS
from sim.qmail.errors import ControlFileError
from sim.qmail.text import b2s, case_lower

# Single-value files that default to `me`, with the literal used when `me` is absent too
# (None: no default, the program that needs it refuses to run).
ME_DEFAULTS: dict[str, str | None] = {
    "bouncehost": "bouncehost",
    "defaultdomain": "defaultdomain",
    "defaulthost": "defaulthost",
    "doublebouncehost": "doublebouncehost",
    "envnoathost": "envnoathost",
    "idhost": "idhost",
    "plusdomain": "plusdomain",
    "helohost": None,
    "smtpgreeting": None,
    "localiphost": None,
}
LITERAL_DEFAULTS: dict[str, str] = {"bouncefrom": "MAILER-DAEMON", "doublebounceto": "postmaster"}
INT_DEFAULTS: dict[str, int] = {
    "concurrencylocal": 10,
    "concurrencyremote": 20,
    "queuelifetime": 604800,
    "databytes": 0,
    "timeoutsmtpd": 1200,
    "timeoutremote": 1200,
    "timeoutconnect": 60,
}
CAPPED_AT_SPAWN = frozenset({"concurrencylocal", "concurrencyremote"})
LIST_FILES = ("locals", "rcpthosts", "morercpthosts", "percenthack", "badmailfrom", "qmqpservers")
MAP_FILES = ("virtualdomains", "smtproutes")
CONTROL_FILES: tuple[str, ...] = (
    "me",
    *ME_DEFAULTS,
    *LITERAL_DEFAULTS,
    *INT_DEFAULTS,
    *LIST_FILES,
    *MAP_FILES,
)
SMTP_PORT = 25


@dataclass(frozen=True, slots=True)
class SmtpRoute:
    """One smtproutes value: `relay[:port]`; relay "" means "use the MX records as usual"."""

    relay: str
    port: int = SMTP_PORT


@dataclass(frozen=True, slots=True)
class Control:
    """Every control file's value after qmail's defaults; build it with `load_control`."""

    me: str | None = None
    bouncefrom: str = "MAILER-DAEMON"
    bouncehost: str = "bouncehost"
    doublebounceto: str = "postmaster"
    doublebouncehost: str = "doublebouncehost"
    envnoathost: str = "envnoathost"
    defaultdomain: str = "defaultdomain"
    defaulthost: str = "defaulthost"
    plusdomain: str = "plusdomain"
    idhost: str = "idhost"
    helohost: str | None = None
    smtpgreeting: str | None = None
    localiphost: str | None = None
    concurrencylocal: int = 10
    concurrencyremote: int = 20
    queuelifetime: int = 604800
    databytes: int = 0
    timeoutsmtpd: int = 1200
    timeoutremote: int = 1200
    timeoutconnect: int = 60
    locals: tuple[str, ...] | None = None  # None: neither locals nor me (qmail-send refuses)
    rcpthosts: tuple[str, ...] | None = None  # None: file absent, every recipient accepted
    morercpthosts: tuple[str, ...] = ()
    percenthack: tuple[str, ...] = ()
    badmailfrom: tuple[str, ...] = ()
    qmqpservers: tuple[str, ...] = ()
    virtualdomains: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    smtproutes: Mapping[str, SmtpRoute] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def rcpthosts_present(self) -> bool:
        """False when control/rcpthosts is absent: qmail-smtpd then relays for anyone."""
        return self.rcpthosts is not None


def _text(value: str | bytes) -> str:
    return b2s(value) if isinstance(value, bytes) else value


def _lines(text: str) -> list[str]:
    """The file's lines without their newlines (a last line without one still counts)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def first_line(text: str) -> str:
    """control_readline: the first line, trailing spaces, tabs and newline stripped."""
    return text.split("\n", 1)[0].rstrip(" \t")


def incoming_limit(text: str | None) -> int:
    """tcpserver's -c from control/concurrencyincoming, as Life with qmail's run script reads
    it (not a qmail 1.03 control file): absent, or not a number >= 1, is tcpserver's 40."""
    digits = (text or "").split("\n", 1)[0].strip()
    if digits.isascii() and digits.isdigit() and int(digits) > 0:
        return int(digits)
    return TCPSERVER_MAX_CONNECTIONS


def list_lines(text: str) -> list[tuple[int, str]]:
    """control_readfile: (line number, line) for each line that is neither blank nor `#`."""
    stripped = ((n, line.rstrip(" \t")) for n, line in enumerate(_lines(text), 1))
    return [(n, line) for n, line in stripped if line and not line.startswith("#")]


def parse_int(name: str, text: str) -> int:
    """control_readint: the leading digits; a value with none is a clear error here."""
    line = first_line(text)
    digits = len(line) - len(line.lstrip("0123456789"))
    if not digits:
        raise ControlFileError(f"control/{name}", 1, f"not a number: {line!r}")
    value = int(line[:digits])
    return min(value, SPAWN) if name in CAPPED_AT_SPAWN else value


def parse_virtualdomains(text: str) -> dict[str, str]:
    """`key:prepend` lines; key lowercased, later duplicate wins, lines without `:` ignored."""
    table: dict[str, str] = {}
    for _, line in list_lines(text):
        key, colon, value = line.partition(":")
        if colon:
            table[case_lower(key)] = value
    return table


def parse_smtproute(value: str, line_number: int) -> SmtpRoute:
    """`relay[:port]`; a port that is not a number from 1 to 65535 is an error."""
    relay, colon, port = value.partition(":")
    if not colon:
        return SmtpRoute(relay)
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ControlFileError("control/smtproutes", line_number, f"bad port: {port!r}")
    return SmtpRoute(relay, int(port))


def parse_smtproutes(text: str) -> dict[str, SmtpRoute]:
    """`domain:relay[:port]` lines, read like virtualdomains."""
    table: dict[str, SmtpRoute] = {}
    for number, line in list_lines(text):
        key, colon, value = line.partition(":")
        if colon:
            table[case_lower(key)] = parse_smtproute(value, number)
    return table


def load_control(texts: Mapping[str, str | bytes]) -> Control:
    """Build a Control from file name -> contents; absent files take qmail's defaults."""
    files = {name: _text(value) for name, value in texts.items() if name in CONTROL_FILES}
    me = first_line(files["me"]) if "me" in files else None
    values: dict[str, object] = {"me": me}
    for name, literal in ME_DEFAULTS.items():
        fallback = me if me is not None else literal
        values[name] = first_line(files[name]) if name in files else fallback
    for name, literal in LITERAL_DEFAULTS.items():
        values[name] = first_line(files[name]) if name in files else literal
    for name, default in INT_DEFAULTS.items():
        values[name] = parse_int(name, files[name]) if name in files else default
    for name in LIST_FILES:
        present = name in files
        values[name] = tuple(line for _, line in list_lines(files[name])) if present else ()
    if "locals" not in files:
        values["locals"] = (me,) if me is not None else None
    if "rcpthosts" not in files:
        values["rcpthosts"] = None
    values["virtualdomains"] = MappingProxyType(
        parse_virtualdomains(files.get("virtualdomains", ""))
    )
    values["smtproutes"] = MappingProxyType(parse_smtproutes(files.get("smtproutes", "")))
    return Control(**values)  # type: ignore[arg-type]
