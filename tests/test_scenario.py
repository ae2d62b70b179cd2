"""Scenario files: the embedded default loads, and every mistake names file, line and key."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.scenario import ScenarioError, load_scenario, parse_scenario

GOOD = """\
[scenario]
name = "t"
duration = 60

[[host]]
name = "mail.example.test"
users = ["alice"]

[host.control]
concurrencyremote = 5
locals = ["example.test"]

[[workload]]
kind = "poisson"
rate = 2
to = ["alice@example.test"]
"""


def test_embedded_default_is_a_short_lesson() -> None:
    scenario = load_scenario()
    assert scenario.name == "default" and scenario.detail == "teaching"
    kinds = {w.kind for w in scenario.workloads}
    assert {"message", "poisson"} <= kinds
    assert any(f.kind == "remote-down" for f in scenario.faults)
    recipients = {r for w in scenario.workloads for r in w.recipients}
    assert "nobody@example.test" in recipients  # the bounce of the lesson


def test_control_values_become_qmail_file_contents() -> None:
    scenario = parse_scenario(GOOD, "good.toml")
    host = scenario.host("mail.example.test")
    assert host.control == {"concurrencyremote": "5\n", "locals": "example.test\n"}
    assert scenario.workloads[0].rate == 2.0 and scenario.workloads[0].host == host.name


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("rate = 2", 'rate = "fast"'),
            "bad.toml:15: workload[0].rate: must be a number, not 'fast'",
        ),
        (
            ("rate = 2", "rate = -1"),
            "bad.toml:15: workload[0].rate: must be a number > 0, not -1.0",
        ),
        (('kind = "poisson"', 'kind = "flood"'), "bad.toml:14: workload[0].kind: must be one of"),
        (("duration = 60", "duraton = 60"), "bad.toml:3: scenario.duraton: unknown key"),
        (('users = ["alice"]', 'users = "alice'), "bad.toml: not valid TOML"),
        (
            ('to = ["alice@example.test"]', 'host = "nope"'),
            "bad.toml:16: workload[0].host: no host 'nope'",
        ),
    ],
)
def test_mistakes_name_file_line_and_key(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD.replace(*edit), "bad.toml")
    assert str(caught.value).startswith(message)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_scenario_or_a_scenario_error(text: str) -> None:
    with contextlib.suppress(BadInput):
        parse_scenario(text, "fuzz.toml")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["rate", "at", "start", "stop", "size", "count", "via", "to", "kind"]),
        st.one_of(
            st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5), st.booleans()
        ),
        max_size=4,
    )
)
def test_any_workload_values_are_accepted_or_refused_cleanly(values: dict) -> None:
    lines = [
        f"{k} = {v!r}".replace("True", "true").replace("False", "false") for k, v in values.items()
    ]
    text = GOOD.split("[[workload]]")[0] + "[[workload]]\n" + "\n".join(lines) + "\n"
    with contextlib.suppress(BadInput):
        parse_scenario(text.replace("'", '"'), "fuzz.toml")
