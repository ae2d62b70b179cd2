"""tui.player: stepping forward and back, speeds, growing traces."""

from __future__ import annotations

import itertools
from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tui.events import delivery_story, two_host_story
from tui.player import CHECKPOINT, SPEEDS, SPREAD, Player, gap
from tui.state import TraceState, is_stop


def test_step_ends_at_each_narrated_event():
    events = delivery_story()
    player = Player(events)
    stops = [i for i, e in enumerate(events) if is_stop(e)]
    for n, index in enumerate(stops, 1):
        assert player.step()
        assert player.position == index + 1
        assert player.state.step == n
    player.step()  # the plumbing after the last narrated event, if any
    assert player.at_end
    assert not player.step()


def test_back_returns_to_the_end_of_the_previous_step():
    player = Player(delivery_story())
    for _ in range(5):
        player.step()
    after_four = None
    player.back()
    after_four = player.position
    player.back()
    player.step()
    assert player.position == after_four
    assert player.state.step == 4


def test_back_at_the_start_does_nothing():
    player = Player(delivery_story())
    assert not player.back()
    player.step()
    assert player.back()
    assert player.position == 0


def test_speed_stays_within_its_table():
    player = Player([])
    for _ in range(20):
        player.faster()
    assert player.speed == SPEEDS[-1]
    for _ in range(20):
        player.slower()
    assert player.speed == SPEEDS[0]


def test_extend_then_to_end():
    events = delivery_story()
    player = Player(events[:10])
    player.to_end()
    assert player.position == 10
    player.extend(events[10:])
    assert not player.at_end
    assert player.to_end()
    assert player.position == len(events)


def fingerprint(state: TraceState) -> dict:
    """All a state holds, comparable: its fields, and its flow's."""
    held = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "flow"}
    return {**held, "flow": vars(state.flow)}


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([delivery_story(), two_host_story()]),
    st.integers(1, 7),
    st.lists(st.sampled_from(["step", "back", "to_end", "rewind"]), max_size=40),
)
def test_stepping_back_from_checkpoints_is_folding_forward(events, every, moves):
    player, plain = Player(events, every=every), Player(events, every=10**9)
    for move in moves:
        getattr(player, move)()
        getattr(plain, move)()
        assert player.position == plain.position
        assert fingerprint(player.state) == fingerprint(TraceState.fold(events[: player.position]))
    positions = sorted(player.checkpoints)
    for before, position in itertools.pairwise([0, *positions]):  # spaced as `gap` says
        assert position == (every if before == 0 else before + gap(before, every))
    for position, saved in player.checkpoints.items():  # folding on never changes one
        assert fingerprint(saved) == fingerprint(TraceState.fold(events[:position]))


def test_a_step_back_folds_from_the_last_checkpoint_not_the_start(monkeypatch):
    events = delivery_story()
    player = Player(events, every=10)
    player.to_end()
    assert sorted(player.checkpoints) == list(range(10, len(events) + 1, 10))
    applied = []
    apply = TraceState.apply

    def counting(state: TraceState, event: dict) -> bool:
        applied.append(event)
        return apply(state, event)

    monkeypatch.setattr(TraceState, "apply", counting)
    player.back()
    assert 0 < len(applied) <= 10


def test_checkpoints_spread_out_as_a_long_trace_grows() -> None:
    spaced, position = [], CHECKPOINT
    while position <= 1_000_000:
        spaced.append(position)
        position += gap(position)
    assert spaced[:8] == [CHECKPOINT * k for k in range(1, 9)]  # evenly, at first
    assert len(spaced) < 50  # a million events: a few dozen copies, not two hundred
    assert all(b - a <= max(CHECKPOINT, b // SPREAD) for a, b in itertools.pairwise(spaced))
