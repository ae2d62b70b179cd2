"""qmail-remote: send one message to one SMTP server, report on fd 1 (qmail-remote.c).

`qmail-remote host sender recip...`, as qmailr, started by qmail-rspawn with the message on
fd 0. It reads its control files (helohost, smtproutes, timeoutremote, timeoutconnect), picks
the server: an `smtproutes` relay (`smtp_route`), else the host's own addresses, looked up by
the `dnsip` helper (a DNS query is not an effect), or a literal `[1.2.3.4]`; the "ambiguous MX"
rule (`mx_candidates`) removes this host's own addresses. It connects to the first address
that answers, within timeoutconnect, and lets `RemoteSession` speak SMTP, each read and write
bounded by timeoutremote; the body goes out through `smtp_data.DataEncoder`. Every outcome is
a NUL-terminated report on fd 1 (`r`/`h`/`s` per recipient, then `K`/`Z`/`D`); the exit
code is always 0.

Names are resolved by two helper programs, `dnsmx` and `dnsip` (a DNS query is not an
effect), MX records first as qmail's dns_mxip. Documented differences: this host's own addresses
are the loopback ones (qmail asks every interface); the TCP timeout table is not consulted;
the message is read whole before connecting, so an unreadable message is reported before the
SMTP dialogue rather than during it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all, write_all
from sim.programs.common import close_quietly, home, read_controls
from sim.qmail import remote as rm
from sim.qmail.control import Control, load_control
from sim.qmail.errors import BadInput
from sim.qmail.routing import MX, literal_ip, mx_candidates, order_mx, smtp_route
from sim.qmail.smtp_data import DataEncoder, PartialFinalLine

CONTROLS = ("me", "helohost", "smtproutes", "timeoutremote", "timeoutconnect")
SMTP_PORT = 25
READ_SIZE = 4096
BODY_CHUNK = 65536


def route_table(control: Control) -> list[tuple[str, str]]:
    """control/smtproutes as the `key:relay[:port]` pairs `smtp_route` reads."""
    return [
        (key, f"{route.relay}:{route.port}" if route.relay else "")
        for key, route in control.smtproutes.items()
    ]


def is_own_ip(ip: str) -> bool:
    """This host's addresses for the ambiguous-MX rule: the loopback network."""
    return ip.startswith("127.")


def helper(program: str, name: str, env: Mapping[str, str]) -> Call:
    """Run a resolver helper (`dnsip` or `dnsmx`); returns (exit code, its output's words)."""
    r, w = yield fx.Pipe()

    def child() -> fx.Program:
        yield fx.Close(r)
        yield fx.Dup2(w, 1)
        yield fx.Close(w)
        try:
            yield fx.Exec(program, (name,), dict(env))
        except OSError:
            return 111
        return 111

    pid = yield fx.Fork(child, program)
    yield fx.Close(w)
    try:
        data = yield from read_all(r)
    finally:
        yield fx.Close(r)
    _, status = yield fx.Wait(pid)
    return (111 if status < 0 else status), data.decode("ascii", "replace").split()


def dnsip(host: str, env: Mapping[str, str]) -> Call:
    """The addresses of `host`: (exit code, [ip])."""
    return (yield from helper("dnsip", host, env))


def exchangers(domain: str, env: Mapping[str, str]) -> Call:
    """qmail's dns_mxip: the MX hosts' addresses with their preferences, or a failure report.

    No MX records: the domain's own addresses at preference 0, as qmail does.
    """
    status, words = yield from helper("dnsmx", domain, env)
    if status == 100:
        return rm.perm_dns(domain)
    if status:
        return rm.failure("dns")
    pairs = [(int(p), h) for p, h in zip(words[::2], words[1::2], strict=False) if p.isdigit()]
    ordered = order_mx([MX(p, h) for p, h in pairs], random.Random(domain))
    if not ordered:
        ordered = [MX(0, domain)]
    found: list[MX] = []
    for mx in ordered:
        ip = literal_ip(mx.host)
        if ip is not None:
            found.append(MX(mx.preference, ip))
            continue
        code, ips = yield from dnsip(mx.host, env)
        if code == 100 and len(ordered) == 1:
            return rm.perm_dns(mx.host)
        if code and code != 100:
            return rm.failure("dns")
        found += [MX(mx.preference, ip) for ip in ips]
    yield fx.Note("dns", {"domain": domain, "mx": [f"{m.preference} {m.host}" for m in ordered]})
    return found


def servers(host: str, control: Control, env: Mapping[str, str]) -> Call:
    """The addresses to try and the port, or the failure report for fd 1."""
    relay = smtp_route(host, route_table(control))
    target, port = (relay.host, relay.port) if relay else (host, SMTP_PORT)
    ip = literal_ip(target)
    try:
        if ip is not None:
            addresses = [MX(0, ip)]
        elif relay is not None:
            status, ips = yield from dnsip(target, env)
            if status == 100:
                return rm.perm_dns(target)
            if status:
                return rm.failure("dns")
            addresses = [MX(0, ip) for ip in ips]
        else:
            found = yield from exchangers(target, env)
            if isinstance(found, bytes):
                return found
            addresses = found
    except OSError:
        return rm.failure("oserr")  # no pipe or no fork for the resolver
    ips = [mx.host for mx in addresses]
    candidates = mx_candidates(
        addresses, {ip for ip in ips if is_own_ip(ip)}, relayed=relay is not None, all_aliases=False
    )
    how = f"smtproutes: {target}:{port}" if relay else f"no route: mail exchangers of {target}"
    yield fx.Note("route", {"host": host, "ips": ips, "port": port}, how)
    if not ips:
        return rm.failure("nomx")
    if not candidates:
        return rm.failure("ambigmx")
    return [mx.host for mx in candidates], port


def connect(ips: list[str], port: int, timeout: int) -> Call:
    """The first address that accepts a connection: (fd, ip), or None."""
    for ip in ips:
        try:
            fd = yield fx.Connect(ip, port, timeout)
        except OSError as exc:
            yield fx.Note("connect", {"ip": ip, "port": port}, f"failed: {exc.strerror}")
            continue
        return fd, ip
    return None


def converse(fd: int, session: rm.RemoteSession, message: bytes, timeout: int) -> Call:
    """Feed the server's replies to the session and carry out its actions until it is done."""
    todo: deque[rm.Action] = deque()
    while not session.done or todo:
        if not todo:
            try:
                data = yield fx.Read(fd, READ_SIZE, timeout)
            except OSError:
                data = b""
            todo.extend(session.receive_data(data) if data else session.connection_died())
            continue
        action = todo.popleft()
        if isinstance(action, rm.Report):
            yield from write_all(1, action.data)
            continue
        try:
            if isinstance(action, rm.Send):
                yield fx.Write(fd, action.data, timeout)
            else:
                yield from send_body(fd, session, message, timeout, todo)
        except OSError:
            todo = deque(a for a in todo if isinstance(a, rm.Report))
            todo.extend(session.connection_died())


def send_body(
    fd: int, session: rm.RemoteSession, message: bytes, timeout: int, todo: deque[rm.Action]
) -> Call:
    """The message, LF -> CR LF and leading dots doubled; then the session sends the dot."""
    encoder = DataEncoder()
    body = encoder.feed(message)
    try:
        encoder.finish()
    except PartialFinalLine:
        todo.extend(session.partial_final_line())
        return
    for start in range(0, len(body), BODY_CHUNK):
        yield fx.Write(fd, body[start : start + BODY_CHUNK], timeout)
    todo.extend(session.body_sent())


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Deliver and report; always exit 0 (the report is the result)."""
    if usage := rm.invoked_improperly(argv):
        yield from write_all(1, usage)
        return 0
    host, sender, recipients = argv[1], argv[2], argv[3:]
    report = yield from deliver(host, sender, recipients, env)
    if report:
        yield fx.Note("remote", {"host": host, "report": report}, "gave up before SMTP")
        yield from write_all(1, report)
    return 0


def deliver(host: str, sender: str, recipients: list[str], env: Mapping[str, str]) -> Call:
    """Everything up to the end of the SMTP dialogue; a report if it ends before the dialogue."""
    try:
        yield fx.Chdir(home(env))
    except OSError:
        return rm.failure("chdir")
    try:
        control = load_control((yield from read_controls(CONTROLS)))
    except (OSError, BadInput):
        return rm.failure("control")
    if control.helohost is None:
        return rm.failure("control")
    try:
        message = yield from read_all(0)
    except OSError:
        return rm.failure("read")
    found = yield from servers(host, control, env)
    if isinstance(found, bytes):
        return found
    ips, port = found
    connected = yield from connect(ips, port, control.timeoutconnect)
    if connected is None:
        return rm.failure("noconn")
    fd, ip = connected
    yield fx.Note("smtp", {"ip": ip, "port": port}, f"connected to {ip}; HELO {control.helohost}")
    quoted = [rm.smtp_address(r) for r in recipients]
    session = rm.RemoteSession(ip, control.helohost, rm.smtp_address(sender), quoted)
    try:
        yield from converse(fd, session, message, control.timeoutremote)
    finally:
        yield from close_quietly(fd)
    yield fx.Note("remote", {"ip": ip, "report": bytes(session.output)}, "SMTP dialogue over")
    return b""
