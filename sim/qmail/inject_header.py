"""qmail-inject's header pass: split the message, rewrite address fields, add what is missing.

Theory of operation (qmail-inject(8), qmail-header(5)). The message is read line by line
(LF only; a last line without LF gets one). The header is the run of field lines at the
top; a line starting with space or tab continues the field before it; a line `From ...`
becomes the field `MBOX-Line: From ...`; the header ends at an empty line or at the first
line that is not a field (`name:` with a name of visible ASCII characters, blanks allowed
before the colon), in which case qmail-inject inserts the empty line itself. The body is
passed through byte for byte. We split by hand rather than with `email.parser`: the email
package would treat CR as a line end, refuse `Subject :` as a field and drop `From ` lines,
all unlike qmail.

Fields are then taken in order. Address fields are re-tokenized and rewritten (so they come
out in qmail's spacing and folding); To/Cc/Bcc/Apparently-To feed the header recipient
list, Resent-To/Cc/Bcc the resent list, and the last address of a Return-Path sets the
envelope sender when `-f` did not. Bcc, Resent-Bcc, Return-Path and Content-Length are
dropped. Finally the new fields (Date, Message-ID, From, `Cc: recipient list not shown: ;`,
each `Resent-` prefixed for a resent message) are put *before* the kept fields.
Not done: QMAILMFTFILE's Mail-Followup-To (it needs a file read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sim.qmail.dates import qmail_date
from sim.qmail.inject_address import (
    VERP_MARK,
    InjectConfig,
    default_from,
    rewrite_tokens,
)
from sim.qmail.inject_token822 import (
    InjectError,
    TokenError,
    Tokens,
    rewrite_address_list,
    tokenize,
    unparse,
    unquote,
)
from sim.qmail.text import b2s, s2b

# hfield: the field names qmail-inject knows, and what it does with their addresses
ROLES: dict[str, str] = {
    "to": "header",
    "cc": "header",
    "bcc": "header",
    "apparently-to": "header",
    "resent-to": "resent",
    "resent-cc": "resent",
    "resent-bcc": "resent",
    "return-path": "return",
    **dict.fromkeys(
        [
            "sender",
            "from",
            "reply-to",
            "return-receipt-to",
            "errors-to",
            "resent-sender",
            "resent-from",
            "resent-reply-to",
        ],
        "sender",
    ),
}
KNOWN_FIELDS = frozenset(
    [
        *ROLES,
        "date",
        "message-id",
        "subject",
        "resent-date",
        "resent-message-id",
        "received",
        "delivered-to",
        "content-length",
        "content-type",
        "content-transfer-encoding",
        "notice-requested-upon-delivery-to",
        "mail-followup-to",
    ]
)
DROPPED = frozenset({"bcc", "resent-bcc", "return-path", "content-length"})
RESENT_MARKERS = frozenset(name for name in KNOWN_FIELDS if name.startswith("resent-"))
FLAG_DELETES = {"from": "f", "message-id": "i", "return-path": "s"}  # QMAILINJECT letters
NOT_SHOWN = "Cc: recipient list not shown: ;\n"


@dataclass(frozen=True, slots=True)
class SplitMessage:
    """A message cut as qmail-inject cuts it: header fields, then everything after them."""

    fields: tuple[bytes, ...]
    body: bytes  # from the empty line on (inserted if missing); b"" when there is no body


def field_name(line: bytes) -> str | None:
    """The name of a field qmail-inject knows (lowercased), else None."""
    name = line.split(b":", 1)[0].rstrip(b" \t") if b":" in line else b""
    lowered = b2s(name).lower() if name.isascii() else ""
    return lowered if lowered in KNOWN_FIELDS else None


def is_field(line: bytes) -> bool:
    """hfield_valid: a colon, and before it a name of visible ASCII (blanks may follow it)."""
    if b":" not in line:
        return False
    name = line.split(b":", 1)[0].rstrip(b" \t")
    return bool(name) and all(32 < byte < 127 for byte in name)


def _lines(message: bytes) -> list[bytes]:
    """LF-terminated lines; a last line without LF gets one, as qmail's reader adds it."""
    lines = message.split(b"\n")
    last = lines.pop()
    return [line + b"\n" for line in lines] + ([last + b"\n"] if last else [])


def split_message(message: bytes) -> SplitMessage:
    """headerbody: cut the header fields from the body (see the module docstring)."""
    lines = _lines(message)
    fields: list[bytes] = []
    for number, line in enumerate(lines):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line
        elif line == b"\n":
            return SplitMessage(tuple(fields), b"".join(lines[number:]))
        elif line.startswith(b"From "):
            fields.append(b"MBOX-Line: " + line)
        elif is_field(line):
            fields.append(line)
        else:
            return SplitMessage(tuple(fields), b"\n" + b"".join(lines[number:]))
    return SplitMessage(tuple(fields), b"")


@dataclass(slots=True)
class HeaderPass:
    """What the header pass gathers: kept fields, names seen, recipients, sender."""

    config: InjectConfig
    sender: str | None
    kept: list[bytes] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    header_recipients: list[str] = field(default_factory=list)  # To, Cc, Bcc, Apparently-To
    resent_recipients: list[str] = field(default_factory=list)  # Resent-To, -Cc, -Bcc

    @property
    def resent(self) -> bool:
        """A message is resent if it has any Resent- field."""
        return bool(self.seen & RESENT_MARKERS)

    def _collect(self, role: str, address: str) -> None:
        if role == "header":
            self.header_recipients.append(address)
        elif role == "resent":
            self.resent_recipients.append(address)
        elif role == "return" and self.sender is None:
            self.sender = address + (VERP_MARK if "r" in self.config.flags else "")

    def _rewrite(self, line: bytes, role: str) -> bytes:
        """Re-tokenize an address field, rewrite each address, write it back qmail's way."""
        text = b2s(line)

        def rewrite(address: Tokens) -> Tokens:
            rewritten = rewrite_tokens(address, self.config)
            self._collect(role, unquote(rewritten))
            return rewritten

        try:
            return s2b(unparse(rewrite_address_list(tokenize(text), rewrite)))
        except TokenError:
            raise InjectError(f"qmail-inject: fatal: unable to parse this line:\n{text}") from None

    def add(self, line: bytes) -> None:
        """Take one header field (doheaderfield)."""
        name = field_name(line)
        if FLAG_DELETES.get(name or "", "") in self.config.flags:
            return
        if name is not None:
            self.seen.add(name)
        role = ROLES.get(name or "")
        if role is not None:
            line = self._rewrite(line, role)
        if name not in DROPPED:
            self.kept.append(line)


def header_pass(fields: Sequence[bytes], config: InjectConfig, sender: str | None) -> HeaderPass:
    """Run every field of the header through qmail-inject's field handling."""
    result = HeaderPass(config, sender)
    for line in fields:
        result.add(line)
    return result


def message_id(start: int, pid: int, idhost: str) -> str:
    """`Message-ID: <YYYYMMDDHHMMSS.PID.qmail@idhost>` (GMT), with its LF."""
    stamp = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d%H%M%S")
    return f"Message-ID: <{stamp}.{pid}.qmail@{idhost}>\n"


def new_fields(result: HeaderPass, start: int, pid: int) -> list[bytes]:
    """The fields qmail-inject adds when missing, in its order, `Resent-` for resent mail."""
    prefix, names = ("Resent-", "resent-") if result.resent else ("", "")
    added: list[str] = []
    if names + "date" not in result.seen:
        added.append(f"{prefix}Date: {qmail_date(start)}\n")
    if names + "message-id" not in result.seen:
        added.append(prefix + message_id(start, pid, result.config.idhost))
    if names + "from" not in result.seen:
        added.append(prefix + default_from(result.config))
    if names + "to" not in result.seen and names + "cc" not in result.seen:
        added.append(prefix + NOT_SHOWN)
    return [s2b(text) for text in added]
