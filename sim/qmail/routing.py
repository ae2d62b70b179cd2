"""Where a recipient goes: qmail-send's rewrite() and its inverse, smtproutes, MX choice.

Theory of operation. qmail-send decides the channel of each envelope recipient once, while
preprocessing a message (`rewrite`): an address without `@` gets `@envnoathost`; the percent
hack turns `user%host@domain` into `user@host` while the domain is in `percenthack`; a domain in
`locals` is local as it stands; otherwise `virtualdomains` is searched from the most specific key
(the whole address, the domain, each suffix starting at a dot, the empty key) and the first hit
wins: an empty prepend is an exception (remote), any other prepend makes `prepend-address` local.
Everything else is remote. All lookups are case-insensitive in ASCII only, as qmail's constmap.

qmail-remote later picks a relay from `smtproutes` (`smtp_route`), or asks DNS; MX records are
ordered by preference with random order among equals (`order_mx`), and the "ambiguous MX" rule
(`mx_candidates`) drops every host that is not strictly better than this host's own best MX.

The control values come in as plain parameters (`RoutingConfig`): no file I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sim.qmail.text import case_lower

Channel = Literal["local", "remote"]
ColonMap = Mapping[str, str] | Iterable[tuple[str, str]]  # `key:value` control lines, in order


def _colon_map(
    entries: Mapping[str, str] | Iterable[tuple[str, str]],
) -> dict[str, tuple[str, str]]:
    """Folded key -> (key as written, value); with duplicate keys the later entry wins."""
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    return {case_lower(key): (key, value) for key, value in pairs}


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The control values rewrite() reads: envnoathost, locals, virtualdomains, percenthack.

    `virtualdomains` is `key -> prepend` in file order (a mapping or `(key, prepend)` pairs);
    with duplicate keys the later one wins.
    """

    envnoathost: str = "envnoathost"
    locals: Collection[str] = ()
    virtualdomains: ColonMap = ()
    percenthack: Collection[str] = ()
    _locals: frozenset[str] = field(init=False, repr=False, compare=False)
    _percenthack: frozenset[str] = field(init=False, repr=False, compare=False)
    _vdoms: dict[str, tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_locals", frozenset(case_lower(d) for d in self.locals))
        object.__setattr__(self, "_percenthack", frozenset(case_lower(d) for d in self.percenthack))
        vdoms = self.virtualdomains
        if not isinstance(vdoms, Mapping):
            vdoms = tuple(vdoms)  # an iterator would be used up by the first lookup
            object.__setattr__(self, "virtualdomains", vdoms)
        object.__setattr__(self, "_vdoms", _colon_map(vdoms))

    def is_local_domain(self, domain: str) -> bool:
        """True if `domain` is listed in control/locals."""
        return case_lower(domain) in self._locals

    def virtualdomain(self, key: str) -> tuple[str, str] | None:
        """The (key as written, prepend) entry for `key`, or None."""
        return self._vdoms.get(case_lower(key))


@dataclass(frozen=True, slots=True)
class Route:
    """The outcome of rewrite(): the channel, the rewritten address, and why (for the trace)."""

    channel: Channel
    address: str
    why: str


def _percent_hack(addr: str, at: int, config: RoutingConfig, notes: list[str]) -> str:
    """`user%host@domain` -> `user@host`, rightmost `%` first, while the domain is listed."""
    while case_lower(addr[at + 1 :]) in config._percenthack:
        percent = addr.rfind("%", 0, at)
        if percent < 0:
            break
        before = addr
        addr = f"{addr[:percent]}@{addr[percent + 1 : at]}"
        at = percent
        notes.append(f"percenthack: {before} → {addr}")
    return addr


def _vdom_keys(addr: str, at: int) -> list[str]:
    """virtualdomains keys to try, most specific first: address, domain, .suffixes, empty."""
    return [
        addr[i:]
        for i in range(len(addr) + 1)
        if i in (0, at + 1, len(addr)) or (i > at and addr[i] == ".")
    ]


def rewrite(recipient: str, config: RoutingConfig) -> Route:
    """Route one envelope recipient as qmail-send's preprocessing does (never raises)."""
    notes: list[str] = []
    addr = recipient
    at = addr.rfind("@")
    if at < 0:
        at = len(addr)
        addr = f"{addr}@{config.envnoathost}"
        notes.append(f"no @: appended @{config.envnoathost}")
    addr = _percent_hack(addr, at, config, notes)
    at = addr.rfind("@")
    domain = addr[at + 1 :]
    prefix = "".join(f"{note}; " for note in notes)
    if config.is_local_domain(domain):
        return Route("local", addr, f"{prefix}{domain} in locals → local {addr}")
    for key in _vdom_keys(addr, at):
        entry = config.virtualdomain(key)
        if entry is None:
            continue
        written, prepend = entry
        name = written or "the empty key"
        if not prepend:
            why = f"{name} in virtualdomains with empty prepend ({written}:) → remote {addr}"
            return Route("remote", addr, f"{prefix}{why}")
        local = f"{prepend}-{addr}"
        why = f"{name} in virtualdomains ({written}:{prepend}) → local {local}"
        return Route("local", local, f"{prefix}{why}")
    why = f"{domain} not in locals or virtualdomains → remote {addr}"
    return Route("remote", addr, f"{prefix}{why}")


def strip_prepend(recipient: str, config: RoutingConfig) -> str:
    """`fred-dude@tommy.gov` -> `dude@tommy.gov`: the address a bounce paragraph shows.

    Like qmail-send, only the domain, its dot-suffixes and the empty key are consulted (not a
    whole-address entry), and the prepend must match case-sensitively and be followed by `-`.
    """
    at = recipient.rfind("@")
    if at < 0:
        return recipient
    domain = recipient[at + 1 :]
    for i in range(len(domain) + 1):
        if i not in (0, len(domain)) and domain[i] != ".":
            continue
        entry = config.virtualdomain(domain[i:])
        if entry is None:
            continue
        prepend = entry[1]
        if prepend and recipient.startswith(f"{prepend}-"):
            return recipient[len(prepend) + 1 :]
        return recipient
    return recipient


@dataclass(frozen=True, slots=True)
class Relay:
    """An smtproutes relay: connect to this host's A records on this port."""

    host: str
    port: int = 25


def _route_keys(host: str) -> list[str]:
    """smtproutes keys to try: the host, each suffix starting at a dot, the empty key."""
    return [host[i:] for i in range(len(host) + 1) if i in (0, len(host)) or host[i] == "."]


def smtp_route(host: str, routes: ColonMap) -> Relay | None:
    """The relay for `host` from smtproutes, or None to use DNS (no hit, or an empty relay)."""
    table = _colon_map(routes)
    for key in _route_keys(host):
        entry = table.get(case_lower(key))
        if entry is None:
            continue
        value = entry[1]
        if not value:
            return None  # `domain:` is an exception: use MX as usual
        relay, colon, port = value.partition(":")
        if not colon:
            return Relay(relay)
        digits = port[: len(port) - len(port.lstrip("0123456789"))]
        return Relay(relay, int(digits or "0") & 0xFFFF)  # scan_ulong: leading digits, else 0
    return None


def literal_ip(host: str) -> str | None:
    """`1.2.3.4` or `[1.2.3.4]` -> `1.2.3.4`: a host qmail-remote uses without DNS."""
    inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    parts = inner.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return ".".join(str(int(p) % 256) for p in parts)  # ip_scan keeps the low byte


class Shuffler(Protocol):
    """Anything with random.Random's `shuffle` (the caller owns the seed)."""

    def shuffle(self, x: list[MX]) -> None: ...


@dataclass(frozen=True, slots=True)
class MX:
    """One mail exchanger: a host (or IP) and its preference."""

    preference: int
    host: str


def order_mx(records: Iterable[MX], rng: Shuffler) -> list[MX]:
    """Sort by preference, in random order among equal preferences."""
    by_pref: dict[int, list[MX]] = {}
    for mx in records:
        by_pref.setdefault(mx.preference, []).append(mx)
    ordered: list[MX] = []
    for pref in sorted(by_pref):
        group = by_pref[pref]
        rng.shuffle(group)
        ordered.extend(group)
    return ordered


PREF_NONE_MINE = 100000  # no MX of ours: no restriction
PREF_RELAYED = 300000  # an smtproutes relay: try every address
PREF_ALL_ALIASES = 500000  # every recipient domain was a CNAME alias


def mx_limit(
    addresses: Sequence[MX], own_ips: Collection[str], *, relayed: bool, all_aliases: bool
) -> int:
    """The preference an address must be strictly below to be tried (the "ambiguous MX" rule)."""
    limit = min([PREF_NONE_MINE, *(mx.preference for mx in addresses if mx.host in own_ips)])
    if relayed:
        limit = PREF_RELAYED
    if all_aliases:
        limit = PREF_ALL_ALIASES
    return limit


def mx_candidates(
    addresses: Sequence[MX], own_ips: Collection[str], *, relayed: bool, all_aliases: bool
) -> list[MX]:
    """Addresses to try, in order; empty means qmail-remote's "listed as best-preference MX"."""
    limit = mx_limit(addresses, own_ips, relayed=relayed, all_aliases=all_aliases)
    return [mx for mx in addresses if mx.preference < limit]
