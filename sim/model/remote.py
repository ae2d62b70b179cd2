"""Remote MTAs: the rest of the Internet, as small SMTP servers written as plain SimPy code.

A remote MTA stands for one or more domains outside the simulated qmail hosts. It listens on
port 25 of its own network host (`mx.` and its first domain), one link's latency away, and
answers the SMTP that qmail-remote speaks: greeting, HELO/EHLO, MAIL, RCPT, DATA, QUIT. Each
RCPT draws its fate from the scenario's mix, with the world's seeded random numbers: accept
(250), defer (451) or reject (550); a message with no accepted recipient gets `503` at DATA,
as servers do. An outage (`remote-down`) is the network's: while the host is down, connects
time out. What it accepted is kept in `received` for the summary and for tests.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.kernel.simnet import Conn, Network
from sim.scenario import Remote

SMTP_PORT = 25
MAX_LINE = 1 << 16
REPLIES = {
    "accept": b"250 ok\r\n",
    "defer": b"451 mailbox busy, try again later\r\n",
    "reject": b"550 no such user here\r\n",
}


@dataclass(slots=True)
class Received:
    """One message a remote MTA accepted: when, from whom, to whom, how big."""

    t: float
    sender: str
    recipients: list[str]
    size: int


@dataclass(slots=True)
class Session:
    """The envelope of the SMTP transaction under way."""

    sender: str | None = None
    recipients: list[str] = field(default_factory=list)


def _address(arg: str) -> str:
    """`FROM:<a@b>` or `TO:<a@b>` -> `a@b`."""
    _, _, rest = arg.partition(":")
    return rest.strip().strip("<>")


class RemoteMTA:
    """A remote SMTP server for some domains; see the module docstring."""

    def __init__(self, env: simpy.Environment, net: Network, spec: Remote, rng: random.Random):
        self.env, self.net, self.spec, self.rng = env, net, spec, rng
        self.name = f"mx.{spec.domains[0]}"
        self.ip = net.add_host(self.name)
        self.received: list[Received] = []
        self.sessions = 0
        self.listener = net.listen(self.name, SMTP_PORT, backlog=128)
        env.process(self._serve())

    def link(self, host: str) -> None:
        """Put the remote `latency` (one way) between it and a simulated host."""
        self.net.link(self.name, host, self.spec.latency, self.net.costs.net_bandwidth)

    def fate(self) -> str:
        """accept, defer or reject, drawn from the scenario's mix."""
        x, spec = self.rng.random(), self.spec
        if x < spec.accept:
            return "accept"
        return "defer" if x < spec.accept + spec.defer else "reject"

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        while True:
            conn = yield self.listener.accept()
            self.sessions += 1
            self.env.process(self._session(conn))

    def _session(self, conn: Conn) -> Generator[simpy.Event, Any, None]:
        """One SMTP connection, until QUIT or the client goes away."""
        yield from conn.sending(f"220 {self.name} ESMTP model\r\n".encode())
        state = Session()
        try:
            while True:
                line = yield from conn.receiving_until(b"\n", MAX_LINE)
                if not line.endswith(b"\n"):
                    return
                verb, _, arg = line.decode("latin-1").strip().partition(" ")
                verb = verb.upper()
                if verb == "QUIT":
                    yield from conn.sending(f"221 {self.name}\r\n".encode())
                    return
                if verb == "DATA":
                    yield from self._data(conn, state)
                    state = Session()
                    continue
                yield from conn.sending(self._reply(verb, arg, state))
        except OSError:
            return  # the client went away (EPIPE)
        finally:
            conn.close()

    def _reply(self, verb: str, arg: str, state: Session) -> bytes:
        if verb in ("HELO", "EHLO"):
            return f"250 {self.name}\r\n".encode()
        if verb == "MAIL":
            state.sender, state.recipients = _address(arg), []
            return b"250 ok\r\n"
        if verb == "RCPT":
            if state.sender is None:
                return b"503 MAIL first\r\n"
            fate = self.fate()
            if fate == "accept":
                state.recipients.append(_address(arg))
            return REPLIES[fate]
        if verb in ("RSET", "NOOP"):
            if verb == "RSET":
                state.sender, state.recipients = None, []
            return b"250 ok\r\n"
        return b"502 unimplemented\r\n"

    def _data(self, conn: Conn, state: Session) -> Generator[simpy.Event, Any, None]:
        if not state.recipients:
            yield from conn.sending(b"503 no valid recipients\r\n")
            return
        yield from conn.sending(b"354 go ahead\r\n")
        size = 0
        while True:
            line = yield from conn.receiving_until(b"\n", MAX_LINE)
            if not line.endswith(b"\n"):
                return
            if line in (b".\r\n", b".\n"):
                break
            size += len(line)
        self.received.append(Received(self.env.now, state.sender or "", state.recipients, size))
        yield from conn.sending(b"250 ok: message accepted\r\n")
