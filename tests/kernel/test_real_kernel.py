"""RealKernel runs effect programs as real processes joined by real pipes, and traces them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

import tests.kernel.progs  # noqa: F401  (registers the tiny programs)
from sim.kernel import effects as fx
from sim.kernel import trace
from sim.kernel.real import RealKernel
from sim.programs.registry import resolve


@pytest.fixture
def traced(tmp_path: Path):
    """A kernel whose trace goes to an append-only file, and a reader of its events."""
    path = tmp_path / "trace.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    kernel = RealKernel(resolve, host="test.example", trace_fd=fd)
    assert kernel.trace_fd >= 100  # moved above the descriptors programs use
    yield kernel, lambda: list(trace.read_events(path.read_text().splitlines()))
    os.close(kernel.trace_fd)  # the kernel owns the descriptor it was given


@pytest.mark.parametrize("exec_mode", [False, True], ids=["fork", "exec"])
def test_fork_exec_pipe_carries_bytes_and_exit_status(traced, exec_mode):
    kernel, events = traced
    kernel.exec_mode = exec_mode
    kernel.resolver_path = "tests.kernel.progs:resolve"  # a fresh interpreter must find them
    assert kernel.run("t-parent", ["hello"], {"PATH": os.environ["PATH"]}, user="root") == 7
    kinds = [(e["prog"], e["kind"]) for e in events()]
    assert ("t-parent", "fork") in kinds
    assert ("t-parent", "exec") in kinds  # the child, before exec, still runs t-parent
    assert ("t-writer", "write") in kinds
    assert ("t-parent", "heard") in kinds
    said = next(e for e in events() if e["kind"] == "said")
    assert said["uid"] == "qmaild" and said["why"] == "asked to"
    parent_pid = next(e["pid"] for e in events() if e["kind"] == "fork")
    assert said["ppid"] == parent_pid and said["pid"] != parent_pid


def test_failed_call_is_thrown_into_program_and_traced_with_errno(traced, tmp_path):
    kernel, events = traced
    assert kernel.run("t-open", [str(tmp_path / "missing")], {}, user=None) == 3
    (opened,) = [e for e in events() if e["kind"] == "open"]
    assert opened["err"] == "ENOENT"


def test_lock_is_an_flock_that_another_holder_refuses(traced, tmp_path):
    kernel, events = traced
    mutex = tmp_path / "sendmutex"
    mutex.touch()
    with mutex.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert kernel.run("t-lock", [str(mutex)], {}, user=None) == 11  # EWOULDBLOCK
    assert kernel.run("t-lock", [str(mutex)], {}, user=None) == 0  # closed: the lock went
    assert [e.get("err") for e in events() if e["kind"] == "lock"] == ["EAGAIN", None]


def test_setuid_program_keeps_real_account(traced):
    kernel, events = traced
    assert kernel.run("t-whoami", [], {}, user="qmaild") == 0
    (who,) = [e for e in events() if e["kind"] == "whoami"]
    assert (who["user"], who["uid_"]) == ("qmaild", 7791)
    assert (who["uid"], who["prog"]) == ("qmailq", "t-whoami")


def test_bug_in_child_looks_like_a_crash_to_the_parent(traced, capfd):
    kernel, events = traced
    assert kernel.run("t-crash-parent", [], {}, user=None) == 9
    assert any(e["kind"] == "crash" and "RuntimeError" in e["traceback"] for e in events())


def test_every_effect_has_a_real_handler():
    kernel = RealKernel(resolve, host="h")
    assert set(kernel.handlers) == set(fx.ALL_EFFECTS)
    assert len(fx.ALL_EFFECTS) >= 30
