"""qmail-popup's dialogue as a state machine with no I/O (qmail-popup(8)).

Theory of operation: qmail-popup greets with `+OK <pid.time@host>` (that bracketed
string is the APOP timestamp) and then reads commands until one of them names a user and
a password: `USER` then `PASS`, or `APOP name digest`. At that point it runs checkpassword
once; the machine emits `Authenticate` and waits. The program forks checkpassword with
`encode_checkpassword(...)` on fd 3, waits for it, and hands the outcome to
`checkpassword_reply`: exit 0 means qmail-pop3d already served the client, anything else is
an error line for the client. Either way qmail-popup then exits 1, as it does on QUIT, at
end of input and on every failure; there is no second try on one connection.

Use: `greeting()`, then loop on `next_output()`: `Reply` (write it), `NEED_DATA` (read
and `receive_data`; b"" at end of input), `Authenticate` (run checkpassword, then write
`checkpassword_reply(status)`), `Exit` (stop). Bytes the client sent after the command
that authenticates stay in `pending`; qmail-popup would have read them and lost them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.qmail.pop3 import (
    NEED_DATA,
    OK,
    Command,
    CommandReader,
    Exit,
    NeedData,
    Reply,
    err,
)
from sim.qmail.text import s2b

POPUP_EXIT = 1  # qmail-popup's die(): its only exit status

POPUP_ERRORS: dict[str, str] = {
    "usage": "usage: popup hostname subprogram",
    "nomem": "out of memory",
    "pipe": "unable to open pipe",
    "write": "unable to write pipe",
    "fork": "unable to fork",
    "crashed": "aack, child crashed",
    "badauth": "authorization failed",
    "syntax": "syntax error",
    "wantuser": "USER first",
    "authoriz": "authorization first",
}


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Run checkpassword once with these fields on fd 3 (see `encode_checkpassword`)."""

    user: bytes
    password: bytes
    timestamp: bytes


PopupOutput = Reply | Authenticate | Exit | NeedData


def popup_error(reason: str) -> bytes:
    """The error line for one of `POPUP_ERRORS` (pipe, write, fork, nomem, usage, ...)."""
    return err(POPUP_ERRORS[reason])


def popup_timestamp(pid: int, now: int, hostname: str) -> bytes:
    """`<pid.unixtime@hostname>`: the greeting's unique string, also given to checkpassword."""
    return b"<" + s2b(f"{pid}.{int(now)}@{hostname}") + b">"


class Popup:
    """One qmail-popup connection, from greeting to the single authentication attempt."""

    def __init__(self, hostname: str, pid: int, now: int) -> None:
        self.timestamp = popup_timestamp(pid, now, hostname)
        self._reader = CommandReader()
        self._user: bytes | None = None
        self._state = "authorization"  # -> authenticating -> done
        self._handlers: dict[bytes, Callable[[bytes], PopupOutput]] = {
            b"user": self._user_command,
            b"pass": self._pass_command,
            b"apop": self._apop_command,
            b"quit": self._quit_command,
            b"noop": lambda arg: Reply(OK),
        }

    @property
    def state(self) -> str:
        """`authorization`, `authenticating` (waiting for checkpassword) or `done`."""
        return self._state

    @property
    def pending(self) -> bytes:
        """Client bytes not consumed as commands."""
        return self._reader.pending

    def greeting(self) -> bytes:
        """`+OK <pid.time@host>` CR LF, written before any command is read."""
        return b"+OK " + self.timestamp + b"\r\n"

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the client; `b""` means end of input."""
        self._reader.receive_data(data)

    def next_output(self) -> PopupOutput:
        """The next thing to do: a reply, `Authenticate`, `Exit`, or `NEED_DATA`."""
        if self._state == "authenticating":
            raise RuntimeError("call checkpassword_reply before next_output")
        if self._state == "done":
            return Exit(POPUP_EXIT)
        command = self._reader.next_command()
        if command is None:
            if self._reader.at_eof:
                return self._finish()
            return NEED_DATA
        return self._dispatch(command)

    def checkpassword_reply(self, exit_code: int | None) -> bytes:
        """What to write once checkpassword ended: exit code, or None if it crashed."""
        if self._state != "authenticating":
            raise RuntimeError("checkpassword_reply without Authenticate")
        self._state = "done"
        if exit_code is None:
            return popup_error("crashed")
        return popup_error("badauth") if exit_code else b""

    def _dispatch(self, command: Command) -> PopupOutput:
        handler = self._handlers.get(command.verb)
        if handler is None:
            return Reply(popup_error("authoriz"))
        return handler(command.arg)

    def _finish(self) -> Exit:
        self._state = "done"
        return Exit(POPUP_EXIT)

    def _authenticate(self, user: bytes, password: bytes) -> Authenticate:
        self._state = "authenticating"
        return Authenticate(user, password, self.timestamp)

    def _user_command(self, arg: bytes) -> Reply:
        if not arg:
            return Reply(popup_error("syntax"))
        self._user = arg
        return Reply(OK)

    def _pass_command(self, arg: bytes) -> PopupOutput:
        if self._user is None:
            return Reply(popup_error("wantuser"))
        if not arg:
            return Reply(popup_error("syntax"))
        return self._authenticate(self._user, arg)

    def _apop_command(self, arg: bytes) -> PopupOutput:
        user, space, digest = arg.partition(b" ")
        if not space:
            return Reply(popup_error("syntax"))
        return self._authenticate(user, digest)

    def _quit_command(self, arg: bytes) -> Reply:
        self._state = "done"
        return Reply(OK)
