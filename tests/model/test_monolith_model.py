"""The monolith in the model: `mta = "monolith"` boots mta-monolith, and its notes are counted.

The same small workload runs on a qmail host and on a monolith host; both deliver it all,
and the difference is the structure: no exec and nothing but root on the monolith, more
forks and execs per message on qmail.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

import sim
from sim.model.host import boot_commands
from sim.model.ledger import monolith_ledger
from sim.run import Result
from sim.scenario import Scenario, ScenarioError, parse_scenario

WORKLOAD = """
[scenario]
duration = 40
detail = "fast"

[[host]]
name = "mail.example.test"
users = ["alice", "bob"]
mta = "{mta}"

[host.control]
locals = ["example.test"]
rcpthosts = ["example.test"]

[[workload]]
kind = "poisson"
rate = 1.0
stop = 30
from = "carol@other.test"
to = ["alice@example.test", "bob@example.test"]
"""


def scenario(mta: str) -> Scenario:
    return parse_scenario(WORKLOAD.format(mta=mta), f"<{mta}>")


@pytest.fixture(scope="module")
def runs() -> dict[str, Result]:
    return {mta: sim.run(scenario(mta)) for mta in ("qmail", "monolith")}


def per_message(result: Result) -> Counter[str]:
    """Forks and execs in the trace, per message injected."""
    kinds = Counter(e["kind"] for e in result.trace if e["kind"] in ("fork", "exec"))
    n = result.summary["messages"]["injected"]
    return Counter({k: v / n for k, v in kinds.items()})


def test_a_monolith_host_boots_mta_monolith_as_the_live_mta_does() -> None:
    host = scenario("monolith").hosts[0]
    assert boot_commands(host, "10.0.0.1") == [("mta-monolith", ["-1", "10.0.0.1", "25"])]
    qmail = [prog for prog, _ in boot_commands(scenario("qmail").hosts[0], "10.0.0.1")]
    assert qmail == ["tcpserver", "qmail-start"]


@pytest.mark.parametrize("mta", ["qmail", "monolith"])
def test_both_designs_deliver_the_whole_workload(runs: dict[str, Result], mta: str) -> None:
    m = runs[mta].summary["messages"]
    assert m["injected"] > 20
    assert m["delivered"] == m["injected"]
    assert m["bounced"] == m["queued"] == m["refused"] == 0
    assert runs[mta].summary["deliveries"]["local"] == 2 * m["injected"]


def test_the_monolith_never_execs_and_runs_everything_as_root(runs: dict[str, Result]) -> None:
    mono = runs["monolith"]
    assert not [e for e in mono.trace if e["kind"] == "exec"]
    assert {e["uid"] for e in mono.trace if "uid" in e and e["kind"] != "trace"} == {"root"}
    assert set(mono.summary["processes"]) == {"root"}


def test_qmail_makes_more_forks_and_execs_per_message_than_the_monolith(
    runs: dict[str, Result],
) -> None:
    qmail, mono = per_message(runs["qmail"]), per_message(runs["monolith"])
    q, m = qmail["fork"] + qmail["exec"], mono["fork"] + mono["exec"]
    print(f"forks+execs per message: qmail {q:.2f}, monolith {m:.2f}, ratio {q / m:.2f}")
    assert q > m
    assert qmail["exec"] >= 3  # qmail-smtpd, qmail-queue, one qmail-local per recipient


def test_the_monolith_is_counted_without_a_kept_trace() -> None:
    tallies: list[dict[str, int]] = []
    progress = lambda now, end, tally: tallies.append(tally)  # noqa: E731
    result = sim.run(scenario("monolith"), keep_trace=False, until=10.0, progress=progress)
    m = result.summary["messages"]
    assert result.trace == [] and m["injected"] > 3
    assert m["injected"] == m["delivered"] + m["bounced"] + m["queued"]
    d = result.summary["deliveries"]
    assert tallies[-1]["delivered"] == d["local"] + d["remote"] > 3  # its notes, as it goes


def note(t: float, pid: int, kind: str, **fields: str) -> dict:
    return {"t": t, "pid": pid, "kind": kind, **fields}


def test_the_monolith_ledger_follows_deferrals_retries_and_failures() -> None:
    notes = [
        note(1.0, 10, "queue", name="10.1.1"),
        note(1.5, 10, "delivery", recipient="a@example.test", outcome="ok"),
        note(2.0, 10, "delivery", recipient="d@other.test", outcome="defer"),
        note(3.0, 11, "queue", name="11.2.3"),
        note(3.5, 11, "delivery", recipient="x@example.test", outcome="fail"),
        note(4.0, 12, "queue", name="12.3.4"),
        note(4.1, 12, "delivery", recipient="e@other.test", outcome="defer"),
        note(1801.0, 5, "sleep"),
        note(1802.0, 5, "delivery", recipient="d@other.test", outcome="ok"),
        note(1803.0, 5, "delivery", recipient="e@other.test", outcome="defer"),
    ]
    book = monolith_ledger("h", notes, ("example.test",), waiting={12})
    status = [(m.qp, m.status, m.qtime) for m in book.messages]
    assert status == [(10, "delivered", 1801.0), (11, "bounced", 0.5), (12, "queued", None)]
    rows = [(d.delivery, d.started.channel, d.outcome, d.ddelay) for d in book.deliveries]  # type: ignore[union-attr]
    assert rows == [
        (1, "local", "success", 0.5),
        (2, "remote", "deferral", 0.5),
        (3, "local", "failure", 0.5),
        (4, "remote", "deferral", pytest.approx(0.1)),
        (5, "remote", "success", 1.0),
        (6, "remote", "deferral", 1.0),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('mta = "sendmail"', r"host\[0\]\.mta: must be one of qmail, monolith, not 'sendmail'"),
        ("mta = 1", r"host\[0\]\.mta: must be a string"),
    ],
)
def test_a_bad_mta_is_named_with_its_line(change: str, message: str) -> None:
    text = WORKLOAD.format(mta="qmail").replace('mta = "qmail"', change)
    with pytest.raises(ScenarioError, match=r"<x>:9: " + message):
        parse_scenario(text, "<x>")


def test_a_monolith_takes_no_injected_mail_and_reads_no_dotqmail() -> None:
    text = WORKLOAD.format(mta="monolith")
    with pytest.raises(ScenarioError, match="runs the monolith, which takes mail by SMTP only"):
        parse_scenario(text + 'via = "inject"\n', "<x>")
    dotqmail = '[host.dotqmail]\nalice-list = "./Maildir/"\n'
    dot = text.replace("[host.control]", dotqmail + "[host.control]")
    with pytest.raises(ScenarioError, match=r"the monolith reads no \.qmail files"):
        parse_scenario(dot, "<x>")


def test_the_default_mta_is_qmail() -> None:
    text = WORKLOAD.format(mta="qmail").replace('mta = "qmail"\n', "")
    spec = parse_scenario(text)
    assert spec.hosts[0].mta == "qmail"
    assert dataclasses.replace(spec.hosts[0], mta="monolith").mta == "monolith"
