"""The trace collector: one process reads every program's events from one pipe into a file.

qmail's programs log through one pipe to splogger; the live MTA's processes write trace
events through one pipe to this collector in the same way. Each event is a line written with
one atomic write, so lines from many processes never interleave.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sim.kernel import trace


def collect(read_fd: int, path: Path, host: str) -> None:
    """Append events from `read_fd` to `path` until every writer has closed the pipe."""
    with path.open("ab", buffering=0) as out:
        if out.tell() == 0:
            out.write(trace.encode(trace.header(host, time.time(), "live")))
        pending = b""
        while chunk := os.read(read_fd, 65536):
            pending += chunk
            complete, _, pending = pending.rpartition(b"\n")
            if complete:
                out.write(complete + b"\n")
        if pending:
            out.write(pending + b"\n")
