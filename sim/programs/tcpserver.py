"""tcpserver: accept TCP connections and fork one program per connection (ucspi-tcp's tcpserver).

qmail 1.03 ran qmail-smtpd from inetd through tcp-env; FAQ 5.1 and every modern install use
tcpserver, which is what this is: `tcpserver [-1] [-X] [-c N] [-x RULES] [-u USER]
[-l LOCALNAME] HOST PORT PROG ARG…`. Per connection it forks a child which, as tcpserver.c's
doit() does, opens the rules (tcprules' text format here, where tcpserver reads the cdb
tcprules makes) afresh, so an edit takes effect on the next connection; a denied client's
child exits 100, closing the connection. Otherwise the child puts the socket on fd 0 and
fd 1, sets the TCP environment (PROTO, TCPLOCALIP, TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP,
TCPREMOTEPORT, plus the rule's variables such as RELAYCLIENT or DATABYTES) and execs PROG.
Rules it cannot read (missing without -X, unreadable, or a line tcprules would refuse) drop
the connection with `tcpserver: warning: dropping connection, unable to read RULES: …` on
fd 2, as drop_rules() does. At most N children run at once (default 40); further
connections wait in the listen queue until one ends. No DNS: TCPREMOTEHOST is unset, as with
tcpserver's -H. A connection that fails before it is served (accept fails, or the client
reset it while it waited in the listen queue, or fork fails) is dropped and the loop goes
on, as tcpserver.c does: one client must never stop the server. An address it cannot listen
on ends it at start with tcpserver's one-line fatal message and exit 111.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all
from sim.qmail.constants import TCPSERVER_MAX_CONNECTIONS
from sim.qmail.errors import BadInput, ControlFileError
from sim.qmail.local import error_str
from sim.qmail.tcprules import Decision, Rules, match_rules, parse_tcprules

# accept(2) failures that one client or a passing shortage causes; the next accept may work.
TRANSIENT_ACCEPT = frozenset(
    {
        errno.ECONNABORTED,
        errno.EINTR,
        errno.EPROTO,
        errno.EAGAIN,
        errno.ENOBUFS,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
    }
)
USAGE = "tcpserver: usage: tcpserver [-1X] [-c limit] [-x rules] [-u user] [-l localname] host port program [arg ...]"  # noqa: E501
FATAL = "tcpserver: fatal: "
DROP = "tcpserver: warning: dropping connection, "
# error_str's words for the errnos of bind and listen (ucspi-tcp's error_str.c); others: qmail's.
SOCKET_ERRORS = {
    errno.EADDRINUSE: "address already used",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EAFNOSUPPORT: "address family not supported",
}


def parse_args(argv: list[str]) -> dict:
    """tcpserver's options, then host, port and the program line; BadInput on misuse."""
    opts: dict = {"limit": TCPSERVER_MAX_CONNECTIONS, "rules": None, "user": None}
    opts["localname"], opts["print_port"], opts["allow_no_rules"] = None, False, False
    args = list(argv[1:])
    takes = {"-c": "limit", "-x": "rules", "-u": "user", "-l": "localname"}
    switches = {"-1": "print_port", "-X": "allow_no_rules"}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in switches:
            opts[switches[flag]] = True
        elif flag in takes and args:
            opts[takes[flag]] = args.pop(0)
        else:
            raise BadInput(USAGE)
    if len(args) < 3:
        raise BadInput(USAGE)
    try:
        opts["limit"], port = int(opts["limit"]), int(args[1])
    except ValueError:
        raise BadInput(USAGE) from None
    opts["host"], opts["port"], opts["program"] = args[0], port, args[2:]
    return opts


def connection_env(
    env: Mapping[str, str],
    local: tuple[str, int],
    remote: tuple[str, int],
    localname: str | None,
    rule_env: Mapping[str, str | None],
) -> dict[str, str]:
    """The environment tcpserver gives each connection's program (tcp-environ(5))."""
    out = dict(env)
    out.update(
        PROTO="TCP",
        TCPLOCALIP=local[0],
        TCPLOCALPORT=str(local[1]),
        TCPREMOTEIP=remote[0],
        TCPREMOTEPORT=str(remote[1]),
    )
    for name in ("TCPREMOTEHOST", "TCPREMOTEINFO", "TCPLOCALHOST"):
        out.pop(name, None)
    if localname:
        out["TCPLOCALHOST"] = localname
    for name, value in rule_env.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def error_words(exc: OSError) -> str:
    """error_str(errno): ucspi-tcp's words for why a system call failed."""
    return SOCKET_ERRORS.get(exc.errno or 0) or error_str(exc.errno)


def listen_failure(host: str, exc: OSError) -> str:
    """tcpserver's fatal message when it cannot listen on `host`: no IPv4 address for it
    (an IPv6 address or an unknown name: ucspi-tcp looks up A records only), or bind failed."""
    if isinstance(exc, socket.gaierror):
        if exc.errno == socket.EAI_AGAIN:
            return f"temporarily unable to figure out IP address for {host}: temporary failure"
        return f"no IP address for {host}"
    return f"unable to bind: {error_words(exc)}"


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Listen, then accept and fork forever (until killed)."""
    try:
        opts = parse_args(argv)
    except BadInput as exc:
        yield fx.Write(2, f"{exc}\n".encode())
        return 100
    try:
        listener, port = yield fx.Listen(opts["host"], opts["port"])
    except OSError as exc:
        yield fx.Write(2, f"{FATAL}{listen_failure(opts['host'], exc)}\n".encode())
        return 111
    if opts["print_port"]:
        yield fx.Write(1, f"{port}\n".encode())
    if opts["user"]:
        yield fx.Setuid(opts["user"])
    active: set[int] = set()
    while True:
        while active and (done := (yield fx.Wait(-1, nohang=True))):
            active.discard(done[0])
        if len(active) >= opts["limit"]:
            pid, _ = yield fx.Wait(-1)
            active.discard(pid)
            continue
        try:
            conn, remote = yield fx.Accept(listener)
        except OSError as exc:
            if exc.errno not in TRANSIENT_ACCEPT:
                raise  # EBADF, EINVAL, ENOTSOCK: our bug, not the client's
            continue  # as tcpserver.c: a failed accept is skipped
        try:
            local, _ = yield fx.Sockname(conn)
        except OSError:  # the client reset the connection while it waited in the backlog
            yield fx.Note("tcpserver", {"remote": remote[0]}, why="gone before accept: dropped")
            yield fx.Close(conn)
            continue
        yield fx.Note(
            "tcpserver",
            {"remote": f"{remote[0]}:{remote[1]}", "active": len(active) + 1},
            why=f"connection {len(active) + 1}/{opts['limit']}",
        )
        child = _child(listener, conn, opts, env, (local, remote))
        try:
            pid = yield fx.Fork(child, opts["program"][0])
        except OSError:  # as tcpserver.c: "unable to fork", drop this connection, go on
            yield fx.Note("tcpserver", {"remote": remote[0]}, why="unable to fork: dropped")
        else:
            active.add(pid)
        yield fx.Close(conn)


def read_rules(path: str, allow_missing: bool) -> Call:
    """The rules as they are now (tcpserver opens them for every connection), or why not.

    Returns Rules, or the text after `unable to read PATH: ` when they cannot be used.
    """
    try:
        fd = yield fx.Open(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT and allow_missing:
            return Rules({})  # -X: no rules file, every client allowed
        return error_words(exc)
    try:
        text = yield from read_all(fd)
    except OSError as exc:  # EISDIR, EIO
        yield fx.Close(fd)
        return error_words(exc)
    yield fx.Close(fd)
    try:
        return parse_tcprules(text.decode("latin-1"))
    except ControlFileError as exc:  # tcprules would not have compiled it
        return f"line {exc.line}: {exc.problem}"


def rules_decision(opts: dict, remote_ip: str) -> Call:
    """What the rules say about this client now; None if they cannot be read (drop it)."""
    if not opts["rules"]:
        return Decision(True)  # no -x: every client allowed, nothing added
    rules = yield from read_rules(opts["rules"], opts["allow_no_rules"])
    if isinstance(rules, str):
        yield fx.Write(2, f"{DROP}unable to read {opts['rules']}: {rules}\n".encode())
        return None
    return match_rules(rules, remote_ip)


def _child(
    listener: int,
    conn: int,
    opts: dict,
    env: Mapping[str, str],
    ends: tuple[tuple[str, int], tuple[str, int]],
):
    """tcpserver.c's child: the rules (doit), then the socket on fd 0 and 1, then exec."""
    local, remote = ends

    def child() -> fx.Program:
        yield fx.Close(listener)
        decision = yield from rules_decision(opts, remote[0])
        if decision is None:
            return 111
        if not decision.allow:
            yield fx.Note("tcpserver", {"remote": remote[0]}, why="tcprules: deny")
            return 100
        child_env = connection_env(env, local, remote, opts["localname"], decision.env)
        yield fx.Dup2(conn, 0)
        yield fx.Dup2(conn, 1)
        yield fx.Close(conn)
        program = opts["program"]
        try:
            yield fx.Exec(program[0], tuple(program[1:]), child_env)
        except OSError as exc:
            yield fx.Write(2, f"{DROP}unable to run {program[0]}: {error_words(exc)}\n".encode())
        return 111

    return child
