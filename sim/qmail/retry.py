"""qmail-send's retry schedule and queue lifetime: when a job is tried again, when it dies.

Theory of operation. When a pass over a message's channel file starts at time `now`, qmail-send
computes the job's next retry time from the message's birth (the mtime of its info file, set
at preprocessing): `birth + (isqrt(now - birth) + chanskip)**2`, with chanskip 10 for the local
channel and 20 for the remote one, and a root term of 0 if the birth lies in the future. Passes
that start on time therefore happen at ages (10k)**2 s locally and (20k)**2 s remotely, the
"quadratic retry schedule". A pass that starts more than `queuelifetime` (a week) after the
birth is dying: its deliveries run normally, but a `Z` (deferral) result is rewritten to `D`
with qmail-send's sentence appended, so the message bounces instead of waiting again.

Times are whole seconds, as qmail's clock gives them; fractions are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

from sim.qmail.constants import CHANSKIP, QUEUELIFETIME

DYING_TEXT = b"I'm not going to try again; this message has been in the queue too long.\n"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of an on-time schedule: its number (0 first), age, and dying flag."""

    number: int
    age: int
    dying: bool


def next_retry(birth: float, now: float, channel: str) -> int:
    """When the job that starts now is tried again: birth + (isqrt(now - birth) + chanskip)**2."""
    birth_s, now_s = int(birth), int(now)
    root = 0 if birth_s > now_s else isqrt(now_s - birth_s)
    return birth_s + (root + CHANSKIP[channel]) ** 2


def is_dying(birth: float, now: float, lifetime: int = QUEUELIFETIME) -> bool:
    """True if a pass starting now is the message's last: it is older than the lifetime."""
    return int(now) > int(birth) + lifetime


def job_times(
    birth: float, now: float, channel: str, lifetime: int = QUEUELIFETIME
) -> tuple[int, bool]:
    """What a starting pass records for its job: the next retry time and the dying flag."""
    return next_retry(birth, now, channel), is_dying(birth, now, lifetime)


def rewrite_if_dying(result: bytes, dying: bool) -> bytes:
    """A spawner result (status letter + text, no delnum, no NUL) as qmail-send takes it.

    For a dying job `Z<text>` becomes `D<text>` + DYING_TEXT: the sentence goes right after
    the agent's text with no separator added (agents end their text with a newline), and ends
    with its own newline. Other results are unchanged.
    """
    if dying and result[:1] == b"Z":
        return b"D" + result[1:] + DYING_TEXT
    return result


def attempt_schedule(channel: str, lifetime: int = QUEUELIFETIME) -> list[Attempt]:
    """The attempts of a message whose passes all start on time and always defer.

    From age 0, each pass starts at the retry time the previous one computed; the first
    dying pass is the final attempt and ends the list.
    """
    attempts: list[Attempt] = []
    age = 0
    while True:
        dying = is_dying(0, age, lifetime)
        attempts.append(Attempt(len(attempts), age, dying))
        if dying:
            return attempts
        age = next_retry(0, age, channel)
