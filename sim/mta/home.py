"""`qmailsim mta init`: lay out a qmail home as qmail's installer and config script would.

The layout is qmail's: `control/` (me, locals, rcpthosts, defaultdomain, plusdomain as
config-fast writes them), `queue/` from `sim.qmail.queue.QUEUE_LAYOUT` (with lock/trigger as
a FIFO), `alias/` with `.qmail-postmaster`, `.qmail-mailer-daemon` and `.qmail-root` delivering
to `alias/Maildir/`, and for each user a home `home/NAME` with `Maildir/{tmp,new,cur}`, mapped
in `users/assign`. `etc/passwd` lists the same accounts for qmail-getpw, which here reads that
file rather than the system's (the live MTA runs unprivileged). Owners cannot be set without
root, so every file belongs to the invoking user; modes are qmail's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def init_home(
    path: Path,
    me: str,
    locals_: Sequence[str] | None = None,
    rcpthosts: Sequence[str] | None = None,
    users: Sequence[str] = (),
) -> list[str]:
    """Create (or update) the qmail home at `path`; returns what it did, one line each."""
    me = check_name("domain", me)
    locals_ = [check_name("domain", d) for d in (locals_ or [me])]
    rcpthosts = [check_name("domain", d) for d in (rcpthosts or locals_)]
    users = [check_name("user name", u.lower()) for u in users]
    if path.exists() and not path.is_dir():
        raise HomeError(f"{path} exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not is_qmail_home(path):
        raise HomeError(f"{path} is not empty and not a qmail home; refusing to touch it")
    done = []
    path.mkdir(parents=True, exist_ok=True)
    home = path.resolve()
    done += _control(home, me, locals_, rcpthosts)
    done += _queue(home)
    done += _alias(home)
    done += _users(home, users)
    return done


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="latin-1")
    path.chmod(mode)


def _control(home: Path, me: str, locals_: list[str], rcpthosts: list[str]) -> list[str]:
    control = home / "control"
    control.mkdir(exist_ok=True)
    control.chmod(0o755)
    parts = me.split(".", 1)
    files = {
        "me": [me],
        "locals": locals_,
        "rcpthosts": rcpthosts,
        "defaultdomain": [parts[1] if len(parts) > 1 else me],
        "plusdomain": [parts[1] if len(parts) > 1 else me],
    }
    for name, lines in files.items():
        _write(control / name, "".join(line + "\n" for line in lines))
    return [f"control/{name}: {', '.join(lines)}" for name, lines in files.items()]


def _queue(home: Path) -> list[str]:
    made = 0
    for entry in QUEUE_LAYOUT:
        target = home / entry.path
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        elif entry.kind == "fifo":
            if not target.exists():
                os.mkfifo(target)
        elif not target.exists():
            target.write_bytes(b"\0" * entry.size)
        else:
            continue
        target.chmod(entry.mode)
        made += 1
    return [f"queue/: {len(QUEUE_LAYOUT)} entries in qmail's layout (split 23)"]


def _maildir(path: Path) -> None:
    """A Maildir and its home, with qmail's modes whatever the caller's umask."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        (path / sub).chmod(0o700)
    path.chmod(0o700)
    path.parent.chmod(0o755)  # a writable home would make qmail-local defer


def _alias(home: Path) -> list[str]:
    alias = home / "alias"
    alias.mkdir(exist_ok=True)
    _maildir(alias / "Maildir")
    alias.chmod(0o2755)
    for name in ALIASES:
        _write(alias / f".qmail-{name}", "./Maildir/\n", 0o644)
    return [f"alias/: .qmail-{', .qmail-'.join(ALIASES)} -> alias/Maildir/"]


def _users(home: Path, users: list[str]) -> list[str]:
    assign_file, passwd_file = home / "users" / "assign", home / "etc" / "passwd"
    entries = _existing_assign(assign_file)
    known = {e.user for e in entries}
    for name in users:
        if name in known:
            continue
        uid, user_home = user_uid(len(known)), str(home / "home" / name)
        known.add(name)
        _maildir(Path(user_home) / "Maildir")
        entries.append(AssignEntry(False, name, name, uid, USER_GID, user_home, "", ""))
        entries.append(AssignEntry(True, f"{name}-", name, uid, USER_GID, user_home, "-", ""))
    _write(assign_file, format_assign(entries))
    alias_home = home / "alias"
    passwd = [f"alias:x:{QMAIL_UIDS['alias']}:{QMAIL_GIDS['nofiles']}::{alias_home}:/bin/false"]
    passwd += [f"{e.user}:x:{e.uid}:{e.gid}::{e.home}:/bin/sh" for e in entries if not e.wildcard]
    _write(passwd_file, "".join(line + "\n" for line in passwd))
    names = sorted(known)
    return [f"users/assign: {', '.join(names) if names else '(no users)'}; etc/passwd: alias"]


def _existing_assign(path: Path) -> list[AssignEntry]:
    if not path.exists():
        return []
    return list(parse_assign(path.read_text(encoding="latin-1")))
