"""Traces for the TUI's tests: one recorded from the live MTA, one written by hand.

The live one runs the receiving side only (tcpserver → qmail-smtpd → qmail-queue), so the
message stays in todo/ and the trace is the same story every time; the test waits on the
trace's content, never on a clock. The hand-written one (`events.delivery_story`) covers what
the receiving side never shows: preprocessing, qmail-clean, a local delivery, the end of a
message, a process killed by a signal.
"""

from __future__ import annotations

import asyncio
import inspect
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim.mta import daemon
from sim.mta.home import init_home
from tui.source import load_trace

WAIT = 15.0
MESSAGE = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: tui\r\n\r\nhello\r\n"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests (Textual's Pilot) on a fresh event loop; no plugin needed."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll until `condition()` is true; fail the test naming `what` if it never is."""
    deadline, delay = time.monotonic() + WAIT, 0.005
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return value


@dataclass(frozen=True)
class LiveTrace:
    """A trace the live MTA wrote: its file and its events."""

    path: Path
    events: list[dict[str, Any]]

    def first(self, **fields: Any) -> dict[str, Any]:
        """The first event with all these fields."""
        return next(e for e in self.events if all(e.get(k) == v for k, v in fields.items()))


@pytest.fixture(scope="session")
def live_trace(tmp_path_factory: pytest.TempPathFactory) -> LiveTrace:
    """One message from bob to alice through the live receiving side, recorded."""
    home = tmp_path_factory.mktemp("tui") / "qmail"
    init_home(home, "example.test", users=["alice"])
    _, port = daemon.start(home, ("127.0.0.1", 0), {}, programs=("tcpserver",))
    trace = home / "log" / "trace.jsonl"
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.sendmail("bob@example.test", ["alice@example.test"], MESSAGE)
        wait_for(lambda: '"reply":"221 ' in trace.read_text(), "qmail-smtpd's 221 in the trace")
    finally:
        daemon.stop(home)
    events, _ = load_trace(trace)
    return LiveTrace(trace, events)
