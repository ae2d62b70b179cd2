"""qmail-clean's protocol (qmail-clean, qmail-send): commands in, unlinks, one byte out.

Theory of operation. qmail-send (uid qmails) may read `todo/` and `mess/` but not unlink in
`intd/`, `todo/` or `mess/`; qmail-clean (uid qmailq) does it on request. A request is a
NUL-terminated string, 7 to 100 bytes with the NUL, `todo/<id>` or `foop/<id>` with a decimal
id; the answer is one byte: `+` done (a file already missing is fine), `!` an unlink failed for
another reason (the next unlink is then not tried), `x` a malformed request. qmail-send waits
for each answer before sending the next request.

* `todo/<id>`: unlink `intd/<id>` then `todo/<id>` (preprocessing finished, S4 -> S5);
* `foop/<id>`: unlink `intd/<id>` then `mess/<id%23>/<id>` (message eliminated, -> S1).

Before reading a request, at start and then every 31st time round its loop (a counter reset
to 30 and counted down once per request), qmail-clean also unlinks every `pid/` file whose
atime is at least 129600 s (36 h, OSSIFIED) old, ignoring errors (`PidSweep`).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass

from sim.qmail.errors import ProtocolError
from sim.qmail.queue import IGNORE, Unlink, is_ossified, queue_path

COMMAND_MIN, COMMAND_MAX = 7, 100  # bytes, including the NUL
DONE, FAILED, BAD = b"+", b"!", b"x"
REPLIES: dict[bytes, str] = {
    DONE: "done (missing files are fine)",
    FAILED: "an unlink failed for a reason other than no such file",
    BAD: "malformed request",
}
# What each command unlinks, in order.
UNLINKS: dict[str, tuple[str, str]] = {"todo": ("intd", "todo"), "foop": ("intd", "mess")}
SWEEP_EVERY = 30  # the countdown between pid/ sweeps


@dataclass(frozen=True, slots=True)
class CleanCommand:
    """A well-formed request: `todo` or `foop`, and the queue id."""

    kind: str
    queue_id: int


def encode_clean_command(kind: str, queue_id: int) -> bytes:
    """What qmail-send writes to qmail-clean: `todo/457\\0` or `foop/457\\0`."""
    if kind not in UNLINKS:
        raise ValueError(f"not a qmail-clean command: {kind!r}")
    return f"{kind}/{queue_id}\0".encode("ascii")


def parse_clean_command(line: bytes) -> CleanCommand | bytes:
    """A request (with its NUL) as qmail-clean reads it: the command, or `x` (BAD) if malformed."""
    if not COMMAND_MIN <= len(line) <= COMMAND_MAX or line[-1:] != b"\0":
        return BAD
    kind, digits = line[:4].decode("latin-1"), line[5:-1]
    if line[4:5] != b"/" or kind not in UNLINKS or not digits.isdigit():
        return BAD
    return CleanCommand(kind, int(digits))


def clean_ops(command: CleanCommand) -> list[Unlink]:
    """The unlinks a command performs, in order; each may find its file already gone."""
    return [Unlink(queue_path(k, command.queue_id), missing_ok=True) for k in UNLINKS[command.kind]]


def clean_reply(outcomes: Iterable[int | None]) -> bytes:
    """The reply byte for the unlinks tried, each None (done) or the errno it failed with.

    ENOENT counts as done; the first other errno makes the reply `!`.
    """
    for failure in outcomes:
        if failure and failure != errno.ENOENT:
            return FAILED
    return DONE


def parse_clean_reply(reply: bytes) -> bool:
    """qmail-send's reading of the answer: True only for `+`; a missing byte is a lost link."""
    if len(reply) != 1:
        raise ProtocolError(f"qmail-clean answered {reply!r}, not one byte")
    return reply == DONE


@dataclass(frozen=True, slots=True)
class PidSweep:
    """qmail-clean's countdown to its next sweep of `pid/`; starts due (0)."""

    countdown: int = 0

    def before_request(self) -> tuple[bool, PidSweep]:
        """Whether to sweep before reading the next request, and the next countdown."""
        if self.countdown:
            return False, PidSweep(self.countdown - 1)
        return True, PidSweep(SWEEP_EVERY)


def pid_sweep_ops(entries: Iterable[tuple[str, float]], now: float) -> list[Unlink]:
    """The unlinks of one sweep: each `pid/` name (with its atime) 36 h old; errors ignored."""
    return [
        Unlink(f"pid/{name}", missing_ok=True, fail=IGNORE)
        for name, atime in entries
        if name not in (".", "..") and is_ossified(atime, now)
    ]
