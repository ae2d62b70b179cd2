"""qmail-send's program state besides the scheduler: controls, clock, flags, todo scan, trigger.

Pure data, no effects: `sim.programs.qmail_send` performs everything. The one decision here
is the time unit (`Clock`): `QMAILSIM_TIMESCALE` (a float, default 1) is how many wall seconds
one second of qmail's retry schedule lasts. Message ages and `queuelifetime` are measured in
that unit, so 0.001 turns the first remote retry at 400 s into 0.4 s and a week-long lifetime
into about ten minutes; SLEEP_FUZZ scales with it. The pure schedule (`sim.qmail.retry`) is
unchanged; every other time (SLEEP_TODO, SLEEP_SYSFAIL, the 36-hour rule) stays qmail's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sim.qmail.control import Control
from sim.qmail.retry import job_times
from sim.qmail.routing import RoutingConfig
from sim.qmail.send import Scheduler
from sim.qmail.spawn import ResultParser

TIMESCALE_ENV = "QMAILSIM_TIMESCALE"


@dataclass(frozen=True, slots=True)
class Clock:
    """The retry schedule's time unit, in wall seconds."""

    scale: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Clock:
        """QMAILSIM_TIMESCALE from the environment; anything but a positive number means 1."""
        try:
            scale = float(env.get(TIMESCALE_ENV, "1"))
        except ValueError:
            return cls()
        return cls(scale) if scale > 0 else cls()

    def job_times(
        self, birth: float, now: float, channel: str, lifetime: int
    ) -> tuple[float, bool]:
        """`retry.job_times` on the scaled clock: (wall time of the next retry, dying)."""
        retry, dying = job_times(0, (now - birth) / self.scale, channel, lifetime)
        return birth + retry * self.scale, dying


def routing_of(control: Control) -> RoutingConfig:
    """The control values qmail-send's rewrite() reads."""
    return RoutingConfig(
        control.envnoathost, control.locals or (), control.virtualdomains, control.percenthack
    )


@dataclass(slots=True)
class Send:
    """Everything qmail-send keeps between turns of its main loop."""

    env: Mapping[str, str]
    clock: Clock
    control: Control
    routing: RoutingConfig
    sched: Scheduler
    now: float = 0.0
    parsers: dict[str, ResultParser] = field(default_factory=dict)
    trigger: tuple[int, ...] = ()  # lock/trigger: the read end first, then a write end
    todo: list[int] | None = None  # the ids of a todo/ scan in progress
    next_todo: float = 0.0  # the next scan without a trigger
    cleanup: list[int] | None = None  # the ids of a cleanup scan of mess/ in progress
    next_cleanup: float = 0.0
    flags: set[str] = field(default_factory=set)  # signals not yet acted on
