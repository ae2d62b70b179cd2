"""`qmailsim mta init`: lay out a qmail home as qmail's installer and config script would.

The layout is qmail's: `control/` (me, locals, rcpthosts, defaultdomain, plusdomain as
config-fast writes them), `queue/` from `sim.qmail.queue.QUEUE_LAYOUT` (with lock/trigger as
a FIFO), `alias/` with `.qmail-postmaster`, `.qmail-mailer-daemon` and `.qmail-root` delivering
to `alias/Maildir/`, and for each user a home `home/NAME` with `Maildir/{tmp,new,cur}`, mapped
in `users/assign`. `etc/passwd` lists the same accounts for qmail-getpw, which here reads that
file rather than the system's (the live MTA runs unprivileged). Owners cannot be set without
root, so every file belongs to the invoking user; modes are qmail's.

`layout` describes all of it as data, so the live MTA (`init_home`, on disk) and the model
(an in-memory filesystem) build the very same home.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.qmail.constants import QMAIL_GIDS, QMAIL_UIDS
from sim.qmail.errors import BadInput
from sim.qmail.queue import QUEUE_LAYOUT
from sim.qmail.users import AssignEntry, format_assign, parse_assign

USER_UID_BASE = 1001  # the uids the trace shows for the mail users, in --user order
USER_GID = 100  # "users"
ALIASES = ("postmaster", "mailer-daemon", "root")
MARKERS = ("control/me", "queue/mess")  # what makes a directory a qmail home


class HomeError(BadInput):
    """The directory cannot become a qmail home (not empty and not one already)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing of a qmail home: a directory, a FIFO or a file, relative to the home."""

    path: str
    kind: str  # "dir", "fifo" or "file"
    mode: int
    data: bytes = b""
    replace: bool = True  # a file: rewrite it on a second init (False: keep what is there)


def is_qmail_home(path: Path) -> bool:
    """True if `path` was laid out by `init_home` (or looks like a qmail home)."""
    return all((path / marker).exists() for marker in MARKERS)


def check_name(kind: str, value: str) -> str:
    """Refuse names that would break a control file or a path: qmail's files are line-based."""
    if not value or any(c in value for c in "\n\r\0:/ ") or value.startswith("."):
        raise HomeError(f"bad {kind} {value!r}: no spaces, colons, slashes or newlines")
    return value


def user_uid(index: int) -> int:
    """The uid of the `index`-th mail user (0-based)."""
    return USER_UID_BASE + index


def _lines(lines: Sequence[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("latin-1")


def _maildir(home: str) -> list[Entry]:
    """A home with a Maildir; the home is 755 whatever the umask (qmail-local refuses 777)."""
    return [
        Entry(home, "dir", 0o755),
        Entry(f"{home}/Maildir", "dir", 0o700),
        *(Entry(f"{home}/Maildir/{sub}", "dir", 0o700) for sub in ("tmp", "new", "cur")),
    ]


def layout(
    root: str,
    me: str,
    locals_: Sequence[str] | None = None,
    rcpthosts: Sequence[str] | None = None,
    users: Sequence[str] = (),
    existing: Sequence[AssignEntry] = (),
) -> list[Entry]:
    """Every entry of a qmail home rooted at `root` (an absolute path, for users/assign)."""
    me = check_name("domain", me)
    locals_ = [check_name("domain", d) for d in (locals_ or [me])]
    rcpthosts = [check_name("domain", d) for d in (rcpthosts or locals_)]
    parent = me.split(".", 1)[1] if "." in me else me
    entries = [Entry("control", "dir", 0o755)]
    for name, lines in (
        ("me", [me]),
        ("locals", locals_),
        ("rcpthosts", rcpthosts),
        ("defaultdomain", [parent]),
        ("plusdomain", [parent]),
    ):
        entries.append(Entry(f"control/{name}", "file", 0o644, _lines(lines)))
    for q in QUEUE_LAYOUT:
        entries.append(Entry(q.path, q.kind, q.mode, b"\0" * q.size, replace=False))
    entries += [Entry("alias", "dir", 0o2755), *_maildir("alias")[1:]]
    entries += [Entry(f"alias/.qmail-{n}", "file", 0o644, b"./Maildir/\n") for n in ALIASES]
    assign = list(existing)
    known = [e.user for e in assign if not e.wildcard]
    entries.append(Entry("home", "dir", 0o755))
    for name in (check_name("user name", u.lower()) for u in users):
        entries += _maildir(f"home/{name}")
        if name in known:
            continue
        uid, home = user_uid(len(known)), f"{root}/home/{name}"
        known.append(name)
        assign.append(AssignEntry(False, name, name, uid, USER_GID, home, "", ""))
        assign.append(AssignEntry(True, f"{name}-", name, uid, USER_GID, home, "-", ""))
    alias_line = f"alias:x:{QMAIL_UIDS['alias']}:{QMAIL_GIDS['nofiles']}::{root}/alias:/bin/false"
    passwd = [alias_line] + [
        f"{e.user}:x:{e.uid}:{e.gid}::{e.home}:/bin/sh" for e in assign if not e.wildcard
    ]
    entries += [
        Entry("users", "dir", 0o755),
        Entry("users/assign", "file", 0o644, format_assign(assign).encode("latin-1")),
        Entry("etc", "dir", 0o755),
        Entry("etc/passwd", "file", 0o644, _lines(passwd)),
    ]
    return entries


def summary(entries: Sequence[Entry]) -> list[str]:
    """What `mta init` prints: the control files, the queue, aliases and users."""
    files = {e.path: e.data.decode("latin-1") for e in entries if e.kind == "file"}
    out = [
        f"{path}: {', '.join(files[path].split())}" for path in files if path.startswith("control/")
    ]
    out.append(f"queue/: {len(QUEUE_LAYOUT)} entries in qmail's layout (split 23)")
    out.append(f"alias/: .qmail-{', .qmail-'.join(ALIASES)} -> alias/Maildir/")
    users = [e.user for e in parse_assign(files["users/assign"]) if not e.wildcard]
    out.append(f"users/assign: {', '.join(users) if users else '(no users)'}; etc/passwd: alias")
    if users:
        out.append(f"etc/pop3passwd: a POP3 password for {', '.join(users)} (mode 600)")
    return out


def init_home(
    path: Path,
    me: str,
    locals_: Sequence[str] | None = None,
    rcpthosts: Sequence[str] | None = None,
    users: Sequence[str] = (),
) -> list[str]:
    """Create (or update) the qmail home at `path`; returns what it did, one line each."""
    if path.exists() and not path.is_dir():
        raise HomeError(f"{path} exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not is_qmail_home(path):
        raise HomeError(f"{path} is not empty and not a qmail home; refusing to touch it")
    assign = path / "users" / "assign"
    existing = parse_assign(assign.read_text(encoding="latin-1")) if assign.exists() else ()
    entries = layout(str(path.resolve()), me, locals_, rcpthosts, users, existing)
    path.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        target = path / entry.path
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        elif entry.kind == "fifo":
            if not target.exists():
                os.mkfifo(target)
        elif entry.replace or not target.exists():
            target.write_bytes(entry.data)
        target.chmod(entry.mode)
    _pop3_passwords(path, entries)
    return summary(entries)


POP3PASSWD = "etc/pop3passwd"


def _pop3_passwords(path: Path, entries: Sequence[Entry]) -> None:
    """etc/pop3passwd for checkpassword: a random password per user, kept across inits."""
    files = {e.path: e.data.decode("latin-1") for e in entries if e.kind == "file"}
    users = [e for e in parse_assign(files["users/assign"]) if not e.wildcard]
    target = path / POP3PASSWD
    old = {}
    if target.exists():
        for line in target.read_text(encoding="latin-1").splitlines():
            fields = line.split(":")
            if len(fields) == 5:
                old[fields[0]] = fields[1]
    lines = [
        f"{u.user}:{old.get(u.user) or secrets.token_urlsafe(9)}:{u.uid}:{u.gid}:{u.home}"
        for u in users
    ]
    target.write_text("".join(line + "\n" for line in lines), encoding="latin-1")
    target.chmod(0o600)
