"""RFC 822 quoting of an address, as qmail's quote.c does for Return-Path, To: and From_.

The local part (before the last `@`) is quoted when it is empty, holds a character outside
the atom set, or has a leading, trailing or doubled dot; inside quotes `"` and `\\` are escaped.
"""

from __future__ import annotations

import string

_ATOM = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.")


def needs_quoting(local: str) -> bool:
    """True if `local` cannot stand as a dot-atom in an RFC 822 address."""
    if not local or local[0] == "." or local[-1] == "." or ".." in local:
        return True
    return any(ch not in _ATOM for ch in local)


def quote_address(address: str) -> str:
    """`a b@c` -> `"a b"@c`; the empty address stays empty (callers write `<>`)."""
    if not address:
        return ""
    at = address.rfind("@")
    local, domain = (address, "") if at < 0 else (address[:at], address[at:])
    if not needs_quoting(local):
        return address
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"{domain}'
