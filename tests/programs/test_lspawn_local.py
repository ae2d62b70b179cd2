"""qmail-lspawn, qmail-getpw and qmail-local as real processes: commands in, results out.

Each test lays out a qmail home, puts a message in queue/mess as qmail-queue would, starts
qmail-lspawn on RealKernel (as root, `./Maildir/` as default delivery, exactly as qmail-start
runs it), and speaks qmail-send's side of the spawn protocol. Texts are qmail's.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.mta.home import init_home
from sim.qmail.envelope import parse_queue_file
from sim.qmail.mbox import split_mbox
from sim.qmail.spawn import SpawnCommand, SpawnResult
from tests.programs.spawner_harness import Spawner, put_message, start

ME = "a.example"
SENDER = "joe@x.example"
MESSAGE = b"From: joe@x.example\nSubject: hi\n\nHello.\n"
FROM_LINE = r"From joe@x\.example \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}\n"  # UFLINE, mbox From_


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "qmail"
    init_home(path, ME, users=["alice", "bob"])
    return path.resolve()


@pytest.fixture
def lspawn(home: Path) -> Iterator[Spawner]:
    spawner = Spawner(start(home, "qmail-lspawn", ["./Maildir/"], user="root", host=ME))
    try:
        yield spawner
    finally:
        spawner.proc.stop()


def dotqmail(home: Path, user: str, name: str, text: str, mode: int = 0o644) -> None:
    path = home / "home" / user / name
    path.write_text(text)
    path.chmod(mode)


def deliver(
    lspawn: Spawner, home: Path, recipient: str, message: bytes = MESSAGE, sender: str = SENDER
) -> SpawnResult:
    """One delivery of a fresh message to `recipient`; returns the spawner's result."""
    put_message(home, 4242, message)
    lspawn.send(SpawnCommand.for_message(0, 4242, sender, recipient))
    return lspawn.results(1)[0]


def new_files(home: Path, user: str) -> list[Path]:
    return sorted((home / "home" / user / "Maildir" / "new").iterdir())


def test_handshake_is_one_byte_of_conf_spawn(lspawn):
    assert lspawn.handshake() == b"\x78"
    assert lspawn.proc.wait() == 0  # qmail-send went away, no delivery left: exit 0


def test_maildir_delivery_leaves_one_file_in_new_with_return_path_and_delivered_to(lspawn, home):
    lspawn.handshake()
    result = deliver(lspawn, home, "alice@a.example")
    assert (result.status, result.text) == ("K", b"did 1+0+0\n")
    (path,) = new_files(home, "alice")
    assert path.read_bytes() == (
        b"Return-Path: <joe@x.example>\nDelivered-To: alice@a.example\n" + MESSAGE
    )
    assert not list((home / "home" / "alice" / "Maildir" / "tmp").iterdir())
    assert re.fullmatch(r"\d+\.M\d+P\d+Q0\.a\.example", path.name)
    assert lspawn.proc.wait() == 0
    events = lspawn.proc.events()
    user = next(e for e in events if e["kind"] == "user")
    assert (user["user"], user["source"], user["uid_"]) == ("alice", "users/assign", 1001)
    kinds = [(e["prog"], e["kind"]) for e in events]
    order = [k for k in kinds if k in {("qmail-local", "fsync"), ("qmail-local", "link")}]
    assert order == [("qmail-local", "fsync"), ("qmail-local", "link")]  # fsync before link
    assert any(e["prog"] == "qmail-local" and e["uid"] == "alice" for e in events)


def test_unknown_user_goes_to_alias_through_getpw_and_bounces(lspawn, home):
    lspawn.handshake()
    result = deliver(lspawn, home, "nobody@a.example")
    assert (result.status, result.text) == ("D", b"Sorry, no mailbox here by that name. (#5.1.1)\n")
    lspawn.proc.wait()
    getpw = next(e for e in lspawn.proc.events() if e["kind"] == "getpw")
    assert (getpw["user"], getpw["ext"], getpw["uid"]) == ("alias", "nobody", "qmailp")


def test_alias_dotqmail_catches_postmaster(lspawn, home):
    lspawn.handshake()
    result = deliver(lspawn, home, "Postmaster@a.example")
    assert (result.status, result.text) == ("K", b"did 1+0+0\n")
    (path,) = (home / "alias" / "Maildir" / "new").iterdir()
    assert b"Delivered-To: Postmaster@a.example\n" in path.read_bytes()


def test_trash_address_is_delivered_with_no_text(lspawn, home):
    lspawn.handshake()
    assert deliver(lspawn, home, "@a.example") == SpawnResult(0, "K", b"")


@pytest.mark.parametrize(
    ("recipient", "messid", "report"),
    [
        ("alice", "4242", b"DSorry, address must include host name. (#5.1.3)\n"),
        ("alice@a.example", "7/99", b"Zqmail-spawn unable to open message. (#4.3.0)\n"),
        ("alice@a.example", "x1", b"DInternal error: messid has nonnumerics. (#5.3.5)\n"),
    ],
)
def test_spawner_refuses_bad_commands_in_qmails_words(lspawn, home, recipient, messid, report):
    lspawn.handshake()
    put_message(home, 4242, MESSAGE)
    lspawn.send(SpawnCommand(5, messid, SENDER, recipient))
    assert lspawn.results(1)[5].report == report


def test_deliveries_run_in_parallel_and_each_slot_gets_its_result(lspawn, home):
    lspawn.handshake()
    put_message(home, 4242, MESSAGE)
    lspawn.send(*(SpawnCommand.for_message(n, 4242, SENDER, "bob@a.example") for n in range(6)))
    results = lspawn.results(6)
    assert sorted(results) == list(range(6))
    assert {r.report for r in results.values()} == {b"Kdid 1+0+0\n"}
    assert len(new_files(home, "bob")) == 6


def test_extension_default_file_runs_program_with_qmails_environment(lspawn, home):
    names = "SENDER NEWSENDER RECIPIENT USER HOME HOST LOCAL EXT EXT2 EXT3 EXT4"
    names += " HOST2 HOST3 HOST4 DEFAULT DTLINE RPLINE UFLINE"
    fmt = "%s|" * len(names.split())
    args = " ".join(f'"${n}"' for n in names.split())
    dotqmail(home, "bob", ".qmail-lists-default", f"|printf '{fmt}' {args} > env.out; cat > in\n")
    lspawn.handshake()
    result = deliver(lspawn, home, "bob-lists-x-y@mail.a.example")
    assert (result.status, result.text) == ("K", b"did 0+0+1\n")
    bob = home / "home" / "bob"
    values = dict(zip(names.split(), (bob / "env.out").read_text().split("|"), strict=False))
    assert values == {
        "SENDER": SENDER,
        "NEWSENDER": SENDER,
        "RECIPIENT": "bob-lists-x-y@mail.a.example",
        "USER": "bob",
        "HOME": str(bob),
        "HOST": "mail.a.example",
        "LOCAL": "bob-lists-x-y",
        "EXT": "lists-x-y",
        "EXT2": "x-y",
        "EXT3": "y",
        "EXT4": "",
        "HOST2": "mail.a",
        "HOST3": "mail",
        "HOST4": "mail",
        "DEFAULT": "x-y",
        "DTLINE": "Delivered-To: bob-lists-x-y@mail.a.example\n",
        "RPLINE": "Return-Path: <joe@x.example>\n",
        "UFLINE": values["UFLINE"],
    }
    assert re.fullmatch(FROM_LINE, values["UFLINE"])
    assert (bob / "in").read_bytes() == MESSAGE  # programs get the message as it is
    lspawn.proc.wait()
    note = next(e for e in lspawn.proc.events() if e["kind"] == "dotqmail")
    assert note["file"] == ".qmail-lists-default"
    assert "(no .qmail-lists-x-y, .qmail-lists-x-default)" in note["why"]


@pytest.mark.parametrize(
    ("program", "report", "maildir_files"),
    [
        ("exit 0", b"Kdid 1+0+1\n", 1),
        ("echo kept; exit 99", b"Kkept\ndid 0+0+1\n", 0),
        ("echo no such list; exit 100", b"Dno such list\n", 0),
        ("exit 64", b"D", 0),
        ("echo later; exit 111", b"Zlater\n", 0),
        ("exit 3", b"Z", 0),
        ("kill -9 $$", b"ZAack, child crashed. (#4.3.0)\n", 0),
    ],
)
def test_program_exit_codes_map_as_qmail_local_does(lspawn, home, program, report, maildir_files):
    dotqmail(home, "bob", ".qmail-prog", f"|{program}\n./Maildir/\n")
    lspawn.handshake()
    assert deliver(lspawn, home, "bob-prog@a.example").report == report
    assert len(new_files(home, "bob")) == maildir_files


def test_mbox_gets_from_line_and_from_quoting(lspawn, home):
    dotqmail(home, "bob", ".qmail-box", "./Mailbox\n")
    message = b"Subject: q\n\nFrom me\n>From you\nno newline"
    lspawn.handshake()
    assert deliver(lspawn, home, "bob-box@a.example").report == b"Kdid 1+0+0\n"
    assert deliver(lspawn, home, "bob-box@a.example", message, sender="").report == (
        b"Kdid 1+0+0\n"
    )
    mbox = (home / "home" / "bob" / "Mailbox").read_bytes()
    with (home / "home" / "bob" / "Mailbox").open("rb") as box:
        fcntl.flock(box, fcntl.LOCK_EX | fcntl.LOCK_NB)  # qmail-local's flock went with it
    first, second = split_mbox(mbox)
    assert re.fullmatch(FROM_LINE, first.from_line.decode())
    assert second.from_line.startswith(b"From MAILER-DAEMON ")
    assert b"\n>From me\n>>From you\nno newline\n\n" in mbox
    assert second.message == b"Return-Path: <>\nDelivered-To: bob-box@a.example\n" + message + b"\n"


def test_forward_reinjects_through_qmail_queue_with_owner_sender(lspawn, home):
    dotqmail(home, "bob", ".qmail-fwd", "&carol@c.example\ndave@d.example\n")
    dotqmail(home, "bob", ".qmail-fwd-owner", "./Maildir/\n")
    lspawn.handshake()
    result = deliver(lspawn, home, "bob-fwd@a.example")
    assert result.status == "K"
    qp = re.fullmatch(rb"did 0\+2\+0\nqp (\d+)\n", result.text)
    assert qp
    (todo,) = (home / "queue" / "todo").iterdir()
    queued = parse_queue_file(todo.read_bytes())
    assert queued.sender == "bob-fwd-owner@a.example"  # NEWSENDER, from .qmail-fwd-owner
    assert list(queued.recipients) == ["carol@c.example", "dave@d.example"]
    assert queued.pid == int(qp.group(1))
    mess = home / "queue" / "mess" / str(int(todo.name) % 23) / todo.name
    assert mess.read_bytes().endswith(b"\nDelivered-To: bob-fwd@a.example\n" + MESSAGE)


def test_message_with_my_delivered_to_line_is_a_loop(lspawn, home):
    looped = b"Delivered-To: alice@a.example\n" + MESSAGE
    lspawn.handshake()
    result = deliver(lspawn, home, "alice@a.example", looped)
    assert result.report == (
        b"DThis message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    )
    assert not new_files(home, "alice")


def test_world_writable_dotqmail_defers(lspawn, home):
    dotqmail(home, "bob", ".qmail-open", "./Maildir/\n", mode=0o646)
    lspawn.handshake()
    assert deliver(lspawn, home, "bob-open@a.example").report == (
        b"ZUh-oh: .qmail file is writable. (#4.7.0)\n"
    )


def test_extension_without_any_dotqmail_has_no_mailbox(lspawn, home):
    lspawn.handshake()
    assert deliver(lspawn, home, "bob-nothing@a.example").report == (
        b"DSorry, no mailbox here by that name. (#5.1.1)\n"
    )


def test_really_execed_programs_deliver_the_same_way(home):
    """exec mode: qmail-local, qmail-getpw and the shell each start by a real execve."""
    dotqmail(home, "bob", ".qmail-both", "|cat > copy\n./Maildir/\n")
    proc = start(home, "qmail-lspawn", ["./Maildir/"], user="root", host=ME, exec_mode=True)
    spawner = Spawner(proc)
    try:
        spawner.handshake()
        put_message(home, 4242, MESSAGE)
        spawner.send(
            SpawnCommand.for_message(0, 4242, SENDER, "bob-both@a.example"),
            SpawnCommand.for_message(1, 4242, SENDER, "nobody@a.example"),
        )
        results = spawner.results(2)
        assert results[0].report == b"Kdid 1+0+1\n"
        assert results[1].report == b"DSorry, no mailbox here by that name. (#5.1.1)\n"
        assert (home / "home" / "bob" / "copy").read_bytes() == MESSAGE
        assert len(new_files(home, "bob")) == 1
        assert proc.wait() == 0
    finally:
        proc.stop()
    execs = {e["program"] for e in proc.events() if e["kind"] == "exec"}
    assert {"qmail-local", "qmail-getpw", "sh"} <= execs


def add_passwd_account(home: Path, line: str) -> None:
    with (home / "etc" / "passwd").open("a") as passwd:
        passwd.write(line + "\n")


def test_getpw_finds_a_passwd_account_and_splits_the_extension(lspawn, home):
    dave = home / "home" / "dave"
    for sub in ("tmp", "new", "cur"):
        (dave / "Maildir" / sub).mkdir(parents=True)
    add_passwd_account(home, f"dave:x:1500:100::{dave}:/bin/sh")
    dotqmail(home, "dave", ".qmail-news", "./Maildir/\n")
    lspawn.handshake()
    assert deliver(lspawn, home, "dave-news@a.example").report == b"Kdid 1+0+0\n"
    assert len(new_files(home, "dave")) == 1
    lspawn.proc.wait()
    user = next(e for e in lspawn.proc.events() if e["kind"] == "user")
    assert (user["user"], user["dash"], user["ext"], user["source"]) == (
        "dave",
        "-",
        "news",
        "qmail-getpw",
    )


def test_root_never_receives_mail_the_alias_user_does(lspawn, home):
    add_passwd_account(home, f"root:x:0:0::{home}:/bin/sh")
    lspawn.handshake()
    assert deliver(lspawn, home, "root@a.example").report == b"Kdid 1+0+0\n"
    (path,) = (home / "alias" / "Maildir" / "new").iterdir()
    assert b"Delivered-To: root@a.example\n" in path.read_bytes()


def test_users_assign_entry_with_uid_0_is_refused(lspawn, home):
    assign = home / "users" / "assign"
    assign.write_text(f"=boss:root:0:0:{home}:::\n" + assign.read_text())
    lspawn.handshake()
    assert deliver(lspawn, home, "boss@a.example").report == (
        b"ZNot allowed to perform deliveries as root.\n"
    )
