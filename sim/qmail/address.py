"""The envelope addresses of qmail-smtpd: parsing MAIL/RCPT arguments and judging them.

Theory of operation. qmail-smtpd's `addrparse` is deliberately forgiving: it never fails
on syntax, only on length. Its steps, in order, are the functions below:

1. `extract_address`: the argument is a C string (it ends at the first NUL). If it holds a
   `<`, the address is what follows it up to `>`; otherwise what follows the first `:`
   (leading spaces skipped) up to a space ("partner should go read rfc 821"). A leading
   source route `@a,@b:` is dropped. `"` quoting and `\\` escapes are honoured and removed.
   So `<>` is the empty sender, and so is an argument with neither `<` nor `:`.
2. `apply_localiphost`: `box@[d.d.d.d]`, where d.d.d.d is one of this host's addresses,
   becomes `box@<localiphost>`. Each number is read as qmail's `ip_scan` reads it: decimal
   digits, kept modulo 256, so `[127.0.0.257]` is 127.0.0.1.
3. The length check: qmail keeps the address with its terminating NUL and refuses it when
   that is longer than 900 bytes, that is when the address itself is **900 bytes or longer**
   (899 passes). A refused address gets `555 syntax error (#5.5.4)`.

Then the judgements on an accepted address: `in_badmailfrom` (bmfcheck) and `rcpthosts_verdict`
(rcpthosts.c). Lookups fold case as qmail's constmap does: ASCII letters only, so a latin-1
letter such as `À` is compared as it is. Addresses are `str`, one code point per byte.
"""

from __future__ import annotations

from collections.abc import Iterable

from sim.qmail.constants import ADDRESS_MAX_SMTPD
from sim.qmail.text import b2s, case_lower


def _unquote(arg: bytes, terminator: int) -> bytes:
    """Copy `arg` up to an unquoted, unescaped `terminator`, dropping `"` and `\\`."""
    out = bytearray()
    escaped = quoted = False
    for ch in arg:
        if escaped:
            out.append(ch)
            escaped = False
        elif not quoted and ch == terminator:
            break
        elif ch == 0x5C:  # backslash
            escaped = True
        elif ch == 0x22:  # double quote
            quoted = not quoted
        else:
            out.append(ch)
    return bytes(out)


def extract_address(arg: bytes) -> str:
    """The address in a MAIL/RCPT argument, as addrparse copies it (no length check)."""
    arg = arg.split(b"\0", 1)[0]
    lt = arg.find(b"<")
    if lt >= 0:
        rest, terminator = arg[lt + 1 :], ord(">")
    else:
        colon = arg.find(b":")
        rest = arg[colon + 1 :].lstrip(b" ") if colon >= 0 else b""
        terminator = ord(" ")
    if rest.startswith(b"@"):
        colon = rest.find(b":")
        rest = rest[colon + 1 :] if colon >= 0 else b""
    return b2s(_unquote(rest, terminator))


def scan_ip(text: str) -> tuple[int, int, int, int] | None:
    """`d.d.d.d` as qmail's ip_scan reads it (each number modulo 256), or None."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p and p.isascii() and p.isdigit() for p in parts):
        return None
    a, b, c, d = (int(p) % 256 for p in parts)
    return (a, b, c, d)


def apply_localiphost(addr: str, local_ips: Iterable[str], localiphost: str | None) -> str:
    """`box@[d.d.d.d]` with one of our IPs -> `box@<localiphost>`; else `addr` unchanged."""
    if localiphost is None:
        return addr
    at = addr.rfind("@")
    literal = addr[at + 1 :]
    if at < 0 or not (literal.startswith("[") and literal.endswith("]")):
        return addr
    ip = scan_ip(literal[1:-1])
    if ip is None or ip not in {scan_ip(local) for local in local_ips}:
        return addr
    return addr[: at + 1] + localiphost


def address_too_long(addr: str) -> bool:
    """qmail-smtpd's 555 limit: the address with its NUL may not exceed 900 bytes."""
    return len(addr) >= ADDRESS_MAX_SMTPD


def addrparse(
    arg: bytes, local_ips: Iterable[str] = (), localiphost: str | None = None
) -> str | None:
    """qmail-smtpd's addrparse in its order: extract, localiphost, length; None means 555."""
    addr = apply_localiphost(extract_address(arg), local_ips, localiphost)
    return None if address_too_long(addr) else addr


def parse_smtp_address(arg: bytes) -> str | None:
    """The address of a MAIL/RCPT argument, or None when too long (-> 555 syntax error)."""
    return addrparse(arg)


def in_badmailfrom(sender: str, badmailfrom: Iterable[str]) -> bool:
    """bmfcheck: the sender equals a line, or its `@domain` part equals an `@domain` line."""
    table = {case_lower(line) for line in badmailfrom}
    sender = case_lower(sender)
    at = sender.rfind("@")
    return sender in table or (at >= 0 and sender[at:] in table)


def rcpthosts_match(domain: str, hosts: Iterable[str]) -> str | None:
    """The rcpthosts line that covers `domain` (itself or a suffix from a `.`), or None."""
    table = {case_lower(host) for host in hosts}
    domain = case_lower(domain)
    for i, ch in enumerate(domain):
        if (i == 0 or ch == ".") and domain[i:] in table:
            return domain[i:]
    return None


def rcpthosts_verdict(
    recipient: str, rcpthosts: Iterable[str] | None, morercpthosts: Iterable[str] | None = None
) -> tuple[bool, str]:
    """rcpthosts.c without RELAYCLIENT: (accepted?, why) for one recipient address."""
    if rcpthosts is None:
        return True, "control/rcpthosts absent → every recipient accepted"
    at = recipient.rfind("@")
    if at < 0:
        return True, "no @ in the address → rcpthosts passes it (envnoathost is local)"
    domain = recipient[at + 1 :]
    for name, hosts in (("rcpthosts", rcpthosts), ("morercpthosts", morercpthosts or ())):
        line = rcpthosts_match(domain, hosts)
        if line is not None:
            return True, f"{domain} is covered by {line} in {name} → accepted"
    return False, f"{domain} is in neither rcpthosts nor morercpthosts → refused"
