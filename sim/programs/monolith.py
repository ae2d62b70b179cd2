"""mta-monolith: the design qmail replaced, on the same effects, for side-by-side comparison.

A sendmail-like daemon: one root process listens on port 25 and forks a child per
connection; the child speaks SMTP (with qmail-smtpd's decisions, so the comparison is about
structure, not about protocol details), writes the message into its own queue directory
qmail's queue directories, all root's now (`queue/mess/<id>` data, `queue/todo/<id>` envelope,
both fsynced, then the directories),
answers 250, and delivers at once, in the same process and still as root: local recipients
straight into their Maildir, remote ones over SMTP. What it cannot deliver stays in
`queue/todo/`, and a queue-runner child retries it every `QUEUE_INTERVAL` seconds.

Nothing is separated: one bug anywhere in it is root on the machine. That is the point of
the comparison (`qmailsim graph --variant monolith --compromise mta`), and the model measures
what the separation costs qmail in forks and execs by running both on the same workload.
Simplifications: no .qmail/.forward processing, no bounces (a permanent failure is dropped
with a trace note), no DNS (remote hosts through smtproutes or an address literal).
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all, write_all
from sim.programs.common import close_quietly, home, read_controls
from sim.programs.local_effects import deliver_maildir
from sim.programs.qmail_remote import connect, converse, servers
from sim.programs.qmail_smtpd import CONTROLS as SMTPD_CONTROLS
from sim.programs.qmail_smtpd import config_from
from sim.qmail import remote as rm
from sim.qmail.control import Control, load_control
from sim.qmail.envelope import encode_envelope, parse_envelope
from sim.qmail.errors import BadInput
from sim.qmail.local import HeaderLines, delivered_to_line, return_path_line
from sim.qmail.maildir import Unique
from sim.qmail.routing import RoutingConfig, rewrite
from sim.qmail.smtpd import SmtpdSession
from sim.qmail.smtpd_events import (
    AbortData,
    Close,
    EndOfData,
    MessageData,
    Reply,
    SmtpdState,
    StartQueue,
)
from sim.qmail.users import lookup_assign, parse_assign, qmail_newu

DATA, ENVELOPE = "queue/mess", "queue/todo"  # qmail's directories, used the sendmail way
QUEUE_INTERVAL = 1800.0  # sendmail -q30m
CONTROLS = (*SMTPD_CONTROLS, "locals", "smtproutes", "helohost", "timeoutremote")


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """`mta-monolith [-1] HOST PORT`: listen, fork per connection, run the queue; as root."""
    args = list(argv[1:])
    report_port = bool(args) and args[0] == "-1"
    if report_port:
        args.pop(0)
    if len(args) != 2 or not args[1].isdigit():
        yield from write_all(2, b"mta-monolith: usage: mta-monolith [-1] host port\n")
        return 100
    yield fx.Chdir(home(env))
    listener, port = yield fx.Listen(args[0], int(args[1]))
    if report_port:
        yield from write_all(1, f"{port}\n".encode())
    yield fx.Fork(lambda: queue_runner(env), "queue-runner")
    serial = 0
    while True:
        while (yield fx.Wait(-1, nohang=True)):
            pass
        conn, remote = yield fx.Accept(listener)
        serial += 1
        child_env = {**env, "TCPREMOTEIP": remote[0], "TCPLOCALIP": args[0]}
        yield fx.Fork(_connection(listener, conn, child_env, serial), "smtp-connection")
        yield fx.Close(conn)


def _connection(listener: int, conn: int, env: dict[str, str], serial: int):
    def child() -> fx.Program:
        yield fx.Close(listener)
        yield fx.Dup2(conn, 0)
        yield fx.Dup2(conn, 1)
        yield fx.Close(conn)
        return (yield from serve(env, serial))

    return child


def _controls(env: Mapping[str, str]) -> Call:
    return load_control((yield from read_controls(CONTROLS)))


def serve(env: Mapping[str, str], serial: int) -> Call:
    """One SMTP session, queueing and delivering in this very process."""
    try:
        control = yield from _controls(env)
        config = config_from(control, env)
    except (OSError, BadInput, ValueError):
        yield from write_all(1, b"421 unable to read controls\r\n")
        return 1
    session = SmtpdSession(config)
    events = session.start()
    data = bytearray()
    while True:
        for event in events:
            if isinstance(event, Reply):
                if not (yield from _say(event.text)):
                    return 1
            elif isinstance(event, StartQueue):
                data.clear()
                events = session.queue_started((yield fx.Time()))
                break
            elif isinstance(event, MessageData):
                data += event.data
            elif isinstance(event, EndOfData):
                name = yield from enqueue(bytes(data), event.sender, event.recipients, serial)
                pid = yield fx.Getpid()
                events = session.queue_result(0, pid, (yield fx.Time()))
                heard = yield from _say_all([e.text for e in events if isinstance(e, Reply)])
                events = [e for e in events if not isinstance(e, Reply)]
                yield from deliver_queued(name, control, env)  # queued: deliver, client or not
                if not heard:
                    return 1
                break
            elif isinstance(event, AbortData):
                data.clear()  # the message is dropped; nothing of it was queued
                if session.state is SmtpdState.QUEUE_CLOSING:  # too many hops, databytes
                    events = session.queue_result(54, 0, (yield fx.Time()))
                    break
                # else the session is over (bare LF, timeout, EOF): its Close comes next
            elif isinstance(event, Close):
                return event.status
        else:
            events = yield from _client_events(session, config.timeout)


def _say(text: bytes) -> Call:
    """Write a reply; False if the client is gone (then, as qmail-smtpd, exit 1 quietly)."""
    try:
        yield fx.Write(1, text)
    except OSError:
        return False
    return True


def _say_all(texts: list[bytes]) -> Call:
    """Write the replies; False if the client went away on the way."""
    for text in texts:
        if not (yield from _say(text)):
            return False
    return True


def _client_events(session: SmtpdSession, timeout: float) -> Call:
    """Read from the client: the session's next events, or its end on a timeout or a reset."""
    try:
        chunk = yield fx.Read(0, 8192, timeout)
    except TimeoutError:
        return session.timeout()
    except OSError:
        return session.eof()
    return session.receive(chunk) if chunk else session.eof()


def enqueue(message: bytes, sender: str, recipients: tuple[str, ...], serial: int) -> Call:
    """Write df then qf, fsync both, fsync the directory: the message is safe; its name."""
    pid = yield fx.Getpid()
    name = f"{pid}.{serial}.{int((yield fx.Time()))}"
    for directory, body in ((DATA, message), (ENVELOPE, encode_envelope(sender, recipients))):
        fd = yield fx.Open(f"{directory}/{name}", "w", create=True, exclusive=True, perm=0o600)
        yield from write_all(fd, body)
        yield fx.Fsync(fd)
        yield fx.Close(fd)
        yield fx.FsyncDir(directory)
    yield fx.Note("queue", {"name": name}, "monolith queued it itself, as root")
    return name


def deliver_queued(name: str, control: Control, env: Mapping[str, str]) -> Call:
    """Try every recipient now; remove the queue files once none is left to retry."""
    try:
        envelope = parse_envelope((yield from _read(f"{ENVELOPE}/{name}")) + b"\0")
        message = yield from _read(f"{DATA}/{name}")
    except (OSError, BadInput):
        return
    routing = RoutingConfig(locals=control.locals or ())
    left = []
    for recipient in envelope.recipients:
        route = rewrite(recipient, routing)
        if route.channel == "local":
            outcome = yield from deliver_local(route.address, envelope.sender, message)
        else:
            outcome = yield from deliver_remote(
                route.address, envelope.sender, message, control, env
            )
        yield fx.Note("delivery", {"recipient": recipient, "outcome": outcome}, route.why)
        if outcome == "defer":
            left.append(recipient)
    if left:
        fd = yield fx.Open(f"{ENVELOPE}/{name}", "w", create=True)
        yield fx.Truncate(fd, 0)
        yield from write_all(fd, encode_envelope(envelope.sender, left)[:-1])
        yield fx.Fsync(fd)
        yield fx.Close(fd)
        return
    for directory in (ENVELOPE, DATA):
        yield fx.Unlink(f"{directory}/{name}")


def _read(path: str) -> Call:
    fd = yield fx.Open(path)
    try:
        return (yield from read_all(fd))
    finally:
        yield fx.Close(fd)


def deliver_local(address: str, sender: str, message: bytes) -> Call:
    """Straight into the user's Maildir, as root: no spawner, no setuid, no qmail-local."""
    try:
        cdb = qmail_newu(parse_assign((yield from _read("users/assign")).decode("latin-1")))
    except (OSError, BadInput):
        return "defer"
    local = address.rsplit("@", 1)[0]
    user = lookup_assign(cdb, local)
    if user is None:
        return "fail"
    lines = HeaderLines(delivered_to_line(*address.rsplit("@", 1)), return_path_line(sender), "")
    me = "monolith"

    def unique(pid: int, now: float) -> Unique:
        return Unique(int(now), int((now % 1) * 1e6), pid, 0, me)

    outcome = yield from deliver_maildir(f"{user.home}/Maildir/", lines, message, unique)
    return "ok" if outcome.code == 0 else "defer"


def deliver_remote(
    address: str, sender: str, message: bytes, control: Control, env: Mapping[str, str]
) -> Call:
    """SMTP to the next hop, from this same root process."""
    domain = address.rsplit("@", 1)[-1]
    found = yield from servers(domain, control, env)
    if isinstance(found, bytes):
        return "fail" if found.startswith(b"D") else "defer"
    ips, port = found
    connected = yield from connect(ips, port, control.timeoutconnect)
    if connected is None:
        return "defer"
    fd, ip = connected
    session = rm.RemoteSession(ip, control.helohost or control.me or "monolith",
                               rm.smtp_address(sender), [rm.smtp_address(address)])  # fmt: skip
    try:
        yield from converse(fd, session, message, control.timeoutremote)
    finally:
        yield from close_quietly(fd)
    final = bytes(session.output).rstrip(b"\0").rsplit(b"\0", 1)[-1][:1]
    return {b"K": "ok", b"D": "fail"}.get(final, "defer")


def queue_runner(env: Mapping[str, str]) -> fx.Program:
    """sendmail -q: every QUEUE_INTERVAL, retry what is left in queue/todo/."""
    while True:
        yield fx.Sleep(QUEUE_INTERVAL)
        try:
            control = yield from _controls(env)
            names = yield fx.Readdir(ENVELOPE)
        except (OSError, BadInput):
            continue
        for name in sorted(n for n in names if not n.startswith(".")):
            yield from deliver_queued(name, control, env)
