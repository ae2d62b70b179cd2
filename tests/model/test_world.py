"""The model's world: remote MTAs and DNS, several qmail hosts, and the faults."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.qmail.errors import BadInput
from sim.run import Result
from sim.run_cli import format_summary
from sim.scenario import parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BASE = """
[scenario]
duration = {duration}
seed = 4
[[host]]
name = "mail.example.test"
users = ["alice", "bob"]
[host.control]
locals = ["example.test"]
"""


def run(extra: str, duration: float = 600, **overrides) -> Result:
    result = sim.run(parse_scenario(BASE.format(duration=duration) + extra), **overrides)
    assert not [e for e in result.trace if e["kind"] == "crash"], "a program crashed"
    m = result.summary["messages"]
    assert m["injected"] == m["delivered"] + m["bounced"] + m["queued"]
    return result


def kinds(result: Result, kind: str) -> list[dict]:
    return [e for e in result.trace if e["kind"] == kind]


def test_a_remote_that_rejects_makes_a_bounce_back_to_the_local_sender() -> None:
    result = run(
        '[[remote]]\ndomains = ["other.test"]\naccept = 0\nreject = 1\n'
        '[[workload]]\nkind = "message"\nat = 1\nfrom = "bob@example.test"\n'
        'to = ["dave@other.test"]\nvia = "inject"\n'
    )
    (failure,) = kinds(result, "failure")
    assert "550 no such user here" in failure["text"]
    assert result.summary["messages"]["bounced"] == 1
    assert result.summary["bounces"] == {"made": 1, "delivered": 1, "queued": 0}


def test_a_remote_that_defers_is_retried_on_qmails_schedule() -> None:
    result = run(
        '[[remote]]\ndomains = ["other.test"]\naccept = 0\ndefer = 1\n'
        '[[workload]]\nkind = "message"\nat = 1\nfrom = "bob@example.test"\n'
        'to = ["dave@other.test"]\nvia = "inject"\n',
        duration=2000,
    )
    defers = [e["t"] for e in kinds(result, "defer")]
    assert len(defers) == 3  # at ages 0, 400 and 1600 s: (20 k)^2, woken 1 s late (SLEEP_FUZZ)
    assert [round(t - defers[0]) for t in defers] == [0, 401, 1601]
    assert result.summary["messages"]["queued"] == 1


def test_an_unknown_domain_is_a_permanent_dns_failure() -> None:
    result = run(
        '[[workload]]\nkind = "message"\nat = 1\nfrom = "bob@example.test"\n'
        'to = ["x@nowhere.test"]\nvia = "inject"\n'
    )
    (failure,) = kinds(result, "failure")
    assert failure["text"].startswith("Sorry, I couldn't find any host named nowhere.test.")
    assert result.summary["messages"]["bounced"] == 1


def test_two_qmail_hosts_mail_each_other() -> None:
    text = BASE.format(duration=60) + (
        '[[host]]\nname = "mx.other.test"\nusers = ["dave"]\n'
        '[host.control]\nlocals = ["other.test"]\n'
        '[[workload]]\nkind = "message"\nat = 1\nhost = "mail.example.test"\n'
        'from = "bob@example.test"\nto = ["dave@other.test"]\nvia = "inject"\n'
    )
    result = sim.run(parse_scenario(text))
    s = result.summary
    assert s["messages"]["injected"] == s["messages"]["delivered"] == 1
    assert s["deliveries"]["remote"] == 1 and s["deliveries"]["local"] == 1
    relayed = [r for r in result.rows["messages"] if r["origin"] == "relay"]
    assert [(r["host"], r["status"]) for r in relayed] == [("mx.other.test", "delivered")]
    assert {e["host"] for e in kinds(result, "exec")} == {"mail.example.test", "mx.other.test"}


def test_a_host_crash_loses_no_acknowledged_message() -> None:
    result = run(
        '[[remote]]\ndomains = ["other.test"]\n'
        '[[workload]]\nkind = "poisson"\nrate = 4\nstop = 40\nfrom = "carol@other.test"\n'
        'to = ["alice@example.test"]\n'
        '[[fault]]\nkind = "host-crash"\nat = 10.0\nstop = 20.0\n',
        duration=120,
    )
    s = result.summary
    assert s["hosts"]["mail.example.test"]["boots"] == 2
    assert s["messages"]["refused"] > 0  # connections while it was down
    accepted = [o for o in result.world.clients.outcomes if o.accepted]
    assert any(o.arrival.t < 10 for o in accepted) and any(o.arrival.t > 20 for o in accepted)
    assert s["messages"]["injected"] == len(accepted)
    assert [e["t"] for e in kinds(result, "fault")] == [10.0]
    assert min(e["t"] for e in kinds(result, "exec") if e["t"] > 10) >= 20.0  # the reboot
    maildir = result.world.hosts["mail.example.test"].fs.dump("/var/qmail/home/alice/Maildir")
    text = b"".join(maildir.values())
    lost = [o.arrival.n for o in accepted if b"<%d@model.invalid>" % o.arrival.n not in text]
    assert lost == []
    check_queue_counts(result, accepted)


def check_queue_counts(result: Result, accepted: list) -> int:
    """The summary's queue counts against the queue's files; returns how many are partial."""
    dump = result.world.hosts["mail.example.test"].fs.dump("/var/qmail/queue")
    files = {path.removeprefix("/var/qmail/queue/"): data for path, data in dump.items()}
    names = {d: {p.rsplit("/", 1)[1] for p in files if p.split("/")[0] == d}
             for d in ("mess", "todo", "info")}  # fmt: skip
    partial = names["mess"] - names["todo"] - names["info"]
    queue = result.summary["hosts"]["mail.example.test"]["queue"]
    assert queue["partial"] == len(partial) and queue["messages"] == len(names["mess"])
    text = b"".join(data for p, data in files.items()
                    if p.startswith("mess/") and p.rsplit("/", 1)[1] in partial)  # fmt: skip
    assert not [o for o in accepted if b"<%d@model.invalid>" % o.arrival.n in text]
    host = next(x for x in format_summary(result.summary) if x.startswith("host mail."))
    assert (f", {len(partial)} partly queued, never acknowledged)" in host) == bool(partial)
    return len(partial)


def test_a_crash_in_the_middle_of_queueing_leaves_partial_files_never_acknowledged() -> None:
    result = sim.run(SCENARIOS / "host-crash.toml", keep_trace=False)
    accepted = [o for o in result.world.clients.outcomes if o.accepted]
    assert check_queue_counts(result, accepted) > 0


def test_killing_qmail_send_leaves_mail_in_the_queue() -> None:
    result = run(
        '[[workload]]\nkind = "message"\nat = 5\nfrom = "carol@other.test"\n'
        'to = ["alice@example.test"]\n'
        '[[fault]]\nkind = "kill"\ntarget = "qmail-send"\nat = 1\n',
        duration=60,
    )
    m = result.summary["messages"]
    assert (m["injected"], m["queued"]) == (1, 1)
    queue = result.summary["hosts"]["mail.example.test"]["queue"]
    assert queue == {"messages": 1, "todo": 1, "partial": 0}


def test_a_slow_disk_makes_deliveries_slower() -> None:
    work = (
        '[[workload]]\nkind = "message"\nat = 1\nfrom = "carol@other.test"\n'
        'to = ["alice@example.test"]\n'
    )
    normal = run(work, duration=30).summary["latency"]["qtime"]["max"]
    slow = run(work + '[[fault]]\nkind = "slow-disk"\nstart = 0\nfactor = 10\n', duration=30)
    assert slow.summary["latency"]["qtime"]["max"] > 5 * normal


def test_a_full_disk_makes_qmail_smtpd_refuse_for_a_while() -> None:
    result = run(
        '[[workload]]\nkind = "burst"\nat = 5\ncount = 2\nfrom = "carol@other.test"\n'
        'to = ["alice@example.test"]\n'
        '[[workload]]\nkind = "message"\nat = 30\nfrom = "carol@other.test"\n'
        'to = ["alice@example.test"]\n'
        '[[fault]]\nkind = "full-disk"\nstart = 2\nstop = 20\n',
        duration=60,
    )
    outcomes = result.world.clients.outcomes
    assert [o.accepted for o in outcomes] == [False, False, True]
    assert outcomes[0].reply.startswith("451 ")
    assert result.summary["messages"]["refused"] == 2


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ('kind = "remote-down"\ntarget = "nowhere.test"', "no host or domain 'nowhere.test'"),
        ('kind = "host-crash"\ntarget = "other"', "no host 'other'"),
        ('kind = "kill"\ntarget = "mail.example.test:"', "give target"),
    ],
)
def test_a_fault_with_an_unknown_target_is_bad_input(fault: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        sim.run(parse_scenario(BASE.format(duration=10) + f"[[fault]]\n{fault}\n"))
