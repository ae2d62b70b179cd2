"""A live mini-MTA for tests: a qmail home in a temporary directory, on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.mta import daemon
from sim.mta.home import init_home
from sim.mta.runner import program_env, run_program

WAIT = 15.0  # seconds any condition may take before a test fails


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Poll `condition` until it returns something true; fail the test with `what` if not."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


@dataclass
class Mta:
    """A running instance: its home, its SMTP port, and readers for what it left on disk."""

    home: Path
    port: int

    @property
    def queue(self) -> Path:
        return self.home / "queue"

    def files(self, kind: str) -> list[Path]:
        """Every message file under queue/<kind> (split directories included)."""
        return sorted(p for p in (self.queue / kind).rglob("*") if p.is_file())

    def todo_for(self, qp: int) -> Path | None:
        """The todo/ entry written by qmail-queue pid `qp` (its `p` record)."""
        for path in self.files("todo"):
            if f"\0p{qp}\0".encode() in path.read_bytes():
                return path
        return None

    def events(self) -> list[dict]:
        """The trace so far (the collector writes whole lines)."""
        trace = self.home / "log" / "trace.jsonl"
        if not trace.exists():
            return []
        return [json.loads(line) for line in trace.read_text().splitlines() if line]

    def connect(self) -> socket.socket:
        """A raw client socket with a timeout."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)


def run_with_stdin(home: Path, prog: str, args: list[str], stdin: bytes) -> int:
    """Run a qmail program (qmail-inject, sendmail) as `mta inject` does, `stdin` on its fd 0."""
    read, write = os.pipe()
    os.write(write, stdin)
    os.close(write)
    saved = os.dup(0)
    os.dup2(read, 0)
    os.close(read)
    try:
        return run_program(home, prog, args, env=program_env(home))
    finally:
        os.dup2(saved, 0)
        os.close(saved)


def start_mta(home: Path, programs: tuple[str, ...] = ("tcpserver",), **env: str) -> Mta:
    """Start an MTA in `home` (already initialised) on a free port."""
    _, port = daemon.start(home, ("127.0.0.1", 0), env, programs=programs)
    return Mta(home, port)


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[..., Path]:
    """Lay out a qmail home: me=example.test, users alice and bob."""

    def make(name: str = "q", me: str = "example.test", **kw) -> Path:
        home = tmp_path / name
        init_home(home, me, users=kw.pop("users", ["alice", "bob"]), **kw)
        return home

    return make


@pytest.fixture
def receiving(make_home) -> Iterator[Mta]:
    """The receiving side only (tcpserver → qmail-smtpd → qmail-queue): mail stays in todo/."""
    home = make_home()
    mta = start_mta(home)
    try:
        yield mta
    finally:
        daemon.stop(home)
