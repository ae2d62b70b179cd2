"""The simulated network: hosts, addresses, links, listeners and connections.

`Network` keys listeners by (host, port), gives each host an address (10.0.0.N), makes TCP
connections as pairs of `simchan.Channel`s after a handshake that pays the link's latency,
and lets plain SimPy code of the model (clients, remote MTAs) open and accept connections
with `connect()` and `listen()`, whose `Conn` has event-based `send` and `recv` (and
`sending`/`receiving_until` to `yield from`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import random
import socket
from collections.abc import Generator
from typing import Any

import simpy

from sim.kernel.costs import Costs
from sim.kernel.simchan import LOOPBACK, Address, Channel, Endpoint, Listener, net_error
from sim.kernel.simwait import alarms, timed_out, wait_until

WILDCARD = ("", "0.0.0.0", "::", "*")
EPHEMERAL = (32768, 60999)  # Linux's ip_local_port_range


class Network:
    """The simulated network: hosts with addresses, links with costs, listeners by port."""

    def __init__(
        self, env: simpy.Environment, costs: Costs | None = None, *, seed: int = 0
    ) -> None:
        self.env = env
        self.costs = costs or Costs()
        self.rng = random.Random(seed)
        self.hosts: dict[str, str] = {}  # name -> ip
        self.names: dict[str, str] = {}  # ip -> name
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.links: dict[tuple[str, str], tuple[float, float]] = {}
        self.down: set[str] = set()
        self.next_port: dict[str, int] = {}

    # -- hosts and links ------------------------------------------------------------------

    def add_host(self, name: str, ip: str | None = None) -> str:
        """Give host `name` an address (10.0.0.N in order of arrival); returns it."""
        if name not in self.hosts:
            ip = ip or f"10.0.{len(self.hosts) // 250}.{len(self.hosts) % 250 + 1}"
            self.hosts[name], self.names[ip] = ip, name
        return self.hosts[name]

    def link(self, a: str, b: str, latency: float, bandwidth: float) -> None:
        """Set the one-way latency and bandwidth between two hosts (both ways)."""
        self.links[tuple(sorted((a, b)))] = (latency, bandwidth)  # type: ignore[index]

    def path(self, a: str, b: str) -> tuple[float, float]:
        """(one-way latency, bandwidth) from `a` to `b`."""
        if a == b:
            return self.costs.loopback_latency, self.costs.loopback_bandwidth
        default = (self.costs.net_latency, self.costs.net_bandwidth)
        return self.links.get(tuple(sorted((a, b))), default)  # type: ignore[arg-type]

    def ephemeral_port(self, host: str) -> int:
        """The next free local port of `host` (the start is drawn from the seed)."""
        low, high = EPHEMERAL
        port = self.next_port.get(host) or self.rng.randrange(low, high)
        for _ in range(high - low):
            nxt = port + 1 if port < high else low
            if (host, port) not in self.listeners:
                self.next_port[host] = nxt
                return port
            port = nxt
        raise net_error(errno.EADDRNOTAVAIL, host)

    # -- listening ------------------------------------------------------------------------

    def bind(self, host: str, addr: str, port: int, backlog: int = 64) -> Listener:
        """Listen on `host` at address `addr` (wildcard, loopback, or the host's own)."""
        ip = self.add_host(host)
        if addr in WILDCARD:
            bind = "*"
        elif addr in (LOOPBACK, "localhost"):
            bind = LOOPBACK
        elif addr in (ip, host):
            bind = ip
        else:
            raise net_error(errno.EADDRNOTAVAIL, addr)
        port = port or self.ephemeral_port(host)
        if (host, port) in self.listeners:
            raise net_error(errno.EADDRINUSE, f"{addr}:{port}")
        listener = Listener(self, host, bind, port, backlog)
        self.listeners[host, port] = listener
        return listener

    # -- connecting -----------------------------------------------------------------------

    def _target(self, src: str, name: str) -> tuple[str | None, bool, bool]:
        """(host, loopback, needs DNS) for a connect from `src` to `name`."""
        if name in (LOOPBACK, "localhost", "::1"):
            return src, True, False
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name not in self.hosts:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
            return name, False, True
        return self.names.get(name), False, False

    def handshake(
        self, src: str, name: str, port: int, timeout: float | None = None
    ) -> Generator[simpy.Event, Any, Endpoint]:
        """Open a connection from host `src`: the client's side of the three-way handshake.

        Returns the client's Endpoint; the server's waits in the listener's queue.
        Raises gaierror for an unknown name, ECONNREFUSED, or ETIMEDOUT.
        """
        env, start = self.env, self.env.now
        self.add_host(src)
        host, loopback, dns = self._target(src, name)
        if dns:
            yield env.timeout(self.costs.dns)
        if host is None or host in self.down:
            limit = self.costs.connect_timeout if timeout is None else timeout
            yield env.timeout(max(0.0, start + limit - env.now))
            raise timed_out(f"connect to {name}:{port}")
        latency, bandwidth = self.path(src, host)
        yield env.timeout(latency)  # the SYN
        ip = LOOPBACK if loopback else self.hosts[host]
        listener = self.listeners.get((host, port))
        if listener is None or not listener.accepts(loopback, ip):
            yield env.timeout(latency)  # the RST
            raise net_error(errno.ECONNREFUSED, f"{name}:{port}")
        if not listener.room():
            deadline = None if timeout is None else start + timeout
            yield from self._wait_in_line(listener, name, port, deadline)
        client_ip = LOOPBACK if loopback else self.hosts[src]
        client: Address = (client_ip, self.ephemeral_port(src))
        server: Address = (ip, port)
        size = self.costs.socket_buffer
        up = Channel(env, size, latency=latency, bandwidth=bandwidth)
        down = Channel(env, size, latency=latency, bandwidth=bandwidth)
        listener.queue.append(Endpoint(up, down, server, client))
        listener.notify()
        yield env.timeout(latency)  # the SYN-ACK
        return Endpoint(down, up, client, server)

    def _wait_in_line(
        self, listener: Listener, name: str, port: int, deadline: float | None
    ) -> Generator[simpy.Event, Any, None]:
        """Wait for room in a full accept queue, first come first served, until `deadline`."""
        env, ticket = self.env, self.env.event()
        listener.syns.append(ticket)
        clock = alarms(env)
        alarm = None if deadline is None else clock.set(env, deadline, ticket)
        admitted = None
        try:
            admitted = yield ticket
        finally:
            if alarm is not None:
                clock.cancel(alarm)
            if admitted is None:
                if ticket.triggered and ticket.value is True:  # let in as it was stopped
                    listener.reserved -= 1
                    listener.notify()
                else:
                    with contextlib.suppress(ValueError):
                        listener.syns.remove(ticket)
        if admitted is None:
            raise timed_out(f"connect to {name}:{port}")
        if admitted is True:
            listener.reserved -= 1
        if admitted is False or self.listeners.get((listener.host, listener.port)) is not listener:
            raise net_error(errno.ECONNREFUSED, f"{name}:{port}")  # closed as it let us in

    # -- the model's side -----------------------------------------------------------------

    def connect(
        self, src: str, host: str, port: int, timeout: float | None = None
    ) -> simpy.Process:
        """From plain SimPy code: an event whose value is a `Conn` (or that fails)."""

        def run() -> Generator[simpy.Event, Any, Conn]:
            endpoint = yield from self.handshake(src, host, port, timeout)
            return Conn(self.env, endpoint)

        return self.env.process(run())

    def listen(self, host: str, port: int, backlog: int = 64) -> ModelListener:
        """From plain SimPy code: listen on (host, port), e.g. a remote MTA of the model."""
        return ModelListener(self.bind(host, "", port, backlog))


class Conn:
    """The model's end of a TCP connection, with event-based `send` and `recv`."""

    def __init__(self, env: simpy.Environment, endpoint: Endpoint) -> None:
        self.env = env
        self.endpoint = endpoint
        self.local, self.remote = endpoint.local, endpoint.remote

    def send(self, data: bytes) -> simpy.Process:
        """An event that fires when all of `data` is in the send buffer; EPIPE fails it."""
        return self.env.process(self.sending(data))

    def sending(self, data: bytes) -> Generator[simpy.Event, Any, int]:
        """`send` to `yield from` in a SimPy process: no process of its own to start."""
        view, tx = memoryview(data), self.endpoint.tx
        while view:
            yield from wait_until(self.env, tx.writable, [tx])
            view = view[tx.put(view) :]
        return len(data)

    def recv(self, size: int = 65536, timeout: float | None = None) -> simpy.Process:
        """An event whose value is up to `size` bytes, b"" at end of file."""

        def run() -> Generator[simpy.Event, Any, bytes]:
            rx = self.endpoint.rx
            yield from wait_until(self.env, rx.readable, [rx], timeout)
            return rx.take(size)

        return self.env.process(run())

    def recv_until(self, delimiter: bytes = b"\n", limit: int = 1 << 20) -> simpy.Process:
        """An event whose value is the bytes up to and including `delimiter` (or to EOF)."""
        return self.env.process(self.receiving_until(delimiter, limit))

    def receiving_until(
        self, delimiter: bytes = b"\n", limit: int = 1 << 20
    ) -> Generator[simpy.Event, Any, bytes]:
        """`recv_until` to `yield from` in a SimPy process."""
        rx, got = self.endpoint.rx, bytearray()
        while (at := got.find(delimiter)) < 0 and len(got) < limit:
            yield from wait_until(self.env, rx.readable, [rx])
            if rx.at_eof():
                return bytes(got)
            got += rx.take(len(rx.buf))
        end = at + len(delimiter) if at >= 0 else len(got)
        rx.buf[0:0] = got[end:]  # what came after the line stays for the next read
        return bytes(got[:end])

    def close(self) -> None:
        """Close the connection (a FIN follows the data already sent)."""
        self.endpoint.close()


class ModelListener:
    """The model's listening socket: `accept()` is an event whose value is a `Conn`."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.port = listener.port

    def accept(self) -> simpy.Process:
        listener = self.listener

        def run() -> Generator[simpy.Event, Any, Conn]:
            yield from wait_until(listener.env, lambda: bool(listener.queue), [listener])
            endpoint = listener.queue.popleft()
            listener.notify()
            return Conn(listener.env, endpoint)

        return listener.env.process(run())

    def close(self) -> None:
        self.listener.close()
