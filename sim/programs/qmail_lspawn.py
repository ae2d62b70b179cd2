"""qmail-lspawn: run qmail-local for each local delivery qmail-send orders (qmail-lspawn.c).

`qmail-lspawn defaultdelivery`, as root, with qmail-send's commands on fd 0 and results on
fd 1; the loop is `sim.programs.spawner`'s. Per delivery the forked child (still root) works
out who owns the local part and then drops to that user before running anything the user
controls: chdir to the qmail home; an empty local part is the trash address (exit 0); look the
local part up in `users/assign`, else run qmail-getpw as qmailp through a pipe; become the user
(uid 0 is refused); exec `qmail-local -- user home local dash ext domain sender
defaultdelivery`. qmail-local's exit code and output become the result (`lspawn_report`).

Documented difference: qmail reads the compiled `users/cdb` (qmail-newu's output); we read
the text `users/assign` and compile it in memory with `sim.qmail.users.qmail_newu`, which
gives the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all
from sim.programs.common import home, read_file
from sim.programs.spawner import Hooks, serve
from sim.qmail.constants import LSPAWN_REPORTMAX
from sim.qmail.errors import ControlFileError, ProtocolError
from sim.qmail.local import is_temporary_errno
from sim.qmail.spawn import (
    QLX_CDB,
    QLX_EXECHARD,
    QLX_EXECPW,
    QLX_EXECSOFT,
    QLX_ROOT,
    QLX_SYS,
    QLX_USAGE,
    SpawnCommand,
    lspawn_report,
)
from sim.qmail.users import ASSIGN_FILE, Assignment, lookup_assign, parse_assign, parse_nughde
from sim.qmail.users import qmail_newu as compile_assign


def initialize(argv: list[str], env: Mapping[str, str]) -> Call:
    """The default delivery (qmail-start's argument) is required; without it exit 100."""
    if len(argv) < 2:
        return 100
    yield from ()
    return argv[1]


def assigned_user(local: str) -> Call:
    """users/assign's answer for `local`: an Assignment, None (not listed), or an exit code."""
    try:
        data = yield from read_file(ASSIGN_FILE)
    except OSError:
        return QLX_CDB
    if data is None:
        return None
    try:
        cdb = compile_assign(parse_assign(data.decode("latin-1")))
    except ControlFileError:
        return QLX_CDB
    return lookup_assign(cdb, local)


def getpw_user(local: str, env: Mapping[str, str]) -> Call:
    """Run qmail-getpw as qmailp with its fd 1 on a pipe; an Assignment or an exit code."""
    try:
        r, w = yield fx.Pipe()
    except OSError:
        return QLX_SYS

    def child() -> fx.Program:
        yield fx.Close(r)
        yield fx.Dup2(w, 1)
        yield fx.Close(w)
        yield fx.Setuid("qmailp")
        try:
            yield fx.Exec("qmail-getpw", (local,), dict(env))
        except OSError:
            return QLX_EXECPW
        return QLX_EXECPW

    try:
        pid = yield fx.Fork(child, "qmail-getpw")
    except OSError:
        return QLX_SYS
    yield fx.Close(w)
    try:
        data = yield from read_all(r)
    except OSError:
        return QLX_SYS
    finally:
        yield fx.Close(r)
    _, status = yield fx.Wait(pid)
    if status < 0:
        return QLX_SYS
    if status:
        return status
    try:
        return parse_nughde(data)
    except ProtocolError:
        return QLX_USAGE


def find_user(local: str, env: Mapping[str, str]) -> Call:
    """nughde_get: users/assign first, then qmail-getpw; an Assignment or an exit code."""
    found = yield from assigned_user(local)
    source = ASSIGN_FILE
    if found is None:
        found = yield from getpw_user(local, env)
        source = "qmail-getpw"
    if isinstance(found, Assignment):
        yield fx.Note(
            "user",
            {"local": local, "user": found.user, "uid": found.uid, "home": found.home,
             "dash": found.dash, "ext": found.ext, "source": source},
            f"{source}: {local!r} belongs to {found.user} "
            + (f"with extension {found.ext!r}" if found.dash else "(no extension)"),
        )  # fmt: skip
    return found


def agent(defaultdelivery: str, command: SpawnCommand, env: Mapping[str, str]) -> fx.Program:
    """The child: find the user, become it, exec qmail-local (qmail-lspawn.c's spawn())."""
    at = command.recipient.rfind("@")
    local, domain = command.recipient[:at], command.recipient[at + 1 :]
    if not local:
        yield fx.Note("user", {"to": command.recipient}, "empty local part: trash address")
        return 0
    try:
        yield fx.Chdir(home(env))
    except OSError:
        return QLX_USAGE
    found = yield from find_user(local, env)
    if not isinstance(found, Assignment):
        return found
    yield fx.Setuid(found.user, found.uid)
    _, uid = yield fx.Getuid()
    if uid == 0:
        return QLX_ROOT
    args = ("--", found.user, found.home, local, found.dash, found.ext, domain, command.sender)
    try:
        yield fx.Exec("qmail-local", (*args, defaultdelivery), dict(env))
    except OSError as exc:
        return QLX_EXECSOFT if is_temporary_errno(exc.errno) else QLX_EXECHARD
    return QLX_EXECHARD


HOOKS = Hooks("qmail-lspawn", initialize, agent, lspawn_report, truncreport=LSPAWN_REPORTMAX)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """qmail-lspawn: spawn.c's loop with the local hooks."""
    return (yield from serve(argv, env, HOOKS))
