"""The architecture graph holds against reality: a live run touching every program has no
interaction that is not an edge, and every program runs under the account the graph says."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.arch import build_graph
from sim.archtrace import check_trace, check_uids
from sim.mta import daemon
from tests.mta.conftest import WAIT, Mta, run_with_stdin, wait_for

EVERY_PROGRAM = {
    "tcpserver", "qmail-smtpd", "qmail-queue", "qmail-inject", "sendmail", "qmail-start",
    "qmail-send", "qmail-clean", "qmail-lspawn", "qmail-getpw", "qmail-local", "qmail-rspawn",
    "qmail-remote", "splogger",
}  # fmt: skip


def sendmail(home: Path, *args: str, message: bytes) -> int:
    return run_with_stdin(home, "sendmail", list(args), message)


def test_a_run_of_every_program_is_all_edges_of_the_graph(make_home, monkeypatch) -> None:
    monkeypatch.setenv("QMAILSIM_TIMESCALE", "0.001")
    full = ("tcpserver", "qmail-start")
    b_home = make_home("b", me="b.test", users=["carol"])
    a_home = make_home("a", me="a.test", users=["alice"])
    homes = [b_home, a_home]
    try:
        _, b_port = daemon.start(b_home, ("127.0.0.1", 0), {}, programs=full)
        (a_home / "control" / "smtproutes").write_text(f"b.test:127.0.0.1:{b_port}\n")
        daemon.start(a_home, ("127.0.0.1", 0), {}, programs=full)
        message = b"To: carol@b.test, nobody@a.test\nSubject: all\n\nevery program\n"
        assert sendmail(a_home, "-t", "-f", "alice@a.test", message=message) == 0
        new = a_home / "home" / "alice" / "Maildir" / "new"
        wait_for(lambda: list(new.iterdir()), "the bounce for nobody@a.test", timeout=WAIT * 2)
        wait_for(lambda: list((b_home / "home/carol/Maildir/new").iterdir()), "carol's copy")
    finally:
        for home in homes:
            daemon.stop(home)
    graph = build_graph()
    seen: set[str] = set()
    for home in homes:
        events = Mta(home, 0).events()
        seen |= {e.get("prog", "") for e in events}
        assert check_trace(graph, events) == []
        assert check_uids(graph, events) == []
    assert seen >= EVERY_PROGRAM


def test_a_rogue_interaction_is_reported(make_home) -> None:
    events = [
        {"kind": "exec", "pid": 5, "ppid": 1, "uid": "qmaild", "prog": "qmail-smtpd",
         "program": "qmail-local", "argv": []},
    ]  # fmt: skip
    assert check_trace(build_graph(), events) != []


pytestmark = pytest.mark.timeout(120)
