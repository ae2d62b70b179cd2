"""A raw SMTP client for the live tests, and what they look up about the server's processes.

The client sends bytes and reads whole replies, with a timeout on every socket call. The
server side of a connection is one qmail-smtpd process, forked by tcpserver: its pid is in
the trace's `fork` event (`label` qmail-smtpd), and /proc tells how much it has read
(`rchar`), its peak memory (`VmHWM`) and whether it still runs.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from tests.mta.conftest import WAIT, Mta, wait_for

REPLY = re.compile(rb"(?:^|\n)\d{3} [^\n]*\n")
ACCEPT = re.compile(rb"^250 ok (\d+) qp (\d+)\r\n$")
NOGATEWAY = b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
GO_AHEAD = b"354 go ahead\r\n"


class Client:
    """A raw SMTP client: send bytes, read whole replies (multi-line included)."""

    def __init__(self, mta: Mta, timeout: float = WAIT) -> None:
        self.sock = mta.connect()
        self.sock.settimeout(timeout)
        self.buffer = b""

    def reply(self) -> bytes:
        """One complete reply, CR LF included (what is left, maybe b"", at end of input)."""
        while True:
            match = REPLY.search(self.buffer)
            if match:
                end = match.end()
                text, self.buffer = self.buffer[:end], self.buffer[end:]
                return text
            chunk = self.sock.recv(65536)
            if not chunk:
                text, self.buffer = self.buffer, b""
                return text
            self.buffer += chunk

    def replies(self, n: int) -> list[bytes]:
        """The next `n` replies."""
        return [self.reply() for _ in range(n)]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_in_background(self, data: bytes) -> threading.Thread:
        """Send a large pipelined write while the caller reads the replies (no deadlock)."""
        thread = threading.Thread(target=self.sock.sendall, args=(data,), daemon=True)
        thread.start()
        return thread

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """True once the server has closed the connection (after any unread replies)."""
        return self.read_to_end() == b""

    def read_to_end(self) -> bytes:
        """Everything the server still writes, up to its close.

        A server that exits with input unread (after a 451, say) resets the connection
        instead of closing it: that is a close too.
        """
        data, self.buffer = self.buffer, b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def envelope_and_data(sender: bytes, *recipients: bytes) -> bytes:
    """MAIL, RCPT for each recipient and DATA, pipelined."""
    lines = [b"MAIL FROM:<%s>" % sender] + [b"RCPT TO:<%s>" % r for r in recipients]
    return b"".join(line + b"\r\n" for line in [*lines, b"DATA"])


# -- the server side: qmail-smtpd processes, from the trace and /proc --------------------------


def trace_events(mta: Mta, marker: str) -> list[dict]:
    """The trace events whose JSON line holds `marker` (a cheap filter on a long trace)."""
    trace = mta.home / "log" / "trace.jsonl"
    if not trace.exists():
        return []
    lines = trace.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(line) for line in lines if marker in line and line.endswith("}")]


def smtpd_pids(mta: Mta) -> list[int]:
    """The pid of each qmail-smtpd tcpserver has forked, in connection order."""
    forks = trace_events(mta, '"label":"qmail-smtpd"')
    return [e["result"] for e in forks if e.get("kind") == "fork"]


def smtpd_pid(mta: Mta, n: int) -> int:
    """The pid of the qmail-smtpd serving the `n`-th connection (1-based)."""

    def nth() -> int | None:
        pids = smtpd_pids(mta)
        return pids[n - 1] if len(pids) >= n else None

    return wait_for(nth, f"the fork of qmail-smtpd #{n} in the trace")


def crashes(mta: Mta) -> list[str]:
    """The tracebacks of every program that died of a bug of ours (the kernel's `crash` note)."""
    return [e["traceback"] for e in trace_events(mta, '"kind":"crash"')]


def proc_value(pid: int, name: str, key: str) -> int:
    """One number from /proc/<pid>/<name>, e.g. ("status", "VmHWM") in kB or ("io", "rchar")."""
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/{name}")


def gone(pid: int) -> bool:
    """True once the process has exited (a zombie not yet reaped by tcpserver counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")
