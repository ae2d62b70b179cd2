"""qmail-clean as a real process: requests on fd 0, one byte back on fd 1, files really gone."""

from __future__ import annotations

import contextlib
import os
import select
import time
from pathlib import Path

import pytest

from sim.kernel.real import RealKernel
from sim.mta.home import init_home
from sim.programs.registry import resolve
from sim.qmail.queue import queue_path

ID = 26902  # split 15
TIMEOUT = 10.0


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "qmail"
    init_home(path, "test.example")
    return path


class Clean:
    """A running qmail-clean: write requests, read replies, reap it."""

    def __init__(self, home: Path) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            status = 111
            try:
                os.dup2(cmd_r, 0)
                os.dup2(rep_w, 1)
                for fd in (cmd_r, rep_w, self.cmd_w, self.rep_r):
                    os.close(fd)
                kernel = RealKernel(resolve, host="test.example")
                status = kernel.run("qmail-clean", [], {"QMAILHOME": str(home)}, user="qmailq")
            finally:
                os._exit(status)
        os.close(cmd_r)
        os.close(rep_w)

    def ask(self, request: bytes, replies: int = 1) -> bytes:
        os.write(self.cmd_w, request)
        got = b""
        while len(got) < replies:
            ready, _, _ = select.select([self.rep_r], [], [], TIMEOUT)
            assert ready, f"no reply to {request!r}"
            got += os.read(self.rep_r, 16)
        return got

    def close(self) -> int:
        """End of input: qmail-clean exits; returns its status."""
        with contextlib.suppress(OSError):
            os.close(self.cmd_w)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.rep_r)
                return os.waitstatus_to_exitcode(status)
            select.select([], [], [], 0.01)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("qmail-clean did not exit at end of input")


@pytest.fixture
def clean(home: Path):
    running = Clean(home)
    yield running
    with contextlib.suppress(AssertionError):
        running.close()


def make(home: Path, *kinds: str) -> dict[str, Path]:
    paths = {k: home / "queue" / queue_path(k, ID) for k in kinds}
    for path in paths.values():
        path.write_bytes(b"x")
    return paths


def test_todo_request_unlinks_intd_and_todo(home, clean):
    files = make(home, "intd", "todo", "mess")
    assert clean.ask(f"todo/{ID}\0".encode()) == b"+"
    assert not files["intd"].exists() and not files["todo"].exists()
    assert files["mess"].exists()


def test_foop_request_unlinks_intd_and_mess(home, clean):
    files = make(home, "intd", "mess", "todo")
    assert clean.ask(f"foop/{ID}\0".encode()) == b"+"
    assert not files["intd"].exists() and not files["mess"].exists()
    assert files["todo"].exists()


def test_files_already_gone_are_fine(clean):
    assert clean.ask(f"foop/{ID}\0".encode()) == b"+"


@pytest.mark.parametrize(
    "request_", [b"todo/\0", b"todo/12a\0", b"junk/123\0", b"foop/" + b"1" * 95 + b"\0"]
)
def test_malformed_requests_get_x(clean, request_):
    assert clean.ask(request_) == b"x"


def test_an_unlink_that_really_fails_gets_bang_and_stops_there(home, clean):
    (home / "queue" / queue_path("intd", ID)).mkdir()  # unlink(2) of a directory fails
    files = make(home, "todo")
    assert clean.ask(f"todo/{ID}\0".encode()) == b"!"
    assert files["todo"].exists()


def test_requests_are_answered_one_by_one_until_end_of_input(home):
    running = Clean(home)
    assert running.ask(b"todo/1\0todo/2\0x\0", replies=3) == b"++x"
    assert running.close() == 0


def test_stale_pid_files_are_swept_at_start(home):
    stale, fresh = home / "queue/pid/99.1.1", home / "queue/pid/98.2.1"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    old = time.time() - 129600 - 60
    os.utime(stale, (old, old))
    running = Clean(home)
    assert running.ask(b"todo/1\0") == b"+"  # the sweep comes before the first request
    assert not stale.exists() and fresh.exists()
    assert running.close() == 0


def test_no_queue_directory_exits_111(tmp_path):
    running = Clean(tmp_path / "nowhere")
    assert running.close() == 111
