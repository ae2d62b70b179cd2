"""qmail-inject and the sendmail front end: "fill in the complete envelope and header".

Theory of operation: `inject` is qmail-inject(8) with its I/O taken out. Given the
message bytes, argv, the environment, the control files, the start time and the pid, it
returns the message as qmail-inject hands it to qmail-queue (or prints it with `-n`), the
envelope sender and the envelope recipients:

* options `-a` (recipients from the arguments), `-h` (from the header), `-A` (the default:
  arguments if any, else header), `-H` (both), `-f sender`, `-n` (print, don't queue), `-N`;
* argument recipients come first, in order; then, unless `-a`, the header's (Resent- ones
  for a resent message), each field's addresses right to left as qmail collects them;
* the sender is `-f`, else the last address of a Return-Path field, else mailruser@mailrhost.

`sendmail_to_inject` is sendmail.c: it maps sendmail's flags to the program it would exec
(qmail-inject, qmail-qread or qmail-smtpd) with its argv and environment.
Options are read as djb's getopt reads them: grouped letters, a value glued or in the next
word, `--` (or any word starting with `--`) and `-` end the options.
Failures raise `InjectError` (a BadInput) carrying qmail's stderr text and exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sim.qmail.control import Control
from sim.qmail.inject_address import (
    default_sender,
    inject_config,
    quote2,
    rewrite_address,
    rewrite_sender_option,
)
from sim.qmail.inject_header import header_pass, new_fields, split_message
from sim.qmail.inject_token822 import InjectError
from sim.qmail.text import s2b

INJECT_OPTIONS = "aAhHnNf:"
STRATEGIES = frozenset("aAhH")  # args only, args else header, header only, both
EXIT_PERMANENT = 100
EXIT_TEMPORARY = 111
# qmail-inject's and sendmail's own fatal lines for what the program (not this module) meets
FATAL: dict[str, str] = {
    "qqt": "qmail-inject: fatal: unable to run qmail-queue",
    "read": "qmail-inject: fatal: read error",
    "nomem": "qmail-inject: fatal: out of memory",
    "run-inject": "sendmail: fatal: unable to run qmail-inject",
    "run-qread": "sendmail: fatal: unable to run qmail-qread",
    "run-smtpd": "sendmail: fatal: unable to run qmail-smtpd",
}  # each exits 111


@dataclass(frozen=True, slots=True)
class InjectOptions:
    """qmail-inject's argv: recipient strategy letter, queue or print, `-f`, recipients."""

    strategy: str = "A"
    queue: bool = True
    sender: str | None = None
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Injection:
    """qmail-inject's result: the message for qmail-queue, and its envelope."""

    message: bytes
    sender: str
    recipients: tuple[str, ...]
    queue: bool = True

    @property
    def printed(self) -> bytes:
        """What `-n` writes on fd 1: a Return-Path line, then the message."""
        return b"Return-Path: <" + s2b(quote2(self.sender)) + b">\n" + self.message


def _basename(argv: Sequence[str]) -> str:
    return argv[0].rsplit("/", 1)[-1] if argv else ""


def getopt(
    argv: Sequence[str], spec: str, swallow: str = ""
) -> tuple[list[tuple[str, str]], list[str]]:
    """djb's getopt over argv[1:]: ([(letter, value)], the remaining arguments).

    An unknown letter or a missing value ends the list with ("?", problem message).
    A letter in `swallow` takes the rest of its word, if any, as an ignored value.
    """
    options: list[tuple[str, str]] = []
    i = 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-":
        word = argv[i]
        i += 1
        if word.startswith("--"):
            break
        pos = 1
        while pos < len(word):
            letter = word[pos]
            pos += 1
            takes_value = letter != ":" and f"{letter}:" in spec
            if letter in swallow or takes_value:
                value, pos = word[pos:], len(word)
                if takes_value and not value:
                    if i >= len(argv):
                        return [*options, ("?", f"option requires an argument -- {letter}")], []
                    value, i = argv[i], i + 1
                options.append((letter, value))
            elif letter != ":" and letter in spec:
                options.append((letter, ""))
            else:
                return [*options, ("?", f"illegal option -- {letter}")], []
    return options, list(argv[i:])


def parse_inject_argv(argv: Sequence[str]) -> InjectOptions:
    """qmail-inject's options; an unknown one is exit 100 with getopt's complaint."""
    options, rest = getopt(argv, INJECT_OPTIONS)
    strategy, queue, sender = "A", True, None
    for letter, value in options:
        if letter == "?":
            raise InjectError(f"{_basename(argv)}: {value}", EXIT_PERMANENT)
        if letter in STRATEGIES:
            strategy = letter
        elif letter in "nN":
            queue = letter == "N"
        else:
            sender = value
    return InjectOptions(strategy, queue, sender, tuple(rest))


def inject(
    message: bytes,
    argv: Sequence[str],
    env: Mapping[str, str],
    control: Control,
    now: float,
    pid: int,
) -> Injection:
    """qmail-inject on one message: rewrite the header, fill in the envelope."""
    config = inject_config(control, env)
    options = parse_inject_argv(argv)
    sender = None if options.sender is None else rewrite_sender_option(options.sender, config)
    strategy = options.strategy
    if strategy == "A":
        strategy = "a" if options.recipients else "h"
    recipients = [] if strategy == "h" else [rewrite_address(r, config) for r in options.recipients]
    split = split_message(message)
    header = header_pass(split.fields, config, sender)
    start = int(now)
    sender = header.sender
    if sender is None:
        sender = default_sender(config, start, pid)
    added = new_fields(header, start, pid)
    if strategy != "a":
        recipients += header.resent_recipients if header.resent else header.header_recipients
    out = b"".join([*added, *header.kept, split.body])
    return Injection(out, sender, tuple(recipients), options.queue)


def queue_failure(status: str) -> InjectError:
    """qmail-queue said no (`D...` or `Z...` as qmail_close words it): the error to exit with."""
    code = EXIT_PERMANENT if status.startswith("D") else EXIT_TEMPORARY
    return InjectError(f"qmail-inject: fatal: {status[1:]}", code)


# --- sendmail (sendmail.c) ---------------------------------------------------------------

SENDMAIL_OPTIONS = "vimte:f:p:o:B:F:EJxb:"
SENDMAIL_USAGE = (
    "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"
)
NEWALIASES = "sendmail: fatal: please use fastforward/newaliases instead"
SMTPD_ENV = {
    "RELAYCLIENT": "",
    "DATABYTES": "0",
    "PROTO": "TCP",
    "TCPLOCALIP": "127.0.0.1",
    "TCPLOCALHOST": "localhost",
    "TCPREMOTEIP": "127.0.0.1",
    "TCPREMOTEHOST": "localhost",
    "TCPREMOTEINFO": "sendmail-bs",
}
QMAIL_INJECT, QMAIL_QREAD, QMAIL_SMTPD = "bin/qmail-inject", "bin/qmail-qread", "bin/qmail-smtpd"


@dataclass(frozen=True, slots=True)
class SendmailExec:
    """A program to exec, relative to the qmail home, with its argv and whole environment."""

    path: str
    argv: tuple[str, ...]
    env: dict[str, str]


def _smtpd(env: Mapping[str, str]) -> SendmailExec:
    """-bs: qmail-smtpd on stdin, posing as a local TCP client unless PROTO is set."""
    return SendmailExec(
        QMAIL_SMTPD, (QMAIL_SMTPD,), dict(env) if "PROTO" in env else {**env, **SMTPD_ENV}
    )


def sendmail_to_inject(argv: Sequence[str], env: Mapping[str, str] | None = None) -> SendmailExec:
    """What sendmail (or `mailq`) would exec for argv; a usage error is InjectError, exit 100.

    The ignored options are -B -v -i -x -m -e -o* -p -E -J; -bm is the default.
    """
    options, rest = getopt(argv, SENDMAIL_OPTIONS, swallow="EJ")
    headers, sender, new_env = False, None, dict(env or {})
    for letter, value in options:
        if letter == "?":
            raise InjectError(f"sendmail: {value}\n{SENDMAIL_USAGE}", EXIT_PERMANENT)
        if letter == "t":
            headers = True
        elif letter == "f":
            sender = value
        elif letter == "F":
            new_env["MAILNAME"] = value
        elif letter == "b" and value[:1] == "p":
            return SendmailExec(QMAIL_QREAD, (QMAIL_QREAD,), new_env)
        elif letter == "b" and value[:1] == "s":
            return _smtpd(new_env)
        elif letter == "b" and value[:1] != "m":
            raise InjectError(SENDMAIL_USAGE, EXIT_PERMANENT)
    program = _basename(argv)
    if program == "mailq":
        return SendmailExec(QMAIL_QREAD, (QMAIL_QREAD,), new_env)
    if program == "newaliases":
        raise InjectError(NEWALIASES, EXIT_PERMANENT)
    sender_args = ("-f", sender) if sender is not None else ()
    args = (QMAIL_INJECT, "-H" if headers else "-a", *sender_args, "--", *rest)
    return SendmailExec(QMAIL_INJECT, args, new_env)
