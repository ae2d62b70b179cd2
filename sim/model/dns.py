"""The model's DNS: `dnsmx` and `dnsip` answering from the scenario, not the system resolver.

qmail-remote resolves names by forking the helpers `dnsmx` (MX records) and `dnsip`
(addresses), since a DNS query is not an effect. Under the model the real helpers refuse, so
each host's kernel resolves those two names to the programs made here. Each waits the DNS
cost of the cost table (a query to a caching resolver: time on the wire, not on a CPU),
notes its answer in the trace and prints what the `Directory` holds: every simulated host's
name at its 10.0.0.N address with an MX record `10 host` for each of its local domains, and
every remote MTA as `mx.<first domain>` with an MX record for each of its domains. An
unknown name exits 100, as the helpers do for NXDOMAIN.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sim.kernel import effects as fx
from sim.kernel.costs import Costs
from sim.kernel.real import Resolver
from sim.programs import registry

EXIT_NO_NAME = 100
MX_PREFERENCE = 10


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class Directory:
    """Address (A) and mail exchanger (MX) records, as the model's world publishes them."""

    def __init__(self) -> None:
        self.addresses: dict[str, str] = {}
        self.exchangers: dict[str, str] = {}

    def add_host(self, name: str, ip: str) -> None:
        """An A record; the first publication of a name wins."""
        self.addresses.setdefault(_key(name), ip)

    def add_domain(self, domain: str, host: str) -> None:
        """An MX record: mail for `domain` goes to `host`."""
        self.exchangers.setdefault(_key(domain), _key(host))

    def lookup(self, name: str) -> str | None:
        """The address of a host name, or of a domain's mail exchanger; None if unknown."""
        key = _key(name)
        return self.addresses.get(key) or self.addresses.get(self.exchangers.get(key, ""))


def _answer(
    kind: str,
    costs: Costs,
    find: Callable[[str], list[str] | None],
    render: Callable[[list[str]], str],
) -> fx.ProgramMain:
    """A DNS helper program: `find` answers a name (None: no such name), `render` prints it."""

    def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
        if len(argv) < 2:
            yield fx.Write(2, f"{kind}: usage: {kind} name\n".encode())
            return EXIT_NO_NAME
        yield fx.Sleep(costs.dns)
        name = argv[1]
        found = find(name)
        if found is None:
            yield fx.Note("dns", {kind: name, "status": 100}, "the model's DNS: no such name")
            return EXIT_NO_NAME
        yield fx.Note("dns", {kind: name, "answer": found, "status": 0}, "the model's DNS")
        yield fx.Write(1, render(found).encode("ascii"))
        return 0

    return main


def model_resolver(directory: Directory, costs: Costs) -> Resolver:
    """The program table of a simulated host: qmail's programs, with the model's DNS helpers."""

    def mx(name: str) -> list[str] | None:
        key = _key(name)
        if key in directory.exchangers:
            return [f"{MX_PREFERENCE} {directory.exchangers[key]}"]
        return [] if key in directory.addresses else None  # no MX: qmail uses the A record

    def ip(name: str) -> list[str] | None:
        found = directory.addresses.get(_key(name))
        return None if found is None else [found]

    helpers = {
        "dnsmx": _answer("dnsmx", costs, mx, lambda lines: "".join(f"{x}\n" for x in lines)),
        "dnsip": _answer("dnsip", costs, ip, lambda ips: " ".join(ips) + "\n"),
    }

    def resolve(name: str) -> tuple[fx.ProgramMain, str | None]:
        if name in helpers:
            return helpers[name], None
        return registry.resolve(name)

    return resolve
