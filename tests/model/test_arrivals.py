"""Workloads as arrivals: seeded streams, bursts, replays of a trace or of a qmail-send log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sim
from sim.model.arrivals import plan, sendlog_arrivals, trace_arrivals
from sim.qmail.errors import BadInput
from sim.scenario import parse_scenario

SAMPLE_LOG = Path(__file__).parent.parent / "data" / "qmail-send-sample.log"
HOST = """
[scenario]
duration = 1000
[[host]]
name = "example.test"
users = ["alice"]
"""


def scenario(workloads: str, source: str = "<test>"):
    return parse_scenario(HOST + workloads, source)


def test_poisson_stream_is_seeded_bounded_and_about_the_rate() -> None:
    s = scenario('[[workload]]\nkind = "poisson"\nrate = 2\nstart = 100\nstop = 600\nto = ["a@b"]')
    first, again, other = plan(s, 1000, 1), plan(s, 1000, 1), plan(s, 1000, 2)
    assert first == again and first != other
    times = [a.t for a in first]
    assert times == sorted(times) and times[0] > 100 and times[-1] < 600
    assert 900 < len(first) < 1100
    assert [a.n for a in first] == list(range(1, len(first) + 1))


def test_burst_and_message_counts_and_the_run_end() -> None:
    s = scenario(
        '[[workload]]\nkind = "burst"\nat = 50\ncount = 5\nto = ["a@b"]\n'
        '[[workload]]\nkind = "message"\nat = 2000\nto = ["a@b"]\n'
    )
    arrivals = plan(s, 1000, 1)
    assert [a.t for a in arrivals] == [50.0] * 5  # the message after the end is not sent


def test_a_recorded_trace_replays_the_messages_qmail_queue_took(tmp_path: Path) -> None:
    recorded = tmp_path / "rec.jsonl"
    original = sim.run(trace=recorded, keep_trace=False, until=200)
    replay = trace_arrivals(recorded.read_bytes(), recorded)
    accepted = [o.arrival for o in original.world.clients.outcomes if o.accepted]
    assert [(s, r) for _, s, r, _ in replay] == [(a.sender, a.recipients) for a in accepted]
    for (t, *_), a in zip(replay, accepted, strict=True):
        assert a.t < t < a.t + 1  # queued a moment after it arrived
    s = scenario(
        f'[[workload]]\nkind = "trace"\nfile = "{recorded.name}"\n', str(tmp_path / "x.toml")
    )
    assert len(plan(s, 1000, 1)) == len(accepted)  # relative to the scenario file


def test_a_real_qmail_send_log_replays_its_arrivals_without_its_bounces() -> None:
    data = SAMPLE_LOG.read_bytes()
    replay = sendlog_arrivals(data, SAMPLE_LOG)
    new = data.count(b" new msg ")
    bounces = data.count(b"from <> qp")
    assert len(replay) == new - bounces
    assert replay[0][0] == 0.0 and all(s == "bob@oracle.test" for _, s, _, _ in replay)
    assert all(0 < len(r) <= 3 and size > 0 for _, _, r, size in replay)
    assert [t for t, *_ in replay] == sorted(t for t, *_ in replay)


def test_a_sendlog_workload_runs(tmp_path: Path) -> None:
    lines = SAMPLE_LOG.read_bytes().splitlines(keepends=True)[:60]
    (tmp_path / "short.log").write_bytes(b"".join(lines))
    text = HOST.replace('"example.test"', '"oracle.test"').replace("alice", 'alice", "bob')
    text += '[[workload]]\nkind = "sendlog"\nfile = "short.log"\nvia = "inject"\n'
    result = sim.run(parse_scenario(text, str(tmp_path / "s.toml")), until=60, keep_trace=False)
    m = result.summary["messages"]
    assert m["injected"] == len(sendlog_arrivals(b"".join(lines))) > 3
    assert m["injected"] == m["delivered"] + m["bounced"] + m["queued"]
    assert m["bounced"] >= 1  # nosuchuser@oracle.test, as in the real log


@pytest.mark.parametrize("kind", ["trace", "sendlog"])
def test_a_missing_recorded_file_is_bad_input(kind: str, tmp_path: Path) -> None:
    s = scenario(f'[[workload]]\nkind = "{kind}"\nfile = "gone"\n', str(tmp_path / "s.toml"))
    with pytest.raises(BadInput, match="cannot read"):
        plan(s, 1000, 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
queue_events = st.fixed_dictionaries(
    {"kind": st.just("queue"), "state": st.just("S4")},
    optional={"t": json_values, "sender": json_values, "recipients": json_values},
)


@given(st.lists(queue_events | json_values, max_size=5))
def test_a_recorded_trace_of_any_shape_is_read_or_refused_with_its_line(events: list) -> None:
    data = b"\n".join(json.dumps(e).encode() for e in events)
    try:
        arrivals = trace_arrivals(data, "rec.jsonl")
    except BadInput as exc:
        assert str(exc).startswith("rec.jsonl:")
    else:
        assert all(isinstance(t, float) and isinstance(s, str) for t, s, _, _ in arrivals)


@given(st.binary(max_size=300))
def test_a_qmail_send_log_of_any_bytes_is_read_or_refused(data: bytes) -> None:
    try:
        arrivals = sendlog_arrivals(data, "log")
    except BadInput as exc:
        assert str(exc).startswith("log")
    else:
        assert all(isinstance(to, tuple) for _, _, to, _ in arrivals)
