"""qmail-popup: read a POP3 user name and password, then hand them to checkpassword.

`qmail-popup hostname subprogram ...`, started by tcpserver with the client on fds 0 and 1,
as root (so checkpassword can become the user). `sim.qmail.popup.Popup` decides every reply;
this program runs `subprogram` (checkpassword, which execs qmail-pop3d) with
`user\\0password\\0timestamp\\0` on a pipe read as its fd 3, as qmail-popup does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, write_all
from sim.programs.pop3io import converse
from sim.qmail.pop3 import encode_checkpassword
from sim.qmail.popup import Authenticate, Popup, popup_error


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Authenticate one client; exit 1 as qmail-popup always does."""
    if len(argv) < 3:
        yield from write_all(1, popup_error("usage"))
        return 1
    pid = yield fx.Getpid()
    popup = Popup(argv[1], pid, int((yield fx.Time())))
    yield from write_all(1, popup.greeting())

    def act(output: Authenticate) -> Call:
        status = yield from run_checkpassword(output, argv[2:], env)
        yield fx.Note("pop3-auth", {"user": output.user, "status": status}, "checkpassword")
        reply = popup.checkpassword_reply(status)
        if reply:
            yield from write_all(1, reply)

    return (yield from converse(popup, act))


def run_checkpassword(auth: Authenticate, program: list[str], env: Mapping[str, str]) -> Call:
    """Fork, give the child the pipe as fd 3, exec the subprogram; its exit code (None: died)."""
    try:
        r, w = yield fx.Pipe()
    except OSError:
        return 111

    def child() -> fx.Program:
        yield fx.Close(w)
        yield fx.Dup2(r, 3)
        if r != 3:
            yield fx.Close(r)
        try:
            yield fx.Exec(program[0], tuple(program[1:]), dict(env))
        except OSError:
            return 111
        return 111

    pid = yield fx.Fork(child, program[0])
    yield fx.Close(r)
    with contextlib.suppress(OSError):  # a child that died early: its status says so
        yield from write_all(w, encode_checkpassword(auth.user, auth.password, auth.timestamp))
    yield fx.Close(w)
    _, status = yield fx.Wait(pid)
    return None if status < 0 else status
