"""Workloads as lists of arrivals: when which message comes to which host, and how.

Pure functions of the scenario and its seed, so a run can be planned (and tested) before it
starts. Each workload kind:

- `message`: `count` messages at `at`;
- `poisson`: a Poisson stream of `rate` messages per second from `start` to `stop` (default:
  the end of the run), with its own random numbers drawn from the seed and its position;
- `burst`: `count` messages at once, at `at` (or `start`);
- `trace`: the arrivals of a recorded qmailsim trace (live or model): each message that
  qmail-queue put in todo/ (its `queue` event in state S4, with sender and recipients), at its
  time since the trace began;
- `sendlog`: a real qmail-send log (splogger's or multilog's stamps): each `new msg` with its
  `info msg` sender and size, and the recipients its `starting delivery` lines name.

Recorded workloads skip the bounces qmail-send made (sender `<>` or `#@[]`): the replayed
qmail makes its own. Their file is read relative to the scenario file.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sim.qmail.errors import BadInput
from sim.qmail.sendlog import InfoMsg, NewMsg, StartingDelivery
from sim.scenario import Scenario, Workload

BOUNCE_SENDERS = ("", "#@[]")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message to send: at `t` to `host`, by SMTP or qmail-inject."""

    t: float
    host: str
    sender: str
    recipients: tuple[str, ...]
    size: int
    via: str
    n: int = 0  # its number in the run, for the Message-ID


def plan(scenario: Scenario, duration: float, seed: int) -> list[Arrival]:
    """Every arrival of the run before `duration`, in time order, numbered from 1."""
    return list(schedule(scenario, duration, seed))


def schedule(scenario: Scenario, duration: float, seed: int) -> Iterator[Arrival]:
    """`plan`, one arrival at a time: a day's million arrivals are never all in memory.

    Recorded workloads are read (and their errors raised) at once; a Poisson stream is drawn
    as it goes. Ties keep the scenario's order, as a stable sort of all of them would."""
    base = Path(scenario.source).parent if scenario.source.endswith(".toml") else Path(".")
    streams: list[Iterable[Arrival]] = []
    for index, w in enumerate(scenario.workloads):
        arrivals = workload_arrivals(w, index, duration, seed, base)
        if isinstance(arrivals, list):
            arrivals = sorted((a for a in arrivals if a.t < duration), key=_time)
        streams.append(arrivals)  # a Poisson stream comes in order and stops before the end
    for n, a in enumerate(heapq.merge(*streams, key=_time), 1):
        yield _numbered(a, n)


def _time(a: Arrival) -> float:
    return a.t


def _numbered(a: Arrival, n: int) -> Arrival:
    return Arrival(a.t, a.host, a.sender, a.recipients, a.size, a.via, n)


def workload_arrivals(
    w: Workload, index: int, duration: float, seed: int, base: Path
) -> list[Arrival] | Iterator[Arrival]:
    """The arrivals of one workload (the `index`-th of the scenario): a list, or for a
    Poisson stream an iterator of them in time order, all before the end of the run."""

    def one(t: float, sender: str = w.sender, to=w.recipients, size: int = w.size) -> Arrival:
        return Arrival(t, w.host, sender, tuple(to), size, w.via)

    if w.kind == "message":
        return [one(w.at) for _ in range(w.count)]
    if w.kind == "burst":
        return [one(w.at or w.start) for _ in range(w.count)]
    if w.kind == "poisson":
        stop = duration if w.stop is None else min(w.stop, duration)
        return (one(t) for t in poisson(w.rate, w.start, stop, f"{seed}:workload:{index}"))
    path = base / w.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"workload {w.kind}: cannot read {path}: {exc.strerror}") from None
    recorded = trace_arrivals(data, path) if w.kind == "trace" else sendlog_arrivals(data, path)
    return [one(w.start + t, s, r, size or w.size) for t, s, r, size in recorded]


def poisson(rate: float, start: float, stop: float, seed: str) -> Iterator[float]:
    """The times of a Poisson stream of `rate` a second after `start` and before `stop`."""
    rng, t = random.Random(seed), start
    while (t := t + rng.expovariate(rate)) < stop:
        yield t


Recorded = list[tuple[float, str, tuple[str, ...], int]]


def trace_arrivals(data: bytes, path: Path | str = "trace") -> Recorded:
    """(time since the trace began, sender, recipients, 0) of each message queued in a trace.

    A line that is not an event, or an event whose fields are not what the trace schema says,
    is `BadInput` naming the file and line."""
    out: Recorded = []
    start = None
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            event = json.loads(line)
        except ValueError:
            raise BadInput(f"{where}: not a trace line (JSON)") from None
        if not isinstance(event, dict):
            raise BadInput(f"{where}: not a trace event (a JSON object)")
        t = _seconds(event.get("t", 0.0), where)
        if start is None:
            start = t
        if event.get("kind") == "queue" and event.get("state") == "S4":
            sender, recipients = event.get("sender", ""), event.get("recipients", [])
            if not isinstance(sender, str):
                raise BadInput(f"{where}: sender is {sender!r}, not an address")
            if not (isinstance(recipients, list) and all(isinstance(r, str) for r in recipients)):
                raise BadInput(f"{where}: recipients is {recipients!r}, not a list of addresses")
            if sender not in BOUNCE_SENDERS:
                out.append((t - start, sender, tuple(recipients), 0))
    return out


def _seconds(t: object, where: str) -> float:
    """An event's `t`: a finite number of seconds."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise BadInput(f"{where}: t is {t!r}, not a number of seconds")
    return float(t)


def sendlog_arrivals(data: bytes, path: Path | str = "log") -> Recorded:
    """(time since the log began, sender, recipients, size) of each message a log shows."""
    from sim.model.logs import parse_send_log  # the log reader lives with the metrics

    lines = parse_send_log(data, epoch=0.0)
    if not lines:
        raise BadInput(f"{path}: no qmail-send log lines")
    start = next((t for t, _ in lines if t is not None), 0.0)
    messages: dict[int, dict] = {}
    order: list[dict] = []
    for t, event in lines:
        if isinstance(event, NewMsg):
            m = {"t": (t or start) - start, "sender": None, "to": [], "size": 0}
            messages[event.id] = m
            order.append(m)
        elif isinstance(event, InfoMsg) and event.id in messages:
            messages[event.id].update(sender=event.sender, size=event.size)
        elif isinstance(event, StartingDelivery) and event.id in messages:
            to = messages[event.id]["to"]
            if event.recipient not in to:
                to.append(event.recipient)
    return [
        (m["t"], m["sender"], tuple(m["to"]), m["size"])
        for m in order
        if m["sender"] not in (None, *BOUNCE_SENDERS) and m["to"]
    ]
