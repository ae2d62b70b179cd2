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
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import simpy

from sim.kernel.simnet import Conn
from sim.model.arrivals import Arrival
from sim.model.host import ROOT
from sim.qmail.columns import NAME, Columns, Records

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


_ARRIVAL = ("t", "host", "sender", "recipients", "size", "via", "n")


class OutcomeBook(Records[Outcome]):
    """The outcome of every arrival sent so far, in arrival order, in columns (a day has a
    million). A finished one keeps qmail's reply only if it was not accepted (an accepted
    one's reply is its qp); one still being sent is its live `Outcome`."""

    def __init__(self) -> None:
        self.table = Columns(
            t="d", host=NAME, sender=NAME, recipients=NAME, size="q", via=NAME, n="q",
            accepted="b", reply=NAME, qp="q", done="d",
        )  # fmt: skip
        self.flying: dict[int, Outcome] = {}  # row -> the outcome of an arrival being sent

    def start(self, a: Arrival) -> tuple[int, Outcome]:
        """Begin the outcome of arrival `a`: its row and its live record."""
        row = self.table.append(*(getattr(a, f) for f in _ARRIVAL), False, None, None, None)
        self.flying[row] = out = Outcome(a)
        return row, out

    def finish(self, row: int) -> None:
        """Keep what became of the arrival in row `row`, in the columns."""
        out = self.flying.pop(row)
        for field, value in (("accepted", out.accepted), ("qp", out.qp), ("done", out.done)):
            self.table.set(row, field, value)
        if not out.accepted:
            self.table.set(row, "reply", out.reply)

    def make(self, i: int) -> Outcome:
        live = self.flying.get(i)
        if live is not None:
            return live
        row = self.table.row(i)
        accepted, reply, qp, done = row[len(_ARRIVAL) :]
        return Outcome(Arrival(*row[: len(_ARRIVAL)]), accepted, reply or "", qp, done)

    def refused(self) -> int:
        """Arrivals qmail refused (or that could not be sent): finished, not accepted."""
        c = self.table.columns
        return sum(1 for ok, done in zip(c["accepted"], c["done"], strict=True)
                   if not ok and done == done)  # fmt: skip

    def sending(self) -> int:
        """Arrivals still being sent, not yet accepted."""
        return sum(1 for out in self.flying.values() if not out.accepted)

    def accepted(self) -> Iterator[tuple[str, int, str, int | None]]:
        """(host, n, sender, qp) of each accepted arrival, in arrival order."""
        c, names = self.table.columns, self.table.names
        rows = zip(c["accepted"], c["host"], c["n"], c["sender"], strict=True)
        for i, (ok, host, n, sender) in enumerate(rows):
            live = self.flying.get(i)
            if live is not None:
                if live.accepted:
                    a = live.arrival
                    yield a.host, a.n, a.sender, live.qp
            elif ok:
                yield names[host], n, names[sender], self.table.get(i, "qp")


class Clients:
    """Sends the arrivals as they come and keeps their outcomes (in arrival order)."""

    def __init__(self, world: World, arrivals: Iterable[Arrival]) -> None:
        self.world = world
        self.outcomes = OutcomeBook()
        world.net.add_host(CLIENT_HOST)
        world.env.process(self._drive(iter(arrivals)))

    def _drive(self, arrivals: Iterator[Arrival]) -> Generator[simpy.Event, Any, None]:
        env = self.world.env
        for a in arrivals:
            if a.t > env.now:
                yield env.timeout(a.t - env.now)
            env.process(self._send(*self.outcomes.start(a)))

    def _send(self, row: int, out: Outcome) -> Generator[simpy.Event, Any, None]:
        send = self._smtp if out.arrival.via == "smtp" else self._inject
        yield from send(out)
        self.outcomes.finish(row)

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
