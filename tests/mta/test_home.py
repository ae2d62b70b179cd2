"""`mta init` lays out qmail's home with qmail's names and modes, whatever the umask."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from sim.mta.home import HomeError, init_home
from sim.qmail.queue import QUEUE_LAYOUT
from sim.qmail.users import parse_assign
from tests.mta.conftest import run_with_stdin
from tests.mta.test_cli import qmailsim


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
    assert (home / "control/plusdomain").read_text() == "example.test\n"
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
    assert users_of(home) == ["alice", "bob"]


def test_refuses_a_directory_that_is_not_a_qmail_home(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(HomeError, match="not empty and not a qmail home"):
        init_home(tmp_path, "example.test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(HomeError, match="bad user name"):
        init_home(tmp_path / "q", "example.test", users=["../evil"])


def users_of(home: Path) -> list[str]:
    return [e.user for e in parse_assign((home / "users/assign").read_text()) if not e.wildcard]


# What an administrator edits after the first init; a second init must leave all of it alone.
EDITED = {
    "control/locals": "a.test\nvirt.test\n",
    "control/rcpthosts": "a.test\n.virt.test\n",
    "control/defaultdomain": "elsewhere.test\n",
    "control/plusdomain": "plus.test\n",
    "alias/.qmail-postmaster": "&alice@a.test\n",
    "alias/.qmail-root": "",
    "home/alice/.qmail-list": "&bob@a.test\n",
    "home/alice/Maildir/new/1.2.a": "a message\n",
    "etc/passwd": None,  # kept as the first init wrote it, plus bob
}


def test_reinit_keeps_every_edited_file_and_adds_the_new_user(tmp_path: Path) -> None:
    home = tmp_path / "q"
    init_home(home, "a.test", users=["alice"])
    for name, text in EDITED.items():
        if text is not None:
            (home / name).write_text(text)
    (home / "home/alice/Maildir/cur").chmod(0o750)
    password = (home / "etc/pop3passwd").read_text()
    said = init_home(home, "a.test", locals_=["other.test"], users=["alice", "Bob"])
    for name, text in EDITED.items():
        if text is not None:
            assert (home / name).read_text() == text, name
    assert mode(home / "home/alice/Maildir/cur") == 0o750
    assert users_of(home) == ["alice", "bob"]
    assert (home / "etc/passwd").read_text().splitlines()[-1].startswith("bob:x:1002:100::")
    assert (home / "etc/pop3passwd").read_text().startswith(password)  # alice's is the same
    assert mode(home / "etc/pop3passwd") == 0o600
    assert mode(home / "home/bob/Maildir/new") == 0o700
    assert "control/locals: kept; --locals not applied (edit the file)" in said
    assert "alias/.qmail-postmaster: kept" in said
    assert "users/assign: kept alice; added bob" in said
    assert "home/bob/: added, with a Maildir" in said
    assert "etc/pop3passwd: added a password for bob (mode 600)" in said


def test_reinit_puts_back_what_is_missing_and_keeps_a_users_assign_as_written(
    tmp_path: Path,
) -> None:
    home = tmp_path / "q"
    init_home(home, "a.test", users=["alice"])
    assign = home / "users/assign"
    assign.write_text("=root:alice:1001:100:/h:::\n" + assign.read_text())
    (home / "alias/.qmail-root").unlink()
    (home / "home/alice/Maildir/tmp").rmdir()
    said = init_home(home, "a.test", users=["alice", "carol"])
    assert assign.read_text().startswith("=root:alice:1001:100:/h:::\n=alice:")
    exact = [e for e in parse_assign(assign.read_text()) if not e.wildcard]
    assert [(e.local, e.uid) for e in exact] == [("root", 1001), ("alice", 1001), ("carol", 1002)]
    assert (home / "alias/.qmail-root").read_text() == "./Maildir/\n"
    assert (home / "home/alice/Maildir/tmp").is_dir()
    assert "alias/.qmail-root: added" in said
    assert "home/alice/: kept; added home/alice/Maildir/tmp" in said


def test_reinit_with_another_me_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "q"
    init_home(home, "a.test", users=["alice"])
    with pytest.raises(HomeError, match=r"qmail home of a\.test, not b\.test"):
        init_home(home, "b.test", users=["alice", "bob"])
    assert (home / "control/me").read_text() == "a.test\n"
    assert users_of(home) == ["alice"]
    assert not (home / "home/bob").exists()
    result = qmailsim("mta", "init", str(home), "--me", "b.test", "--user", "bob")
    assert result.returncode == 100
    assert result.stderr.count("\n") == 1 and "refusing to change control/me" in result.stderr


def test_qmail_inject_completes_a_dotless_host_with_config_fasts_defaultdomain(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "q"
    init_home(home, "example.test")
    assert run_with_stdin(home, "qmail-inject", ["-n"], b"To: bob@mail\n\nx\n") == 0
    assert "To: bob@mail.example.test\n" in capfd.readouterr().out


def test_rcpthosts_may_name_the_domains_under_one(tmp_path) -> None:
    home = tmp_path / "q"
    list(init_home(home, "example.test", None, ["example.test", ".example.test"], ["alice"]))
    assert (home / "control" / "rcpthosts").read_text() == "example.test\n.example.test\n"


@pytest.mark.parametrize("name", ["alias", "qmaild", "Qmails", "root"])
def test_a_user_may_not_take_one_of_qmails_own_accounts(tmp_path, name: str) -> None:
    with pytest.raises(HomeError, match="one of qmail's own accounts"):
        list(init_home(tmp_path / "q", "example.test", users=["alice", name]))
    assert not (tmp_path / "q" / "users" / "assign").exists()  # refused before any writing


@pytest.mark.parametrize(
    ("me", "why"),
    [(".example.test", "it starts with a dot"), ("a..b", "it has an empty label"),
     ("a b", "no spaces, colons, slashes or newlines")],
)  # fmt: skip
def test_a_bad_me_says_what_is_wrong_with_it(tmp_path, me: str, why: str) -> None:
    with pytest.raises(HomeError, match=f"bad domain {re.escape(repr(me))}: {why}"):
        list(init_home(tmp_path / "q", me))


def test_me_is_compared_without_case_on_an_existing_home(tmp_path) -> None:
    list(init_home(tmp_path / "q", "mail.example.test", users=["alice"]))
    list(init_home(tmp_path / "q", "MAIL.example.test", users=["bob"]))
    assert "=bob:" in (tmp_path / "q" / "users" / "assign").read_text()
    assert (tmp_path / "q" / "control" / "me").read_text() == "mail.example.test\n"
