"""Faults: what goes wrong, when. Each is a SimPy process that acts at `start` and undoes at
`stop` (if given), and says so in the trace as a `fault` event of the program `model`.

- `remote-down` (target: a domain or host): the network drops connections to it, so qmail-remote's
  connect times out (timeoutconnect) and the delivery is deferred until the host is back.
- `slow-disk` (target: a host): each fsync and the data it flushes takes `factor` times as long.
- `full-disk` (target: a host): the filesystem takes no more bytes than it holds now (ENOSPC).
- `host-crash` (target: a host): power loss at `start`: every process dies, only fsynced state
  survives (`MemFS.crash`); the host is unreachable until `stop` (default: at once), then boots
  the MTA again on what is left, and qmail-send recovers the queue as qmail does.
- `kill` (target: `program` or `host:program`): SIGKILL to every live process of that program.

An empty target means the first host (or, for `remote-down`, the first remote domain).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from sim.qmail.errors import BadInput
from sim.scenario import Fault

if TYPE_CHECKING:
    from sim.model.host import SimHost
    from sim.model.world import World


def schedule(world: World, fault: Fault) -> None:
    """Check the fault's target now (a clear error before the run) and start its process."""
    act, undo, host = _actions(world, fault)
    world.env.process(_run(world, fault, host, act, undo))


def _run(
    world: World,
    fault: Fault,
    host: str,
    act: Callable[[], None],
    undo: Callable[[], None] | None,
) -> Generator[simpy.Event, Any, None]:
    env = world.env
    if fault.start > env.now:
        yield env.timeout(fault.start - env.now)
    world.note(host, "fault", {"fault": fault.kind, "target": fault.target}, _WHY[fault.kind])
    act()
    if undo is None or (fault.stop is None and fault.kind != "host-crash"):
        return  # for good
    # a reboot waits at least for the killed processes to end
    yield env.timeout(max(0.0, (fault.stop or fault.start) - env.now))
    world.note(host, "fault-end", {"fault": fault.kind, "target": fault.target}, "back to normal")
    undo()


_WHY = {
    "remote-down": "the network drops every connection to it",
    "slow-disk": "fsync takes longer",
    "full-disk": "no space left on the device",
    "host-crash": "power loss: only what was fsynced survives",
    "kill": "SIGKILL",
}


def _host(world: World, name: str, fault: Fault) -> SimHost:
    if not name:
        return next(iter(world.hosts.values()))
    if name not in world.hosts:
        known = ", ".join(world.hosts)
        raise BadInput(f"fault {fault.kind}: no host {name!r} (hosts: {known})")
    return world.hosts[name]


def _actions(
    world: World, fault: Fault
) -> tuple[Callable[[], None], Callable[[], None] | None, str]:
    """(act, undo, the host the trace names) for one fault."""
    net, kind, target = world.net, fault.kind, fault.target
    if kind == "remote-down":
        name = world.network_host(target) if target else next(iter(world.remotes), "")
        if not name:
            raise BadInput(f"fault remote-down: no host or domain {target!r} in the scenario")
        return (lambda: net.down.add(name)), (lambda: net.down.discard(name)), name
    if kind == "kill":
        host_name, _, prog = target.rpartition(":")
        h = _host(world, host_name, fault)
        if not prog:
            raise BadInput('fault kill: give target = "program" or "host:program"')
        return (lambda: _kill(h, prog)), None, h.name
    h = _host(world, target, fault)
    if kind == "slow-disk":
        return (lambda: h.slow_disk(fault.factor)), (lambda: h.slow_disk(1.0)), h.name
    if kind == "full-disk":
        saved = h.fs.capacity

        def fill() -> None:
            h.fs.capacity = h.fs.used

        def empty() -> None:
            h.fs.capacity = saved

        return fill, empty, h.name
    if kind == "host-crash":

        def reboot() -> None:
            net.down.discard(h.name)
            h.boot()

        def crash() -> None:
            net.down.add(h.name)
            h.crash()

        return crash, reboot, h.name
    raise BadInput(f"fault: unknown kind {kind!r}")


def _kill(host: SimHost, prog: str) -> None:
    kernel = host.kernel
    for row in kernel.ps():
        if row["prog"] == prog and row["state"] in ("running", "blocked"):
            kernel.kill(row["pid"], "KILL")
