"""Every lesson in scenarios/ loads, says what to look at, and runs with counts that add up."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from sim.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.toml"))
EXPECTED = {"flood", "remote-outage", "concurrency", "slow-disk", "host-crash", "two-hosts",
            "monolith", "fork-exec", "busy-day"}  # fmt: skip
SHORT = 90.0  # seconds of virtual time: mail flows and the faults strike in each of them


def test_the_lessons_are_all_there() -> None:
    assert {path.stem for path in FILES} >= EXPECTED


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_scenario_starts_with_a_comment_saying_what_to_look_at(path: Path) -> None:
    header = path.read_text(encoding="utf-8").split("[scenario]")[0]
    comments = [line for line in header.splitlines() if line.startswith("#")]
    assert len(comments) >= 3, f"{path.name}: a comment header explains the lesson"
    assert "What to look at" in header
    spec = load_scenario(path)
    assert spec.name == path.stem and spec.description


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_scenario_runs_briefly_and_its_counts_add_up(path: Path) -> None:
    spec = load_scenario(path)
    result = sim.run(spec, until=min(SHORT, spec.duration), detail="fast", keep_trace=False)
    m = result.summary["messages"]
    assert m["injected"] == m["delivered"] + m["bounced"] + m["queued"]
    if spec.workloads[0].at < SHORT and spec.workloads[0].start < SHORT:
        assert m["injected"] > 0, "mail flows within the short run"
