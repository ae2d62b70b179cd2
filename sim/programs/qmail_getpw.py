"""qmail-getpw: which account owns a local part (qmail-getpw.c), run as qmailp by qmail-lspawn.

`qmail-getpw local` prints six NUL-terminated fields, `user uid gid home dash ext`, on fd 1.
The rule is `sim.qmail.users.getpw`: the whole local part, then each prefix ending before a
`-`, longest first, names a user if it is a non-root account that owns its existing home;
otherwise the `alias` user takes the whole local part as its extension.

Documented difference: the accounts come from `etc/passwd` under the qmail home (passwd(5)
format), not from the system's getpwnam, because the live MTA runs unprivileged and must not
deliver to real accounts. For the same reason no home can be chown'ed to its account: a home
owned by whoever owns the qmail home counts as owned by its account.

Exit codes: 0; 100 usage; 116 no alias user (QLX_NOALIAS); 115 temporary stat error on a home
(QLX_NFS); 118 the passwd file could not be read (QLX_SYS).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call
from sim.programs.common import home, read_file
from sim.qmail.local import is_temporary_errno
from sim.qmail.spawn import QLX_NFS, QLX_SYS
from sim.qmail.users import QLX_NOALIAS, PasswdEntry, format_nughde, getpw, parse_passwd

PASSWD_FILE = "etc/passwd"
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ELOOP)


def passwd_table(env: Mapping[str, str]) -> Call:
    """Every account with what stat(2) says of its home; an exit code on a temporary failure."""
    try:
        data = yield from read_file(f"{home(env)}/{PASSWD_FILE}")
        qmail_owner = (yield fx.Stat(f"{home(env)}/alias")).uid  # who stands for the accounts
    except OSError:
        return QLX_SYS
    table: dict[str, PasswdEntry] = {}
    for name, (uid, gid, homedir) in parse_passwd((data or b"").decode("latin-1")).items():
        try:
            owner = (yield fx.Stat(homedir)).uid
        except OSError as exc:
            if is_temporary_errno(exc.errno) or exc.errno not in _ABSENT:
                return QLX_NFS
            table[name] = PasswdEntry(uid, gid, homedir, -1, home_exists=False)
            continue
        table[name] = PasswdEntry(uid, gid, homedir, uid if owner == qmail_owner else owner)
    return table


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Print the nughde for argv[1]."""
    if len(argv) < 2:
        return 100
    local = argv[1]
    table = yield from passwd_table(env)
    if isinstance(table, int):
        return table
    found = getpw(local, table)
    if found is None:
        yield fx.Note("getpw", {"local": local}, "no such account and no alias user")
        return QLX_NOALIAS
    if found.user == "alias" and found.ext == local:
        why = f"no account owns {local!r}: the alias user takes it as extension {local!r}"
    else:
        why = f"{PASSWD_FILE}: account {found.user} owns its home {found.home}"
    yield fx.Note(
        "getpw", {"local": local, "user": found.user, "dash": found.dash, "ext": found.ext}, why
    )
    yield fx.Write(1, format_nughde(found))
    return 0
