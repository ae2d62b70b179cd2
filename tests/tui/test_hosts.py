"""Traces of several hosts: each host's pids and queue ids are its own, in the fold and on
screen; a trace of one host looks as it always did."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from textual.widgets import Static

import sim
from tests.tui.events import ALPHA, BETA, HOST, MSG, delivery_story, two_host_story
from tests.tui.test_app import WIDE, rows
from tui.app import QmailTui
from tui.hosts import host_labels
from tui.inspect import report
from tui.state import TraceState
from tui.widgets.eventlog import LogTable
from tui.widgets.processes import COLUMNS, ProcessTable
from tui.widgets.queue import QueuePanel

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize(
    ("hosts", "labels"),
    [
        ([HOST, HOST], {}),
        ([], {}),
        ([ALPHA, BETA, ALPHA], {ALPHA: "alpha", BETA: "beta"}),
        (["mail.a.test", "mail.b.test", "c"], {"mail.a.test": "mail.a.test",
                                                "mail.b.test": "mail.b.test", "c": "c"}),
    ],
)  # fmt: skip
def test_labels_only_when_there_are_several_hosts(hosts, labels):
    assert host_labels(hosts) == labels


@pytest.fixture(scope="module")
def two() -> TraceState:
    return TraceState.fold(two_host_story())


def test_the_same_pid_on_two_hosts_is_two_processes(two):
    assert list(two.hosts) == [ALPHA, BETA]
    assert (two.processes[ALPHA, 29].prog, two.processes[ALPHA, 29].uid) == (
        "qmail-smtpd", "qmaild"
    )  # fmt: skip
    assert (two.processes[BETA, 29].prog, two.processes[BETA, 29].uid) == (
        "qmail-inject", "carol"
    )  # fmt: skip
    for host in (ALPHA, BETA):
        queue = two.processes[host, 30]
        assert (queue.prog, queue.state, queue.accounts) == ("qmail-queue", "exit 0", [
            "carol" if host == BETA else "qmaild", "qmailq"
        ])  # fmt: skip
        assert all(two.events[i]["host"] == host for i in queue.events)


def test_each_hosts_message_keeps_its_own_sender_and_files(two):
    alpha, beta = two.messages[ALPHA, MSG], two.messages[BETA, MSG]
    assert (alpha.sender, beta.sender) == ("bob@example.test", "carol@beta.test")
    for message in (alpha, beta):
        assert [s for _, s, _ in message.history] == ["S2", "S3", "S4"]
        assert sorted(f.dir for f in two.files_of(message.host, MSG)) == ["intd", "mess", "todo"]
        assert all(two.events[i]["host"] == message.host for i in message.events)


def test_pipes_join_programs_of_one_host_only(two):
    pipes = {edge for edge in two.edges if edge[2] == "pipe"}
    assert pipes == {
        ("qmail-smtpd", "qmail-queue", "pipe"),
        ("qmail-inject", "qmail-queue", "pipe"),
    }


def test_the_inspector_names_the_host_and_keeps_to_it(two):
    found = report(two, ("message", (BETA, MSG)))
    text = "\n".join(line for _, lines in found.sections for line in lines)
    assert found.title == f"message {MSG} on {BETA}"
    assert "sender: carol@beta.test" in text and "bob@" not in text
    assert "beta: qmail-queue[30] (qmailq), exit 0" in text
    children = dict(report(two, ("process", (ALPHA, 29))).sections)["children"]
    assert children == ["alpha: qmail-queue[30] (qmailq), exit 0"]


def test_a_model_run_of_two_hosts_folds_each_host_apart():
    events = sim.run(SCENARIOS / "two-hosts.toml", until=20).trace
    state = TraceState.fold(events)
    senders: dict[tuple[str, int], set[str]] = defaultdict(set)
    progs: dict[tuple[str, int], str] = {}
    for event in events:
        if event["kind"] == "queue" and "sender" in event:
            senders[event["host"], event["id"]].add(event["sender"])
        if "pid" in event:
            progs[event["host"], event["pid"]] = event.get("program", event["prog"])
    assert {pid for _, pid in progs if (ALPHA, pid) in progs and (BETA, pid) in progs}
    assert {id for _, id in senders if (ALPHA, id) in senders and (BETA, id) in senders}
    for key, sender in senders.items():
        assert {state.messages[key].sender} == sender
    assert {key: p.prog for key, p in state.processes.items()} == progs


async def test_the_panels_show_the_host_when_there_are_several():
    app = QmailTui(two_host_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end")
        processes = rows(app.query_one(ProcessTable))
        assert ["alpha", "29", "28", "qmaild", "qmail-smtpd", "running"] in processes
        assert ["beta", "29", "28", "carol", "qmail-inject", "running"] in processes
        assert len(processes) == 4
        queue = [(r[0], r[1], r[2].strip()) for r in rows(app.query_one(QueuePanel))]
        assert ("S4", "alpha", f"✉ {MSG} queued") in queue
        assert ("S4", "beta", f"✉ {MSG} queued") in queue
        assert ("", "beta", f"todo/{MSG}") in queue
        log = rows(app.query_one(LogTable))
        assert {r[1] for r in log} == {"alpha", "beta"}
        await pilot.press("slash", *"beta", "enter")
        assert {r[1] for r in rows(app.query_one(LogTable))} == {"beta"}
        await pilot.press("tab", "tab")  # log → inspector → queue
        table = app.query_one(QueuePanel)
        table.move_cursor(row=[r[1:3] for r in queue].index(("beta", f"✉ {MSG} queued")))
        await pilot.pause()
        assert app.selection == ("message", (BETA, MSG))
        body = str(app.query_one("#inspector-body", Static).render())
        assert "carol@beta.test" in body and "bob@example.test" not in body


async def test_a_trace_of_one_host_has_no_host_column():
    app = QmailTui(delivery_story())
    async with app.run_test(size=WIDE) as pilot:
        await pilot.press("end")
        assert [c.value for c in app.query_one(ProcessTable).columns] == list(COLUMNS)
        assert [c.value for c in app.query_one(QueuePanel).columns] == ["state", "message / file"]
        assert [c.value for c in app.query_one(LogTable).columns] == ["t", "event"]
