"""tui.flow: naming the architecture edge an event travels, across cwd, fork, dup2 and close."""

from __future__ import annotations

import pytest

from tests.tui.events import Story
from tui.flow import Flow, queue_relative


@pytest.mark.parametrize(
    ("path", "relative"),
    [
        ("mess/18/457", "mess/18/457"),
        ("/var/qmail/queue/todo/457", "todo/457"),
        ("/srv/queue/q/queue/lock/trigger", "lock/trigger"),
        ("control/me", None),
        ("/home/alice/Maildir/new/1", None),
        ("pid/30.1000.1", "pid/30.1000.1"),
    ],
)
def test_queue_relative(path, relative):
    assert queue_relative(path) == relative


def _edges(story: Story) -> list:
    flow, progs, found = Flow(), {}, []
    for event in story.events[1:]:
        who = (event["host"], event["pid"])
        progs.setdefault(who, event["prog"])
        found += flow.follow(event, lambda who: progs.get(who, "?"))
        if event["kind"] == "exec":
            progs[who] = event["program"]
    return found


def test_write_to_a_pipe_reaches_the_program_holding_the_other_end():
    s = Story()
    s(20, 1, "qmails", "qmail-send", "pipe", result=[5, 6])
    s(20, 1, "qmails", "qmail-send", "fork", label="qmail-clean", result=21)
    s(21, 20, "qmails", "qmail-send", "dup2", old=5, new=0, result=0)
    s(21, 20, "qmailq", "qmail-send", "exec", program="qmail-clean")
    s(20, 1, "qmails", "qmail-send", "close", fd=5)
    s(20, 1, "qmails", "qmail-send", "write", fd=6, n=4, data="todo")
    assert _edges(s)[-1] == ("qmail-send", "qmail-clean", "pipe")


def test_a_closed_end_no_longer_counts():
    s = Story()
    s(20, 1, "qmails", "qmail-send", "pipe", result=[5, 6])
    s(20, 1, "qmails", "qmail-send", "fork", label="x", result=21)
    s(21, 20, "qmails", "qmail-send", "close", fd=5)
    s(21, 20, "qmailq", "qmail-send", "exec", program="qmail-clean")
    s(20, 1, "qmails", "qmail-send", "write", fd=6, n=4, data="todo")
    assert ("qmail-send", "qmail-clean", "pipe") not in _edges(s)


def test_relative_paths_follow_chdir():
    s = Story()
    s(22, 20, "root", "qmail-lspawn", "chdir", path="/var/qmail/queue/mess")
    s(22, 20, "root", "qmail-lspawn", "open", path="20/457", mode="r", result=6)
    s(22, 20, "root", "qmail-lspawn", "open", path="../lock/tcpto", mode="w", result=7)
    assert _edges(s) == [
        ("queue/mess", "qmail-lspawn", "read"),
        ("qmail-lspawn", "queue/lock/tcpto", "write"),
    ]


def test_exec_is_a_fork_exec_edge_from_the_program_before_it():
    s = Story()
    s(40, 22, "alice", "qmail-lspawn", "exec", program="qmail-local", argv=[])
    assert _edges(s) == [("qmail-lspawn", "qmail-local", "fork-exec")]


def test_paths_outside_qmails_picture_are_not_edges():
    s = Story()
    s(40, 22, "alice", "qmail-local", "open", path="/etc/motd", mode="w", result=3)
    assert _edges(s) == []


def test_a_descriptor_used_against_its_mode_was_closed_unseen():
    """A fast trace leaves out closes: fd 6, opened to read the message, is now something else."""
    s = Story()
    s(22, 20, "root", "qmail-lspawn", "open", path="mess/20/457", mode="r", result=6)
    s(22, 20, "root", "qmail-lspawn", "write", fd=6, n=1, data="x")
    s(22, 20, "root", "qmail-lspawn", "read", fd=6, n=1, data="x")
    assert _edges(s) == [("queue/mess", "qmail-lspawn", "read")] * 2
