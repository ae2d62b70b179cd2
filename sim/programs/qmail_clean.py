"""qmail-clean: unlink the queue files qmail-send may not, on request (qmail-clean(8)).

It runs as qmailq, the queue's owner, in `queue/`: qmail-send (qmails) asks on fd 0 with
`todo/<id>\\0` or `foop/<id>\\0` and gets one byte on fd 1 (`+` done, `!` an unlink failed, `x` a
malformed request). Before reading a request, at start and then every 30 requests, it also
removes `pid/` files 36 hours old, which a dead qmail-queue left. The protocol and each
decision are `sim.qmail.clean`'s. Exit 0 at end of input, 111 if the queue is unreachable,
100 if a reply cannot be written.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, Reader
from sim.programs.common import home
from sim.qmail.clean import (
    CleanCommand,
    PidSweep,
    clean_ops,
    clean_reply,
    parse_clean_command,
    pid_sweep_ops,
)
from sim.qmail.queue import QUEUE_DIR


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Answer requests until qmail-send closes the pipe."""
    try:
        yield fx.Chdir(f"{home(env)}/{QUEUE_DIR}")
    except OSError:
        return 111
    requests, sweep = Reader(0), PidSweep()
    while True:
        due, sweep = sweep.before_request()
        if due:
            yield from sweep_pids()
        line = yield from requests.read_until(b"\0")
        if not line.endswith(b"\0"):
            return 0  # end of input (a last request without its NUL is dropped, as qmail)
        command = parse_clean_command(line)
        reply = command if isinstance(command, bytes) else (yield from unlink_files(command))
        yield fx.Note("clean", {"request": line[:-1], "reply": reply})
        try:
            yield fx.Write(1, reply)
        except OSError:
            return 100


def unlink_files(command: CleanCommand) -> Call:
    """The command's unlinks in order, stopping at the first real failure; the reply byte."""
    outcomes: list[int | None] = []
    for op in clean_ops(command):
        try:
            yield fx.Unlink(op.path)
            outcomes.append(None)
        except OSError as exc:
            outcomes.append(exc.errno)
            if exc.errno != errno.ENOENT:
                break
    return clean_reply(outcomes)


def sweep_pids() -> Call:
    """Remove every pid/ file whose atime is 36 hours old; errors are ignored."""
    try:
        names = yield fx.Readdir("pid")
        now = yield fx.Time()
    except OSError:
        return
    entries = []
    for name in names:
        try:
            entries.append((name, (yield fx.Stat(f"pid/{name}")).atime))
        except OSError:
            continue
    for op in pid_sweep_ops(entries, now):
        try:
            yield fx.Unlink(op.path)
        except OSError:
            continue
