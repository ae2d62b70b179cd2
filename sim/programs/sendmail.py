"""sendmail: the Sendmail-compatible front end; it only translates flags and execs.

qmail's sendmail.c maps `-f`, `-t`, `-F`, `-bp`, `-bs` and friends to qmail-inject (or
qmail-qread, qmail-smtpd) and execs it; `sim.qmail.inject.sendmail_to_inject` decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import write_all
from sim.qmail.inject import sendmail_to_inject
from sim.qmail.inject_token822 import InjectError


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Exec the program sendmail.c would, or print its usage error and exit 100."""
    try:
        target = sendmail_to_inject(argv, env)
    except InjectError as exc:
        yield from write_all(2, f"{exc}\n".encode("latin-1", "replace"))
        return exc.exit_code
    program = target.path.rsplit("/", 1)[-1]
    try:
        yield fx.Exec(program, tuple(target.argv[1:]), target.env)
    except (OSError, KeyError):
        yield from write_all(2, f"sendmail: fatal: unable to run {target.path}\n".encode())
        return 111
    return 111
