"""`qmailsim mta init`: lay out a qmail home as qmail's installer and config script would.

The layout is qmail's: `control/` (me, locals, rcpthosts, defaultdomain, plusdomain as
config-fast writes them), `queue/` from `sim.qmail.queue.QUEUE_LAYOUT` (with lock/trigger as
a FIFO), `alias/` with `.qmail-postmaster`, `.qmail-mailer-daemon` and `.qmail-root` delivering
to `alias/Maildir/`, and for each user a home `home/NAME` with `Maildir/{tmp,new,cur}`, mapped
in `users/assign`. `etc/passwd` lists the same accounts for qmail-getpw, which here reads that
file rather than the system's (the live MTA runs unprivileged). Owners cannot be set without
root, so every file belongs to the invoking user; modes are qmail's.

`layout` describes all of it as data, so the live MTA (`init_home`, on disk) and the model
(an in-memory filesystem) build the very same home. Running `init_home` again on a home is
how a user is added: it never rewrites what exists (the administrator may have edited any
of it, and the MTA may be running), it only adds what is missing: a new user's lines in
users/assign, etc/passwd and etc/pop3passwd, and a home with a Maildir.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.qmail.configfast import default_domain, plus_domain
from sim.qmail.constants import QMAIL_GIDS, QMAIL_UIDS
from sim.qmail.errors import BadInput
from sim.qmail.queue import QUEUE_LAYOUT
from sim.qmail.users import AssignEntry, format_assign, parse_assign

USER_UID_BASE = 1001  # the uids the trace shows for the mail users, in --user order
USER_GID = 100  # "users"
ALIASES = ("postmaster", "mailer-daemon", "root")
MARKERS = ("control/me", "queue/mess")  # what makes a directory a qmail home
ASSIGN, PASSWD, POP3PASSWD = "users/assign", "etc/passwd", "etc/pop3passwd"
ASSIGN_END = "."  # the line that ends users/assign


class HomeError(BadInput):
    """The directory cannot become a qmail home (not empty and not one already)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One thing of a qmail home: a directory, a FIFO or a file, relative to the home."""

    path: str
    kind: str  # "dir", "fifo" or "file"
    mode: int
    data: bytes = b""


def is_qmail_home(path: Path) -> bool:
    """True if `path` was laid out by `init_home` (or looks like a qmail home)."""
    return all((path / marker).exists() for marker in MARKERS)


def check_name(kind: str, value: str) -> str:
    """Refuse names that would break a control file or a path: qmail's files are line-based;
    a domain has no empty label."""
    if not value or any(c in value for c in "\n\r\0:/ "):
        raise HomeError(f"bad {kind} {value!r}: no spaces, colons, slashes or newlines")
    if value.startswith("."):
        raise HomeError(f"bad {kind} {value!r}: it starts with a dot")
    if kind == "domain" and "" in value.removesuffix(".").split("."):
        raise HomeError(f"bad {kind} {value!r}: it has an empty label")
    return value


def check_rcpthost(value: str) -> str:
    """An rcpthosts line: a domain, or `.domain` for every domain under it (qmail-smtpd)."""
    check_name("domain", value.removeprefix("."))
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


def user_names(users: Sequence[str]) -> list[str]:
    """The --user names as qmail's files hold them: checked, lowercased, each once; none of
    qmail's own accounts (alias, qmaild, ...), which etc/passwd already holds."""
    names = list(dict.fromkeys(check_name("user name", u.lower()) for u in users))
    for name in names:
        if name in QMAIL_UIDS:
            raise HomeError(f"bad user name {name!r}: it is one of qmail's own accounts")
    return names


def new_assign(
    root: str, users: Sequence[str], existing: Sequence[AssignEntry]
) -> list[AssignEntry]:
    """users/assign lines for the users not in `existing`: `=name` and `+name-` for each,
    with the first uids from USER_UID_BASE that no entry uses yet."""
    known = {e.user for e in existing if not e.wildcard}
    used = {e.uid for e in existing}
    free = (uid for uid in itertools.count(USER_UID_BASE) if uid not in used)
    added: list[AssignEntry] = []
    for name in user_names(users):
        if name in known:
            continue
        uid, home = next(free), f"{root}/home/{name}"
        known.add(name)
        added.append(AssignEntry(False, name, name, uid, USER_GID, home, "", ""))
        added.append(AssignEntry(True, f"{name}-", name, uid, USER_GID, home, "-", ""))
    return added


def passwd_lines(root: str, assign: Iterable[AssignEntry]) -> list[str]:
    """etc/passwd for qmail-getpw: the alias user, then every user of users/assign."""
    alias = f"alias:x:{QMAIL_UIDS['alias']}:{QMAIL_GIDS['nofiles']}::{root}/alias:/bin/false"
    users = [f"{e.user}:x:{e.uid}:{e.gid}::{e.home}:/bin/sh" for e in assign if not e.wildcard]
    return [alias, *users]


def control_files(
    me: str, locals_: Sequence[str] | None, rcpthosts: Sequence[str] | None
) -> list[Entry]:
    """control/ as config-fast writes it: me, locals, rcpthosts, defaultdomain, plusdomain."""
    me = check_name("domain", me)
    locals_ = [check_name("domain", d) for d in (locals_ or [me])]
    rcpthosts = [check_rcpthost(d) for d in (rcpthosts or locals_)]
    return [
        Entry(f"control/{name}", "file", 0o644, _lines(lines))
        for name, lines in (
            ("me", [me]),
            ("locals", locals_),
            ("rcpthosts", rcpthosts),
            ("defaultdomain", [default_domain(me)]),
            ("plusdomain", [plus_domain(me)]),
        )
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
    entries = [Entry("control", "dir", 0o755), *control_files(me, locals_, rcpthosts)]
    entries += [Entry(q.path, q.kind, q.mode, b"\0" * q.size) for q in QUEUE_LAYOUT]
    entries += [Entry("alias", "dir", 0o2755), *_maildir("alias")[1:]]
    entries += [Entry(f"alias/.qmail-{n}", "file", 0o644, b"./Maildir/\n") for n in ALIASES]
    entries.append(Entry("home", "dir", 0o755))
    for name in user_names(users):
        entries += _maildir(f"home/{name}")
    assign = [*existing, *new_assign(root, users, existing)]
    return [
        *entries,
        Entry("users", "dir", 0o755),
        Entry(ASSIGN, "file", 0o644, format_assign(assign).encode("latin-1")),
        Entry("etc", "dir", 0o755),
        Entry(PASSWD, "file", 0o644, _lines(passwd_lines(root, assign))),
    ]


# -- on disk --------------------------------------------------------------------------------


def init_home(
    path: Path,
    me: str,
    locals_: Sequence[str] | None = None,
    rcpthosts: Sequence[str] | None = None,
    users: Sequence[str] = (),
) -> list[str]:
    """Create the qmail home at `path`, or add what is missing to it; what it did, a line each.

    An existing home keeps every file it has: init adds new users and missing pieces only.
    A different `me` is refused rather than written under an MTA that may be running.
    """
    fresh = _check_target(path, check_name("domain", me))
    existing = _read_assign(path)
    root = str(path.resolve())
    entries = layout(root, me, locals_, rcpthosts, users, existing)
    path.mkdir(parents=True, exist_ok=True)
    made = {entry.path for entry in entries if _make(path, entry)}
    added = new_assign(root, users, existing)
    if ASSIGN not in made:
        _add_assign_lines(path / ASSIGN, added)
    assign = [*existing, *added]
    passwd = _add_missing_users(path / PASSWD, passwd_lines(root, assign), 0o644)
    pop3 = _pop3_passwords(path, assign)
    if fresh:
        return summary(entries)
    kept, new = (
        list(dict.fromkeys(e.user for e in g if not e.wildcard)) for g in (existing, added)
    )
    report = Reinit(made, kept, new, passwd, pop3)
    asked = {"control/locals": locals_, "control/rcpthosts": rcpthosts}
    return report.lines(path, entries, asked)


def _check_target(path: Path, me: str) -> bool:
    """True for a new home; refuse a path that is not one, or a home of another `me`."""
    if path.exists() and not path.is_dir():
        raise HomeError(f"{path} exists and is not a directory")
    if not path.exists() or not any(path.iterdir()):
        return True
    if not is_qmail_home(path):
        raise HomeError(f"{path} is not empty and not a qmail home; refusing to touch it")
    old = _control_me(path)
    if old.lower() != me.lower():  # domain names are not case-sensitive
        raise HomeError(
            f"{path} is the qmail home of {old}, not {me}: refusing to change control/me "
            f"(to add users, run init again with --me {old})"
        )
    return False


def _control_me(path: Path) -> str:
    """control/me as qmail reads it: the first line, trailing spaces and tabs stripped."""
    try:
        text = (path / "control" / "me").read_text(encoding="latin-1")
    except OSError as exc:
        raise HomeError(f"unable to read {path}/control/me: {exc.strerror}") from None
    return text.split("\n", 1)[0].rstrip(" \t")


def _read_assign(path: Path) -> tuple[AssignEntry, ...]:
    """The users of an existing home (none for a new one)."""
    assign = path / ASSIGN
    if not assign.exists():
        return ()
    return parse_assign(assign.read_text(encoding="latin-1"))


def _make(home: Path, entry: Entry) -> bool:
    """Create `entry` with qmail's mode if it is missing; True if it was made, False if kept."""
    target = home / entry.path
    if target.exists() or target.is_symlink():
        return False
    if entry.kind == "dir":
        target.mkdir()
    elif entry.kind == "fifo":
        os.mkfifo(target)
    else:
        target.write_bytes(entry.data)
    target.chmod(entry.mode)
    return True


def _add_assign_lines(assign: Path, added: Sequence[AssignEntry]) -> None:
    """Insert the new users' lines before users/assign's final `.`, leaving the rest as it is."""
    if not added:
        return
    lines = assign.read_text(encoding="latin-1").split("\n")
    end = next(i for i, line in enumerate(lines) if line.startswith(ASSIGN_END))
    new = format_assign(added).split("\n")[:-2]  # without the `.` line and its newline
    assign.write_text("\n".join(lines[:end] + new + lines[end:]), encoding="latin-1")


def _add_missing_users(target: Path, lines: Sequence[str], mode: int) -> list[str]:
    """Append the `name:...` lines whose name the file lacks; returns the names added.

    A file it creates gets `mode` from the start (etc/pop3passwd holds passwords).
    """
    created = not target.exists()
    text = "" if created else target.read_text(encoding="latin-1")
    have = {line.split(":", 1)[0] for line in text.split("\n") if line}
    missing = [line for line in lines if line.split(":", 1)[0] not in have]
    if missing:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
        with os.fdopen(fd, "w", encoding="latin-1") as out:
            out.write("\n" if text and not text.endswith("\n") else "")
            out.write("".join(line + "\n" for line in missing))
        if created:
            target.chmod(mode)  # whatever the umask
    return [line.split(":", 1)[0] for line in missing]


def _pop3_passwords(path: Path, assign: Sequence[AssignEntry]) -> list[str]:
    """etc/pop3passwd for checkpassword: a random password for each user that has none."""
    lines = [
        f"{u.user}:{secrets.token_urlsafe(9)}:{u.uid}:{u.gid}:{u.home}"
        for u in assign
        if not u.wildcard
    ]
    return _add_missing_users(path / POP3PASSWD, lines, 0o600)


# -- what init says -------------------------------------------------------------------------


def summary(entries: Sequence[Entry]) -> list[str]:
    """What `mta init` prints for a new home: the control files, the queue, aliases, users."""
    files = {e.path: e.data.decode("latin-1") for e in entries if e.kind == "file"}
    out = [
        f"{path}: {', '.join(files[path].split())}" for path in files if path.startswith("control/")
    ]
    out.append(f"queue/: {len(QUEUE_LAYOUT)} entries in qmail's layout (split 23)")
    out.append(f"alias/: .qmail-{', .qmail-'.join(ALIASES)} -> alias/Maildir/")
    users = [e.user for e in parse_assign(files[ASSIGN]) if not e.wildcard]
    out.append(f"users/assign: {', '.join(users) if users else '(no users)'}; etc/passwd: alias")
    if users:
        out.append(f"etc/pop3passwd: a POP3 password for {', '.join(users)} (mode 600)")
    return out


@dataclass(frozen=True, slots=True)
class Reinit:
    """What init did to an existing home: the entries it made, the users it found and added."""

    made: set[str]
    kept_users: list[str]
    added_users: list[str]
    passwd_added: list[str]  # the names etc/passwd got
    pop3_added: list[str]  # the names etc/pop3passwd got

    def lines(
        self, path: Path, entries: Sequence[Entry], asked: dict[str, Sequence[str] | None]
    ) -> list[str]:
        """One line per file init manages, then the queue, the homes and the users."""
        files = [
            e for e in entries if e.kind == "file" and e.path.startswith(("control/", "alias/"))
        ]
        out = [f"{e.path}: {self._file(path, e, asked.get(e.path))}" for e in files]
        queue = [e for e in entries if e.path.startswith("queue/") and e.path in self.made]
        out.append(f"queue/: kept; added {len(queue)} missing entries" if queue else "queue/: kept")
        out += [self._home(e.path, entries) for e in entries if _is_user_home(e.path)]
        users = _listed(("kept", self.kept_users), ("added", self.added_users))
        out.append(f"{ASSIGN}: {users or '(no users)'}")
        out.append(f"{PASSWD}: {_listed(('added', self.passwd_added)) or 'kept'}")
        pop3 = _listed(("added a password for", self.pop3_added))
        out.append(f"{POP3PASSWD}: {pop3 + ' (mode 600)' if pop3 else 'kept'}")
        return out

    def _file(self, path: Path, entry: Entry, asked: Sequence[str] | None) -> str:
        """`added`, `kept`, or kept with the flag it did not apply."""
        if entry.path in self.made:
            return "added"
        if asked and (path / entry.path).read_bytes() != entry.data:
            return f"kept; --{entry.path.removeprefix('control/')} not applied (edit the file)"
        return "kept"

    def _home(self, home: str, entries: Sequence[Entry]) -> str:
        """A --user's home: made with its Maildir, kept, or kept with missing parts added."""
        if home in self.made:
            return f"{home}/: added, with a Maildir"
        parts = [e.path for e in entries if e.path.startswith(f"{home}/") and e.path in self.made]
        return f"{home}/: kept; added {', '.join(parts)}" if parts else f"{home}/: kept"


def _is_user_home(path: str) -> bool:
    return path.startswith("home/") and path.count("/") == 1


def _listed(*groups: tuple[str, Sequence[str]]) -> str:
    """`(("kept", [a]), ("added", [b, c]))` -> "kept a; added b, c"; empty groups left out."""
    return "; ".join(f"{word} {', '.join(names)}" for word, names in groups if names)
