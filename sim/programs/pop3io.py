"""The I/O loop both POP3 programs share: a `sim.qmail.pop3` state machine on fds 0 and 1.

qmail-popup and qmail-pop3d read commands from fd 0 with the same 1200-second timeout and
write replies to fd 1; they differ only in what else their state machine asks for (a
password check, a message, the deletions at QUIT), which each program handles in `act`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.kernel import effects as fx
from sim.kernel.io import Call, write_all
from sim.qmail.pop3 import Exit, NeedData, Reply

TIMEOUT = 1200  # seconds: qmail-popup's and qmail-pop3d's read timeout


def converse(session: Any, act: Callable[[Any], Call]) -> Call:
    """Run `session` until it says Exit: write its replies, feed it fd 0's bytes (b"" at end
    of input or on a failed read), hand any other output to `act`. Returns the exit status."""
    while True:
        output = session.next_output()
        if isinstance(output, Reply):
            yield from write_all(1, output.data)
        elif isinstance(output, NeedData):
            try:
                data = yield fx.Read(0, 4096, TIMEOUT)
            except OSError:
                data = b""
            session.receive_data(data)
        elif isinstance(output, Exit):
            return output.status
        else:
            yield from act(output)
