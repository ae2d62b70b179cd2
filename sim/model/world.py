"""The world of a run: simulated qmail hosts, remote MTAs, DNS, clients and faults on one clock.

Built from a `Scenario` in a fixed order, so that the same scenario and seed give the same run
and the same trace byte for byte: hosts get 10.0.0.1, .2, … in the scenario's order, then the
remote MTAs, then the clients' host `outside`. Every host publishes its name and its local
domains in the DNS; every remote MTA its domains. Random numbers come from `random.Random`
seeded with the seed and a fixed label per user (kernels, network, each remote, each
workload), never from the wall clock. The trace is every kernel's events plus the model's own
(`fault` notes of the program `model`), handed to one sink in the order they happen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from sim.kernel.costs import Costs
from sim.kernel.simnet import Network
from sim.kernel.simproc import finish
from sim.model import faults
from sim.model.arrivals import schedule
from sim.model.clients import Clients
from sim.model.dns import Directory, model_resolver
from sim.model.host import SimHost
from sim.model.remote import RemoteMTA
from sim.qmail.errors import BadInput
from sim.scenario import Scenario

RETIRE_AFTER = 60.0  # seconds after its exit before a process leaves the kernel's table
EPOCH = 1_700_000_000.0  # what the hosts' clocks say at t = 0 (2023-11-14 22:13:20 UTC)
Progress = Callable[[float, float, Mapping[str, int]], None]


class World:
    """Everything a run simulates; `run()` advances it, `sim.model.summary` reads it."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        duration: float | None = None,
        detail: str | None = None,
        costs: Mapping[str, Any] | None = None,
        trace: Callable[[dict], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.seed if seed is None else seed
        self.duration = scenario.duration if duration is None else duration
        self.epoch = EPOCH
        self.sink = trace
        self.events = 0
        self.wall = 0.0
        self.env = simpy.Environment()
        try:
            self.costs = Costs(detail=detail or scenario.detail).with_overrides(
                {**scenario.costs, **(costs or {})}
            )
        except ValueError as exc:
            raise BadInput(f"{scenario.source}: {exc}") from None
        self.net = Network(self.env, self.costs, seed=self.seed)
        self.directory = Directory()
        self.hosts: dict[str, SimHost] = {}
        for spec in scenario.hosts:
            try:
                host_costs = self.costs.with_overrides(spec.costs)
            except ValueError as exc:
                raise BadInput(f"{scenario.source}: host {spec.name}: {exc}") from None
            self.hosts[spec.name] = SimHost(
                self.env,
                spec,
                net=self.net,
                costs=host_costs,
                resolve=model_resolver(self.directory, host_costs),
                trace=self._emit if trace is not None else None,
                seed=self.seed,
                epoch=self.epoch,
            )
            self.directory.add_host(spec.name, self.hosts[spec.name].ip)
            for domain in spec.control.get("locals", "").split() or [spec.name]:
                self.directory.add_domain(domain, spec.name)
        self.remotes: dict[str, RemoteMTA] = {}
        for i, spec in enumerate(scenario.remotes):
            rng = random.Random(f"{self.seed}:remote:{i}")
            remote = RemoteMTA(self.env, self.net, spec, rng)
            self.directory.add_host(remote.name, remote.ip)
            for domain in spec.domains:
                self.directory.add_domain(domain, remote.name)
            for host in self.hosts:
                remote.link(host)
            self.remotes[remote.name] = remote
        self.clients = Clients(self, schedule(scenario, self.duration, self.seed))
        for fault in scenario.faults:
            faults.schedule(self, fault)

    def network_host(self, name: str) -> str | None:
        """The network host that answers for a domain or host name, if any."""
        ip = self.directory.lookup(name)
        if ip is not None:
            return self.net.names.get(ip)
        return name if name in self.net.hosts else None

    def _emit(self, event: dict) -> None:
        if self.sink is not None:
            self.events += 1
            self.sink(event)

    def note(self, host: str, kind: str, fields: Mapping[str, Any], why: str) -> None:
        """An event of the model itself (a fault), in the trace's schema."""
        event = {"t": round(float(self.env.now), 9), "host": host, "pid": 1, "ppid": 0}
        event.update({"uid": "root", "prog": "model", "kind": kind, **fields, "why": why})
        self._emit(event)

    def run(self, progress: Progress | None = None, slices: int = 200) -> None:
        """Advance virtual time to the end of the run; `progress(now, end, tally())` between
        slices."""
        start, end = time.perf_counter(), self.duration
        step = end / slices
        try:
            while self.env.now < end:
                self.env.run(until=min(end, self.env.now + step))
                for host in self.hosts.values():
                    host.retire(self.env.now - RETIRE_AFTER)
                    host.read_log()
                if progress is not None:
                    progress(self.env.now, end, self.tally())
        finally:
            self.wall += time.perf_counter() - start

    def tally(self) -> dict[str, int]:
        """How far the run has come, in messages: `sent` (arrivals the clients began to send)
        and `delivered` (deliveries that succeeded on the qmail hosts)."""
        delivered = sum(host.delivered() for host in self.hosts.values())
        return {"sent": len(self.clients.outcomes), "delivered": delivered}

    def close(self) -> None:
        """End the run: every program still running is closed, quietly (see `finish`); the
        process table keeps each one's state at the end."""
        for host in self.hosts.values():
            for kernel in host.kernels:
                for proc in kernel.procs.values():
                    if proc.gen is not None and proc.gen.gi_frame is not None:
                        finish(proc.gen)
