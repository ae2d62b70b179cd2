"""CPU cores and disks as first-come-first-served servers, booked in one step.

A `simpy.Resource` costs a request event, a grant and a release for every hold, four
SimPy events per system call. Units that serve in arrival order need none of that: a job
arriving at `now` starts on the unit that frees first, at `max(now, its free time)`, and
ends its service time later, which is exactly what the Resource would grant. So a hold is
one booking and one timeout, and the simulation does a quarter of the work.

Bookings are made at the current time, which only advances, so the work booked on a unit
after `now` is one unbroken stretch ending at its free time: busy time up to now is what
was booked minus what is still ahead. A process killed while it waits for its turn keeps
its booking (the model's one difference from the Resource, which would cancel it); a power
cut or the end of a run (`stop`) cancels every booking still ahead.
"""

from __future__ import annotations

import heapq

import simpy


class Server:
    """`units` identical servers (cores, disks) taking jobs first come, first served."""

    __slots__ = ("booked", "env", "free", "units")

    def __init__(self, env: simpy.Environment, units: int) -> None:
        if units < 1:
            raise ValueError(f"a server needs at least one unit, not {units}")
        self.env = env
        self.units = units
        self.free = [0.0] * units  # a heap of the times each unit is free from
        self.booked = 0.0  # unit-seconds booked so far, past and ahead

    def hold(self, seconds: float) -> simpy.Timeout:
        """Book `seconds` of service now; the event fires when the job is done."""
        now = self.env.now
        start = self.free[0]
        if start < now:
            start = now
        end = start + seconds
        heapq.heapreplace(self.free, end)
        self.booked += seconds
        return self.env.timeout(end - now)

    def stop(self) -> None:
        """Cancel the service still ahead (the power went, or the run ended): nothing more
        is served, and none of it counts as busy time."""
        now = self.env.now
        for i, free in enumerate(self.free):
            if free > now:
                self.booked -= free - now
                self.free[i] = now
        heapq.heapify(self.free)

    @property
    def count(self) -> int:
        """How many units are busy now."""
        now = self.env.now
        return sum(1 for free in self.free if free > now)

    def busy(self) -> float:
        """Unit-seconds of service given up to now."""
        now = self.env.now
        return self.booked - sum(free - now for free in self.free if free > now)
