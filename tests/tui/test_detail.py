"""A trace at the model's "fast" detail tells the TUI the same message life cycle as one at
"teaching" detail: both trace every queue file made, linked, renamed or removed."""

from __future__ import annotations

from pathlib import Path

import pytest

import sim
from tui.state import TraceState

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def life_cycles(state: TraceState) -> dict:
    """Each message's final state, states on the way, envelope and files left."""
    return {
        key: (
            m.state,
            [s for _, s, _ in m.history],
            m.sender,
            m.recipients,
            sorted(f.path for f in state.files_of(*key)),
        )
        for key, m in state.messages.items()
    }


@pytest.mark.parametrize(
    ("scenario", "until", "final"),
    [
        (None, None, {"S1"}),  # the default lesson: every message delivered, its files gone
        (SCENARIOS / "remote-outage.toml", 400, {"S5"}),  # other.test down: still queued
    ],
)
def test_fast_and_teaching_traces_fold_to_the_same_messages(scenario, until, final):
    teaching, fast = (
        TraceState.fold(sim.run(scenario, detail=detail, until=until).trace)
        for detail in ("teaching", "fast")
    )
    assert life_cycles(fast) == life_cycles(teaching)
    assert {state for state, *_ in life_cycles(fast).values()} == final
    assert set(fast.edges) <= set(teaching.edges)  # fewer calls, never a wrong edge
