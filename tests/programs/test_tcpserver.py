"""tcpserver in the model (SimKernel): its rules are read again for every connection.

One simulated host runs tcpserver with `-x RULES` and a client program that connects,
edits the rules between connections, and keeps what each connection said. The served
program says whether tcpserver gave it RELAYCLIENT. The reads are effects, so the trace
shows them, each in the connection's own child, as tcpserver.c's doit() reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

import simpy

from sim.kernel import effects as fx
from sim.kernel.io import read_all
from sim.kernel.simkernel import SimKernel
from sim.programs import registry

RULES = "/etc/tcp.smtp"
PORT = 25
DROP = f"tcpserver: warning: dropping connection, unable to read {RULES}: "
# What the client writes into RULES before each connection (None: removes it).
EDITS: list[str | None] = [
    "127.:allow\n",
    '127.:allow,RELAYCLIENT=""\n',
    "127.:deny\n",
    "127.:allow\n127.0.0.1:bogus\n",
    None,
    '127.:allow,RELAYCLIENT=""\n',
]


def served(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """The program tcpserver runs for a connection: tells the client about RELAYCLIENT."""
    yield fx.Write(1, f"RELAYCLIENT={env.get('RELAYCLIENT', 'unset')}\n".encode())
    return 0


def client(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Edit the rules, connect, keep what the server said (b"" when dropped); each edit."""
    for text in EDITS:
        if text is None:
            yield fx.Unlink(RULES)
        else:
            fd = yield fx.Open(RULES, "w", create=True)
            yield fx.Write(fd, text.encode())
            yield fx.Close(fd)
        sock = yield fx.Connect("127.0.0.1", PORT)
        said = yield from read_all(sock)
        yield fx.Close(sock)
        yield fx.Write(1, said or b"dropped\n")
    return 0


PROGRAMS = {"t-served": served, "t-client": client}


def run(*flags: str) -> tuple[list[str], list[str], list[dict]]:
    """tcpserver and the client on one host: what the client heard, tcpserver's fd 2, trace."""
    env = simpy.Environment()
    events: list[dict] = []

    def resolve(name: str):
        return (PROGRAMS[name], None) if name in PROGRAMS else registry.resolve(name)

    kernel = SimKernel(env, resolve, host="a.test", trace=events.append)
    kernel.fs.populate({"/etc/tcp.smtp": EDITS[0].encode()})
    argv = [*flags, "-x", RULES, "127.0.0.1", str(PORT), "t-served"]
    server = kernel.procs[kernel.spawn("tcpserver", argv, {}, "root")]
    talker = kernel.procs[kernel.spawn("t-client", [], {}, "root")]
    env.run(until=talker.done)
    return talker.stdout.decode().splitlines(), server.stderr.decode().splitlines(), events


def test_each_connection_follows_the_rules_as_they_are_when_it_comes() -> None:
    heard, errors, events = run()
    assert heard == [
        "RELAYCLIENT=unset",
        "RELAYCLIENT=",  # added while running: the next connection relays
        "dropped",  # deny: the child exits 100 before the program runs
        "dropped",  # a line tcprules would refuse
        "dropped",  # no rules file, no -X
        "RELAYCLIENT=",  # and the server lives on
    ]
    assert errors == [
        DROP + "line 2: unable to parse this line: '127.0.0.1:bogus'",
        DROP + "file does not exist",
    ]
    reads = [
        e for e in events if e["kind"] == "open" and e["path"] == RULES and e["prog"] == "tcpserver"
    ]
    server = next(e["pid"] for e in events if e["prog"] == "tcpserver")
    assert len(reads) == len(EDITS) and server not in {e["pid"] for e in reads}
    deny = [e for e in events if e["kind"] == "exit" and e.get("status") == 100]
    assert len(deny) == 1


def test_with_X_a_missing_rules_file_allows_every_client() -> None:
    heard, errors, _ = run("-X")
    assert heard[4] == "RELAYCLIENT=unset"
    assert errors == [DROP + "line 2: unable to parse this line: '127.0.0.1:bogus'"]
