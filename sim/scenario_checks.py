"""Checks of a scenario's names and files against qmail's rules and against each other.

A scenario mistake must be a `ScenarioError` naming the file, the line and the key before the
run starts, not a traceback from the in-memory filesystem halfway through building a host (a
user given twice is a home made twice), nor a fault that fails at its time, nor a control
file that qmail-send refuses to read once it is running. The names are those the model uses:
a host's network name is its `name`, a remote MTA's is `mx.` and its first domain, the
workload's SMTP clients come from `outside`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sim.mta.home import check_name
from sim.qmail.control import INT_DEFAULTS, load_control, parse_int
from sim.qmail.dotqmail import NAME_MAX, safe_ext
from sim.qmail.errors import BadInput, ControlFileError
from sim.scenario_lines import Checker

ALIAS = "alias"  # qmail's account for the aliases: alias/.qmail-postmaster, ...
CLIENT_HOST = "outside"  # the network host of the workload's SMTP clients
INCOMING = "concurrencyincoming"  # read by the run script for tcpserver -c, not by qmail
INTEGER_CONTROLS = frozenset({*INT_DEFAULTS, INCOMING})
DOMAIN_LISTS = ("locals", "rcpthosts")
# What runs on a host in the model: the programs the boot script, the workload, qmail-send's
# deliveries and the model's DNS start (or a monolith, which forks but never execs).
QMAIL_PROGRAMS = (
    "tcpserver", "qmail-smtpd", "qmail-queue", "qmail-inject", "qmail-start", "splogger",
    "qmail-send", "qmail-clean", "qmail-lspawn", "qmail-getpw", "qmail-local", "sh",
    "qmail-rspawn", "qmail-remote", "dnsmx", "dnsip",
)  # fmt: skip
MONOLITH_PROGRAMS = ("mta-monolith",)


def dns_key(name: str) -> str:
    """A name as the model's DNS compares it: case-insensitive, without a final dot."""
    return name.lower().rstrip(".")


def name(c: Checker, value: str, path: str, kind: str) -> str:
    """A host, domain or user name that can go into qmail's line-based files and paths."""
    try:
        check_name(kind, value)
        value.encode("latin-1")
    except BadInput as exc:
        raise c.fail(path, str(exc)) from None
    except UnicodeEncodeError:
        raise c.fail(path, f"bad {kind} {value!r}: qmail's files hold bytes (latin-1)") from None
    return value


def text(c: Checker, value: str, path: str) -> str:
    """File contents the host's filesystem can hold (qmail's files are bytes)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise c.fail(path, f"{bad!r} is not a byte (latin-1): qmail's files hold bytes") from None
    return value


def users(c: Checker, names: Sequence[str], path: str) -> tuple[str, ...]:
    """The host's users: each once, whatever its case (a user's home is its name in lower
    case, and mail to Alice and to alice is one user's), and none called `alias`."""
    seen: dict[str, str] = {}
    for user in names:
        key = name(c, user, path, "user name").lower()
        if key == ALIAS:
            raise c.fail(path, f"{user!r} is qmail's account for the aliases (alias/.qmail-*)")
        if key in seen:
            same = "" if seen[key] == user else f" ({seen[key]!r} is the same user)"
            raise c.fail(path, f"{user!r} is given twice{same}")
        seen[key] = user
    return tuple(names)


def control(c: Checker, raw: Mapping[str, Any], files: dict[str, str], path: str) -> None:
    """Control files qmail reads as it would: a malformed number or smtproutes port is an
    error here, where qmail-send would refuse to start ("unable to read controls")."""
    for key, value in raw.items():
        where = f"{path}.{key}"
        name(c, key, where, "control file name")
        if isinstance(value, float) and not math.isfinite(value):
            raise c.fail(where, f"must be a finite number, not {value!r}")
        if key in INTEGER_CONTROLS and isinstance(value, float) and not value.is_integer():
            raise c.fail(where, f"must be a whole number, not {value!r}")
        text(c, files[key], where)
        if key in DOMAIN_LISTS:  # the home's layout checks them as `mta init` does
            for domain in files[key].split():  # rcpthosts: `.domain` covers those under it
                bare = domain.removeprefix(".") if key == "rcpthosts" else domain
                name(c, bare, where, "domain")
    try:
        load_control(files)
        if INCOMING in files and parse_int(INCOMING, files[INCOMING]) < 1:
            raise ControlFileError(f"control/{INCOMING}", 1, "must be at least 1")
    except ControlFileError as exc:
        raise c.fail(f"{path}.{exc.name.removeprefix('control/')}", str(exc)) from None


def dotqmail(
    c: Checker, files: Mapping[str, str], host_users: Iterable[str], path: str
) -> dict[str, str]:
    """`.qmail` files by key (`alice-list` is home/alice/.qmail-list), with the user part in
    lower case; each must be a file qmail-local would read (see dot-qmail(5))."""
    known = {u.lower() for u in host_users}
    out: dict[str, str] = {}
    for key, contents in files.items():
        where = f"{path}.{key}"
        user, dash, ext = key.partition("-")
        user = user.lower()
        if user != ALIAS and user not in known:
            raise c.fail(where, f"{user!r} is neither a user of the host nor alias")
        if "/" in ext or "\0" in ext or len(f".qmail{dash}{ext}") > NAME_MAX:
            raise c.fail(where, f"'.qmail{dash}{ext}' cannot be a file name")
        if safe_ext(ext) != ext:
            raise c.fail(
                where,
                f"qmail-local never reads '.qmail{dash}{ext}': it lowers capitals and turns "
                f"dots into colons, so write {f'{user}{dash}{safe_ext(ext)}'!r}",
            )
        fixed = f"{user}{dash}{ext}"
        if fixed in out:
            raise c.fail(where, f"the same file as another key: {fixed!r}")
        out[fixed] = text(c, contents, where)
    return out


def local_domains(control_files: Mapping[str, str], host: str) -> list[str]:
    """The domains the model's DNS sends to a host: its control/locals, or its name."""
    return control_files.get("locals", "").split() or [host]


def hosts_and_remotes(
    c: Checker,
    hosts: Sequence[tuple[str, Mapping[str, str]]],
    remotes: Sequence[Sequence[str]],
) -> None:
    """Every network name once: two hosts, or a host and a remote MTA, with one name would
    share an address and port 25; a domain must lead to one place, not to the first of two."""
    owner: dict[str, str] = {}
    for i, (host, _) in enumerate(hosts):
        key = dns_key(host)
        if key in owner:
            raise c.fail(f"host[{i}].name", f"{owner[key]} has the name {host!r} too")
        if key == CLIENT_HOST:
            raise c.fail(f"host[{i}].name", f"{host!r} is where the workload's clients are")
        owner[key] = f"host[{i}]"
    mail = {dns_key(f"mx.{domains[0]}"): f"remote[{j}]'s MTA" for j, domains in enumerate(remotes)}
    for mx, remote in mail.items():
        if mx in owner:
            why = f"{mx!r} is the name of {remote} (mx. and its first domain)"
            raise c.fail(f"{owner[mx]}.name", why)
    for i, (host, files) in enumerate(hosts):
        for domain in [host, *local_domains(files, host)]:
            mail.setdefault(dns_key(domain), f"host[{i}] ({host})")
    for j, domains in enumerate(remotes):
        for domain in domains:
            name(c, domain, f"remote[{j}].domains", "domain")
            key = dns_key(domain)
            if mail.setdefault(key, f"remote[{j}]") != f"remote[{j}]":
                raise c.fail(
                    f"remote[{j}].domains", f"mail for {domain!r} already goes to {mail[key]}"
                )


def fault_target(
    c: Checker,
    kind: str,
    target: str,
    path: str,
    hosts: Mapping[str, tuple[str, Mapping[str, str]]],
    remotes: Sequence[Sequence[str]],
) -> None:
    """The fault's target is there: a host; a host or domain for remote-down; a program
    that runs on the host for kill. `hosts` maps a host's name to (mta, control files)."""
    where = f"{path}.target"
    listed = ", ".join(hosts)
    if kind == "remote-down":
        if not target and not remotes:
            raise c.fail(where, 'no [[remote]] to take down: give target = "host or domain"')
        names = {dns_key(f"mx.{domains[0]}") for domains in remotes}
        names |= {dns_key(d) for domains in remotes for d in domains}
        for host, (_, files) in hosts.items():
            names |= {dns_key(host), *(dns_key(d) for d in local_domains(files, host))}
        if target == CLIENT_HOST:  # nothing connects to the clients: a fault of no effect
            raise c.fail(where, f"{CLIENT_HOST!r} (the workload's clients) takes no connections")
        if target and dns_key(target) not in names:
            raise c.fail(where, f"no host or domain {target!r} in the scenario")
        return
    host, _, program = target.rpartition(":") if kind == "kill" else (target, "", "")
    if host and host not in hosts:
        raise c.fail(where, f"no host {host!r} (hosts: {listed})")
    if kind != "kill":
        return
    if not program:
        raise c.fail(where, 'give target = "program" or "host:program"')
    mta = hosts[host or next(iter(hosts))][0]
    programs = MONOLITH_PROGRAMS if mta == "monolith" else QMAIL_PROGRAMS
    if program not in programs:
        hint = f'; for a host, give target = "{program}:program"' if program in hosts else ""
        raise c.fail(
            where,
            f"no program {program!r} runs on a {mta} host (programs: {', '.join(programs)})" + hint,
        )
