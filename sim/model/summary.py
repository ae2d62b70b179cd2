"""The result of a run: the summary (numbers a learner reads), and tidy tables behind it.

Counts add up by construction: every message the workload got accepted is `delivered`,
`bounced` or `queued` (definitions in `sim.model.ledger`); arrivals qmail refused (an SMTP
5xx/4xx, qmail-inject's non-zero exit, a host that is down) are `refused` and not injected.
Latencies are qmailanalog's, over every message and delivery in the hosts' logs (bounces
included): `qtime` from `new msg` to `end msg`, `ddelay` from `starting delivery` to its
result, `xdelay` from `new msg` to the delivery's result; each as count, p50, p90, p99 (nearest
rank) and max, in seconds. Utilisation is busy time over capacity times the run's length.
A monolith host has no qmail-send log: its ledger comes from its notes (`monolith_ledger`),
and its queue is the flat queue/todo/ it keeps itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sim.model.host import ROOT
from sim.model.ledger import HostLedger, MessageBook, join, monolith_ledger

if TYPE_CHECKING:
    from sim.model.world import World

PERCENTILES = (50, 90, 99)


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """count, p50, p90, p99 (nearest rank) and max of `values`, rounded to microseconds."""
    out: dict[str, float | int | None] = {"count": len(values)}
    ordered = sorted(values)
    for p in PERCENTILES:
        out[f"p{p}"] = round(ordered[math.ceil(p / 100 * len(ordered)) - 1], 6) if values else None
    out["max"] = round(ordered[-1], 6) if values else None
    return out


def ledgers(world: World) -> dict[str, HostLedger]:
    """Each host's log over all its boots, analysed (a monolith's notes, for a monolith)."""
    books = {}
    for name, h in world.hosts.items():
        if h.spec.mta == "monolith":
            locals_ = tuple(h.spec.control.get("locals", "").split()) or (name,)
            waiting = {int(n.split(".", 1)[0]) for n in _monolith_queue(world, name)}
            books[name] = monolith_ledger(name, h.notes, locals_, waiting)
        else:
            h.read_log()
            books[name] = h.logbook.ledger()
    return books


def _monolith_queue(world: World, name: str) -> list[str]:
    """The names of the messages a monolith still holds (queue/todo/qp.serial.time)."""
    try:
        names = world.hosts[name].fs.readdir(f"{ROOT}/queue/todo")
    except OSError:
        return []
    return [n for n in names if n.split(".", 1)[0].isdigit()]


def _queue_counts(world: World, name: str) -> dict[str, int]:
    """What qmail-qstat would say at the end: messages in mess/, not yet preprocessed in todo/;
    and of those in mess/, the `partial` ones: in neither todo/ nor info/, what a qmail-queue
    left when it was killed before its commit (the link to todo/), so never acknowledged;
    qmail-send removes them after 36 hours.

    A monolith has no preprocessing: all it holds is waiting for delivery.
    """
    if world.hosts[name].spec.mta == "monolith":
        return {"messages": len(_monolith_queue(world, name)), "todo": 0, "partial": 0}
    fs, queue = world.hosts[name].fs, f"{ROOT}/queue"
    try:
        splits = fs.readdir(f"{queue}/mess")
        mess = {split: fs.readdir(f"{queue}/mess/{split}") for split in splits}
        todo = set(fs.readdir(f"{queue}/todo"))
    except OSError:
        return {"messages": 0, "todo": 0, "partial": 0}
    partial = 0
    for split, ids in mess.items():
        try:
            info = set(fs.readdir(f"{queue}/info/{split}"))
        except OSError:
            info = set()
        partial += sum(1 for id in ids if id not in todo and id not in info)
    return {"messages": sum(map(len, mess.values())), "todo": len(todo), "partial": partial}


def _host_summary(world: World, name: str) -> dict[str, Any]:
    h, span = world.hosts[name], max(world.env.now, 1e-9)
    cpu = sum(k.cpu.busy() for k in h.kernels)  # type: ignore[attr-defined]
    disk = sum(k.disk.busy() for k in h.kernels)  # type: ignore[attr-defined]
    users = h.accounts()
    return {
        "cpu": round(cpu / (h.spec.cores * span), 6),
        "disk": round(disk / (h.spec.disks * span), 6),
        "cores": h.spec.cores,
        "disks": h.spec.disks,
        "boots": len(h.kernels),
        "queue": _queue_counts(world, name),
        "fetched": h.fetched,
        "processes": dict(sorted(users.items())),
    }


def summarize(world: World, books: dict[str, HostLedger], messages: MessageBook) -> dict:
    """The summary dict (see the module docstring; keys are documented in the README)."""
    outcomes = world.clients.outcomes
    status = messages.statuses()  # (origin, status) -> how many
    done: Counter[tuple[str, str | None]] = Counter()
    for b in books.values():
        done.update(b.deliveries.done())
    span = max(world.env.now, 1e-9)
    hosts = {name: _host_summary(world, name) for name in world.hosts}
    processes: Counter[str] = Counter()
    for h in hosts.values():
        processes.update(h["processes"])
    ours = {s: n for (origin, s), n in status.items() if origin == "workload"}
    bounces = {s: n for (origin, s), n in status.items() if origin == "bounce"}
    finished = ours.get("delivered", 0) + ours.get("bounced", 0)
    return {
        "scenario": world.scenario.name,
        "seed": world.seed,
        "detail": world.costs.detail,
        "until": world.duration,
        "messages": {
            "injected": sum(ours.values()),
            "delivered": ours.get("delivered", 0),
            "bounced": ours.get("bounced", 0),
            "queued": ours.get("queued", 0),
            "refused": outcomes.refused(),
            "sending": outcomes.sending(),
        },
        "deliveries": {
            "local": done[("local", "success")],
            "remote": done[("remote", "success")],
            "deferred": done[("local", "deferral")] + done[("remote", "deferral")],
            "failed": done[("local", "failure")] + done[("remote", "failure")],
            "unfinished": sum(n for (_, outcome), n in done.items() if outcome is None),
        },
        "bounces": {
            "made": sum(bounces.values()),
            "delivered": bounces.get("delivered", 0),
            "queued": bounces.get("queued", 0),
        },
        "latency": {
            "qtime": percentiles(messages.qtimes()),
            "ddelay": percentiles([x for b in books.values() for x in b.deliveries.ddelays()]),
            "xdelay": percentiles([x for b in books.values() for x in b.deliveries.xdelays()]),
        },
        "throughput": {
            "messages_per_hour": round(finished / span * 3600, 3),
            "deliveries_per_hour": round(
                (done[("local", "success")] + done[("remote", "success")]) / span * 3600, 3
            ),
        },
        "hosts": hosts,
        "processes": dict(sorted(processes.items())),
        "run": run_figures(world, finished),
    }


def run_figures(world: World, finished: int) -> dict[str, float | int]:
    """How fast the simulator itself went (wall clock: these vary from run to run)."""
    wall = max(world.wall, 1e-9)
    calls = sum(k.calls for h in world.hosts.values() for k in h.kernels)
    return {
        "virtual_seconds": round(world.env.now, 6),
        "wall_seconds": round(world.wall, 3),
        "calls": calls,
        "calls_per_message": round(calls / finished, 1) if finished else None,
        "events": world.events,
        "events_per_wall_second": round(world.events / wall),
        "messages_per_wall_second": round(finished / wall, 1),
    }


def tables(world: World, books: dict[str, HostLedger], messages: MessageBook) -> dict:
    """messages, deliveries and processes as lists of flat dicts (one per row)."""
    rows_m = [
        {"host": m.host, "id": m.id, "origin": m.origin, "n": m.n, "sender": m.sender,
         "size": m.size, "qp": m.qp, "birth": m.birth, "end": m.end, "qtime": m.qtime,
         "status": m.status}
        for m in messages
    ]  # fmt: skip
    rows_d = [
        {"host": host, "delivery": d.delivery, "id": d.started.id if d.started else None,
         "channel": d.started.channel if d.started else None,
         "recipient": d.started.recipient if d.started else None, "outcome": d.outcome,
         "start": d.start, "end": d.end, "ddelay": d.ddelay, "xdelay": d.xdelay}
        for host, b in books.items()
        for d in b.deliveries
    ]  # fmt: skip
    rows_p = [{"host": name, **row} for name, h in world.hosts.items() for row in h.ps()]
    return {"messages": rows_m, "deliveries": rows_d, "processes": rows_p}


def result_of(world: World) -> tuple[dict, Callable[[], dict]]:
    """(summary, a function making the tables) of a finished run."""
    books = ledgers(world)
    messages = join(books, world.clients.outcomes)
    return summarize(world, books, messages), lambda: tables(world, books, messages)
