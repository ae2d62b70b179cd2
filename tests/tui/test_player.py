"""tui.player: stepping forward and back, speeds, growing traces."""

from __future__ import annotations

from tests.tui.events import delivery_story
from tui.player import SPEEDS, Player
from tui.state import is_stop


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
