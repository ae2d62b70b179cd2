"""Scenarios: TOML files that say hosts, users, control files, workload, faults and costs.

`load_scenario(path)` reads a file with `tomllib` and validates it into frozen dataclasses; a
mistake raises `ScenarioError` naming the file, the line and the key, e.g.
`scenarios/x.toml:14: workload[2].rate: must be a number > 0, not "fast"`. The embedded
default (`DEFAULT_SCENARIO`, used by `make demo` and `qmailsim run` without a file) is a short
lesson: a few local and remote messages, one bounce, one deferral and its retry. Names are
checked against qmail's rules and each other in `sim.scenario_checks`; `sim.scenario_lines`
finds the line of a key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sim import scenario_checks as checks
from sim.kernel.costs import Costs, problem, suggest
from sim.scenario_lines import REQUIRED, Checker, ScenarioError, join

DETAILS = ("teaching", "fast")
WORKLOADS = ("message", "poisson", "burst", "trace", "sendlog")
FAULTS = ("remote-down", "host-crash", "kill", "slow-disk", "full-disk")
MTAS = ("qmail", "monolith")  # what a host runs: qmail's programs, or mta-monolith as root
DEFAULT_NAME = "default.toml"
COST_NAMES = [f.name for f in dataclasses.fields(Costs) if f.name != "detail"]
MAX_COUNT = 10_000_000  # messages of one workload: each is planned in memory at the start
MAX_SIZE = 2**30  # bytes of one message: the model holds it in memory, several times over


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


def _costs(c: Checker, table: Any, path: str) -> dict[str, float]:
    """Cost-table entries by name: known names, finite numbers (see `Costs`)."""
    if not isinstance(table, dict):
        raise c.fail(path, "must be a table of effect = seconds")
    out: dict[str, float] = {}
    for key, value in table.items():
        where = join(path, key)
        if key == "detail":
            raise c.fail(where, 'set the level of detail in [scenario]: detail = "fast"')
        if key not in COST_NAMES:
            hint = suggest(key, COST_NAMES)
            raise c.fail(where, f"unknown key{hint} (known: {', '.join(COST_NAMES)})")
        wrong = problem(key, value)
        if wrong is not None:
            raise c.fail(where, wrong)
        out[key] = value if key in ("pipe_capacity", "socket_buffer") else float(value)
    return out


def _files(c: Checker, t: Mapping[str, Any], key: str, path: str, numbers: bool) -> dict:
    """A table of file name -> contents (control files may be numbers, .qmail files not)."""
    kinds = "a string, a number or a list of lines" if numbers else "a string or a list of lines"
    out = {}
    for name, value in c.get(t, key, path, dict, {}).items():
        text = _control_text(value)
        if text is None or (not numbers and isinstance(value, int | float)):
            raise c.fail(f"{path}.{key}.{name}", f"must be {kinds}")
        out[name] = text
    return out


def _host(c: Checker, t: Mapping[str, Any], path: str) -> Host:
    known = {"name", "users", "control", "dotqmail", "costs", "cores", "disks", "mta", "fetch"}
    c.unknown(t, known, path)
    name = checks.name(c, c.get(t, "name", path, str, REQUIRED), f"{path}.name", "domain")
    mta = c.get(t, "mta", path, str, "qmail")
    if mta not in MTAS:
        raise c.fail(f"{path}.mta", f"must be one of {', '.join(MTAS)}, not {mta!r}")
    if mta == "monolith" and t.get("dotqmail"):
        raise c.fail(f"{path}.dotqmail", "the monolith reads no .qmail files; remove them")
    users = checks.users(c, c.strings(t, "users", path), f"{path}.users")
    control = _files(c, t, "control", path, numbers=True)
    checks.control(c, t.get("control", {}), control, f"{path}.control")
    dotqmail = checks.dotqmail(
        c, _files(c, t, "dotqmail", path, numbers=False), users, f"{path}.dotqmail"
    )
    cores = c.get(t, "cores", path, int, 2)
    disks = c.get(t, "disks", path, int, 1)
    if cores < 1 or disks < 1:
        raise c.fail(f"{path}.cores", "cores and disks must be at least 1")
    return Host(
        name=name,
        users=users,
        control=control,
        dotqmail=dotqmail,
        costs=_costs(c, t.get("costs", {}), f"{path}.costs"),
        cores=cores,
        disks=disks,
        mta=mta,
        fetch=c.number(t, "fetch", path, 0.0),
    )


def _remote(c: Checker, t: Mapping[str, Any], path: str) -> Remote:
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
        if mix[1] + mix[2] > 1.0 + 1e-9:
            key = "reject" if "reject" in t else "defer"
            raise c.fail(
                f"{path}.{key}",
                f"defer + reject must not exceed 1 (accept is the rest), not {mix[1] + mix[2]:g}",
            )
        mix[0] = max(0.0, 1.0 - mix[1] - mix[2])
    return Remote(domains, c.number(t, "latency", path, 0.05), *mix)


def _workload(
    c: Checker, t: Mapping[str, Any], path: str, hosts: set[str], monoliths: set[str]
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
    kind = c.get(t, "kind", path, str, REQUIRED)
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
    start = c.number(t, "start", path, 0.0)
    stop = c.number(t, "stop", path, None)
    if stop is not None and stop < start:
        raise c.fail(f"{path}.stop", f"must not be before start ({start:g})")
    return Workload(
        kind=kind,
        host=host,
        sender=c.get(t, "from", path, str, "sender@outside.test"),
        recipients=recipients,
        at=c.number(t, "at", path, 0.0),
        rate=c.number(t, "rate", path, 1.0, positive=True),
        count=c.integer(t, "count", path, 1, 0, MAX_COUNT),
        start=start,
        stop=stop,
        size=c.integer(t, "size", path, 1000, 0, MAX_SIZE),
        via=via,
        file=c.get(t, "file", path, str, ""),
    )


def _fault(c: Checker, t: Mapping[str, Any], path: str) -> Fault:
    c.unknown(t, {"kind", "target", "start", "stop", "at", "factor"}, path)
    kind = c.get(t, "kind", path, str, REQUIRED)
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
    c = Checker(text, source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    c.unknown(data, {"scenario", "host", "remote", "workload", "fault", "costs"}, "")
    head = c.get(data, "scenario", "", dict, {})
    c.unknown(head, {"name", "description", "duration", "seed", "detail"}, "scenario")
    detail = c.get(head, "detail", "scenario", str, "teaching")
    if detail not in DETAILS:
        raise c.fail("scenario.detail", f"must be one of {', '.join(DETAILS)}, not {detail!r}")
    hosts = tuple(_host(c, t, f"host[{i}]") for i, t in enumerate(_tables(c, data, "host")))
    if not hosts:
        raise ScenarioError(f"{source}: needs at least one [[host]]")
    remotes = tuple(_remote(c, t, f"remote[{i}]") for i, t in enumerate(_tables(c, data, "remote")))
    checks.hosts_and_remotes(c, [(h.name, h.control) for h in hosts], [r.domains for r in remotes])
    names = {h.name for h in hosts}
    monoliths = {h.name for h in hosts if h.mta == "monolith"}
    faults = tuple(_fault(c, t, f"fault[{i}]") for i, t in enumerate(_tables(c, data, "fault")))
    by_name = {h.name: (h.mta, h.control) for h in hosts}
    for i, f in enumerate(faults):
        checks.fault_target(
            c, f.kind, f.target, f"fault[{i}]", by_name, [r.domains for r in remotes]
        )
    return Scenario(
        name=c.get(head, "name", "scenario", str, Path(source).stem),
        description=c.get(head, "description", "scenario", str, ""),
        duration=c.number(head, "duration", "scenario", 3600.0, positive=True),
        seed=c.get(head, "seed", "scenario", int, 1),
        detail=detail,
        hosts=hosts,
        remotes=remotes,
        workloads=tuple(
            _workload(c, t, f"workload[{i}]", names, monoliths)
            for i, t in enumerate(_tables(c, data, "workload"))
        ),
        faults=faults,
        costs=_costs(c, data.get("costs", {}), "costs"),
        source=source,
    )


def _tables(c: Checker, data: Mapping[str, Any], key: str) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise c.fail(key, f"write it as [[{key}]] tables")
    return value


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read a scenario file (None: the embedded default) and check that the files its
    workloads replay can be read, as the run will read them (beside the scenario)."""
    if path is None:
        text = resources.files("sim").joinpath("scenarios", DEFAULT_NAME).read_text()
        return parse_scenario(text, f"(embedded) {DEFAULT_NAME}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise ScenarioError(
            f"{path}:{line}: not valid TOML: not UTF-8 text (byte 0x{byte})"
        ) from None
    scenario = parse_scenario(text, str(path))
    c = Checker(text, str(path))
    base = path.parent if str(path).endswith(".toml") else Path(".")  # as the run reads them
    for i, w in enumerate(scenario.workloads):
        if w.file:
            try:
                (base / w.file).open("rb").close()
            except OSError as exc:
                where = f"workload[{i}].file"
                raise c.fail(where, f"cannot read {w.file}: {exc.strerror}") from None
    return scenario
