"""qmail-inject: read a message on fd 0, fill in its header and envelope, queue it.

`sim.qmail.inject.inject` makes every decision; this program reads the input and the control
files, hands the result to qmail-queue through the two pipes, and turns qmail-queue's answer
into qmail-inject's own `qmail-inject: fatal: ...` line and exit code (0, 100 or 111).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import read_all, write_all
from sim.programs.common import home, qmail_close, qmail_open, read_controls
from sim.qmail.control import CONTROL_FILES, load_control
from sim.qmail.errors import BadInput
from sim.qmail.inject import EXIT_TEMPORARY, inject, queue_failure
from sim.qmail.inject_token822 import InjectError

UNABLE_TO_READ_CONTROLS = "qmail-inject: fatal: unable to read controls"


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Inject one message; exit 0, 100 (permanent) or 111 (temporary)."""
    message = yield from read_all(0)
    try:
        yield fx.Chdir(home(env))
        control = load_control((yield from read_controls(CONTROL_FILES)))
    except (OSError, BadInput) as exc:
        yield fx.Note("inject-control", {"error": str(exc)}, "cannot read control files")
        yield from write_all(2, f"{UNABLE_TO_READ_CONTROLS}\n".encode())
        return EXIT_TEMPORARY
    pid = yield fx.Getpid()
    now = yield fx.Time()
    try:
        result = inject(message, argv, env, control, now, pid)
    except InjectError as exc:
        yield from write_all(2, f"{exc}\n".encode("latin-1", "replace"))
        return exc.exit_code
    if not result.queue:
        yield from write_all(1, result.printed)
        return 0
    yield fx.Note(
        "inject",
        {"sender": result.sender, "recipients": list(result.recipients)},
        "envelope filled in by qmail-inject",
    )
    job = yield from qmail_open(env)
    with contextlib.suppress(OSError):  # qmail-queue gone: qmail_close reports its exit code
        yield from write_all(job.message_fd, result.message)
    status, _ = yield from qmail_close(job, result.sender, result.recipients)
    if status:
        error = queue_failure(status)
        yield from write_all(2, f"{error}\n".encode("latin-1", "replace"))
        return error.exit_code
    return 0
