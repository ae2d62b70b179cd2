"""dnsip: the IPv4 addresses of a host name, from the system resolver (djbdns's dnsip).

`dnsip host` prints the addresses on fd 1, separated by spaces, then a newline; an empty
line when the name exists but has no address. Exit 100 when the name does not exist, 111
when the resolver failed temporarily. qmail-remote runs it for each host it must look up,
because a DNS query is not one of the kernel's effects: like `sh`, this program leaves the
effect world (it calls `socket.getaddrinfo`); under the model (where `Getpid` is not the OS
pid) it answers "temporary failure" instead, unless the model registers its own DNS.
Documented difference: no MX query (the standard library has none); qmail-remote uses the
A records of the domain, as qmail does for a domain without MX records.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from sim.kernel import effects as fx

EXIT_HARD = 100
EXIT_SOFT = 111
_NO_SUCH_NAME = {socket.EAI_NONAME}
_NO_ADDRESS = {
    getattr(socket, name) for name in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name)
}


def lookup_status(error: socket.gaierror | None) -> int:
    """The exit code for a getaddrinfo outcome: 0 found or no address, 100 no name, else 111."""
    if error is None or error.errno in _NO_ADDRESS:
        return 0
    return EXIT_HARD if error.errno in _NO_SUCH_NAME else EXIT_SOFT


def addresses(host: str) -> tuple[list[str], socket.gaierror | None]:
    """The distinct IPv4 addresses of `host` in the resolver's order, and its error if any."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return [], exc
    except UnicodeError:
        return [], socket.gaierror(socket.EAI_NONAME, "bad name")
    found: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in found:
            found.append(ip)
    return found, None


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Print the addresses of argv[1]."""
    if len(argv) < 2:
        yield fx.Write(2, b"dnsip: usage: dnsip host\n")
        return EXIT_HARD
    if (yield fx.Getpid()) != os.getpid():
        yield fx.Note("dns", {"host": argv[1]}, "no system resolver in the model: temporary")
        return EXIT_SOFT
    found, error = addresses(argv[1])
    status = lookup_status(error)
    why = f"resolver: {error.strerror}" if error else f"{len(found)} address(es)"
    yield fx.Note("dns", {"host": argv[1], "ips": found, "status": status}, why)
    if status:
        return status
    yield fx.Write(1, (" ".join(found) + "\n").encode("ascii"))
    return 0
