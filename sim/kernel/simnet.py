"""Byte channels in SimPy time: pipes, FIFOs, and TCP between simulated hosts.

Theory of operation. A `Channel` is one bounded byte stream with reader and writer counts:
a pipe is one channel, a TCP connection two (one per direction). Anyone waiting on a
channel waits on its one `changed()` event (a `simwait.Waitable`), fired whenever data,
space or the ends change, then looks again. A pipe or FIFO keeps its data until both ends
are closed, as Linux does. A TCP direction delivers each write after the link's
serialisation time and one-way latency; the unread plus in-flight bytes are bounded by the
socket buffer, which gives TCP's window without its details. A close travels as a FIN
behind the data; a reader's close is known to the writer at once (no RST round trip), and
the data it did not read is dropped.

`Network` keys listeners by (host, port), gives each host an address (10.0.0.N), and lets
plain SimPy code of the model (clients, remote MTAs) open and accept connections with
`connect()` and `listen()`, whose `Conn` has event-based `send` and `recv`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import random
import socket
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.kernel.costs import Costs
from sim.kernel.simwait import Waitable, alarms, timed_out, wait_until

Address = tuple[str, int]
LOOPBACK = "127.0.0.1"
WILDCARD = ("", "0.0.0.0", "::", "*")
EPHEMERAL = (32768, 60999)  # Linux's ip_local_port_range


def net_error(code: int, what: str) -> OSError:
    """The OSError (ConnectionRefusedError for ECONNREFUSED, …) for a failed network call."""
    return OSError(code, os.strerror(code), what)


class Channel(Waitable):
    """A bounded byte stream; with `latency`, a TCP direction delivering after a delay."""

    __slots__ = (
        "bandwidth",
        "buf",
        "capacity",
        "in_flight",
        "latency",
        "link_free",
        "readers",
        "w_opens",
        "writers",
    )

    def __init__(
        self,
        env: simpy.Environment,
        capacity: int,
        *,
        readers: int = 1,
        writers: int = 1,
        latency: float | None = None,
        bandwidth: float = 1.0,
    ) -> None:
        super().__init__(env)
        self.buf = bytearray()
        self.capacity = capacity
        self.readers = readers
        self.writers = writers
        self.w_opens = writers  # writers ever opened: Linux reports a FIFO's hangup by it
        self.latency = latency
        self.bandwidth = bandwidth
        self.in_flight = 0
        self.link_free = 0.0

    def space(self) -> int:
        return self.capacity - len(self.buf) - self.in_flight

    def at_eof(self) -> bool:
        """Nothing buffered and no writer left: a read returns b""."""
        return not self.buf and self.writers == 0

    def readable(self) -> bool:
        """A read would not block (data, or end of file)."""
        return bool(self.buf) or self.writers == 0

    def writable(self) -> bool:
        """A write would not block (space, or no reader: EPIPE)."""
        return self.readers == 0 or self.space() > 0

    def put(self, data: bytes | memoryview) -> int:
        """Accept as much of `data` as fits; returns how much. EPIPE with no reader."""
        if self.readers == 0:
            raise net_error(errno.EPIPE, "write")
        n = min(len(data), self.space())
        if n <= 0:
            return 0
        chunk = bytes(data[:n])
        if self.latency is None:
            self.buf += chunk
            self.notify()
            return n
        self.in_flight += n
        self.link_free = max(self.env.now, self.link_free) + n / self.bandwidth
        self._after(self.link_free + self.latency - self.env.now, lambda: self._arrive(chunk))
        return n

    def take(self, size: int) -> bytes:
        """Remove and return up to `size` buffered bytes."""
        data = bytes(self.buf[:size])
        del self.buf[:size]
        if data:
            self.notify()
        return data

    def _after(self, delay: float, action: Callable[[], None]) -> None:
        self.env.timeout(max(0.0, delay)).callbacks.append(lambda _event: action())

    def _arrive(self, chunk: bytes) -> None:
        self.in_flight -= len(chunk)
        if self.readers:
            self.buf += chunk
        self.notify()

    def open_writer(self) -> None:
        self.writers += 1
        self.w_opens += 1
        self.notify()

    def open_reader(self) -> None:
        self.readers += 1
        self.notify()

    def close_writer(self) -> None:
        """One writer fewer; on TCP the FIN arrives behind the data already sent."""
        if self.latency is None:
            self.writers -= 1
            self._forget_if_unused()
            self.notify()
            return
        at = max(self.env.now, self.link_free) + self.latency

        def fin() -> None:
            self.writers -= 1
            self.notify()

        self._after(at - self.env.now, fin)

    def close_reader(self) -> None:
        """One reader fewer; with none left writers get EPIPE, and TCP drops the data.

        A pipe or FIFO keeps its data until both ends are closed, as Linux does: a FIFO's
        next reader still reads what a writer that is still open wrote before.
        """
        self.readers -= 1
        if self.latency is None:
            self._forget_if_unused()
        elif self.readers == 0:
            self.buf.clear()
        self.notify()

    def _forget_if_unused(self) -> None:
        """A pipe or FIFO with no end open loses its data (Linux frees the pipe then)."""
        if self.readers == 0 and self.writers == 0:
            self.buf.clear()


class Endpoint:
    """One side of a TCP connection: what it receives, what it sends, and the addresses."""

    __slots__ = ("closed", "local", "remote", "rx", "tx")

    def __init__(self, rx: Channel, tx: Channel, local: Address, remote: Address) -> None:
        self.rx, self.tx, self.local, self.remote = rx, tx, local, remote
        self.closed = False

    def close(self) -> None:
        """Send a FIN after the data and stop receiving."""
        if not self.closed:
            self.closed = True
            self.tx.close_writer()
            self.rx.close_reader()


class Listener(Waitable):
    """A listening socket: connections wait in `queue` until accepted.

    Connects that find the queue full wait in line in `syns`, each on its own ticket, and
    are let in one by one as room appears (`admit`), so a flood of clients costs one
    wake-up per accepted connection rather than one per waiting client per change.
    """

    __slots__ = ("backlog", "bind", "host", "net", "port", "queue", "reserved", "syns")

    def __init__(self, net: Network, host: str, bind: str, port: int, backlog: int) -> None:
        super().__init__(net.env)
        self.net, self.host, self.bind, self.port = net, host, bind, port
        self.backlog = max(1, backlog)
        self.queue: deque[Endpoint] = deque()
        self.syns: deque[simpy.Event] = deque()  # tickets of connects waiting for room
        self.reserved = 0  # room promised to admitted connects not yet queued

    def room(self) -> bool:
        """May a new connect join the queue now (nobody is in line before it)?"""
        return not self.syns and len(self.queue) + self.reserved < self.backlog

    def notify(self) -> None:
        super().notify()
        while self.syns and len(self.queue) + self.reserved < self.backlog:
            ticket = self.syns.popleft()
            if not ticket.triggered:  # else it timed out
                self.reserved += 1
                ticket.succeed(True)

    def accepts(self, loopback: bool, ip: str) -> bool:
        """Does the bound address take a connection to `ip` (over loopback or not)?"""
        return self.bind == "*" or self.bind == (LOOPBACK if loopback else ip)

    def close(self) -> None:
        """Stop listening; connections not yet accepted are closed."""
        self.net.listeners.pop((self.host, self.port), None)
        while self.queue:
            self.queue.popleft().close()
        while self.syns:
            ticket = self.syns.popleft()
            if not ticket.triggered:
                ticket.succeed(False)
        self.notify()


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
