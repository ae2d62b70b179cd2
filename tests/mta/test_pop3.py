"""POP3 retrieval, live: smtplib in, poplib out, through qmail-popup, checkpassword, qmail-pop3d."""

from __future__ import annotations

import poplib
import smtplib
import time
from pathlib import Path

import pytest

from sim.mta import daemon
from tests.mta.conftest import WAIT, Mta, wait_for


def password(home: Path, user: str) -> str:
    for line in (home / "etc" / "pop3passwd").read_text().splitlines():
        name, secret, *_ = line.split(":")
        if name == user:
            return secret
    raise AssertionError(f"no POP3 password for {user}")


@pytest.fixture
def pop3_mta(make_home, monkeypatch):
    monkeypatch.setenv("QMAILSIM_TIMESCALE", "0.001")
    home = make_home()
    _, port = daemon.start(home, ("127.0.0.1", 0), {}, pop3=("127.0.0.1", 0))
    pop3_port = int((home / "run" / "pop3").read_text().strip().rsplit(":", 1)[1])
    try:
        yield Mta(home, port), pop3_port
    finally:
        daemon.stop(home)


def test_mail_sent_by_smtp_is_read_and_deleted_over_pop3(pop3_mta) -> None:
    mta, pop3_port = pop3_mta
    with smtplib.SMTP("127.0.0.1", mta.port, timeout=WAIT) as smtp:
        for n in (1, 2):
            smtp.sendmail(
                "bob@example.test", ["alice@example.test"], b"Subject: %d\r\n\r\n.dot\r\n" % n
            )
    new = mta.home / "home" / "alice" / "Maildir" / "new"
    wait_for(lambda: len(list(new.iterdir())) == 2, "two messages in alice's Maildir")
    # qmail-pop3d lists only messages older than the current second, as qmail's does
    newest = max(int(p.stat().st_mtime) for p in new.iterdir())
    wait_for(lambda: time.time() >= newest + 1, "the next second")
    pop = poplib.POP3("127.0.0.1", pop3_port, timeout=WAIT)
    try:
        assert pop.getwelcome().startswith(b"+OK <") and pop.getwelcome().endswith(
            b"@example.test>"
        )
        pop.user("alice")
        assert pop.pass_(password(mta.home, "alice")).startswith(b"+OK")
        count, _ = pop.stat()
        assert count == 2
        bodies = [b"\n".join(pop.retr(i)[1]) for i in (1, 2)]
        assert sorted(b.split(b"Subject: ")[1][:1] for b in bodies) == [b"1", b"2"]
        assert all(b.startswith(b"Return-Path: <bob@example.test>") for b in bodies)
        # the leading dot comes back whole; qmail-pop3d adds a blank line before the final dot
        assert all(b.endswith(b"\n.dot\n") for b in bodies)
        pop.dele(1)
        pop.quit()
    except BaseException:
        pop.close()
        raise
    cur = mta.home / "home" / "alice" / "Maildir" / "cur"
    assert [p.name.endswith(":2,") for p in cur.iterdir()] == [True]  # the kept one moved
    assert list(new.iterdir()) == []


def test_a_wrong_password_gets_qmail_popups_refusal(pop3_mta) -> None:
    _, pop3_port = pop3_mta
    pop = poplib.POP3("127.0.0.1", pop3_port, timeout=WAIT)
    try:
        pop.user("alice")
        with pytest.raises(poplib.error_proto, match="authorization failed"):
            pop.pass_("not-the-password")
    finally:
        pop.close()


def test_the_trace_shows_who_runs_as_whom(pop3_mta) -> None:
    mta, pop3_port = pop3_mta
    pop = poplib.POP3("127.0.0.1", pop3_port, timeout=WAIT)
    pop.user("bob")
    pop.pass_(password(mta.home, "bob"))
    pop.stat()
    pop.quit()

    def served() -> list[dict]:
        events = mta.events()
        return events if any(e.get("prog") == "qmail-pop3d" for e in events) else []

    events = wait_for(served, "qmail-pop3d in the trace")
    accounts = {
        (e["prog"], e["uid"]) for e in events if e.get("prog", "").startswith(("qmail-p", "check"))
    }
    assert ("qmail-popup", "root") in accounts
    assert ("qmail-pop3d", "bob") in accounts
