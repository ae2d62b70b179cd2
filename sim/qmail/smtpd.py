"""qmail-smtpd as a sans-I/O state machine: raw bytes in, replies and actions out.

Theory of operation (h11's shape, qmail-smtpd's rules). The program owns the socket and the
qmail-queue child; `SmtpdSession` owns every decision. Two rules:

* every legal (state, verb) pair lives in `TRANSITIONS`; a verb with no entry gets
  `502 unimplemented`. The session never touches a file descriptor or a clock.
* replies are buffered, as qmail's are: `receive(data)` handles every complete command line
  in `data` (a command ends at LF, one CR before it is dropped) and returns their outputs
  together, so pipelined commands read at once are answered at once. The program writes the
  `Reply` events before it reads again (qmail flushes before every read); `Reply.flush` marks
  the replies after which qmail also flushes at once (all but MAIL, RCPT, RSET and 354).

DATA runs in three steps, each handed to the program as an action event:

1. `StartQueue(sender, recipients)`: start qmail-queue, then call `queue_started(now)`
   (which answers `354 go ahead` and emits the Received line as `MessageData`) or
   `queue_failed()` (`451 qqt failure (#4.3.0)`);
2. `MessageData(data)` chunks while the message comes in (already un-stuffed, LF line ends),
   then `EndOfData(sender, recipients)` (write the envelope) or `AbortData(reason)` (close
   qmail-queue's pipes without an envelope, as qmail_fail does: too many hops, databytes);
3. wait for qmail-queue and call `queue_result(exit_code, qp, now)`: `250 ok <now> qp <qp>`,
   or the 554/552 refusal, or the 554/451 text of qmail-queue's status.

Input that arrives while the session waits for the program is kept and handled afterwards.
`timeout()` and `eof()` end the session (`Close(1)`), as do QUIT (`Close(0)`) and a bare LF
inside DATA. Each `Reply` carries `why`, a short reason for the trace.

Memory stays bounded whatever the client sends. DATA streams (see `sim.qmail.smtp_data`).
A command line has no length limit in qmail 1.03: its stralloc grows until malloc fails, and
then qmail-smtpd answers `421 out of memory (#4.3.0)` and exits (die_nomem), which is what a
deployment under `softlimit` sees. Here a command line longer than `COMMAND_MAX` bytes takes
that same path at a fixed size: its bytes are discarded as they arrive, and when its LF comes
the session answers `421 out of memory (#4.3.0)` and closes (`Close(1)`). Waiting for the LF
rather than hanging up at once means the client, which is still sending, reads the 421
instead of a connection reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sim.qmail.address import addrparse, in_badmailfrom, rcpthosts_verdict
from sim.qmail.envelope import QQ_CRASHED, qq_status
from sim.qmail.received import shown_helo, smtpd_received
from sim.qmail.smtp_data import BareLineFeed, DataDecoder
from sim.qmail.smtpd_events import (
    AbortData,
    Close,
    EndOfData,
    MessageData,
    Reply,
    SessionMisuse,
    SmtpdConfig,
    SmtpdEvent,
    SmtpdState,
    StartQueue,
)
from sim.qmail.smtpd_replies import queue_failure_reply, reply_bytes
from sim.qmail.text import b2s, s2b

__all__ = [
    "COMMAND_MAX",
    "TRANSITIONS",
    "AbortData",
    "Close",
    "EndOfData",
    "MessageData",
    "Reply",
    "SessionMisuse",
    "SmtpdConfig",
    "SmtpdEvent",
    "SmtpdSession",
    "SmtpdState",
    "StartQueue",
    "verbs",
]


@dataclass(slots=True)
class _Transaction:
    """The envelope being collected: qmail's mailfrom, rcptto and flagbarf."""

    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    barred: bool = False  # the sender is in badmailfrom: every RCPT is refused


COMMAND_STATES = frozenset({SmtpdState.NO_MAIL, SmtpdState.MAIL, SmtpdState.RCPT})
COMMAND_MAX = 65536  # a longer command line gets qmail's out-of-memory reply (see above)
UNFLUSHED_VERBS = frozenset({"mail", "rcpt", "rset"})  # qmail's command table: no flush


class SmtpdSession:
    """One SMTP connection's qmail-smtpd, fed the client's bytes as they arrive."""

    def __init__(self, config: SmtpdConfig) -> None:
        self.config = config
        self.state = SmtpdState.GREETING
        self.helo: str | None = None  # the last HELO/EHLO argument
        self.transaction = _Transaction()
        self._buffer = bytearray()
        self._pos = 0  # start of unread input in _buffer
        self._scan = 0  # where to look for the next LF
        self._flush = False  # does the command being handled end with a flush?
        self._overlong = 0  # bytes discarded of a command line past COMMAND_MAX
        self._decoder: DataDecoder | None = None
        self._events: list[SmtpdEvent] = []

    @property
    def pending_input(self) -> int:
        """Bytes received but not yet handled (kept while the program has to act)."""
        return len(self._buffer) - self._pos

    # -- the program's calls -------------------------------------------------------------

    def start(self) -> list[SmtpdEvent]:
        """The greeting, `220 <greeting> ESMTP`."""
        self._expect(SmtpdState.GREETING, "start")
        self._reply("greet", why="connection accepted")
        self.state = SmtpdState.NO_MAIL
        return self._take()

    def receive(self, data: bytes) -> list[SmtpdEvent]:
        """Take bytes read from the client; return the outputs of every complete command.

        Raises:
            SessionMisuse: the session was not started or is closed.
        """
        self._expect_open("receive")
        self._buffer += data
        return self._run()

    def queue_started(self, now: float) -> list[SmtpdEvent]:
        """qmail-queue runs: answer 354, write the Received line, read the message."""
        self._expect(SmtpdState.QUEUE_STARTING, "queue_started")
        self._reply("data", why="qmail-queue started", flush=False)
        cfg = self.config
        received = smtpd_received(
            remote_host=cfg.remote_host,
            remote_ip=cfg.remote_ip,
            local_host=cfg.local_host,
            now=now,
            helo=self.helo,
            remote_info=cfg.remote_info,
        )
        self._events.append(MessageData(received))
        self._decoder = DataDecoder(cfg.databytes)
        self.state = SmtpdState.DATA
        return self._run()

    def queue_failed(self) -> list[SmtpdEvent]:
        """qmail-queue could not be started: 451 qqt failure; the transaction is gone."""
        self._expect(SmtpdState.QUEUE_STARTING, "queue_failed")
        self._reply("qqt", why="could not start qmail-queue", flush=True)
        self.state = SmtpdState.NO_MAIL
        return self._run()

    def queue_result(
        self, exit_code: int | None, qp: int, now: float, *, write_error: bool = False
    ) -> list[SmtpdEvent]:
        """qmail-queue exited (None: killed by a signal): the reply to the message."""
        self._expect(SmtpdState.QUEUE_CLOSING, "queue_result")
        decoder, self._decoder = self._decoder, None
        assert decoder is not None
        cancelled = decoder.too_many_hops or decoder.overflowed
        failed = write_error or cancelled
        status = QQ_CRASHED if exit_code is None else qq_status(exit_code, write_error=failed)
        if not status:
            why = f"queued by qmail-queue pid {qp}"
            self._reply("accept", why, flush=True, when=int(now), qp=qp)
        elif decoder.too_many_hops:
            why = f"{decoder.hops} Received/Delivered header lines"
            self._reply("hops", why, flush=True)
        elif decoder.overflowed:
            why = f"{decoder.stored_bytes} bytes > databytes {decoder.databytes}"
            self._reply("databytes", why, flush=True)
        else:
            text = s2b(queue_failure_reply(status) + "\r\n")
            why = f"qmail-queue exit {exit_code}: {status}"
            self._events.append(Reply("qq", text, why, flush=True))
        self.state = SmtpdState.NO_MAIL
        return self._run()

    def timeout(self) -> list[SmtpdEvent]:
        """No input for timeoutsmtpd seconds: `451 timeout (#4.4.2)` and exit."""
        self._expect_open("timeout")
        self._reply("alarm", why=f"no input for {self.config.timeout} s", flush=True)
        self._die("timeout")
        return self._take()

    def eof(self) -> list[SmtpdEvent]:
        """The client closed the connection (or the read failed): exit 1 without a word."""
        self._expect_open("eof")
        self._die("the client went away")
        return self._take()

    # -- inside ---------------------------------------------------------------------------

    def _expect(self, state: SmtpdState, call: str) -> None:
        if self.state is not state:
            raise SessionMisuse(f"{call}() while {self.state.value}")

    def _expect_open(self, call: str) -> None:
        if self.state in (SmtpdState.GREETING, SmtpdState.CLOSED):
            raise SessionMisuse(f"{call}() while {self.state.value}")

    def _reply(self, name: str, why: str = "", flush: bool | None = None, **fields: object) -> None:
        text = reply_bytes(name, self.config.version, greeting=self.config.greeting, **fields)
        self._events.append(Reply(name, text, why, self._flush if flush is None else flush))

    def _take(self) -> list[SmtpdEvent]:
        events, self._events = self._events, []
        return events

    def _die(self, reason: str) -> None:
        """Exit 1, cancelling the message if one is being read."""
        if self.state is SmtpdState.DATA:
            self._events.append(AbortData(reason))
        self._events.append(Close(1))
        self.state = SmtpdState.CLOSED

    def _run(self) -> list[SmtpdEvent]:
        """Handle buffered input until it runs out or the program has to act."""
        while True:
            if self.state in COMMAND_STATES:
                progressed = self._read_command()
            elif self.state is SmtpdState.DATA:
                progressed = self._read_data()
            else:
                break
            if not progressed:
                break
        if self.state is SmtpdState.CLOSED:
            self._buffer.clear()
        else:
            del self._buffer[: self._pos]
        self._scan = max(0, self._scan - self._pos)
        self._pos = 0
        return self._take()

    def _read_command(self) -> bool:
        """One command line from the buffer, dispatched through TRANSITIONS."""
        end = self._buffer.find(b"\n", max(self._pos, self._scan))
        if end < 0:
            if self._overlong or len(self._buffer) - self._pos > COMMAND_MAX:
                self._overlong += len(self._buffer) - self._pos  # discard, keep reading
                self._pos = len(self._buffer)
            self._scan = len(self._buffer)
            return False
        length, self._overlong = self._overlong + end - self._pos, 0
        if length > COMMAND_MAX:
            self._pos = self._scan = end + 1
            self._reply("nomem", why=f"command line of {length} bytes > {COMMAND_MAX}", flush=True)
            self._die("command line too long")
            return False
        line = bytes(self._buffer[self._pos : end])
        self._pos = self._scan = end + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        verb, _, arg = line.split(b"\0", 1)[0].partition(b" ")
        verb_name = b2s(verb.lower())
        handler = TRANSITIONS[self.state].get(verb_name, _smtp_unimpl)
        self._flush = verb_name not in UNFLUSHED_VERBS
        handler(self, arg.lstrip(b" "))
        return True

    def _read_data(self) -> bool:
        """Feed buffered input to blast; emit the stored bytes; finish at the final dot."""
        decoder = self._decoder
        assert decoder is not None
        if self._pos == len(self._buffer):
            return False
        try:
            decoded = decoder.feed(bytes(self._buffer[self._pos :]))
        except BareLineFeed:
            self._reply("straynewline", why="LF without CR inside DATA", flush=True)
            self._die("bare LF")
            return False
        self._pos += decoded.consumed
        if decoded.data:
            self._events.append(MessageData(decoded.data))
        if decoded.done:
            self._end_of_data(decoder)
        return decoded.done

    def _end_of_data(self, decoder: DataDecoder) -> None:
        """The final dot: hand over the envelope, or cancel the message."""
        self.state = SmtpdState.QUEUE_CLOSING
        sender, recipients = self.transaction.sender, tuple(self.transaction.recipients)
        if decoder.too_many_hops:
            self._events.append(AbortData(f"too many hops ({decoder.hops})"))
        elif decoder.overflowed:
            self._events.append(AbortData(f"message exceeds databytes {decoder.databytes}"))
        else:
            self._events.append(EndOfData(sender, recipients))


# -- the command handlers: (session, argument) -> None ------------------------------------


def _smtp_helo(s: SmtpdSession, arg: bytes) -> None:
    _hello(s, "helo", arg)


def _smtp_ehlo(s: SmtpdSession, arg: bytes) -> None:
    _hello(s, "ehlo", arg)


def _hello(s: SmtpdSession, name: str, arg: bytes) -> None:
    s.helo = b2s(arg)
    shown = shown_helo(s.config.remote_host, s.helo) is not None
    s._reply(name, why="transaction reset; " + ("HELO shown" if shown else "HELO not shown"))
    s.state = SmtpdState.NO_MAIL


def _smtp_mail(s: SmtpdSession, arg: bytes) -> None:
    cfg = s.config
    sender = addrparse(arg, cfg.local_ips, cfg.localiphost)
    if sender is None:
        s._reply("syntax", why="address of 900 bytes or more")
        return
    barred = in_badmailfrom(sender, cfg.badmailfrom)
    s.transaction = _Transaction(sender, [], barred)
    s.state = SmtpdState.MAIL
    why = "in badmailfrom → every RCPT will be refused" if barred else "accepted"
    s._reply("mail", why=f"sender <{sender}> {why}")


def _smtp_rcpt(s: SmtpdSession, arg: bytes) -> None:
    cfg = s.config
    recipient = addrparse(arg, cfg.local_ips, cfg.localiphost)
    if recipient is None:
        s._reply("syntax", why="address of 900 bytes or more")
        return
    if s.transaction.barred:
        s._reply("bmf", why=f"sender <{s.transaction.sender}> is in badmailfrom")
        return
    if cfg.relayclient is not None:
        recipient += cfg.relayclient
        why = "RELAYCLIENT set → rcpthosts not consulted"
    else:
        accepted, why = rcpthosts_verdict(recipient, cfg.rcpthosts, cfg.morercpthosts)
        if not accepted:
            s._reply("nogateway", why=why)
            return
    s.transaction.recipients.append(recipient)
    s.state = SmtpdState.RCPT
    s._reply("rcpt", why=f"<{recipient}>: {why}")


def _smtp_data(s: SmtpdSession, arg: bytes) -> None:
    s.state = SmtpdState.QUEUE_STARTING  # seenmail = 0: the transaction ends here
    s._events.append(StartQueue(s.transaction.sender, tuple(s.transaction.recipients)))


def _reply_with(name: str, why: str = "", state: SmtpdState | None = None) -> Handler:
    """A handler that only replies (and perhaps resets the transaction)."""

    def handler(s: SmtpdSession, arg: bytes) -> None:
        s._reply(name, why=why)
        if state is not None:
            s.state = state

    return handler


def _smtp_quit(s: SmtpdSession, arg: bytes) -> None:
    s._reply("quit", why="client said QUIT")
    s._events.append(Close(0))
    s.state = SmtpdState.CLOSED


Handler = Callable[[SmtpdSession, bytes], None]
_smtp_unimpl = _reply_with("unimpl", "verb not implemented")
_COMMON: dict[str, Handler] = {
    "helo": _smtp_helo,
    "ehlo": _smtp_ehlo,
    "mail": _smtp_mail,
    "rset": _reply_with("rset", "transaction reset", SmtpdState.NO_MAIL),
    "noop": _reply_with("noop"),
    "vrfy": _reply_with("vrfy", "qmail-smtpd never verifies"),
    "help": _reply_with("help"),
    "quit": _smtp_quit,
}
TRANSITIONS: dict[SmtpdState, dict[str, Handler]] = {
    SmtpdState.NO_MAIL: {
        **_COMMON,
        "rcpt": _reply_with("wantmail", "no MAIL in this transaction"),
        "data": _reply_with("wantmail", "no MAIL in this transaction"),
    },
    SmtpdState.MAIL: {
        **_COMMON,
        "rcpt": _smtp_rcpt,
        "data": _reply_with("wantrcpt", "no recipient accepted"),
    },
    SmtpdState.RCPT: {**_COMMON, "rcpt": _smtp_rcpt, "data": _smtp_data},
}


def verbs(states: Iterable[SmtpdState] = COMMAND_STATES) -> list[str]:
    """Every verb with an entry in TRANSITIONS (for diagrams); others get 502."""
    return sorted({verb for state in states for verb in TRANSITIONS[state]})
