"""tcpserver: accept TCP connections and fork one program per connection (ucspi-tcp's tcpserver).

qmail 1.03 ran qmail-smtpd from inetd through tcp-env; FAQ 5.1 and every modern install use
tcpserver, which is what this is: `tcpserver [-1] [-c N] [-x RULES] [-u USER] [-l LOCALNAME]
HOST PORT PROG ARG…`. Per connection it checks the rules (tcprules' text format), forks a
child with the socket on fd 0 and fd 1 and the TCP environment (PROTO, TCPLOCALIP,
TCPLOCALPORT, TCPLOCALHOST, TCPREMOTEIP, TCPREMOTEPORT, plus the rule's variables such as
RELAYCLIENT or DATABYTES), and execs PROG. At most N children run at once (default 40);
further connections wait in the listen queue until one ends. No DNS: TCPREMOTEHOST is unset,
as with tcpserver's -H. A connection that fails before it is served (accept fails, or the
client reset it while it waited in the listen queue, or fork fails) is dropped and the loop
goes on, as tcpserver.c does: one client must never stop the server.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import read_all
from sim.qmail.constants import TCPSERVER_MAX_CONNECTIONS
from sim.qmail.errors import BadInput
from sim.qmail.tcprules import Rules, match_rules, parse_tcprules

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
USAGE = "tcpserver: usage: tcpserver [-1] [-c limit] [-x rules] [-u user] [-l localname] host port program [arg ...]"  # noqa: E501


def parse_args(argv: list[str]) -> dict:
    """tcpserver's options, then host, port and the program line; BadInput on misuse."""
    opts: dict = {"limit": TCPSERVER_MAX_CONNECTIONS, "rules": None, "user": None}
    opts["localname"], opts["print_port"] = None, False
    args = list(argv[1:])
    takes = {"-c": "limit", "-x": "rules", "-u": "user", "-l": "localname"}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "-1":
            opts["print_port"] = True
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


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Listen, then accept and fork forever (until killed)."""
    try:
        opts = parse_args(argv)
    except BadInput as exc:
        yield fx.Write(2, f"{exc}\n".encode())
        return 100
    rules = Rules({})  # no -x: every client allowed, nothing added
    if opts["rules"]:
        try:
            fd = yield fx.Open(opts["rules"])
            text = yield from read_all(fd)
            yield fx.Close(fd)
            rules = parse_tcprules(text.decode("latin-1"))
        except (OSError, BadInput) as exc:
            yield fx.Write(2, f"tcpserver: fatal: unable to read {opts['rules']}: {exc}\n".encode())
            return 111
    listener, port = yield fx.Listen(opts["host"], opts["port"])
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
        decision = match_rules(rules, remote[0])
        if not decision.allow:
            yield fx.Note("tcpserver", {"remote": remote[0]}, why="tcprules: deny")
            yield fx.Close(conn)
            continue
        child_env = connection_env(env, local, remote, opts["localname"], decision.env)
        yield fx.Note(
            "tcpserver",
            {"remote": f"{remote[0]}:{remote[1]}", "active": len(active) + 1},
            why=f"connection {len(active) + 1}/{opts['limit']}",
        )
        child = _child(listener, conn, opts["program"], child_env)
        try:
            pid = yield fx.Fork(child, opts["program"][0])
        except OSError:  # as tcpserver.c: "unable to fork", drop this connection, go on
            yield fx.Note("tcpserver", {"remote": remote[0]}, why="unable to fork: dropped")
        else:
            active.add(pid)
        yield fx.Close(conn)


def _child(listener: int, conn: int, program: list[str], env: dict[str, str]):
    def child() -> fx.Program:
        yield fx.Close(listener)
        yield fx.Dup2(conn, 0)
        yield fx.Dup2(conn, 1)
        yield fx.Close(conn)
        try:
            yield fx.Exec(program[0], tuple(program[1:]), env)
        except OSError:
            return 111
        return 111

    return child
