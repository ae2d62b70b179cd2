"""Byte channels in SimPy time: the pipes, FIFOs and TCP directions of `SimKernel`.

Theory of operation. A `Channel` is one bounded byte stream with reader and writer counts:
a pipe is one channel, a TCP connection two (one per direction, an `Endpoint` holds both).
Anyone waiting on a channel waits on its one `changed()` event (a `simwait.Waitable`), fired
whenever data, space or the ends change, then looks again. A pipe or FIFO keeps its data
until both ends are closed, as Linux does. A TCP direction delivers each write after the
link's serialisation time and one-way latency; the unread plus in-flight bytes are bounded by
the socket buffer, which gives TCP's window without its details. A close travels as a FIN
behind the data; a reader's close is known to the writer at once (no RST round trip), and
the data it did not read is dropped. A `Listener` is a listening socket and its queue; the
`Network` (`simnet`) makes them and the connections.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from sim.kernel.simwait import Waitable

if TYPE_CHECKING:
    from sim.kernel.simnet import Network

Address = tuple[str, int]
LOOPBACK = "127.0.0.1"


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
