"""The embedded default scenario: a short lesson whose counts add up and whose story shows."""

from __future__ import annotations

import pytest

import sim
from sim.qmail.constants import QMAIL_UIDS
from sim.run import Result


@pytest.fixture(scope="module")
def lesson() -> Result:
    return sim.run()


def events(result: Result, kind: str, **fields: object) -> list[dict]:
    return [
        e
        for e in result.trace
        if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())
    ]


def test_counts_add_up(lesson: Result) -> None:
    m = lesson.summary["messages"]
    assert m["injected"] == m["delivered"] + m["bounced"] + m["queued"]
    assert m["injected"] >= 5 and m["refused"] == 0 and m["queued"] == 0
    assert m["bounced"] == 1


def test_one_bounce_for_nobody_comes_back_to_alice(lesson: Result) -> None:
    (failure,) = events(lesson, "failure", prog="qmail-send")
    assert failure["recipient"] == "nobody@example.test"
    assert failure["text"].startswith("Sorry, no mailbox here by that name. (#5.1.1)")
    (made,) = events(lesson, "bounce", prog="qmail-send", bounce="single")
    assert made["to"] == "alice@example.test" and made["msg"] == failure["msg"]
    assert lesson.summary["bounces"] == {"made": 1, "delivered": 1, "queued": 0}


def test_remote_message_is_deferred_while_other_test_is_down_then_retried(lesson: Result):
    (defer,) = events(lesson, "defer", prog="qmail-send")
    assert defer["recipient"] == "dave@other.test" and defer["channel"] == "remote"
    assert "wasn't able to establish an SMTP connection" in defer["text"]
    assert 60 <= defer["t"] <= 63  # qmail-remote's timeoutconnect: 60 s
    (retry,) = events(lesson, "retry", msg=defer["msg"])
    delivered = events(lesson, "delivered", channel="remote")
    assert [d["msg"] for d in delivered] == [defer["msg"]]
    down_until = events(lesson, "fault-end", fault="remote-down")[0]["t"]
    birth = next(r["birth"] for r in lesson.rows["messages"] if r["id"] == defer["msg"])
    # qmail's schedule: birth + (0 + 20)^2 s, woken up to SLEEP_FUZZ (1 s) later
    assert retry["next"] - lesson.world.epoch == pytest.approx(birth + 400, abs=0.01)
    assert down_until < delivered[0]["t"] < birth + 400 + 2
    d = lesson.summary["deliveries"]
    assert (d["remote"], d["deferred"], d["failed"], d["unfinished"]) == (1, 1, 1, 0)
    assert d["local"] == lesson.summary["messages"]["injected"] - 1 + 1  # + the bounce, - nobody


def test_latency_is_reported_under_qmailanalogs_names(lesson: Result) -> None:
    lat = lesson.summary["latency"]
    assert set(lat) == {"qtime", "ddelay", "xdelay"}
    for stats in lat.values():
        assert set(stats) == {"count", "p50", "p90", "p99", "max"}
        assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert lat["qtime"]["max"] == pytest.approx(401.48, abs=0.5)  # the retried message
    assert lat["ddelay"]["max"] == pytest.approx(60.0, abs=0.1)  # the connect timeout


def test_hosts_utilisation_and_processes_per_account(lesson: Result) -> None:
    (host,) = lesson.summary["hosts"].values()
    assert 0 < host["cpu"] < 0.01 and 0 < host["disk"] < 0.01
    assert host["boots"] == 1 and host["queue"] == {"messages": 0, "todo": 0, "partial": 0}
    per_uid = lesson.summary["processes"]
    by_smtp = sum(1 for o in lesson.world.clients.outcomes if o.arrival.via == "smtp")
    assert per_uid["qmaild"] == 1 + by_smtp  # tcpserver, and one qmail-smtpd per connection
    assert per_uid["qmails"] == per_uid["qmaill"] == 1
    assert set(per_uid) <= {*QMAIL_UIDS, "alice", "bob"}
    spawned = 2 + (len(lesson.world.clients.outcomes) - by_smtp)  # boot script, qmail-injects
    assert sum(per_uid.values()) == spawned + sum(1 for e in lesson.trace if e["kind"] == "fork")


def test_the_run_counts_the_calls_the_programs_made(lesson: Result) -> None:
    run, m = lesson.summary["run"], lesson.summary["messages"]
    traced = [e for e in lesson.trace if e.get("prog") not in (None, "model")]
    traced_calls = [e for e in traced if e["kind"] != "exit"]  # an exit may be the kernel's
    assert run["calls"] >= len(traced_calls) > 100  # and the quiet calls are not traced
    finished = m["delivered"] + m["bounced"]
    assert run["calls_per_message"] == round(run["calls"] / finished, 1)


def test_tables_are_rows_without_pandas(lesson: Result) -> None:
    tables = lesson.tables()
    assert set(tables) == {"messages", "deliveries", "processes"}
    rows = tables["messages"]
    if not isinstance(rows, list):  # pandas is installed: a DataFrame
        rows = rows.to_dict("records")
    statuses = {r["status"] for r in rows}
    assert statuses == {"delivered", "bounced"}
    origins = sorted(r["origin"] for r in rows)
    assert origins.count("bounce") == 1 and "relay" not in origins
