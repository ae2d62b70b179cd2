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
    """State that processes wait on: one shared event, fired and renewed on each change.

    A wait on several waitables (a select, or a read with a deadline) registers one private
    wake event with each instead (`watch`): it fires at the first change, and costs one
    event rather than a SimPy condition over many.
    """

    __slots__ = ("_changed", "_wakes", "env")

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._changed: simpy.Event | None = None
        self._wakes: dict[simpy.Event, None] = {}  # a set in insertion order

    def changed(self) -> simpy.Event:
        """An event that fires at the next change (created only when someone waits)."""
        if self._changed is None:
            self._changed = self.env.event()
        return self._changed

    def watch(self, wake: simpy.Event) -> None:
        """Fire `wake` (unless it has fired already) at the next change."""
        self._wakes[wake] = None

    def unwatch(self, wake: simpy.Event) -> None:
        """Forget `wake`: its wait is over."""
        self._wakes.pop(wake, None)

    def notify(self) -> None:
        """Wake everyone waiting; they look again."""
        if self._changed is not None:
            event, self._changed = self._changed, None
            event.succeed()
        if self._wakes:
            wakes, self._wakes = self._wakes, {}
            for wake in wakes:
                if not wake.triggered:
                    wake.succeed()


class Alarms:
    """The deadlines of one environment's waits, on one pending SimPy timeout (the earliest).

    An alarm is a list [deadline, sequence number, event, rung]; its event is None once
    cancelled. Its event may be shared with other wakers: it is fired only if none has.
    """

    __slots__ = ("armed", "cancelled", "heap", "seq")

    def __init__(self) -> None:
        self.heap: list[list[Any]] = []
        self.seq = 0
        self.armed = math.inf  # when the timeout we rely on fires
        self.cancelled = 0

    def set(
        self, env: simpy.Environment, deadline: float, event: simpy.Event | None = None
    ) -> list[Any]:
        """An alarm that fires `event` (default: a new one) at `deadline`."""
        alarm = [deadline, self.seq, env.event() if event is None else event, False]
        self.seq += 1
        heapq.heappush(self.heap, alarm)
        if deadline < self.armed:
            self._arm(env, deadline)
        return alarm

    def cancel(self, alarm: list[Any]) -> None:
        """Forget an alarm that has not fired (a wait that ended early)."""
        if alarm[2] is None or alarm[3]:
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
            alarm = heapq.heappop(heap)
            event = alarm[2]
            if event is None:
                self.cancelled -= 1
            else:
                alarm[3] = True
                if not event.triggered:
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
    sources = list(waitables)
    if timeout is None and len(sources) == 1:
        source = sources[0]
        while not ready():
            yield source.changed()
        return
    deadline = None if timeout is None else env.now + timeout
    clock, alarm = None, None
    wake = env.event()
    try:
        while not ready():
            if deadline is not None:
                if deadline - env.now <= EPSILON:
                    raise timed_out()
                if alarm is None:
                    clock = alarms(env)
                    alarm = clock.set(env, deadline, wake)
            for source in sources:
                source.watch(wake)
            yield wake  # no sources and no deadline: blocks forever, as select(2) would
            for source in sources:
                source.unwatch(wake)
            wake = env.event()
            if alarm is not None:
                alarm[2] = wake  # the alarm fires the wake of the next round
    finally:
        for source in sources:
            source.unwatch(wake)
        if alarm is not None:
            clock.cancel(alarm)  # type: ignore[union-attr]
