"""qmail-rspawn and qmail-remote as real processes, against real SMTP servers on 127.0.0.1.

The main server is the project's own receiving side (tcpserver → qmail-smtpd → qmail-queue)
of a second qmail home; replies it never gives (4xx, a dying link) come from a scripted
server thread. Results are checked word for word against qmail-remote's reports as
qmail-rspawn collapses them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.kernel.io import write_all
from sim.mta import daemon
from sim.mta.home import init_home
from sim.programs import dnsip
from sim.qmail.envelope import parse_queue_file
from sim.qmail.spawn import SpawnCommand, SpawnResult
from tests.programs.spawner_harness import Spawner, put_message, start

SENDER = "joe@a.example"
MESSAGE = b"From: joe@a.example\nSubject: hi\n\nHello.\n"
AMBIGUOUS_MX = (
    b"DSorry. Although I'm listed as a best-preference MX or A for that host,\n"
    b"it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
)


@pytest.fixture
def home_a(tmp_path: Path) -> Path:
    path = tmp_path / "a"
    init_home(path, "a.example", users=["joe"])
    return path.resolve()


@pytest.fixture
def rspawn(home_a: Path) -> Iterator[Spawner]:
    spawner = Spawner(start(home_a, "qmail-rspawn", [], user="qmailr", host="a.example"))
    spawner.handshake()
    try:
        yield spawner
    finally:
        spawner.proc.stop()


@pytest.fixture
def instance_b(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A second qmail home, b.example, receiving SMTP on a free loopback port."""
    path = tmp_path / "b"
    init_home(path, "b.example", users=["carol"])
    _, port = daemon.start(path, ("127.0.0.1", 0), {}, programs=("tcpserver",))
    try:
        yield path.resolve(), port
    finally:
        daemon.stop(path)


def route(home: Path, *lines: str) -> None:
    (home / "control" / "smtproutes").write_text("".join(f"{line}\n" for line in lines))


def send(
    rspawn: Spawner, home: Path, recipient: str, message: bytes = MESSAGE, sender: str = SENDER
) -> SpawnResult:
    put_message(home, 777, message)
    rspawn.send(SpawnCommand.for_message(3, 777, sender, recipient))
    return rspawn.results(1)[3]


def queued(home: Path) -> tuple[object, bytes]:
    """The one message in a home's queue: its todo/ envelope and its mess/ bytes."""
    (todo,) = (home / "queue" / "todo").iterdir()
    mess = home / "queue" / "mess" / str(int(todo.name) % 23) / todo.name
    return parse_queue_file(todo.read_bytes()), mess.read_bytes()


def test_rspawn_clears_the_tcp_timeout_table(home_a):
    table = home_a / "queue" / "lock" / "tcpto"
    table.write_bytes(b"\x7f\0\0\x01\x03" + bytes(1019))
    spawner = Spawner(start(home_a, "qmail-rspawn", [], user="qmailr", host="a.example"))
    try:
        assert spawner.handshake() == b"\x78"
        assert table.read_bytes() == bytes(1024)
    finally:
        spawner.proc.stop()


def test_message_reaches_the_other_instance_through_smtproutes(rspawn, home_a, instance_b):
    home_b, port = instance_b
    route(home_a, f"b.example:127.0.0.1:{port}")
    result = send(rspawn, home_a, "carol@b.example")
    assert result.status == "K"
    assert re.fullmatch(
        rb"127\.0\.0\.1 accepted message\.\nRemote host said: 250 ok \d+ qp \d+\n", result.text
    )
    envelope, mess = queued(home_b)
    assert (envelope.sender, list(envelope.recipients)) == (SENDER, ["carol@b.example"])
    assert re.match(rb"Received: \(qmail \d+ invoked from network\); ", mess)
    assert b"(HELO a.example) (127.0.0.1)\n  by b.example with SMTP; " in mess
    assert mess.endswith(b"\n" + MESSAGE)
    events = rspawn.proc.events()
    note = next(e for e in events if e["kind"] == "route")
    assert (note["ips"], note["port"]) == (["127.0.0.1"], port)
    assert any(e["prog"] == "qmail-remote" and e["uid"] == "qmailr" for e in events)


def test_dots_and_stray_line_ends_arrive_intact_and_never_end_data_early(
    rspawn, home_a, instance_b
):
    home_b, port = instance_b
    route(home_a, f":127.0.0.1:{port}")  # the default route
    body = b"Subject: dots\n\n.\n..\n.leading dot\nsmuggle\r.\r\nbare cr\rhere\n.\nend\n"
    assert send(rspawn, home_a, "carol@b.example", body).status == "K"
    _, mess = queued(home_b)
    # Leading dots survive the round trip; a stray CR is sent as a line end (smtp_data's
    # deliberate difference), so `\r.\r\n` can never be read as the end of DATA.
    delivered = b"Subject: dots\n\n.\n..\n.leading dot\nsmuggle\n.\nbare cr\nhere\n.\nend\n"
    assert mess.endswith(b"\n" + delivered)


def test_recipient_refused_with_5xx_is_a_permanent_failure(rspawn, home_a, instance_b):
    _, port = instance_b
    route(home_a, f"c.example:127.0.0.1:{port}")
    assert send(rspawn, home_a, "x@c.example") == SpawnResult(
        3,
        "D",
        b"127.0.0.1 does not like recipient.\n"
        b"Remote host said: 553 sorry, that domain isn't in my list of allowed rcpthosts"
        b" (#5.7.1)\nGiving up on 127.0.0.1.\n",
    )


def test_connection_refused_defers(rspawn, home_a):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    route(home_a, f"b.example:127.0.0.1:{port}")
    assert send(rspawn, home_a, "carol@b.example").report == (
        b"ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
    )


def test_literal_address_of_this_host_is_the_ambiguous_mx_bounce(rspawn, home_a):
    assert send(rspawn, home_a, "carol@[127.0.0.1]").report == AMBIGUOUS_MX


GREET, HELO, OK, GO = b"220 hi\r\n", b"250 hi\r\n", b"250 ok\r\n", b"354 go ahead\r\n"


class ScriptedServer:
    """A one-connection SMTP server thread that answers each command from a list of replies.

    After DATA's 354 it reads the body up to the final dot before the next reply; when the
    list runs out it hangs up. QUIT is answered 221.
    """

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.received = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(20)
        self.listener.close()

    def _serve(self) -> None:
        with contextlib.suppress(OSError), self.listener.accept()[0] as conn:
            conn.settimeout(20)
            replies, pending = iter(self.replies), b""

            def until(end: bytes) -> bytes | None:
                nonlocal pending
                while end not in pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return None
                    pending += chunk
                cut = pending.index(end) + len(end)
                got, pending = pending[:cut], pending[cut:]
                self.received.extend(got)
                return got

            reply = next(replies)
            conn.sendall(reply)
            while (line := until(b"\r\n")) is not None:
                if line.startswith(b"QUIT"):
                    conn.sendall(b"221 bye\r\n")
                    return
                reply = next(replies, None)
                if reply is None:
                    return
                conn.sendall(reply)
                if line.startswith(b"DATA") and reply.startswith(b"354"):
                    if until(b"\r\n.\r\n") is None:
                        return
                    reply = next(replies, None)
                    if reply is None:
                        return
                    conn.sendall(reply)


def test_message_without_final_newline_cannot_be_sent(rspawn, home_a):
    with ScriptedServer([GREET, HELO, OK, OK, GO]) as server:
        route(home_a, f":127.0.0.1:{server.port}")
        result = send(rspawn, home_a, "carol@b.example", b"Subject: x\n\nno newline")
    assert result.report == b"DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n"


@pytest.mark.parametrize(
    ("replies", "report"),
    [
        (
            [GREET, HELO, OK, OK, GO, OK],
            b"K127.0.0.1 accepted message.\nRemote host said: 250 ok\n",
        ),
        (
            [b"421 busy\r\n"],
            b"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n",
        ),
        (
            [GREET, b"550 go away\r\n"],
            b"ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 550 go away\n",
        ),
        (
            [GREET, HELO, b"553 no\r\n"],
            b"DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 no\n",
        ),
        (
            [GREET, HELO, b"451 later\r\n"],
            b"ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 later\n",
        ),
        (
            [GREET, HELO, OK, b"450 full\r\n"],
            b"Z127.0.0.1 does not like recipient.\nRemote host said: 450 full\n"
            b"Giving up on 127.0.0.1.\n",
        ),
        (
            [GREET, HELO, OK, OK, b"554 no data\r\n"],
            b"D127.0.0.1 failed on DATA command.\nRemote host said: 554 no data\n",
        ),
        (
            [GREET, HELO, OK, OK, GO, b"451 try later\r\n"],
            b"Z127.0.0.1 failed after I sent the message.\nRemote host said: 451 try later\n",
        ),
        (
            [GREET, HELO, OK, OK, GO],
            b"ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)\n",
        ),
        ([GREET, HELO, OK], b"ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n"),
    ],
    ids=[
        "accepted",
        "greeting-421",
        "helo-550",
        "mail-553",
        "mail-451",
        "rcpt-450",
        "data-554",
        "after-dot-451",
        "died-after-dot",
        "died-at-rcpt",
    ],
)
def test_server_replies_become_qmail_remote_reports(rspawn, home_a, replies, report):
    with ScriptedServer(replies) as server:
        route(home_a, f"b.example:127.0.0.1:{server.port}")
        assert send(rspawn, home_a, "carol@b.example").report == report
    if replies[-1] == OK and len(replies) == 6:
        assert bytes(server.received) == (
            b"HELO a.example\r\nMAIL FROM:<joe@a.example>\r\nRCPT TO:<carol@b.example>\r\n"
            b"DATA\r\nFrom: joe@a.example\r\nSubject: hi\r\n\r\nHello.\r\n.\r\nQUIT\r\n"
        )


def test_dnsip_finds_localhost_without_the_network(home_a):
    proc = start(home_a, "dnsip", ["localhost"], user="qmailr", host="a.example")
    try:
        assert proc.wait() == 0
        assert "127.0.0.1" in proc.output.decode().split()
    finally:
        proc.stop()


def fake_dnsip(argv, env):
    """A stand-in resolver for qmail-remote (no network in tests): answers by host name."""
    answers = {"soft.example": (111, b""), "nosuch.example": (100, b""), "bare.example": (0, b"\n")}
    status, out = answers.get(argv[1], (0, b"127.0.0.1\n"))
    yield from write_all(1, out)
    return status


def fake_dnsmx(argv, env):
    """A stand-in MX resolver: no MX records, except for the domains named here."""
    answers = {
        "nosuchmx.example": (100, b""),
        "softmx.example": (111, b""),
        "mx.example": (0, b"20 b.mx.example\n10 me.example\n"),  # we are its best MX
    }
    status, out = answers.get(argv[1], (0, b""))
    yield from write_all(1, out)
    return status


@pytest.mark.parametrize(
    ("domain", "report"),
    [
        (
            "nosuchmx.example",
            b"DSorry, I couldn't find any host named nosuchmx.example. (#5.1.2)\n",
        ),
        ("softmx.example", b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n"),
        ("mx.example", AMBIGUOUS_MX),
        ("soft.example", b"ZSorry, I couldn't find any host by that name. (#4.1.2)\n"),
        ("nosuch.example", b"DSorry, I couldn't find any host named nosuch.example. (#5.1.2)\n"),
        ("bare.example", b"DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"),
        ("me.example", AMBIGUOUS_MX),
    ],
)
def test_dns_outcomes_without_a_route(home_a, domain, report):
    proc = start(
        home_a,
        "qmail-rspawn",
        [],
        user="qmailr",
        host="a.example",
        programs={
            "dnsip": "tests.programs.test_rspawn_remote:fake_dnsip",
            "dnsmx": "tests.programs.test_rspawn_remote:fake_dnsmx",
        },
    )
    spawner = Spawner(proc)
    try:
        spawner.handshake()
        assert send(spawner, home_a, f"carol@{domain}").report == report
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (None, 0),
        (socket.EAI_NONAME, dnsip.EXIT_HARD),
        (socket.EAI_AGAIN, dnsip.EXIT_SOFT),
        (socket.EAI_FAIL, dnsip.EXIT_SOFT),
    ],
)
def test_resolver_errors_map_to_hard_and_soft_exits(code, status):
    error = None if code is None else socket.gaierror(code, "x")
    assert dnsip.lookup_status(error) == status


@pytest.mark.parametrize(
    ("raised", "status"),
    [("NXDOMAIN", 100), ("NoAnswer", 0), ("LifetimeTimeout", 111), ("NoNameservers", 111)],
)
def test_dnsmx_maps_resolver_outcomes(monkeypatch, raised, status):
    import dns.resolver

    from sim.programs import dnsmx

    def resolve(*args, **kwargs):
        raise getattr(dns.resolver, raised)()

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    assert dnsmx.query_mx("example.test") == (status, [])
