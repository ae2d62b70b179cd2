"""`qmailsim demo`: the main job on the embedded default scenario, and a live walk-through.

By default the model runs the embedded default scenario (a few local and remote messages,
one bounce, one deferral and its retry), prints the summary, and opens the terminal UI on
its trace when the output is a terminal (`--no-tui` to skip). `--live` instead lays out a
qmail home, starts the real mini-MTA on a free loopback port, sends one message with
smtplib, waits for its delivery, prints the story the trace tells, and stops the MTA.
`--keep DIR` keeps what the demo made (the trace, or the qmail home) in DIR.
"""

from __future__ import annotations

import json
import smtplib
import sys
import tempfile
import time
from pathlib import Path

from sim.mta import daemon
from sim.mta.home import init_home
from sim.narrate import story
from sim.qmail.errors import BadInput

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


def run_demo(home: Path, kept: bool = False) -> int:
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
    if kept:
        print(f"   the qmail home and its trace are kept in {home}: qmailsim tui {home}")
    else:
        print("   keep the qmail home and its trace with: qmailsim demo --live --keep DIR")
    return 0 if delivered else 1


def model_demo(directory: Path, tui: bool, kept: bool = False) -> int:
    """The default scenario in the model; the summary; the TUI on its trace."""
    from sim.run import run
    from sim.run_cli import format_summary

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a path through a file, no permission
        reason = "it exists and is not a directory" if directory.exists() else exc.strerror
        raise BadInput(f"cannot keep the demo in {directory}: {reason}") from None
    trace = directory / "default-trace.jsonl"
    print("qmailsim demo: the embedded default scenario, in the model (virtual time)")
    result = run(None, trace=str(trace), keep_trace=False)
    print("\n".join(format_summary(result.summary, result.scenario.description)))
    if not tui:
        print("\nThe terminal UI opens when the demo runs in a terminal.", end=" ")
        if kept:
            print(f"The trace is kept: open it with `qmailsim tui {trace}`.")
        else:
            print("Or keep the trace with")
            print("`qmailsim demo --keep DIR` and open it: `qmailsim tui DIR/default-trace.jsonl`.")
        return 0
    import argparse

    from tui import cli as tui_cli

    return tui_cli.run(argparse.Namespace(trace=trace, follow=False, speed=4.0))


def demo(keep: Path | None = None, live: bool = False, tui: bool | None = None) -> int:
    """Run the demo; with `keep`, leave what it made there for exploring."""
    if tui is None:
        tui = sys.stdin.isatty() and sys.stdout.isatty()
    if keep is not None:
        return run_demo(keep, kept=True) if live else model_demo(keep, tui, kept=True)
    with tempfile.TemporaryDirectory(prefix="qmailsim-demo-") as tmp:
        return run_demo(Path(tmp) / "qmail") if live else model_demo(Path(tmp), tui)
