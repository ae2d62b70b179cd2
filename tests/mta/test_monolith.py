"""The monolith runs for real: one root daemon queues and delivers in-process."""

from __future__ import annotations

import smtplib

from sim.arch import build_graph
from sim.archtrace import check_trace
from sim.mta import daemon
from tests.mta.conftest import WAIT, Mta, wait_for
from tests.mta.smtp_client import GO_AHEAD, Client, crashes, envelope_and_data


def test_monolith_delivers_as_root_without_any_qmail_program(make_home) -> None:
    home = make_home()
    _, port = daemon.start(home, ("127.0.0.1", 0), {}, programs=("mta-monolith",))
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: m\r\n\r\nmono\r\n")
        new = home / "home" / "alice" / "Maildir" / "new"
        (delivered,) = wait_for(lambda: list(new.iterdir()), "the monolith's delivery")
        assert delivered.read_bytes().startswith(
            b"Return-Path: <bob@example.test>\nDelivered-To: alice@example.test\n"
        )
        wait_for(lambda: not list((home / "queue" / "todo").iterdir()), "the queue emptied")
    finally:
        daemon.stop(home)
    events = [e for e in Mta(home, port).events() if "prog" in e]
    assert {e["prog"] for e in events} == {"mta-monolith"}
    assert {e["uid"] for e in events} == {"root"}  # everything, always, as root
    assert any(e.get("label") == "smtp-connection" for e in events)
    assert not any(e.get("kind") == "exec" for e in events)
    assert check_trace(build_graph("monolith"), events) == []


def exits_of(mta: Mta, label: str) -> dict[int, int | None]:
    """pid -> exit status (None while it runs) of each child forked with `label`."""
    events = mta.events()
    forks = [e for e in events if e.get("kind") == "fork" and e.get("label") == label]
    pids = [e["result"] for e in forks if "result" in e]
    status = {e["pid"]: e["status"] for e in events if e.get("kind") == "exit"}
    return {pid: status.get(pid) for pid in pids}


def test_monolith_ends_a_bare_lf_or_a_vanished_client_quietly_and_serves_on(make_home) -> None:
    home = make_home()
    _, port = daemon.start(home, ("127.0.0.1", 0), {}, programs=("mta-monolith",))
    mta = Mta(home, port)
    try:
        with Client(mta) as client:
            client.reply()
            client.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
            assert client.replies(3)[-1] == GO_AHEAD
            client.send(b"Subject: x\n\nbody\n.\n")
            assert client.read_to_end() == b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
        with Client(mta) as client:
            client.reply()
            client.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
            assert client.replies(3)[-1] == GO_AHEAD
            client.send(b"Subject: half\r\n\r\nthe client goes away")
        ended = wait_for(
            lambda: (s := exits_of(mta, "smtp-connection")) and None not in s.values() and s,
            "both connections' ends",
        )
        assert list(ended.values()) == [1, 1]  # qmail-smtpd's exit for both, not a crash
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: n\r\n\r\nnext\r\n")
        new = home / "home" / "alice" / "Maildir" / "new"
        (delivered,) = wait_for(lambda: list(new.iterdir()), "the next message's delivery")
        assert delivered.read_bytes().endswith(b"Subject: n\n\nnext\n")
    finally:
        daemon.stop(home)
    assert "Traceback" not in (home / "log" / "mta.log").read_text()
    assert not crashes(mta)
