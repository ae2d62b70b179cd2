"""qmail-smtpd: one SMTP session on fds 0 and 1, as user qmaild, started by tcpserver.

Every decision is `sim.qmail.smtpd.SmtpdSession`'s; this program is its plumbing: it reads
the control files afresh for each connection (as qmail does), feeds the session what the
client sends, writes the replies (buffered, flushed before each read, as qmail's substdio),
and runs qmail-queue when the session asks for it.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, write_all
from sim.programs.common import QueueJob, home, qmail_close, qmail_fail, qmail_open, read_controls
from sim.qmail.control import Control, load_control
from sim.qmail.errors import BadInput
from sim.qmail.smtpd import SmtpdSession
from sim.qmail.smtpd_events import (
    AbortData,
    Close,
    EndOfData,
    MessageData,
    Reply,
    SmtpdConfig,
    SmtpdEvent,
    SmtpdState,
    StartQueue,
)
from sim.qmail.smtpd_replies import reply_bytes

CONTROLS = (
    "me",
    "smtpgreeting",
    "localiphost",
    "timeoutsmtpd",
    "rcpthosts",
    "morercpthosts",
    "badmailfrom",
    "databytes",
)


def config_from(control: Control, env: Mapping[str, str]) -> SmtpdConfig:
    """qmail-smtpd's setup(): control values, then the environment tcpserver set."""
    databytes = control.databytes
    if env.get("DATABYTES", "").isdigit():
        databytes = int(env["DATABYTES"])
    greeting = control.smtpgreeting if control.smtpgreeting is not None else control.me
    local = env.get("TCPLOCALHOST") or env.get("TCPLOCALIP") or "unknown"
    return SmtpdConfig(
        greeting=greeting or "",
        local_host=local,
        remote_ip=env.get("TCPREMOTEIP", "unknown"),
        remote_host=env.get("TCPREMOTEHOST", "unknown"),
        remote_info=env.get("TCPREMOTEINFO"),
        relayclient=env.get("RELAYCLIENT"),
        localiphost=control.localiphost if control.localiphost is not None else control.me,
        local_ips=frozenset({env["TCPLOCALIP"]} if env.get("TCPLOCALIP") else ()),
        rcpthosts=frozenset(control.rcpthosts) if control.rcpthosts is not None else None,
        morercpthosts=frozenset(control.morercpthosts),
        badmailfrom=frozenset(control.badmailfrom),
        databytes=databytes,
        timeout=control.timeoutsmtpd,
    )


class _Session:
    """The plumbing state of one connection: the output buffer and the qmail-queue child."""

    def __init__(self, session: SmtpdSession, env: Mapping[str, str]) -> None:
        self.session = session
        self.env = env
        self.out = bytearray()
        self.job: QueueJob | None = None
        self.write_error = False

    def flush(self) -> Call:
        if self.out:
            data, self.out = bytes(self.out), bytearray()
            try:
                yield fx.Write(1, data, self.session.config.timeout)
            except OSError:
                return False
        return True

    def handle(self, events: list[SmtpdEvent]) -> Call:
        """Act on the session's events; returns an exit status once the session closes."""
        todo = deque(events)
        while todo:
            event = todo.popleft()
            if isinstance(event, Reply):
                self.out += event.text
                yield fx.Note("smtp-reply", {"reply": event.text}, event.why)
                if event.flush and not (yield from self.flush()):
                    return (yield from self.hang_up())
            elif isinstance(event, StartQueue):
                todo.extend((yield from self.start_queue()))
            elif isinstance(event, MessageData):
                yield from self.feed(event.data)
            elif isinstance(event, EndOfData):
                todo.extend((yield from self.finish(event)))
            elif isinstance(event, AbortData):
                todo.extend((yield from self.abort(event)))
            elif isinstance(event, Close):
                yield from self.flush()
                yield from self.hang_up()
                return event.status
        return None

    def hang_up(self) -> Call:
        """Before exiting, cancel a message being read and wait for qmail-queue, which sees no
        envelope and cleans up: no half-queued file outlives this process. Returns 1."""
        if self.job is not None:
            job, self.job = self.job, None
            yield from qmail_fail(job)
        return 1

    def start_queue(self) -> Call:
        try:
            self.job = yield from qmail_open(self.env)
        except OSError:
            return self.session.queue_failed()
        self.write_error = False
        return self.session.queue_started((yield fx.Time()))

    def feed(self, data: bytes) -> Call:
        if self.job is None or self.write_error:
            return
        try:
            yield from write_all(self.job.message_fd, data)
        except OSError:
            self.write_error = True  # qmail-queue is gone; qmail_close will say so

    def finish(self, event: EndOfData) -> Call:
        job, self.job = self.job, None
        assert job is not None
        _status, code = yield from qmail_close(job, event.sender, event.recipients)
        now = yield fx.Time()
        exit_code = None if code < 0 else code
        return self.session.queue_result(exit_code, job.pid, now, write_error=self.write_error)

    def abort(self, event: AbortData) -> Call:
        job, self.job = self.job, None
        assert job is not None
        yield from qmail_fail(job)
        yield fx.Note("smtp-abort", {"reason": event.reason}, "qmail_fail: no envelope sent")
        if self.session.state is not SmtpdState.QUEUE_CLOSING:
            return []  # the session is over (bare LF, timeout, EOF): Close follows, no reply
        now = yield fx.Time()
        return self.session.queue_result(54, job.pid, now)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Serve one SMTP connection; exit 0 after QUIT, 1 when the client goes away."""
    try:
        yield fx.Chdir(home(env))
        control = load_control((yield from read_controls(CONTROLS)))
        config = config_from(control, env)
    except (OSError, BadInput, ValueError) as exc:
        yield fx.Note("smtpd-control", {"error": str(exc)}, "421: cannot read controls")
        yield from write_all(1, reply_bytes("control"))
        return 1
    state = _Session(SmtpdSession(config), env)
    status = yield from state.handle(state.session.start())
    while status is None:
        if not (yield from state.flush()):
            return (yield from state.hang_up())  # the client is gone
        try:
            data = yield fx.Read(0, 8192, config.timeout)
        except TimeoutError:
            events = state.session.timeout()
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            events = state.session.eof()
        else:
            events = state.session.receive(data) if data else state.session.eof()
        status = yield from state.handle(events)
    return status
