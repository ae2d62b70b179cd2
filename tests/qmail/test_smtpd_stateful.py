"""Random conversations with the qmail-smtpd session never crash it and keep qmail's reply form."""

from __future__ import annotations

import re

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sim.qmail.smtpd import (
    AbortData,
    Close,
    EndOfData,
    MessageData,
    Reply,
    SmtpdConfig,
    SmtpdSession,
    SmtpdState,
    StartQueue,
)

CONFIG = SmtpdConfig(
    greeting="mx.example.test",
    remote_host="client.example.org",
    localiphost="example.test",
    local_ips=frozenset({"127.0.0.1"}),
    rcpthosts=frozenset({"example.test", ".heaven.af.mil"}),
    badmailfrom=frozenset({"spammer@evil.example"}),
    databytes=200,
)
REPLY_FORM = re.compile(rb"(\d{3}-[^\r\n]*\r\n)*\d{3} [^\r\n]*\r\n")
EVENT_TYPES = (Reply, StartQueue, MessageData, EndOfData, AbortData, Close)

COMMANDS = [
    b"HELO client.example.org",
    b"EHLO other.example",
    b"MAIL FROM:<joe@a.example>",
    b"MAIL FROM:<>",
    b"mail from:<spammer@evil.example>",
    b"MAIL FROM:<" + b"a" * 900 + b">",
    b"RCPT TO:<bob@example.test>",
    b"RCPT TO:<bob@vax.heaven.af.mil>",
    b"RCPT TO:<eve@elsewhere.test>",
    b"RCPT TO:<bob@[127.0.0.1]>",
    b"RCPT TO:<>",
    b"DATA",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY bob",
    b"HELP",
    b"EXPN list",
    b"QUIT",
]
lines = st.one_of(st.sampled_from(COMMANDS), st.sampled_from(COMMANDS), st.binary(max_size=40))
endings = st.sampled_from([b"\r\n", b"\n"])
message_chunks = st.one_of(
    st.sampled_from([b"Received: x\r\n", b"\r\n", b"..dots\r\n", b"body\r\n", b"x" * 150]),
    st.binary(max_size=60),
)

exit_codes = st.one_of(st.just(0), st.sampled_from([None, 11, 53, 54, 81]), st.integers(0, 255))


class SmtpdConversation(RuleBasedStateMachine):
    """A client that says anything, and a program that obeys the session's actions."""

    def __init__(self) -> None:
        super().__init__()
        self.connect()

    def connect(self) -> None:
        self.session = SmtpdSession(CONFIG)
        self.recipients_since_mail = 0
        self.last_event: object = None
        self.check(self.session.start())

    def check(self, events: list) -> None:
        for event in events:
            assert isinstance(event, EVENT_TYPES)
            assert not isinstance(self.last_event, Close), "events after Close"
            if isinstance(event, Reply):
                assert REPLY_FORM.fullmatch(event.text), event.text
                assert event.code == int(event.text[:3])
                if event.name == "mail":
                    self.recipients_since_mail = 0
                elif event.name == "rcpt":
                    self.recipients_since_mail += 1
            elif isinstance(event, StartQueue):
                assert len(event.recipients) == self.recipients_since_mail > 0
            self.last_event = event

    @property
    def open(self) -> bool:
        return self.session.state is not SmtpdState.CLOSED

    @precondition(lambda self: self.open)
    @rule(line=lines, ending=endings)
    def say(self, line: bytes, ending: bytes) -> None:
        self.check(self.session.receive(line + ending))

    @precondition(lambda self: self.open)
    @rule(batch=st.lists(st.tuples(lines, endings), max_size=6), cut=st.integers(0, 400))
    def say_pipelined_split(self, batch: list[tuple[bytes, bytes]], cut: int) -> None:
        data = b"".join(line + ending for line, ending in batch)
        cut %= len(data) + 1
        self.check(self.session.receive(data[:cut]))
        if self.open:
            self.check(self.session.receive(data[cut:]))

    @precondition(lambda self: self.open)
    @rule(message=st.sampled_from([b"", b"Subject: x\r\n\r\nhello\r\n.\r\n"]))
    def open_transaction(self, message: bytes) -> None:
        envelope = b"MAIL FROM:<joe@a.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
        self.check(self.session.receive(envelope + message))

    @precondition(lambda self: self.session.state is SmtpdState.QUEUE_STARTING)
    @rule(started=st.booleans(), now=st.integers(0, 2**32))
    def start_queue(self, started: bool, now: int) -> None:
        self.check(self.session.queue_started(now) if started else self.session.queue_failed())

    @precondition(lambda self: self.session.state is SmtpdState.DATA)
    @rule(chunk=message_chunks)
    def send_message_bytes(self, chunk: bytes) -> None:
        self.check(self.session.receive(chunk))

    @precondition(lambda self: self.session.state is SmtpdState.DATA)
    @rule()
    def end_message(self) -> None:
        self.check(self.session.receive(b"\r\n.\r\n"))

    @precondition(lambda self: self.session.state is SmtpdState.QUEUE_CLOSING)
    @rule(exit_code=exit_codes, qp=st.integers(1, 99999))
    def queue_exits(self, exit_code: int | None, qp: int) -> None:
        self.check(self.session.queue_result(exit_code, qp, 812345679))

    @precondition(lambda self: self.open)
    @rule(how=st.sampled_from(["eof", "timeout", None, None, None]))
    def connection_ends(self, how: str | None) -> None:
        if how is None:  # keep hang-ups rarer than the other moves
            return
        events = self.session.eof() if how == "eof" else self.session.timeout()
        self.check(events)
        assert events[-1] == Close(1)

    @precondition(lambda self: not self.open)
    @rule()
    def reconnect(self) -> None:
        self.connect()

    @invariant()
    def closed_exactly_when_close_was_emitted(self) -> None:
        assert (self.session.state is SmtpdState.CLOSED) == isinstance(self.last_event, Close)


SmtpdConversation.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestSmtpdConversation = SmtpdConversation.TestCase
