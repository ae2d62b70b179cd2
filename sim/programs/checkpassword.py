"""checkpassword: check a POP3 login, then become the user and exec the rest of argv.

The interface is cr.yp.to/checkpwd/interface.html: `user\\0password\\0timestamp\\0` on fd 3;
exit 1 for a bad login, 2 for misuse, 111 for a temporary problem; otherwise switch to the
user, chdir to the home, set USER, HOME and SHELL, and exec (here: qmail-pop3d Maildir).
`sim.qmail.pop3.checkpassword` decides. Documented difference: the accounts are read from
`QMAILDIR/etc/pop3passwd` (`name:password:uid:gid:home`, plain passwords, written by
`qmailsim mta init`), not from the system's password database.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Reader
from sim.programs.common import home, read_file
from sim.qmail.constants import CHECKPASSWORD_MAX
from sim.qmail.pop3 import checkpassword, parse_pop3passwd

PASSWD_FILE = "etc/pop3passwd"


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Read fd 3, decide, and either exit or become the user and exec argv[1:]."""
    try:
        fd3 = yield from Reader(3, CHECKPASSWORD_MAX + 1).read_exact(CHECKPASSWORD_MAX + 1)
        yield fx.Close(3)
        data = yield from read_file(f"{home(env)}/{PASSWD_FILE}")
    except OSError:
        return 111
    accounts = parse_pop3passwd((data or b"").decode("latin-1"))
    decision = checkpassword(fd3, accounts, argv[1:])
    if decision.exit_code or decision.account is None or decision.user is None:
        return decision.exit_code
    account = decision.account
    yield fx.Setuid(decision.user, account.uid)
    try:
        yield fx.Chdir(account.home)
    except OSError:
        return 111
    yield fx.Note("pop3-login", {"user": decision.user}, "password matched: becoming the user")
    try:
        yield fx.Exec(argv[1], tuple(argv[2:]), {**env, **dict(decision.env)})
    except OSError:
        return 111
    return 111
