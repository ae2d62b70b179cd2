"""qmail-smtpd's replies, word for word, and the qmail-queue status strings behind its DATA reply.

Theory of operation. Every reply qmail-smtpd can write is one entry of `REPLIES`, named after
qmail's own `err_*` / `smtp_*` functions; `{greeting}`, `{when}` and `{qp}` are filled in by
`reply_bytes`, which also adds CR LF after each line. Two texts changed after 1.03 (the HELP line
and the bare-LF URL, see the version table `VERSION_REPLIES`); 1.03's are the default.

After the message, qmail-smtpd waits for qmail-queue and turns its exit code into a status
string (qmail.c `qmail_close`, `sim.qmail.envelope.qq_status`): "" for success, a `D...` string
for a permanent failure, `Z...` for a temporary one. The reply is then `554 <text>` for D and
`451 <text>` for Z (`queue_failure_reply`), unless the data itself was refused (hops, databytes).
"""

from __future__ import annotations

from types import MappingProxyType

from sim.qmail.text import s2b

QMAIL_103 = "qmail-1.03"
NETQMAIL_106 = "netqmail-1.06"
NOTQMAIL_109 = "notqmail-1.09"

REPLIES: dict[str, str] = {
    "greet": "220 {greeting} ESMTP",
    "helo": "250 {greeting}",
    "ehlo": "250-{greeting}\r\n250-PIPELINING\r\n250 8BITMIME",
    "mail": "250 ok",
    "rcpt": "250 ok",
    "noop": "250 ok",
    "rset": "250 flushed",
    "vrfy": "252 send some mail, i'll try my best",
    "help": "214 qmail home page: http://pobox.com/~djb/qmail.html",
    "quit": "221 {greeting}",
    "unimpl": "502 unimplemented (#5.5.1)",
    "wantmail": "503 MAIL first (#5.5.1)",
    "wantrcpt": "503 RCPT first (#5.5.1)",
    "syntax": "555 syntax error (#5.5.4)",
    "bmf": "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)",
    "nogateway": "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
    "qqt": "451 qqt failure (#4.3.0)",
    "data": "354 go ahead",
    "accept": "250 ok {when} qp {qp}",
    "hops": "554 too many hops, this message is looping (#5.4.6)",
    "databytes": "552 sorry, that message size exceeds my databytes limit (#5.3.4)",
    "straynewline": "451 See http://pobox.com/~djb/docs/smtplf.html.",
    "alarm": "451 timeout (#4.4.2)",
    "nomem": "421 out of memory (#4.3.0)",
    "control": "421 unable to read controls (#4.3.0)",
    "ipme": "421 unable to figure out my IP addresses (#4.3.0)",
}

# The replies a later release words differently; everything else is as in 1.03.
VERSION_REPLIES: dict[str, MappingProxyType[str, str]] = {
    QMAIL_103: MappingProxyType({}),
    NETQMAIL_106: MappingProxyType({"help": "214 netqmail home page: http://qmail.org/netqmail"}),
    NOTQMAIL_109: MappingProxyType(
        {
            "help": "214 notqmail home page: https://notqmail.org",
            "straynewline": "451 See https://cr.yp.to/docs/smtplf.html.",
        }
    ),
}


def reply_text(name: str, version: str = QMAIL_103, **fields: object) -> str:
    """The reply `name` with its fields filled in, lines joined by CR LF, no final CR LF."""
    template = VERSION_REPLIES[version].get(name, REPLIES[name])
    return template.format(**fields)


def reply_bytes(name: str, version: str = QMAIL_103, **fields: object) -> bytes:
    """The reply `name` exactly as qmail-smtpd writes it (latin-1, each line ending CR LF)."""
    return s2b(reply_text(name, version, **fields) + "\r\n")


def queue_failure_reply(status: str) -> str:
    """`554 <text>` for a permanent (D) status, `451 <text>` for a temporary (Z) one."""
    return ("554 " if status.startswith("D") else "451 ") + status[1:]
