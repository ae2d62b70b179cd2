"""Numbers and overrides: every float of a scenario is finite, every override of `sim.run` is
checked up front and named, and whatever a scenario says either loads and builds a world or
is a ScenarioError (never a traceback)."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sim
from sim.cli import main
from sim.kernel.costs import Costs
from sim.model.world import World
from sim.qmail.errors import BadInput
from sim.scenario import ScenarioError, parse_scenario

BASE = """\
[scenario]
duration = 60

[[host]]
name = "mail.example.test"
users = ["alice"]
fetch = 60

[host.costs]
fsync = 0.002

[[remote]]
domains = ["other.test"]
latency = 0.05

[[workload]]
kind = "poisson"
rate = 1
start = 0
stop = 30
at = 0
to = ["alice@example.test"]

[[fault]]
kind = "slow-disk"
start = 1
stop = 2
factor = 2

[costs]
exec = 0.0003
"""
FLOATS = [
    ("duration = 60", "scenario.duration"),
    ("fetch = 60", "host[0].fetch"),
    ("fsync = 0.002", "host[0].costs.fsync"),
    ("latency = 0.05", "remote[0].latency"),
    ("rate = 1", "workload[0].rate"),
    ("start = 0", "workload[0].start"),
    ("stop = 30", "workload[0].stop"),
    ("at = 0", "workload[0].at"),
    ("start = 1", "fault[0].start"),
    ("stop = 2", "fault[0].stop"),
    ("factor = 2", "fault[0].factor"),
    ("exec = 0.0003", "costs.exec"),
]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+inf", "1e400"])
@pytest.mark.parametrize(("line", "key"), FLOATS, ids=[key for _, key in FLOATS])
def test_every_number_of_a_scenario_is_finite(line: str, key: str, value: str) -> None:
    assert line in BASE
    text = BASE.replace(line, f"{line.split(' = ')[0]} = {value}", 1)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    number = BASE.splitlines().index(line) + 1
    assert re.fullmatch(rf"bad\.toml:{number}: {re.escape(key)}: must be a .*", str(caught.value))
    if not value.startswith("-"):
        assert str(caught.value).endswith(f"must be a finite number, not {float(value)!r}")


def test_an_integer_too_big_for_a_float_is_not_a_traceback() -> None:
    big = "9" * 400
    for line, key in (("duration = 60", "scenario.duration"), ("exec = 0.0003", "costs.exec")):
        text = BASE.replace(line, f"{line.split(' = ')[0]} = {big}", 1)
        with pytest.raises(ScenarioError, match=rf"{re.escape(key)}: must be a finite number"):
            parse_scenario(text, "bad.toml")
    with pytest.raises(BadInput, match="until must be a number of seconds > 0 and finite"):
        sim.run(until=10**400)


def test_the_base_scenario_is_fine() -> None:
    assert parse_scenario(BASE, "ok.toml").costs == {"exec": 0.0003}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exec": math.nan}, "costs: exec must be a finite number, not nan"),
        ({"fork": math.inf}, "costs: fork must be a finite number, not inf"),
        ({"exec": "x"}, "costs: exec must be a number >= 0, not 'x'"),
        ({"fsync": True}, "costs: fsync must be a number >= 0, not True"),
        ({"pipe_capacity": 1.5}, "costs: pipe_capacity and socket_buffer must be >= 1"),
        ({"disk_bandwidth": math.inf}, "costs: disk_bandwidth must be a finite number"),
    ],
)
def test_the_cost_table_refuses_what_is_not_a_finite_number(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Costs().with_overrides(overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"until": math.inf}, "sim.run: until must be a number of seconds > 0 and finite, not inf"),
        ({"until": math.nan}, "sim.run: until must be a number of seconds > 0 and finite, not nan"),
        ({"until": True}, "sim.run: until must be a number of seconds > 0 and finite, not True"),
        ({"duration": math.inf}, "sim.run: duration must be a number of seconds > 0 and finite, "
                                 "not inf"),
        ({"costs": {"exec": "x"}}, "sim.run: costs: exec must be a number >= 0, not 'x'"),
        ({"costs": {"exec": math.nan}}, "sim.run: costs: exec must be a finite number, not nan"),
        ({"progress": 5}, "sim.run: progress must be a function, called as progress(now, end, "
                          "tally), not 5"),
        ({"detail": "bogus"}, "sim.run: detail must be one of teaching, fast, not 'bogus'"),
        ({"trace": 5}, "sim.run: trace must be a file name, not 5"),
        ({"keep_trace": "no"}, "sim.run: keep_trace must be True or False, not 'no'"),
    ],
)  # fmt: skip
def test_a_bad_override_is_bad_input_naming_the_override(overrides: dict, message: str) -> None:
    with pytest.raises(BadInput) as caught:
        sim.run(**overrides)
    assert str(caught.value) == message


def test_an_infinite_until_on_the_command_line_is_fatal(capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--until", "inf"]) == 100
    assert capsys.readouterr().err == (
        "qmailsim: fatal: sim.run: until must be a number of seconds > 0 and finite, not inf\n"
    )


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


NAMES = st.sampled_from(["a.test", "b.test", "c.test"] * 4 + ["A.test", "mx.b.test", "outside", ""])
USERS = st.one_of(
    st.lists(st.sampled_from(["alice", "bob", "carol"]), unique=True),
    st.lists(st.sampled_from(["alice", "Alice", "alias", "b/c", ""]), max_size=2),
)
CONTROL = st.dictionaries(
    st.sampled_from(
        ["concurrencylocal", "databytes", "locals", "concurrencyincoming"] * 3 + ["a/b"]
    ),
    st.sampled_from(["10", 5, "b.test", ["a.test", "c.test"]] * 2 + ["ten", 0, -1, 1.5]),
    max_size=3,
)
DOTQMAIL = st.dictionaries(
    st.sampled_from(["alice-x", "Alice-x", "carol", "alias-y", "alice-X.y", "bob"]),
    st.sampled_from(["&bob", "./Maildir/"]),
    max_size=3,
)
HOST = st.fixed_dictionaries(
    {"name": NAMES, "users": USERS, "mta": st.sampled_from(["qmail"] * 4 + ["monolith"])},
    optional={"control": CONTROL, "dotqmail": DOTQMAIL},
)
REMOTE = st.fixed_dictionaries(
    {"domains": st.lists(st.sampled_from(["b.test", "c.test", "a.test", "d.test"]), min_size=1)},
    optional={"defer": st.sampled_from([0.0, 0.5, 0.7]), "reject": st.sampled_from([0.3, 0.6])},
)
FAULT = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["remote-down", "host-crash", "kill", "slow-disk", "full-disk"]),
        "target": st.sampled_from(
            ["", "a.test", "b.test", "c.test", "qmail-send", "a.test:qmail-send", "mta-monolith"]
        ),
    }
)


def _scenario(hosts: list[dict], remotes: list[dict], faults: list[dict]) -> str:
    out = ["[scenario]", "duration = 5"]
    for table, items in (("host", hosts), ("remote", remotes), ("fault", faults)):
        for item in items:
            out.append(f"[[{table}]]")
            subs = {k: v for k, v in item.items() if isinstance(v, dict)}
            out += [f"{k} = {_toml(v)}" for k, v in item.items() if k not in subs]
            for sub, entries in subs.items():
                out.append(f"[{table}.{sub}]")
                out += [f"{json.dumps(k)} = {_toml(v)}" for k, v in entries.items()]
    return "\n".join(out) + "\n"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(HOST, min_size=1, max_size=3),
    st.lists(REMOTE, max_size=2),
    st.lists(FAULT, max_size=2),
)
def test_a_scenario_is_refused_with_a_line_or_builds_its_world(
    hosts: list[dict], remotes: list[dict], faults: list[dict]
) -> None:
    text = _scenario(hosts, remotes, faults)
    try:
        spec = parse_scenario(text, "fuzz.toml")
    except ScenarioError as exc:
        assert re.match(r"fuzz\.toml:\d+: \S", str(exc)), str(exc)
        return
    World(spec).close()
