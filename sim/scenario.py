"""Scenarios: TOML files that say hosts, users, control files, workload, faults and costs.

`load_scenario(path)` reads a file with `tomllib` and validates it into frozen dataclasses; a
mistake raises `ScenarioError` naming the file, the line and the key, e.g.
`scenarios/x.toml:14: workload[2].rate: must be a number > 0, not "fast"`. The embedded
default (`DEFAULT_SCENARIO`, used by `make demo` and `qmailsim run` without a file) is a short
lesson: a few local and remote messages, one bounce, one deferral and its retry.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sim.qmail.errors import BadInput

DETAILS = ("teaching", "fast")
WORKLOADS = ("message", "poisson", "burst", "trace", "sendlog")
FAULTS = ("remote-down", "host-crash", "kill", "slow-disk", "full-disk")
MTAS = ("qmail", "monolith")  # what a host runs: qmail's programs, or mta-monolith as root
DEFAULT_NAME = "default.toml"


class ScenarioError(BadInput):
    """A scenario file the model cannot run; the message names file, line and key."""


@dataclass(frozen=True, slots=True)
class Host:
    """One host: its name (control/me), users, control files, .qmail files, and its MTA.

    `mta = "monolith"` boots `mta-monolith` (one root daemon) instead of qmail's programs,
    for comparing the two designs on the same workload. `fetch` (seconds, 0: never) is how
    often the users' mail readers take and delete what is in their Maildirs, as POP3 clients
    that leave nothing on the server; a long run needs it to stay small.
    """

    name: str
    users: tuple[str, ...] = ()
    control: Mapping[str, str] = field(default_factory=dict)  # file name -> contents
    dotqmail: Mapping[str, str] = field(default_factory=dict)  # "alice-list" -> contents
    costs: Mapping[str, float] = field(default_factory=dict)
    cores: int = 2
    disks: int = 1
    mta: str = "qmail"
    fetch: float = 0.0


@dataclass(frozen=True, slots=True)
class Remote:
    """A remote MTA outside the simulated hosts, for one or more domains."""

    domains: tuple[str, ...]
    latency: float = 0.05
    accept: float = 1.0
    defer: float = 0.0
    reject: float = 0.0


@dataclass(frozen=True, slots=True)
class Workload:
    """Messages arriving at a host: one, a Poisson stream, a burst, or a recorded trace."""

    kind: str
    host: str
    sender: str = ""
    recipients: tuple[str, ...] = ()
    at: float = 0.0
    rate: float = 0.0
    count: int = 1
    start: float = 0.0
    stop: float | None = None
    size: int = 1000
    via: str = "smtp"  # or "inject"
    file: str = ""


@dataclass(frozen=True, slots=True)
class Fault:
    """Something going wrong between `start` and `stop` (or at `at`)."""

    kind: str
    target: str = ""
    start: float = 0.0
    stop: float | None = None
    factor: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole experiment; `source` is the file it came from (for messages)."""

    name: str
    description: str
    duration: float
    seed: int
    detail: str
    hosts: tuple[Host, ...]
    remotes: tuple[Remote, ...] = ()
    workloads: tuple[Workload, ...] = ()
    faults: tuple[Fault, ...] = ()
    costs: Mapping[str, float] = field(default_factory=dict)
    source: str = "<scenario>"

    def host(self, name: str) -> Host:
        """The host called `name`; KeyError if there is none."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


class _Checker:
    """Validation with positions: finds the line of a key to name it in the error."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def line_of(self, path: str) -> int:
        """Best line for a dotted key path like `workload[2].rate` (1 if unknown)."""
        parts = re.findall(r"[A-Za-z_][\w-]*|\[\d+\]", path)
        table, index, key = parts[0], 0, parts[-1]
        if len(parts) > 1 and parts[1].startswith("["):
            index = int(parts[1][1:-1])
        start, seen = 0, 0
        for number, line in enumerate(self.lines):
            if re.match(rf"\s*\[\[\s*{re.escape(table)}\s*\]\]", line) or re.match(
                rf"\s*\[\s*{re.escape(table)}[\].]", line
            ):
                if seen == index:
                    start = number
                    break
                seen += 1
        for number in range(start, len(self.lines)):
            if re.match(rf"\s*\"?{re.escape(key)}\"?\s*=", self.lines[number]):
                return number + 1
        return start + 1

    def fail(self, path: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}:{self.line_of(path)}: {path}: {problem}")

    def get(self, table: Mapping[str, Any], key: str, path: str, kind: type, default: Any) -> Any:
        if key not in table:
            if default is _REQUIRED:
                raise self.fail(path, "missing")
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"{path}.{key}", f"must be {_KIND[kind]}, not {value!r}")
        return value

    def number(self, table, key, path, default, *, positive=False, fraction=False) -> float:
        value = self.get(table, key, path, float, default)
        if value is None:
            return value
        if positive and not value > 0:
            raise self.fail(f"{path}.{key}", f"must be a number > 0, not {value!r}")
        if not positive and value < 0:
            raise self.fail(f"{path}.{key}", f"must be a number >= 0, not {value!r}")
        if fraction and value > 1:
            raise self.fail(f"{path}.{key}", f"must be a fraction between 0 and 1, not {value!r}")
        return value

    def strings(self, table, key, path) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{path}.{key}", f"must be a list of strings, not {value!r}")
        return tuple(value)

    def unknown(self, table: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})"
                )


_REQUIRED = object()
_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _control_text(value: Any) -> str | None:
    """A control file's contents from TOML: a string, a number, or a list of lines."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return f"{value}\n"
    if isinstance(value, str):
        return value if value.endswith("\n") or not value else value + "\n"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(f"{v}\n" for v in value)
    return None


def _costs(c: _Checker, table: Any, path: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise c.fail(path, "must be a table of effect = seconds")
    out = {}
    for key, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise c.fail(f"{path}.{key}", f"must be a number of seconds >= 0, not {value!r}")
        out[key] = float(value)
    return out


def _host(c: _Checker, t: Mapping[str, Any], path: str) -> Host:
    known = {"name", "users", "control", "dotqmail", "costs", "cores", "disks", "mta", "fetch"}
    c.unknown(t, known, path)
    name = c.get(t, "name", path, str, _REQUIRED)
    mta = c.get(t, "mta", path, str, "qmail")
    if mta not in MTAS:
        raise c.fail(f"{path}.mta", f"must be one of {', '.join(MTAS)}, not {mta!r}")
    if mta == "monolith" and t.get("dotqmail"):
        raise c.fail(f"{path}.dotqmail", "the monolith reads no .qmail files; remove them")
    control = {}
    for key, value in c.get(t, "control", path, dict, {}).items():
        text = _control_text(value)
        if text is None:
            raise c.fail(f"{path}.control.{key}", "must be a string, a number or a list of lines")
        control[key] = text
    dotqmail = {}
    for key, value in c.get(t, "dotqmail", path, dict, {}).items():
        text = _control_text(value)
        if text is None or isinstance(value, int | float):
            raise c.fail(f"{path}.dotqmail.{key}", "must be a string or a list of lines")
        dotqmail[key] = text
    cores = c.get(t, "cores", path, int, 2)
    disks = c.get(t, "disks", path, int, 1)
    if cores < 1 or disks < 1:
        raise c.fail(f"{path}.cores", "cores and disks must be at least 1")
    return Host(
        name=name,
        users=c.strings(t, "users", path),
        control=control,
        dotqmail=dotqmail,
        costs=_costs(c, t.get("costs", {}), f"{path}.costs"),
        cores=cores,
        disks=disks,
        mta=mta,
        fetch=c.number(t, "fetch", path, 0.0),
    )


def _remote(c: _Checker, t: Mapping[str, Any], path: str) -> Remote:
    c.unknown(t, {"domains", "latency", "accept", "defer", "reject"}, path)
    domains = c.strings(t, "domains", path)
    if not domains:
        raise c.fail(f"{path}.domains", "must name at least one domain")
    mix = [
        c.number(t, k, path, d, fraction=True)
        for k, d in (("accept", 1.0), ("defer", 0.0), ("reject", 0.0))
    ]
    if abs(sum(mix) - 1.0) > 1e-9 and "accept" in t:
        raise c.fail(f"{path}.accept", f"accept + defer + reject must be 1, not {sum(mix):g}")
    if "accept" not in t:
        mix[0] = max(0.0, 1.0 - mix[1] - mix[2])
    return Remote(domains, c.number(t, "latency", path, 0.05), *mix)


def _workload(
    c: _Checker, t: Mapping[str, Any], path: str, hosts: set[str], monoliths: set[str]
) -> Workload:
    allowed = {
        "kind",
        "host",
        "from",
        "to",
        "at",
        "rate",
        "count",
        "start",
        "stop",
        "size",
        "via",
        "file",
    }
    c.unknown(t, allowed, path)
    kind = c.get(t, "kind", path, str, _REQUIRED)
    if kind not in WORKLOADS:
        raise c.fail(f"{path}.kind", f"must be one of {', '.join(WORKLOADS)}, not {kind!r}")
    host = c.get(t, "host", path, str, next(iter(sorted(hosts)), ""))
    if host not in hosts:
        raise c.fail(f"{path}.host", f"no host {host!r} (hosts: {', '.join(sorted(hosts))})")
    recipients = c.strings(t, "to", path)
    if kind in ("message", "poisson", "burst") and not recipients:
        raise c.fail(f"{path}.to", "needs at least one recipient")
    via = c.get(t, "via", path, str, "smtp")
    if via not in ("smtp", "inject"):
        raise c.fail(f"{path}.via", f"must be smtp or inject, not {via!r}")
    if via == "inject" and host in monoliths:
        raise c.fail(f"{path}.via", f"{host} runs the monolith, which takes mail by SMTP only")
    if kind in ("trace", "sendlog") and not t.get("file"):
        raise c.fail(f"{path}.file", f'a {kind} workload reads a file: give file = "..."')
    return Workload(
        kind=kind,
        host=host,
        sender=c.get(t, "from", path, str, "sender@outside.test"),
        recipients=recipients,
        at=c.number(t, "at", path, 0.0),
        rate=c.number(t, "rate", path, 1.0, positive=True),
        count=c.get(t, "count", path, int, 1),
        start=c.number(t, "start", path, 0.0),
        stop=c.number(t, "stop", path, None),
        size=c.get(t, "size", path, int, 1000),
        via=via,
        file=c.get(t, "file", path, str, ""),
    )


def _fault(c: _Checker, t: Mapping[str, Any], path: str) -> Fault:
    c.unknown(t, {"kind", "target", "start", "stop", "at", "factor"}, path)
    kind = c.get(t, "kind", path, str, _REQUIRED)
    if kind not in FAULTS:
        raise c.fail(f"{path}.kind", f"must be one of {', '.join(FAULTS)}, not {kind!r}")
    start = c.number(t, "at", path, None)
    if start is None:
        start = c.number(t, "start", path, 0.0)
    stop = c.number(t, "stop", path, None)
    if stop is not None and stop < start:
        raise c.fail(f"{path}.stop", f"must not be before start ({start:g})")
    return Fault(
        kind,
        c.get(t, "target", path, str, ""),
        start,
        stop,
        c.number(t, "factor", path, 1.0, positive=True),
    )


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario TOML text; ScenarioError names the line and key of a mistake."""
    c = _Checker(text, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    c.unknown(data, {"scenario", "host", "remote", "workload", "fault", "costs"}, "")
    head = c.get(data, "scenario", "scenario", dict, {})
    c.unknown(head, {"name", "description", "duration", "seed", "detail"}, "scenario")
    detail = c.get(head, "detail", "scenario", str, "teaching")
    if detail not in DETAILS:
        raise c.fail("scenario.detail", f"must be one of {', '.join(DETAILS)}, not {detail!r}")
    hosts = tuple(_host(c, t, f"host[{i}]") for i, t in enumerate(_tables(c, data, "host")))
    if not hosts:
        raise ScenarioError(f"{source}: needs at least one [[host]]")
    names = {h.name for h in hosts}
    if len(names) != len(hosts):
        raise c.fail("host[0].name", "two hosts have the same name")
    monoliths = {h.name for h in hosts if h.mta == "monolith"}
    return Scenario(
        name=c.get(head, "name", "scenario", str, Path(source).stem),
        description=c.get(head, "description", "scenario", str, ""),
        duration=c.number(head, "duration", "scenario", 3600.0, positive=True),
        seed=c.get(head, "seed", "scenario", int, 1),
        detail=detail,
        hosts=hosts,
        remotes=tuple(
            _remote(c, t, f"remote[{i}]") for i, t in enumerate(_tables(c, data, "remote"))
        ),
        workloads=tuple(
            _workload(c, t, f"workload[{i}]", names, monoliths)
            for i, t in enumerate(_tables(c, data, "workload"))
        ),
        faults=tuple(_fault(c, t, f"fault[{i}]") for i, t in enumerate(_tables(c, data, "fault"))),
        costs=_costs(c, data.get("costs", {}), "costs"),
        source=source,
    )


def _tables(c: _Checker, data: Mapping[str, Any], key: str) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise c.fail(key, f"write it as [[{key}]] tables")
    return value


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read a scenario file (None: the embedded default)."""
    if path is None:
        text = resources.files("sim").joinpath("scenarios", DEFAULT_NAME).read_text()
        return parse_scenario(text, f"(embedded) {DEFAULT_NAME}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_scenario(text, str(path))
