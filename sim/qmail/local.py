"""qmail-local's decisions, apart from .qmail files and the mailbox formats (qmail-local(8)).

Theory of operation. qmail-local is run by qmail-lspawn as the recipient user with the
message on fd 0 and one pipe on fd 1 and fd 2. In order it: parses its arguments
(`parse_args`), switches to the home directory and checks its mode (`check_home`), builds
the Delivered-To line and refuses a message that already carries it (`check_loop`), builds
the Return-Path and From_ lines (`header_lines`) and the environment for programs
(`program_env`), finds the .qmail file (`sim.qmail.dotqmail`), picks the envelope sender for
forwards (`forward_sender`), and then runs the instructions one by one
(`sim.qmail.dotqmail.LocalDelivery`); the first failure ends the run, success is reported
as `success_text`. The whole result is an `Outcome`:
an exit code (0, 100 permanent, 111 temporary) and the exact text qmail-local writes, which
qmail-lspawn turns into `K`, `D` or `Z`. The report texts are the `REPORTS` table.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.qmail.constants import CONF_PATRN
from sim.qmail.dates import mbox_date
from sim.qmail.errors import BadInput
from sim.qmail.rfc822 import quote_address
from sim.qmail.text import s2b

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one step or the whole run ends with: qmail-local's exit code and exact output.

    `stop` is set only for a program that exited 99: success, skip the following lines.
    """

    code: int
    text: str = ""
    stop: bool = False

    @property
    def output(self) -> bytes:
        """The bytes qmail-local writes to its pipe (stdout and stderr are the same pipe)."""
        return s2b(self.text)


SUCCESS = Outcome(0)
STOP = Outcome(0, stop=True)

_USAGE_ARGS = "user homedir local dash ext domain sender aliasempty"
# qmail-local's own texts (the reference's §6.2): key -> (exit code, text).
REPORTS: dict[str, tuple[int, str]] = {
    "nomem": (111, "Out of memory. (#4.3.0)"),
    "rewind": (111, "Unable to rewind message. (#4.3.0)"),
    "child_crashed": (111, "Aack, child crashed. (#4.3.0)"),
    "fork": (111, "Unable to fork: {err}. (#4.3.0)"),
    "read": (111, "Unable to read message: {err}. (#4.3.0)"),
    "slow_lock": (111, "File has been locked for 30 seconds straight. (#4.3.0)"),
    "dotqmail_open": (111, "Unable to open {file}: {err}. (#4.3.0)"),
    "switch_home": (111, "Unable to switch to {home}: {err}. (#4.3.0)"),
    "stat_home": (111, "Unable to stat home directory: {err}. (#4.3.0)"),
    "home_writable": (111, "Uh-oh: home directory is writable. (#4.7.0)"),
    "home_sticky": (111, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)"),
    "dotqmail_writable": (111, "Uh-oh: .qmail file is writable. (#4.7.0)"),
    "blank_first_line": (111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)"),
    "xbit_file": (111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"),
    "xbit_prog": (111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"),
    "mbox_open": (111, "Unable to open {file}: {err}. (#4.2.1)"),
    "mbox_write": (111, "Unable to write {file}: {err}. (#4.3.0)"),
    "maildir_chdir": (111, "Unable to chdir to maildir. (#4.2.1)"),
    "maildir_timeout": (111, "Timeout on maildir delivery. (#4.3.0)"),
    "maildir_read": (111, "Unable to read message. (#4.3.0)"),
    "maildir_temporary": (111, "Temporary error on maildir delivery. (#4.3.0)"),
    "run_sh": (111, "Unable to run /bin/sh: {err}. (#4.3.0)"),
    "forward_temporary": (111, "Unable to forward message: {qq}."),
    "forward_permanent": (100, "Unable to forward message: {qq}."),
    "no_mailbox": (100, "Sorry, no mailbox here by that name. (#5.1.1)"),
    "looping": (100, "This message is looping: it already has my Delivered-To line. (#5.4.6)"),
    "usage": (100, f"qmail-local: usage: qmail-local [ -nN ] {_USAGE_ARGS}"),
}
STICKY_WARNING = "Warning: home directory is sticky."  # -n only; delivery goes on


def report(key: str, **fields: str) -> Outcome:
    """The `REPORTS` entry as an Outcome, placeholders filled, newline-terminated as strerr does."""
    code, template = REPORTS[key]
    return Outcome(code, template.format(**fields) + "\n")


class Refused(BadInput):
    """qmail-local refuses its input (usage, a bad .qmail file); `outcome` is what it says."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        super().__init__(outcome.text.rstrip("\n"))


def _errnos(names: str) -> list[int]:
    return [getattr(_errno, n) for n in names.split() if hasattr(_errno, n)]


# error_temp(): errnos that mean "try again later".
TEMPORARY_ERRNOS = frozenset(
    _errnos(
        "EINTR ENOMEM ETXTBSY EIO ETIMEDOUT EWOULDBLOCK EAGAIN EDEADLK EBUSY ENFILE EMFILE EFBIG"
        " ENOSPC ENETDOWN ENETUNREACH ENETRESET ECONNABORTED ECONNRESET ENOBUFS ETOOMANYREFS"
        " ECONNREFUSED EHOSTDOWN EHOSTUNREACH EPROCLIM EUSERS EDQUOT ESTALE ENOLCK"
    )
)

# error_str(): qmail's own words for the errnos a delivery meets (first entry wins on aliases).
_ERROR_WORDS = (
    ("EINTR", "interrupted system call"), ("ENOMEM", "out of memory"),
    ("ENOENT", "file does not exist"), ("ETXTBSY", "text busy"), ("EIO", "input/output error"),
    ("EEXIST", "file already exists"), ("ETIMEDOUT", "timed out"),
    ("EAGAIN", "temporary failure"), ("EPIPE", "broken pipe"), ("EPERM", "permission denied"),
    ("EACCES", "access denied"), ("EBADF", "file descriptor not open"),
    ("ECHILD", "no child processes"), ("EDEADLK", "operation would cause deadlock"),
    ("EBUSY", "device busy"), ("EXDEV", "cross-device link"), ("ENOTDIR", "not a directory"),
    ("EISDIR", "is a directory"), ("EINVAL", "invalid argument"),
    ("ENFILE", "system cannot open more files"), ("EMFILE", "process cannot open more files"),
    ("EFBIG", "file too big"), ("ENOSPC", "out of disk space"),
    ("ESPIPE", "unseekable descriptor"), ("EROFS", "read-only file system"),
    ("EMLINK", "too many links"), ("ELOOP", "symbolic link loop"),
    ("ENAMETOOLONG", "file name too long"), ("ENOTEMPTY", "directory not empty"),
    ("EDQUOT", "disk quota exceeded"), ("ESTALE", "stale NFS file handle"),
    ("ENOLCK", "no locks available"), ("ENOSYS", "system call not available"),
)  # fmt: skip
ERROR_STR: dict[int, str] = {}
for _name, _words in _ERROR_WORDS:
    if hasattr(_errno, _name):
        ERROR_STR.setdefault(getattr(_errno, _name), _words)


def is_temporary_errno(number: int | None) -> bool:
    """error_temp: True when the failed call may well succeed on a later attempt."""
    return number in TEMPORARY_ERRNOS


def error_str(number: int | None) -> str:
    """error_str: qmail's words for an errno, which go into `<err>` in the reports."""
    return ERROR_STR.get(number or 0, "unknown error")


@dataclass(frozen=True, slots=True)
class Invocation:
    """qmail-local's arguments (the last one is called aliasempty in its usage text)."""

    user: str
    homedir: str
    local: str
    dash: str
    ext: str
    domain: str
    sender: str
    defaultdelivery: str
    doit: bool = True  # -n (doit False) prints the instructions instead of delivering


def parse_args(argv: Sequence[str]) -> Invocation:
    """Parse argv (argv[0] is the program name) as qmail-local's getopt does; Refused on misuse."""
    args, doit = list(argv[1:]), True
    while args and args[0].startswith("-") and args[0] != "-":
        option = args.pop(0)
        if option == "--":
            break
        for letter in option[1:]:
            if letter not in "nN":
                raise Refused(report("usage"))
            doit = letter == "N"
    if len(args) != 8 or not args[1].startswith("/"):
        raise Refused(report("usage"))
    return Invocation(*args, doit=doit)


def check_home(mode: int, *, doit: bool = True) -> Outcome | None:
    """checkhome: refuse a world-writable home; a sticky home means "being edited" (temporary)."""
    if mode & CONF_PATRN:
        return report("home_writable")
    if mode & 0o1000 and doit:
        return report("home_sticky")
    return None


@dataclass(frozen=True, slots=True)
class HeaderLines:
    """The lines qmail-local prepends (newline-terminated), exported as DTLINE, RPLINE, UFLINE."""

    dtline: str
    rpline: str
    ufline: str


def delivered_to_line(local: str, domain: str) -> str:
    """`Delivered-To: local@domain` + newline; newlines inside become `_`."""
    return f"Delivered-To: {local}@{domain}".replace("\n", "_") + "\n"


def return_path_line(sender: str) -> str:
    """`Return-Path: <sender>` with the sender RFC 822-quoted; `<>` for the empty sender."""
    return f"Return-Path: <{quote_address(sender)}".replace("\n", "_") + ">\n"


_UFLINE_BLANKS = str.maketrans(" \t\n", "---")


def from_line(sender: str, t: float) -> str:
    """The mbox From_ line: blanks in the sender become `-`, the bounce sender is MAILER-DAEMON."""
    who = sender.translate(_UFLINE_BLANKS) if sender else "MAILER-DAEMON"
    return f"From {who} {mbox_date(t)}\n"


def header_lines(local: str, domain: str, sender: str, t: float) -> HeaderLines:
    """All three lines for one run; `t` is qmail-local's start time (for the From_ date)."""
    return HeaderLines(
        delivered_to_line(local, domain), return_path_line(sender), from_line(sender, t)
    )


def check_loop(message: bytes, dtline: str) -> Outcome | None:
    """bouncexf: a header line equal to our own Delivered-To line means a mail loop (permanent).

    Only complete lines before the first empty line are looked at, as qmail does.
    """
    mine, start = s2b(dtline), 0
    while (end := message.find(b"\n", start)) >= 0 and end > start:
        if message[start : end + 1] == mine:
            return report("looping")
        start = end + 1
    return None


def _host_prefixes(domain: str) -> list[str]:
    """HOST2, HOST3, HOST4: the domain cut before its last, 2nd-last and 3rd-last dot."""
    prefixes, cut = [], len(domain)
    for _ in range(3):
        dot = domain.rfind(".", 0, cut)
        cut = dot if dot >= 0 else cut
        prefixes.append(domain[:cut])
    return prefixes


def _ext_suffixes(ext: str) -> list[str]:
    """EXT2, EXT3, EXT4: what follows the 1st, 2nd and 3rd `-` of ext (empty when none)."""
    suffixes, rest = [], ext
    for _ in range(3):
        dash = rest.find("-")
        rest = rest[dash + 1 :] if dash >= 0 else ""
        suffixes.append(rest)
    return suffixes


def program_env(
    inv: Invocation, lines: HeaderLines, newsender: str, default: str | None
) -> dict[str, str]:
    """The variables qmail-local sets for programs (qmail-command(8)), on top of its inherited ones.

    DEFAULT is present only when a `default` file matched. Values are not quoted.
    """
    env = {
        "HOST": inv.domain,
        "HOME": inv.homedir,
        "USER": inv.user,
        "LOCAL": inv.local,
        "RECIPIENT": f"{inv.local}@{inv.domain}",
        "DTLINE": lines.dtline,
        "SENDER": inv.sender,
        "RPLINE": lines.rpline,
        "UFLINE": lines.ufline,
        "EXT": inv.ext,
        "NEWSENDER": newsender,
    }
    env.update(zip(("EXT2", "EXT3", "EXT4"), _ext_suffixes(inv.ext), strict=True))
    env.update(zip(("HOST2", "HOST3", "HOST4"), _host_prefixes(inv.domain), strict=True))
    if default is not None:
        env["DEFAULT"] = default
    return env


def needs_owner_check(sender: str) -> bool:
    """Only a real sender (not `""`, not the double-bounce `#@[]`) can be replaced by an owner."""
    return sender not in ("", "#@[]")


def forward_sender(sender: str, local: str, domain: str, owner: bool, owner_default: bool) -> str:
    """NEWSENDER: `local-owner@domain` if `.qmail…-owner` exists, VERP form with `-owner-default`.

    `owner` / `owner_default` say whether those files exist (see `dotqmail.owner_files`).
    """
    if not needs_owner_check(sender) or not owner:
        return sender
    if owner_default:
        return f"{local}-owner-@{domain}-@[]"
    return f"{local}-owner@{domain}"


def forward_message(dtline: str, message: bytes) -> bytes:
    """What a forward injects: the Delivered-To line, then the message unchanged."""
    return s2b(dtline) + message


def forward_outcome(status: str) -> Outcome:
    """The injection's result (qmail_close: "" or a `D…`/`Z…` text) as a step outcome."""
    if not status:
        return SUCCESS
    return report("forward_permanent" if status[0] == "D" else "forward_temporary", qq=status[1:])


def success_text(files: int, forwards: int, programs: int, qp: int = 0) -> str:
    """`did f+fw+p` newline, plus `qp <pid>` newline when a forward was injected."""
    text = f"did {files}+{forwards}+{programs}\n"
    return text + (f"qp {qp}\n" if qp else "")
