"""qmail-rspawn: run qmail-remote for each remote delivery qmail-send orders (qmail-rspawn.c).

Runs as qmailr with qmail-send's commands on fd 0 and results on fd 1; the loop is
`sim.programs.spawner`'s. At start it clears the TCP timeout table `queue/lock/tcpto`
(1024 zero bytes), so a restart forgets which hosts timed out. Per delivery the child execs
`qmail-remote host sender recipient`, host being the recipient's domain; qmail-remote's
reports and exit code collapse into one result (`rspawn_report`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, write_all
from sim.programs.common import close_quietly
from sim.programs.spawner import Hooks, serve
from sim.qmail.constants import TCPTO_RECORD_SIZE, TCPTO_RECORDS
from sim.qmail.local import is_temporary_errno
from sim.qmail.spawn import SpawnCommand, rspawn_report

TCPTO = "../lock/tcpto"  # from queue/mess, where the spawner runs


def initialize(argv: list[str], env: Mapping[str, str]) -> Call:
    """tcpto_clean: zero the timeout table; a failure is ignored, as qmail does."""
    try:
        fd = yield fx.Open(TCPTO, "w")
    except OSError:
        return None
    try:
        yield from write_all(fd, bytes(TCPTO_RECORDS * TCPTO_RECORD_SIZE))
        yield fx.Note(
            "tcpto", {"path": "queue/lock/tcpto"}, "qmail-rspawn start: timeouts forgotten"
        )
    except OSError:
        pass
    yield from close_quietly(fd)
    return None


def agent(context: None, command: SpawnCommand, env: Mapping[str, str]) -> fx.Program:
    """The child: exec qmail-remote; 111 if that fails temporarily, else 100."""
    host = command.recipient[command.recipient.rfind("@") + 1 :]
    try:
        yield fx.Exec("qmail-remote", (host, command.sender, command.recipient), dict(env))
    except OSError as exc:
        return 111 if is_temporary_errno(exc.errno) else 100
    return 100


HOOKS = Hooks("qmail-rspawn", initialize, agent, rspawn_report)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """qmail-rspawn: spawn.c's loop with the remote hooks."""
    return (yield from serve(argv, env, HOOKS))
