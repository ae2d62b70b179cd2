"""The live MTA delivers: Maildir, A → B over SMTP, bounces, retries, .qmail programs, loops.

Every instance is a real `qmailsim mta start` on free loopback ports; qmail's retry schedule
runs a thousand times faster (QMAILSIM_TIMESCALE=0.001: the first remote retry at 0.4 s).
"""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.mta import daemon
from sim.qmail.bounce import parse_bounce
from tests.mta.conftest import WAIT, Mta, run_with_stdin, start_mta, wait_for

FULL = ("tcpserver", "qmail-start")
NO_MAILBOX = "Sorry, no mailbox here by that name. (#5.1.1)"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMAILSIM_TIMESCALE", "0.001")


@pytest.fixture
def started() -> Iterator[list[Path]]:
    """Homes to stop at the end of the test, whatever happens."""
    homes: list[Path] = []
    yield homes
    for home in homes:
        daemon.stop(home)


def start(homes: list[Path], home: Path, port: int = 0) -> Mta:
    _, real_port = daemon.start(home, ("127.0.0.1", port), {}, programs=FULL)
    homes.append(home)
    return Mta(home, real_port)


def maildir(home: Path, user: str) -> list[Path]:
    new = home / "home" / user / "Maildir" / "new"
    return sorted(new.iterdir())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sendlog(home: Path) -> str:
    path = home / "log" / "qmail-send.log"
    return path.read_text(errors="replace") if path.exists() else ""


def inject(
    home: Path, sender: str, *recipients: str, body: bytes = b"Subject: t\n\nbody\n"
) -> None:
    """qmailsim mta inject, in a child process with the message on its stdin."""
    assert run_with_stdin(home, "qmail-inject", ["-f", sender, *recipients], body) == 0


def test_smtp_to_a_local_maildir_with_qmails_header_lines(make_home, started) -> None:
    mta = start(started, make_home())
    with smtplib.SMTP("127.0.0.1", mta.port, timeout=WAIT) as smtp:
        smtp.ehlo("client.test")
        smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: hi\r\n\r\nhello\r\n")
    (delivered,) = wait_for(lambda: maildir(mta.home, "alice"), "delivery to alice")
    lines = delivered.read_bytes().split(b"\n")
    assert lines[0] == b"Return-Path: <bob@example.test>"
    assert lines[1] == b"Delivered-To: alice@example.test"
    assert re.fullmatch(rb"Received: \(qmail \d+ invoked from network\); .+ -0000", lines[2])
    assert lines[3] == b"Received: from unknown (HELO client.test) (127.0.0.1)"
    assert lines[4].startswith(b"  by example.test with SMTP; ")
    assert delivered.read_bytes().endswith(b"Subject: hi\n\nhello\n")
    assert re.fullmatch(r"\d+\.M\d+P\d+Q\d+\.example\.test", delivered.name)
    wait_for(lambda: "end msg" in sendlog(mta.home), "qmail-send's end msg line")
    log = sendlog(mta.home)
    for words in ("new msg", "info msg", "starting delivery", "delivery 1: success", "end msg"):
        assert words in log
    # qmail-send logs "end msg" before it unlinks info/ and has qmail-clean remove the rest
    wait_for(lambda: not mta.files("mess") and not mta.files("info"), "the queue emptied")
    assert not mta.files("todo") and not mta.files("intd")


def test_unknown_user_bounces_to_the_sender_in_qmails_format(make_home, started) -> None:
    mta = start(started, make_home())
    inject(mta.home, "bob@example.test", "nobody@example.test")
    (bounce,) = wait_for(lambda: maildir(mta.home, "bob"), "the bounce in bob's Maildir")
    text = bounce.read_bytes()
    assert b"Return-Path: <>" in text
    parsed = parse_bounce(text.split(b"\n", 1)[1])
    ((recipient, why),) = parsed.recipients
    assert recipient == "nobody@example.test" and NO_MAILBOX.encode() in why
    assert b"Hi. This is the qmail-send program at example.test." in text


def test_a_to_b_over_smtp_via_smtproutes(make_home, started) -> None:
    b = start(started, make_home("b", me="b.test", users=["carol"]))
    a_home = make_home("a", me="a.test", users=["alice"])
    (a_home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{b.port}\n")
    a = start(started, a_home)
    inject(a.home, "alice@a.test", "carol@b.test")
    (delivered,) = wait_for(lambda: maildir(b.home, "carol"), "delivery at B")
    text = delivered.read_bytes()
    assert text.startswith(b"Return-Path: <alice@a.test>\nDelivered-To: carol@b.test\n")
    received = re.findall(rb"Received: from ([^\n]+)\n", text)
    assert received[0] == b"unknown (HELO a.test) (127.0.0.1)"  # B's qmail-smtpd names A
    wait_for(lambda: "delivery 1: success: 127.0.0.1_accepted_message." in sendlog(a.home), "K")


def test_remote_down_is_deferred_retried_and_delivered_once_b_is_up(make_home, started) -> None:
    port = free_port()
    a_home = make_home("a", me="a.test", users=["alice"])
    (a_home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{port}\n")
    a = start(started, a_home)
    inject(a.home, "alice@a.test", "carol@b.test")
    wait_for(lambda: "deferral: Sorry,_I_wasn't_able_to_establish" in sendlog(a.home), "deferral")
    qread = "\n".join(_qread(a.home))
    assert "\tremote\tcarol@b.test" in qread and "next retry" in qread
    b = start(started, make_home("b", me="b.test", users=["carol"]), port)
    wait_for(lambda: maildir(b.home, "carol"), "delivery at B after a retry", timeout=WAIT * 2)
    assert sendlog(a.home).count("starting delivery") >= 2


def test_past_queuelifetime_a_deferral_becomes_a_bounce(make_home, started) -> None:
    home = make_home("a", me="a.test", users=["alice"])
    (home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{free_port()}\n")
    (home / "control" / "queuelifetime").write_text("1000\n")  # one second at this time scale
    a = start(started, home)
    inject(a.home, "alice@a.test", "carol@b.test")
    (bounce,) = wait_for(lambda: maildir(a.home, "alice"), "the bounce", timeout=WAIT * 2)
    assert b"I'm not going to try again; this message has been in the queue too long." in (
        bounce.read_bytes()
    )


def test_qmail_programs_exit_codes_bounce_defer_and_stop(make_home, started) -> None:
    home = make_home()
    alice = home / "home" / "alice"
    (alice / ".qmail-perm").write_text("|exit 100\n")
    (alice / ".qmail-temp").write_text("|exit 111\n")
    (alice / ".qmail-stop").write_text("|exit 99\n./Maildir/\n")
    start(started, home)
    inject(home, "bob@example.test", "alice-perm@example.test")
    wait_for(lambda: maildir(home, "bob"), "the bounce for exit 100")
    inject(home, "bob@example.test", "alice-stop@example.test")
    wait_for(lambda: sendlog(home).count("success") >= 2, "exit 99 counted as success")
    assert maildir(home, "alice") == []  # 99 stopped the Maildir line
    inject(home, "bob@example.test", "alice-temp@example.test")
    wait_for(lambda: sendlog(home).count("deferral") >= 2, "exit 111 deferred and retried")


def test_a_forwarding_loop_between_two_hosts_ends_in_one_bounce(make_home, started) -> None:
    a_port, b_port = free_port(), free_port()
    a_home = make_home("a", me="a.test", users=["alice"])
    b_home = make_home("b", me="b.test", users=["carol"])
    (a_home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{b_port}\n")
    (b_home / "control" / "smtproutes").write_text(f"a.test:127.0.0.1:{a_port}\n")
    (b_home / "control" / "rcpthosts").write_text("b.test\n")
    (a_home / "home" / "alice" / ".qmail-loop").write_text("&carol-loop@b.test\n")
    (b_home / "home" / "carol" / ".qmail-loop").write_text("&alice-loop@a.test\n")
    start(started, a_home, a_port)
    start(started, b_home, b_port)
    inject(a_home, "alice@a.test", "alice-loop@a.test")
    (bounce,) = wait_for(lambda: maildir(a_home, "alice"), "the loop bounce", timeout=WAIT * 2)
    assert b"This message is looping: it already has my Delivered-To line. (#5.4.6)" in (
        bounce.read_bytes()
    )
    assert maildir(b_home, "carol") == []


def test_trace_shows_the_whole_life_with_every_pid_and_uid(make_home, started) -> None:
    mta = start(started, make_home())
    with smtplib.SMTP("127.0.0.1", mta.port, timeout=WAIT) as smtp:
        smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: life\r\n\r\nx\r\n")
    wait_for(lambda: maildir(mta.home, "alice"), "delivery")

    def linked_into_maildir() -> list[dict]:
        events = mta.events()
        found = any(_maildir_link(e) for e in events)
        return events if found else []

    events = wait_for(linked_into_maildir, "the Maildir link in the trace")
    accounts = {(e["prog"], e["uid"]) for e in events if "prog" in e}
    for program, account in [
        ("tcpserver", "qmaild"),
        ("qmail-smtpd", "qmaild"),
        ("qmail-queue", "qmailq"),
        ("qmail-send", "qmails"),
        ("qmail-lspawn", "root"),
        ("qmail-local", "alice"),
    ]:
        assert (program, account) in accounts, program
    order = [
        next(i for i, e in enumerate(events) if e.get("label") == "qmail-smtpd"),
        next(i for i, e in enumerate(events) if e.get("dst", "").startswith("todo/")),
        next(i for i, e in enumerate(events) if e.get("prog") == "qmail-local"),
        next(i for i, e in enumerate(events) if _maildir_link(e)),
    ]
    assert order == sorted(order)
    assert all(isinstance(e.get("pid"), int) for e in events[1:])


def test_status_lists_qmails_programs_with_their_accounts(make_home, started) -> None:
    mta = start(started, make_home())
    expected = {
        ("tcpserver", "qmaild"),
        ("qmail-send", "qmails"),
        ("qmail-clean", "qmailq"),
        ("qmail-lspawn", "root"),
        ("qmail-rspawn", "qmailr"),
        ("splogger", "qmaill"),
    }

    def running() -> set[tuple[str, str]]:
        return {(prog, account) for _, prog, account in _processes(mta.home)}

    wait_for(lambda: expected <= running(), "every long-running program, with its account")


def _maildir_link(event: dict) -> bool:
    """qmail-local's tmp/ → new/ link (it works inside the Maildir, as qmail does)."""
    return (
        event.get("prog") == "qmail-local"
        and event.get("kind") == "link"
        and event.get("dst", "").startswith("new/")
    )


def _processes(home: Path) -> list[tuple[int, str, str]]:
    from sim.mta.commands import _processes as processes

    return processes(home.resolve())


def _qread(home: Path) -> list[str]:
    from sim.mta.commands import queued_messages
    from sim.qmail.qread import qread_report

    return qread_report(queued_messages(home.resolve()))


assert start_mta  # the receiving-side fixture lives beside these in conftest
