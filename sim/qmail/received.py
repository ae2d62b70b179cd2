"""The Received lines qmail puts on top of a message: qmail-smtpd's and qmail-queue's.

Theory of operation. qmail-smtpd writes its two-line trace header (received.c) into
qmail-queue before the first byte of the message, and qmail-queue writes its own one-line
header above everything it stores. Both are LF-terminated (the stored form) and dated in
qmail's `26 Sep 1995 04:46:54 -0000` style; the caller gives the time.

qmail-smtpd's line carries peer-supplied text (the HELO argument, TCPREMOTEINFO) and DNS
text, so every byte outside letters, digits and `. @ % + / = : -` is written as `?`. The
`(HELO x)` part appears only when a HELO/EHLO argument differs, ignoring ASCII case, from
the remote host name.

qmail-queue names who invoked it from its real uid: the uid of `alias` says `by alias`,
`qmaild` says `from network`, `qmails` says `for bounce`, anyone else `by uid <n>`. The
uid -> account mapping is the caller's (it knows the installation's users).
"""

from __future__ import annotations

from collections.abc import Mapping
from string import ascii_letters, digits

from sim.qmail.dates import qmail_date
from sim.qmail.text import case_lower, s2b

SAFE = frozenset(ascii_letters + digits + ".@%+/=:-")

# qmail-queue's `invoked ...` words, by the account whose uid ran it.
INVOKED_BY: dict[str, str] = {
    "alias": "by alias",
    "qmaild": "from network",
    "qmails": "for bounce",
}


def safe(text: str) -> str:
    """received.c's safeput: each byte outside the safe set becomes `?`."""
    return "".join(ch if ch in SAFE else "?" for ch in text)


def shown_helo(remote_host: str, helo: str | None) -> str | None:
    """The HELO argument worth showing: None if none was given or it names the remote host."""
    if helo is None or case_lower(helo) == case_lower(remote_host):
        return None
    return helo


def smtpd_received(
    *,
    remote_host: str,
    remote_ip: str,
    local_host: str,
    now: float,
    helo: str | None = None,
    remote_info: str | None = None,
    protocol: str = "SMTP",
) -> bytes:
    """qmail-smtpd's two-line Received header (QMTP/QMQP servers pass their protocol)."""
    fake = shown_helo(remote_host, helo)
    helo_part = "" if fake is None else f" (HELO {safe(fake)})"
    info_part = "" if remote_info is None else f"{safe(remote_info)}@"
    return s2b(
        f"Received: from {safe(remote_host)}{helo_part} ({info_part}{safe(remote_ip)})\n"
        f"  by {safe(local_host)} with {protocol}; {qmail_date(now)}\n"
    )


def invoked_by(uid: int, accounts: Mapping[int, str]) -> str:
    """`by alias` / `from network` / `for bounce` / `by uid <n>` for qmail-queue's real uid."""
    return INVOKED_BY.get(accounts.get(uid, ""), f"by uid {uid}")


def queue_received(pid: int, uid: int, now: float, accounts: Mapping[int, str]) -> bytes:
    """qmail-queue's `Received: (qmail <pid> invoked <who>); <date>` line.

    `accounts` maps uids to qmail account names (`alias`, `qmaild`, `qmails`, ...).
    """
    return s2b(f"Received: (qmail {pid} invoked {invoked_by(uid, accounts)}); {qmail_date(now)}\n")
