"""Replaying a trace step by step: the cursor, the speed, following a growing file.

The player owns the events read so far and a `TraceState` folded up to the cursor. A step
applies events up to and including the next narrated one (what the event log shows), so a
learner never steps through a run of closes. Stepping back folds again: the state is a pure
function of the events, so it folds on from a copy of the state saved at an earlier point
(a checkpoint, saved as the fold first passes it), never from the start of a long trace. A
trace only grows, so a checkpoint stays true. Checkpoints are `CHECKPOINT` events apart,
and further apart as the trace grows (an eighth of the way so far): a copy costs as much as
the state is big, so evenly spaced ones would make folding a long trace quadratic, while
these cost a few folds' worth in all, and a step back folds at most an eighth of the way.
"""

from __future__ import annotations

from typing import Any

from tui.state import TraceState

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)  # steps per second
DEFAULT_SPEED = 2
CHECKPOINT = 5000  # events between saved states, at least
SPREAD = 8  # ... and at least this fraction of the way so far


def gap(position: int, every: int = CHECKPOINT) -> int:
    """Events from a checkpoint at `position` to the next one."""
    return max(every, position // SPREAD)


class Player:
    """A cursor over a trace's events, with the state the events before it build."""

    def __init__(self, events: list[dict[str, Any]] | None = None, every: int = CHECKPOINT) -> None:
        self.events: list[dict[str, Any]] = list(events or [])
        self.state = TraceState()
        self.every = every
        self.checkpoints: dict[int, TraceState] = {}  # position: the state there, never folded on
        self.due = every  # where the next checkpoint is saved
        self.speed_index = DEFAULT_SPEED
        self.playing = False
        self.following = False

    @property
    def position(self) -> int:
        """How many events are applied."""
        return len(self.state.events)

    @property
    def at_end(self) -> bool:
        return self.position >= len(self.events)

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    def faster(self) -> None:
        self.speed_index = min(self.speed_index + 1, len(SPEEDS) - 1)

    def slower(self) -> None:
        self.speed_index = max(self.speed_index - 1, 0)

    def extend(self, events: list[dict[str, Any]]) -> None:
        """Events the trace gained (following a live MTA)."""
        self.events.extend(events)

    def step(self) -> bool:
        """Apply events through the next narrated one; False if already at the end."""
        moved = False
        while not self.at_end:
            moved = True
            if self._apply_next():
                break
        return moved

    def _apply_next(self) -> bool:
        """Apply the event at the cursor (saving a checkpoint where one is due)."""
        stops = self.state.apply(self.events[self.position])
        if self.position == self.due:
            self.checkpoints[self.position] = self.state.copy()
            self.due = self.position + gap(self.position, self.every)
        return stops

    def back(self) -> bool:
        """Return to the end of the previous step; False if at the start."""
        if self.position == 0:
            return False
        target = self.state.step - 1 if self.state.log and self._ends_step() else self.state.step
        self._resume_before(target)
        while self.state.step < target and not self.at_end:
            self._apply_next()
        return True

    def _resume_before(self, step: int) -> None:
        """Go to the last checkpoint before step `step` ends (or the start): folding on from
        there stops where folding from the start would."""
        earlier = [p for p, saved in self.checkpoints.items() if saved.step < step]
        self.state = self.checkpoints[max(earlier)].copy() if earlier else TraceState()

    def _ends_step(self) -> bool:
        return self.state.log[-1].index == self.position - 1

    def rewind(self) -> None:
        """Back to before the first event."""
        self.state = TraceState()

    def to_end(self) -> bool:
        """Apply every event read so far; False if there was none to apply."""
        moved = not self.at_end
        while not self.at_end:
            self._apply_next()
        return moved
