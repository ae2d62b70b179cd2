"""The senders of the workload: SMTP clients from outside, and users running qmail-inject.

A driver process walks the planned arrivals (`sim.model.arrivals`) in time order and starts
one sender per message. By SMTP, a plain SimPy client on the network host `outside` speaks to
the host's port 25 in lock step (greeting, HELO, MAIL, RCPT each, DATA, the dot, QUIT), so
qmail-smtpd and qmail-queue do the receiving, as with a real client. By inject, the model
spawns qmail-inject on the host as the sender's account (root for a sender who is not a user
there), with the message on its stdin. Either way the outcome is recorded: accepted or not,
qmail's last reply, and `qp`, the pid of the qmail-queue that queued it, which qmail-send's
`info msg` line repeats, so each arrival is matched to its queue id.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import simpy

from sim.kernel.simnet import Conn
from sim.model.arrivals import Arrival
from sim.model.host import ROOT

if TYPE_CHECKING:
    from sim.model.world import World

CLIENT_HOST = "outside"
CONNECT_TIMEOUT = 60.0
LINE = 72
_QP = re.compile(rb"qp (\d+)")


@dataclass(slots=True)
class Outcome:
    """What became of one arrival."""

    arrival: Arrival
    accepted: bool = False
    reply: str = ""
    qp: int | None = None
    done: float | None = None


def compose(a: Arrival, epoch: float, crlf: bool) -> bytes:
    """The message of arrival `a`: a small header and a body filling it to `a.size` bytes."""
    header = (
        f"From: <{a.sender}>\nTo: {', '.join(f'<{r}>' for r in a.recipients)}\n"
        f"Subject: message {a.n}\nMessage-ID: <{a.n}@model.invalid>\n"
        f"Date: {formatdate(epoch + a.t, usegmt=True)}\n\n"
    )
    room = max(1, a.size - len(header))
    lines = ["x" * LINE] * (room // (LINE + 1)) + ["x" * max(1, room % (LINE + 1) - 1)]
    text = header + "\n".join(lines) + "\n"
    return text.replace("\n", "\r\n").encode() if crlf else text.encode()


class Clients:
    """Sends the planned arrivals and keeps their outcomes (in arrival order)."""

    def __init__(self, world: World, arrivals: list[Arrival]) -> None:
        self.world = world
        self.outcomes = [Outcome(a) for a in arrivals]
        world.net.add_host(CLIENT_HOST)
        world.env.process(self._drive())

    def _drive(self) -> Generator[simpy.Event, Any, None]:
        env = self.world.env
        for outcome in self.outcomes:
            if outcome.arrival.t > env.now:
                yield env.timeout(outcome.arrival.t - env.now)
            send = self._smtp if outcome.arrival.via == "smtp" else self._inject
            env.process(send(outcome))

    # -- SMTP ------------------------------------------------------------------------------

    def _smtp(self, out: Outcome) -> Generator[simpy.Event, Any, None]:
        w, a = self.world, out.arrival
        try:
            conn = yield w.net.connect(CLIENT_HOST, w.hosts[a.host].ip, 25, CONNECT_TIMEOUT)
        except OSError as exc:
            out.reply, out.done = f"connect: {exc.strerror or exc}", w.env.now
            return
        try:
            yield from self._dialogue(conn, out)
        except OSError as exc:
            out.reply = out.reply or f"connection lost: {exc.strerror or exc}"
        finally:
            conn.close()
            out.done = w.env.now

    def _dialogue(self, conn: Conn, out: Outcome) -> Generator[simpy.Event, Any, None]:
        a = out.arrival
        steps = [None, b"HELO outside\r\n", f"MAIL FROM:<{a.sender}>\r\n".encode()]
        for command in steps:
            if command is not None:
                yield from conn.sending(command)
            if not (yield from self._expect(conn, out, b"2")):
                return
        accepted = 0
        for r in a.recipients:
            yield from conn.sending(f"RCPT TO:<{r}>\r\n".encode())
            accepted += yield from self._expect(conn, out, b"2")
        if not accepted:
            yield from conn.sending(b"QUIT\r\n")
            return
        yield from conn.sending(b"DATA\r\n")
        if not (yield from self._expect(conn, out, b"3")):
            return
        yield from conn.sending(compose(a, self.world.epoch, crlf=True) + b".\r\n")
        if (yield from self._expect(conn, out, b"2")):
            out.accepted = True
            found = _QP.search(out.reply.encode())
            out.qp = int(found[1]) if found else None
        yield from conn.sending(b"QUIT\r\n")
        yield from conn.receiving_until(b"\n")

    def _expect(self, conn: Conn, out: Outcome, first: bytes) -> Generator[simpy.Event, Any, bool]:
        """Read one (possibly multi-line) reply; True if its code starts with `first`."""
        while True:
            line = yield from conn.receiving_until(b"\n")
            if not line.endswith(b"\n"):
                out.reply = out.reply or "connection closed"
                raise ConnectionAbortedError(0, "connection closed by the server")
            if line[3:4] != b"-":
                out.reply = line.decode("latin-1").strip()
                return line.startswith(first)

    # -- qmail-inject ----------------------------------------------------------------------

    def _inject(self, out: Outcome) -> Generator[simpy.Event, Any, None]:
        w, a = self.world, out.arrival
        host = w.hosts[a.host]
        if not host.up:
            out.reply, out.done = "host is down", w.env.now
            return
        local = a.sender.partition("@")[0].lower()
        user = local if local in {u.lower() for u in host.spec.users} else "root"
        kernel = host.kernel
        try:
            pid = kernel.spawn(
                "qmail-inject",
                ["-f", a.sender, *a.recipients],
                host.inject_env(),
                user,
                f"{ROOT}/home/{user}" if user != "root" else "/",
                stdin=compose(a, w.epoch, crlf=False),
            )
        except OSError as exc:
            out.reply, out.done = f"qmail-inject: {exc.strerror}", w.env.now
            return
        proc = kernel.procs[pid]
        status = yield kernel.done(pid)
        out.accepted, out.done = status == 0, w.env.now
        out.reply = bytes(proc.stderr).decode("latin-1").strip() or f"exit {status}"
        out.qp = next(
            (
                child
                for child in range(pid + 1, kernel.next_pid)
                if (p := kernel.procs.get(child)) and p.ppid == pid and p.prog == "qmail-queue"
            ),
            None,
        )
