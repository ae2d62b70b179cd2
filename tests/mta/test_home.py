"""`mta init` lays out qmail's home with qmail's names and modes, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sim.mta.home import HomeError, init_home
from sim.qmail.queue import QUEUE_LAYOUT
from sim.qmail.users import parse_assign


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_layout_has_qmails_names_and_modes_even_with_umask_zero(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        init_home(tmp_path / "q", "mail.example.test", users=["Alice"])
    finally:
        os.umask(old)
    home = tmp_path / "q"
    for entry in QUEUE_LAYOUT:
        assert mode(home / entry.path) == entry.mode, entry.path
    assert stat.S_ISFIFO((home / "queue/lock/trigger").stat().st_mode)
    assert (home / "queue/lock/tcpto").stat().st_size == 1024
    assert sorted(p.name for p in (home / "queue/mess").iterdir()) == sorted(map(str, range(23)))
    assert mode(home / "home/alice") == 0o755 and mode(home / "home/alice/Maildir/new") == 0o700
    assert (home / "control/me").read_text() == "mail.example.test\n"
    assert (home / "control/rcpthosts").read_text() == "mail.example.test\n"
    assert (home / "control/defaultdomain").read_text() == "example.test\n"
    assert (home / "alias/.qmail-postmaster").read_text() == "./Maildir/\n"
    (alice, alice_ext) = parse_assign((home / "users/assign").read_text())
    assert (alice.local, alice.home, alice.wildcard) == ("alice", str(home / "home/alice"), False)
    assert (alice_ext.local, alice_ext.dash, alice_ext.wildcard) == ("alice-", "-", True)
    assert (home / "etc/passwd").read_text().startswith("alias:x:7790:")


def test_reinit_keeps_the_queue_and_adds_users(tmp_path: Path) -> None:
    home = tmp_path / "q"
    init_home(home, "example.test", users=["alice"])
    (home / "queue/todo/123").write_bytes(b"u0\0")
    init_home(home, "example.test", users=["alice", "bob"])
    assert (home / "queue/todo/123").exists()
    users = [e.user for e in parse_assign((home / "users/assign").read_text()) if not e.wildcard]
    assert users == ["alice", "bob"]


def test_refuses_a_directory_that_is_not_a_qmail_home(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HomeError, match="not empty and not a qmail home"):
        init_home(tmp_path, "example.test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(HomeError, match="bad user name"):
        init_home(tmp_path / "q", "example.test", users=["../evil"])
