"""Waiting in SimPy time: shared change events, and deadlines that leave nothing behind.

Theory of operation. A `Waitable` is state that processes wait on through one shared
`changed()` event, fired and renewed at each change; a waiter then looks again, so waits
compose (`Select` waits on many) and ties resolve in SimPy's event order. `wait_until` loops
until a condition holds, or until a deadline.

SimPy cannot take a timeout back out of its heap, and most waits with a deadline (a read
with qmail's 1200-second timeout) end early: one timeout per wait would stay in the heap
for its whole term. So the deadlines of all waits in one environment are kept in `Alarms`,
our own heap served by one pending SimPy timeout, the earliest's; a wait that ends early
cancels its alarm, and cancelled alarms are dropped when they reach the top, or all at once
when they are most of the heap.
"""

from __future__ import annotations

import errno
import heapq
import math
from collections.abc import Callable, Generator, Iterable
from typing import Any

import simpy

EPSILON = 1e-12
COMPACT_AT = 64  # cancelled alarms before the heap is worth rebuilding
ALARMS = "qmailsim_alarms"  # the attribute of a SimPy environment that holds its Alarms


def timed_out(what: str = "timed out") -> TimeoutError:
    """The error a call with a timeout raises, as RealKernel's: ETIMEDOUT."""
    return TimeoutError(errno.ETIMEDOUT, what)


class Waitable:
    """State that processes wait on: one shared event, fired and renewed on each change."""

    __slots__ = ("_changed", "env")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._changed: simpy.Event | None = None

    def changed(self) -> simpy.Event:
        """An event that fires at the next change (created only when someone waits)."""
        if self._changed is None:
            self._changed = self.env.event()
        return self._changed

    def notify(self) -> None:
        """Wake everyone waiting; they look again."""
        if self._changed is not None:
            event, self._changed = self._changed, None
            event.succeed()


class Alarms:
    """The deadlines of one environment's waits, on one pending SimPy timeout (the earliest).

    An alarm is a list [deadline, sequence number, event]; its event is None once cancelled.
    """

    __slots__ = ("armed", "cancelled", "heap", "seq")

    def __init__(self) -> None:
        self.heap: list[list[Any]] = []
        self.seq = 0
        self.armed = math.inf  # when the timeout we rely on fires
        self.cancelled = 0

    def set(self, env: simpy.Environment, deadline: float) -> list[Any]:
        """An alarm whose event fires at `deadline`."""
        alarm = [deadline, self.seq, env.event()]
        self.seq += 1
        heapq.heappush(self.heap, alarm)
        if deadline < self.armed:
            self._arm(env, deadline)
        return alarm

    def cancel(self, alarm: list[Any]) -> None:
        """Forget an alarm that has not fired (a wait that ended early)."""
        if alarm[2] is None or alarm[2].triggered:
            return
        alarm[2] = None
        self.cancelled += 1
        if self.cancelled >= COMPACT_AT and 2 * self.cancelled > len(self.heap):
            self.heap = [a for a in self.heap if a[2] is not None]
            heapq.heapify(self.heap)
            self.cancelled = 0

    def _arm(self, env: simpy.Environment, deadline: float) -> None:
        """Rely on a new timeout at `deadline`; an earlier-armed later one will find nothing."""
        self.armed = deadline
        ring = env.timeout(max(0.0, deadline - env.now))
        ring.callbacks.append(lambda event: self._ring(event.env, deadline))  # type: ignore[union-attr]

    def _ring(self, env: simpy.Environment, deadline: float) -> None:
        """A timeout fired: fire every alarm due, then arm for the next live one."""
        if deadline == self.armed:
            self.armed = math.inf
        heap = self.heap
        while heap and (heap[0][2] is None or heap[0][0] <= env.now + EPSILON):
            _, _, event = heapq.heappop(heap)
            if event is None:
                self.cancelled -= 1
            else:
                event.succeed()
        if heap and heap[0][0] < self.armed:
            self._arm(env, heap[0][0])


def alarms(env: simpy.Environment) -> Alarms:
    """The alarms of `env`, kept on it (made at first use), so they go when it goes."""
    found = env.__dict__.get(ALARMS)
    if found is None:
        found = env.__dict__[ALARMS] = Alarms()
    return found


def wait_until(
    env: simpy.Environment,
    ready: Callable[[], bool],
    waitables: Iterable[Waitable],
    timeout: float | None = None,
) -> Generator[simpy.Event, Any, None]:
    """Wait until `ready()`; raises `timed_out()` after `timeout` seconds."""
    if ready():
        return
    deadline = None if timeout is None else env.now + timeout
    sources = list(waitables)
    clock, alarm = None, None
    try:
        while not ready():
            events = [w.changed() for w in sources]
            if deadline is not None:
                if deadline - env.now <= EPSILON:
                    raise timed_out()
                if alarm is None:
                    clock = alarms(env)
                    alarm = clock.set(env, deadline)
                events.append(alarm[2])
            if not events:
                events = [env.event()]  # nothing can wake us: block forever, as select(2) would
            yield events[0] if len(events) == 1 else env.any_of(events)
    finally:
        if alarm is not None:
            clock.cancel(alarm)  # type: ignore[union-attr]
