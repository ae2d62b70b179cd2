"""qmail-remote's SMTP client dialogue as a sans-I/O state machine, with every report it writes.

Theory of operation. Once connected to `<ip>`, qmail-remote reads the greeting (220), sends
`HELO` (no EHLO in 1.03; 250 wanted), `MAIL FROM:<sender>`, one `RCPT TO:<r>` per recipient,
`DATA`, the body (dot-stuffed, CR LF), the final `.`, reads one reply and sends `QUIT` without
waiting. `RemoteSession` is fed the server's bytes and returns *actions* (`Send` bytes to the
server, `SendBody`, `Report` bytes for fd 1); it never touches a socket or a clock. The driver
tells it when the body has been written (`body_sent`), when the link died (`connection_died`:
EOF or timeout on any read or write), or when the message could not be read.

Reports go to fd 1, each NUL-terminated: per recipient `r` (accepted), `h` (5xx), `s` (4xx),
then one message report `K`/`Z`/`D`. A reply is read as qmail's `smtpcode()` does: the code is
the first three characters, continuation lines (`250-…`) are skipped, CRs are dropped from the
kept text (at most 5000 bytes), and NULs in it become `?` when it is quoted after
`Remote host said: `. Failures before a connection exists are in `FAILURES` (+ `perm_dns`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sim.qmail.constants import REMOTE_REPLY_MAX
from sim.qmail.rfc822 import quote_address
from sim.qmail.text import s2b

# Message reports written without a conversation (qmail-remote.c's temp_* / perm_* texts).
FAILURES: dict[str, bytes] = {
    "nomem": b"ZOut of memory. (#4.3.0)\n",
    "oserr": b"ZSystem resources temporarily unavailable. (#4.3.0)\n",
    "noconn": b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n",
    "read": b"ZUnable to read message. (#4.3.0)\n",
    "dnscanon": b"ZCNAME lookup failed temporarily. (#4.4.3)\n",
    "dns": b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n",
    "chdir": b"ZUnable to switch to home directory. (#4.3.0)\n",
    "control": b"ZUnable to read control files. (#4.3.0)\n",
    "partialline": b"DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n",
    "usage": b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n",
    "nomx": b"DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n",
    "ambigmx": b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
    b"it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n",
}

# Message reports that end a conversation: prefix, `<ip>`, suffix, ".\n", remote text.
QUITS: dict[str, tuple[bytes, bytes]] = {
    "greeting": (b"ZConnected to ", b" but greeting failed"),
    "helo": (b"ZConnected to ", b" but my name was rejected"),
    "mail_perm": (b"DConnected to ", b" but sender was rejected"),
    "mail_temp": (b"ZConnected to ", b" but sender was rejected"),
    "no_recipient": (b"DGiving up on ", b""),
    "data_perm": (b"D", b" failed on DATA command"),
    "data_temp": (b"Z", b" failed on DATA command"),
    "after_perm": (b"D", b" failed after I sent the message"),
    "after_temp": (b"Z", b" failed after I sent the message"),
    "accepted": (b"K", b" accepted message"),
}
RECIPIENT_REJECTED = b" does not like recipient.\n"
REMOTE_SAID = b"Remote host said: "


def failure(name: str) -> bytes:
    """The NUL-terminated report for one of FAILURES."""
    return FAILURES[name] + b"\0"


def perm_dns(host: str) -> bytes:
    """`DSorry, I couldn't find any host named <host>. (#5.1.2)`, the host made printable."""
    safe = bytes(ch if 33 <= ch <= 126 else 63 for ch in s2b(host))
    return b"DSorry, I couldn't find any host named " + safe + b". (#5.1.2)\n\0"


def invoked_improperly(argv: Sequence[str]) -> bytes | None:
    """The usage report if argv lacks `host sender recip...`, else None."""
    return failure("usage") if len(argv) < 4 else None


def smtp_address(address: str, canonical_domain: str | None = None) -> str:
    """An envelope address as sent in MAIL/RCPT: local part quoted, domain maybe canonical."""
    at = address.rfind("@")
    if at < 0:
        return address
    domain = address[at + 1 :] if canonical_domain is None else canonical_domain
    return quote_address(f"{address[:at]}@{domain}")


@dataclass(frozen=True, slots=True)
class Send:
    """Write these bytes on the SMTP connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendBody:
    """Write the message body (LF -> CR LF, leading dots doubled), without the final dot."""


@dataclass(frozen=True, slots=True)
class Report:
    """Write this NUL-terminated report on fd 1."""

    data: bytes


Action = Send | SendBody | Report


class ReplyReader:
    """One SMTP reply read byte by byte as qmail-remote's smtpcode() reads it."""

    def __init__(self) -> None:
        self.code = 0
        self.text = bytearray()
        self._state = "code"
        self._count = 0

    def _keep(self, ch: int) -> None:
        if ch != 13 and len(self.text) < REMOTE_REPLY_MAX:
            self.text.append(ch)

    def feed(self, data: bytes) -> int | None:
        """Consume bytes; return how many ended the reply, or None if it needs more."""
        for used, ch in enumerate(data, 1):
            self._keep(ch)
            if self._step(ch):
                return used
        return None

    def _step(self, ch: int) -> bool:
        """Advance on one byte; True when the reply is complete."""
        state = self._state
        if state in ("code", "next_code"):
            if state == "code":  # C unsigned long arithmetic: odd bytes make odd codes
                self.code = (self.code * 10 + ch - 48) % 2**64
            self._count += 1
            if self._count == 3:
                self._state = "fourth"
        elif state == "fourth":
            if ch == 45:  # '-': a continuation line
                self._state = "skip_more"
            elif ch == 10:
                return True
            else:
                self._state = "skip_last"
        elif ch == 10:
            if state == "skip_last":
                return True
            self._state, self._count = "next_code", 0
        return False


class RemoteSession:
    """qmail-remote talking to one connected server at `ip`; bytes in, actions out."""

    def __init__(self, ip: str, helohost: str, sender: str, recipients: Sequence[str]) -> None:
        self.ip = s2b(ip)
        self.helohost = s2b(helohost)
        self.sender = s2b(sender)
        self.recipients = [s2b(r) for r in recipients]
        self.state = "greeting"
        self.output = bytearray()  # everything written on fd 1
        self._pending = bytearray()
        self._reader = ReplyReader()
        self._text = b""  # the last reply's text until a report quotes it
        self._rcpt = 0
        self._accepted = False
        self._critical = False
        self._handlers = {
            "greeting": self._on_greeting,
            "helo": self._on_helo,
            "mail": self._on_mail,
            "rcpt": self._on_rcpt,
            "data": self._on_data,
            "dot": self._on_dot,
        }

    @property
    def done(self) -> bool:
        """True once the message report is written (qmail-remote then exits 0)."""
        return self.state == "done"

    def receive_data(self, data: bytes) -> list[Action]:
        """Feed bytes from the server; return what to do next.

        Replies are only read while one is awaited; earlier bytes wait in a buffer, as in
        qmail's buffered reader. After the report, further bytes are ignored.
        """
        if self.done:
            return []
        self._pending += data
        actions: list[Action] = []
        while self.state in self._handlers and self._pending:
            used = self._reader.feed(bytes(self._pending))
            if used is None:
                self._pending.clear()
                break
            del self._pending[:used]
            code, self._text = self._reader.code, bytes(self._reader.text)
            self._reader = ReplyReader()
            actions += self._handlers[self.state](code)
        return actions

    def body_sent(self) -> list[Action]:
        """The body has been written: send the final dot; a lost link is now critical."""
        if self.state != "body":
            raise RuntimeError(f"body_sent in state {self.state}")
        self._critical = True
        self.state = "dot"
        return [Send(b".\r\n"), *self.receive_data(b"")]

    def connection_died(self) -> list[Action]:
        """EOF or timeout on the connection: a temporary failure, maybe a duplicate."""
        if self.done:
            return []
        duplicate = b"Possible duplicate! " if self._critical else b""
        text = b"ZConnected to " + self.ip + b" but connection died. " + duplicate
        return self._finish(text + b"(#4.4.2)\n")

    def message_unreadable(self) -> list[Action]:
        """Reading the message from fd 0 failed while sending it (no QUIT is sent)."""
        return [] if self.done else self._finish(FAILURES["read"])

    def partial_final_line(self) -> list[Action]:
        """The message does not end in LF: SMTP cannot carry it (no QUIT is sent)."""
        return [] if self.done else self._finish(FAILURES["partialline"])

    def _report(self, data: bytes) -> Report:
        self.output += data
        return Report(data)

    def _finish(self, report: bytes) -> list[Action]:
        self.state = "done"
        return [self._report(report + b"\0")]

    def _remote_said(self) -> bytes:
        """`Remote host said: <text>` once per reply, NULs shown as `?`."""
        text, self._text = self._text, b""
        return REMOTE_SAID + text.replace(b"\0", b"?") if text else b""

    def _quit(self, name: str) -> list[Action]:
        prefix, suffix = QUITS[name]
        report = prefix + self.ip + suffix + b".\n" + self._remote_said()
        return [Send(b"QUIT\r\n"), *self._finish(report)]

    def _on_greeting(self, code: int) -> list[Action]:
        if code != 220:
            return self._quit("greeting")
        self.state = "helo"
        return [Send(b"HELO " + self.helohost + b"\r\n")]

    def _on_helo(self, code: int) -> list[Action]:
        if code != 250:
            return self._quit("helo")
        self.state = "mail"
        return [Send(b"MAIL FROM:<" + self.sender + b">\r\n")]

    def _on_mail(self, code: int) -> list[Action]:
        if code >= 400:
            return self._quit("mail_perm" if code >= 500 else "mail_temp")
        return self._next_rcpt()

    def _next_rcpt(self) -> list[Action]:
        if self._rcpt < len(self.recipients):
            self.state = "rcpt"
            return [Send(b"RCPT TO:<" + self.recipients[self._rcpt] + b">\r\n")]
        if not self._accepted:
            return self._quit("no_recipient")
        self.state = "data"
        return [Send(b"DATA\r\n")]

    def _on_rcpt(self, code: int) -> list[Action]:
        self._rcpt += 1
        if code >= 400:
            letter = b"h" if code >= 500 else b"s"
            report = letter + self.ip + RECIPIENT_REJECTED + self._remote_said() + b"\0"
        else:
            self._accepted = True
            report = b"r\0"
        return [self._report(report), *self._next_rcpt()]

    def _on_data(self, code: int) -> list[Action]:
        if code >= 400:
            return self._quit("data_perm" if code >= 500 else "data_temp")
        self.state = "body"
        return [SendBody()]

    def _on_dot(self, code: int) -> list[Action]:
        self._critical = False
        if code >= 400:
            return self._quit("after_perm" if code >= 500 else "after_temp")
        return self._quit("accepted")
