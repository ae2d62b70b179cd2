"""splogger: stamp each line of qmail-send's log and store it (splogger(8)).

`splogger [tag [fac]]` reads lines on fd 0 and, like qmail's, prefixes each with the time as
`seconds.microseconds `, turns bytes outside 32..126 into `?`, drops empty lines, folds a
line every 799 bytes (a continuation is stamped `seconds.microseconds+`), drops a last line
without its newline, and exits 0 at end of input. One difference, for a live MTA that runs
without root: the lines are appended to `log/qmail-send.log` under QMAILHOME instead of being
sent to syslog, so tag and facility are accepted and unused.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass, field

from sim.kernel import effects as fx
from sim.programs.common import home
from sim.qmail.constants import SPLOGGER_FOLD

LOG_DIR = "log"
LOG_FILE = "qmail-send.log"
_SAFE = bytes(b if 32 <= b <= 126 or b == 10 else 63 for b in range(256))  # else `?`


def stamp(t: float) -> bytes:
    """`1700000000.123456`: gettimeofday as splogger prints it."""
    seconds = int(t)
    return b"%d.%06d" % (seconds, min(round((t - seconds) * 1e6), 999999))


@dataclass(slots=True)
class Folder:
    """splogger's line buffer: bytes in, stamped and folded lines out."""

    buffer: bytearray = field(default_factory=bytearray)
    stamp: bytes = b""  # the stamp of the line being folded, once its first part is out

    def feed(self, data: bytes, now: float) -> list[bytes]:
        """The complete output lines (each ending in LF) that `data` finishes.

        A byte at a time, a line is flushed at its LF, and before a byte that would make it
        longer than the fold; here whole runs of bytes are moved at once, to the same effect.
        """
        out: list[bytes] = []
        room = SPLOGGER_FOLD - 1
        parts = data.translate(_SAFE).split(b"\n")
        for part in parts[:-1]:
            self._add(part, room, out, now)
            self._flush(out, now)
            self.stamp = b""
        self._add(parts[-1], room, out, now)
        return out

    def _add(self, part: bytes, room: int, out: list[bytes], now: float) -> None:
        while part:
            if len(self.buffer) == room:
                self._flush(out, now)
            take = room - len(self.buffer)
            self.buffer += part[:take]
            part = part[take:]

    def _flush(self, out: list[bytes], now: float) -> None:
        if not self.buffer:
            return
        if self.stamp:
            out.append(self.stamp + b"+" + bytes(self.buffer) + b"\n")
        else:
            self.stamp = stamp(now)
            out.append(self.stamp + b" " + bytes(self.buffer) + b"\n")
        self.buffer.clear()


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Copy fd 0 to the log file, stamped, until end of input."""
    directory = f"{home(env)}/{LOG_DIR}"
    try:
        yield fx.Mkdir(directory, 0o755)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            return 111
    try:
        fd = yield fx.Open(f"{directory}/{LOG_FILE}", "a", create=True, perm=0o644)
    except OSError:
        return 111
    folder = Folder()
    while data := (yield fx.Read(0, 4096)):
        lines = folder.feed(data, (yield fx.Time()))
        if lines:
            try:
                yield fx.Write(fd, b"".join(lines))
            except OSError:
                continue  # syslog would drop them too
    return 0
