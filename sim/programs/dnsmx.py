"""dnsmx: the mail exchangers of a domain, from the system resolver (djbdns's dnsmx).

`dnsmx domain` prints one `preference host` line per MX record on fd 1 and exits 0; no lines
when the domain exists without MX records (qmail then uses the domain's own addresses).
Exit 100 when the domain does not exist, 111 when the resolver failed temporarily (no
nameserver answering: qmail-remote defers). Like `dnsip`, it leaves the effect world (it
asks dnspython), and under the model, whose `Getpid` is not the OS pid, it answers
"temporary failure" unless the model registers its own DNS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sim.kernel import effects as fx

EXIT_HARD = 100
EXIT_SOFT = 111
LIFETIME = 10.0  # seconds for the whole query, as a resolver's patience


def query_mx(domain: str, lifetime: float = LIFETIME) -> tuple[int, list[tuple[int, str]]]:
    """(status, [(preference, host)]) for `domain`: 0 found (maybe none), 100 no such domain."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(domain, "MX", lifetime=lifetime, search=False)
    except dns.resolver.NXDOMAIN:
        return EXIT_HARD, []
    except dns.resolver.NoAnswer:
        return 0, []
    except (dns.exception.DNSException, OSError, ValueError):
        return EXIT_SOFT, []
    return 0, [(int(r.preference), str(r.exchange).rstrip(".")) for r in answer]


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Print the MX records of argv[1]."""
    if len(argv) < 2:
        yield fx.Write(2, b"dnsmx: usage: dnsmx domain\n")
        return EXIT_HARD
    if (yield fx.Getpid()) != os.getpid():
        yield fx.Note("dns", {"mx": argv[1]}, "no system resolver in the model: temporary")
        return EXIT_SOFT
    status, records = query_mx(argv[1])
    why = {0: f"{len(records)} MX record(s)", EXIT_HARD: "no such domain"}.get(status, "failed")
    yield fx.Note("dns", {"mx": argv[1], "records": records, "status": status}, why)
    if status:
        return status
    yield fx.Write(1, "".join(f"{pref} {host}\n" for pref, host in records).encode("ascii"))
    return 0
