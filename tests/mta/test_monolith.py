"""The monolith runs for real: one root daemon queues and delivers in-process."""

from __future__ import annotations

import smtplib

from sim.arch import build_graph
from sim.archtrace import check_trace
from sim.mta import daemon
from tests.mta.conftest import WAIT, Mta, wait_for


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
