"""`qmailsim demo`: one message through qmail's programs, live on loopback, narrated.

It lays out a qmail home (in a temporary directory unless `--keep DIR`), starts the mini-MTA
on a free port, sends a message with Python's smtplib, waits until it is delivered (or left
in the queue), prints the story the trace tells, and stops the MTA.
"""

from __future__ import annotations

import json
import smtplib
import tempfile
import time
from pathlib import Path

from sim.mta import daemon
from sim.mta.home import init_home
from sim.narrate import story

DELIVERY_WAIT = 15.0
MESSAGE = (
    b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hello from the demo\r\n"
    b"\r\nThis message went through tcpserver, qmail-smtpd, qmail-queue and qmail-send.\r\n"
)


def _events(home: Path) -> list[dict]:
    trace = home / "log" / "trace.jsonl"
    lines = trace.read_text().splitlines() if trace.exists() else []
    return [json.loads(line) for line in lines if line]


def _delivered(home: Path) -> list[Path]:
    return sorted((home / "home" / "alice" / "Maildir" / "new").iterdir())


def _wait(home: Path) -> list[Path]:
    deadline = time.monotonic() + DELIVERY_WAIT
    while time.monotonic() < deadline:
        if found := _delivered(home):
            return found
        time.sleep(0.05)
    return []


def run_demo(home: Path) -> int:
    """The demo in `home` (which must be empty or absent)."""
    print(f"1. qmailsim mta init {home} --me example.test --user alice")
    for line in init_home(home, "example.test", users=["alice"]):
        print(f"     {line}")
    _, port = daemon.start(home, ("127.0.0.1", 0), {})
    print(f"2. qmailsim mta start: tcpserver listens on 127.0.0.1:{port}, qmail-start runs")
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=DELIVERY_WAIT) as smtp:
            smtp.ehlo("client.test")
            smtp.sendmail("bob@example.test", ["alice@example.test"], MESSAGE)
        print("3. smtplib sent one message from bob@example.test to alice@example.test")
        delivered = _wait(home)
    finally:
        daemon.stop(home)
    print("4. what the trace shows, step by step:")
    for line in story(_events(home)):
        print(f"     {line}")
    if delivered:
        print(f"5. delivered: {delivered[0].relative_to(home)}")
        print("     " + "\n     ".join(delivered[0].read_text().splitlines()[:6]))
    else:
        queued = list((home / "queue" / "todo").iterdir())
        print(f"5. not delivered within {DELIVERY_WAIT:.0f} s; {len(queued)} message(s) in todo/")
    print(f"   the trace is {home / 'log' / 'trace.jsonl'} (keep it: qmailsim demo --keep DIR)")
    return 0 if delivered else 1


def demo(keep: Path | None = None) -> int:
    """Run the demo; with `keep`, build the qmail home there and leave it for exploring."""
    if keep is not None:
        return run_demo(keep)
    with tempfile.TemporaryDirectory(prefix="qmailsim-demo-") as tmp:
        return run_demo(Path(tmp) / "qmail")
