"""What a qmail-smtpd session is configured with and what it emits (see `sim.qmail.smtpd`).

`SmtpdConfig` is everything qmail-smtpd reads when it starts (its control files and the
environment tcpserver gives it), built by the program. The events are frozen values: `Reply`
holds bytes for the client exactly as qmail writes them; the others are actions for the
program (start qmail-queue, write message data, write the envelope or cancel, exit).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sim.qmail.constants import TIMEOUT_SMTPD
from sim.qmail.smtpd_replies import QMAIL_103, VERSION_REPLIES


class SmtpdState(enum.Enum):
    """Where the session is; the first three are qmail's `seenmail` / `rcptto` states."""

    NO_MAIL = "no MAIL yet"
    MAIL = "MAIL accepted"
    RCPT = "RCPT accepted"
    GREETING = "not started"
    QUEUE_STARTING = "waiting for qmail-queue to start"
    DATA = "reading the message"
    QUEUE_CLOSING = "waiting for qmail-queue's exit code"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SmtpdConfig:
    """Everything qmail-smtpd reads at start (controls and tcpserver's environment)."""

    greeting: str  # control/smtpgreeting, default me
    local_host: str = "unknown"  # TCPLOCALHOST, else TCPLOCALIP
    remote_ip: str = "unknown"  # TCPREMOTEIP
    remote_host: str = "unknown"  # TCPREMOTEHOST
    remote_info: str | None = None  # TCPREMOTEINFO
    relayclient: str | None = None  # RELAYCLIENT: None = unset; appended to recipients
    localiphost: str | None = None  # control/localiphost (default me); None: no rewriting
    local_ips: frozenset[str] = frozenset()  # this host's IPv4 addresses, dotted
    rcpthosts: frozenset[str] | None = None  # None: file absent, every recipient accepted
    morercpthosts: frozenset[str] | None = None  # morercpthosts.cdb's keys
    badmailfrom: frozenset[str] = frozenset()
    databytes: int = 0  # 0: no limit
    timeout: int = TIMEOUT_SMTPD  # timeoutsmtpd, for the program's reads
    version: str = QMAIL_103  # whose HELP text and bare-LF URL

    def __post_init__(self) -> None:
        if self.databytes < 0:
            raise ValueError("databytes must be 0 (no limit) or positive")
        if self.version not in VERSION_REPLIES:
            raise ValueError(f"unknown version {self.version!r}")
        object.__setattr__(self, "timeout", max(self.timeout, 1))  # qmail: <= 0 means 1
        for name in ("local_ips", "rcpthosts", "morercpthosts", "badmailfrom"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, frozenset(value))


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes for the client, exactly as qmail writes them; `why` explains it in the trace."""

    name: str
    text: bytes
    why: str = ""
    flush: bool = False

    @property
    def code(self) -> int:
        """The three-digit reply code."""
        return int(self.text[:3])


@dataclass(frozen=True, slots=True)
class StartQueue:
    """Start qmail-queue now, then call `queue_started` or `queue_failed`."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessageData:
    """Message bytes to write to qmail-queue's fd 0."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfData:
    """The message is complete: write this envelope to qmail-queue's fd 1, then wait for it."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AbortData:
    """Cancel the message: close qmail-queue's pipes without the envelope (qmail_fail)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    """Flush the replies and exit with this status."""

    status: int


SmtpdEvent = Reply | StartQueue | MessageData | EndOfData | AbortData | Close


class SessionMisuse(RuntimeError):
    """The program called the session in a state where that call makes no sense (our bug)."""
