"""Bad SMTP input against the live receiving side: nothing extra queued, nothing half-queued.

Real sockets and processes (tcpserver -> qmail-smtpd -> qmail-queue; mail stays in todo/).
Each test waits on conditions, never on the clock: a reply, the server closing the
connection, a process gone, or /proc showing what the qmail-smtpd process has read. After
each test the trace must hold no `crash` (a program dying of a bug of ours).
"""

from __future__ import annotations

import re
import resource
import socket
import struct
from collections.abc import Iterator

import pytest

from sim.mta import daemon
from sim.qmail.envelope import QueueFile, parse_queue_file
from sim.qmail.queue import split_of
from sim.qmail.smtpd import COMMAND_MAX, Reply, SmtpdConfig, SmtpdSession
from tests.mta.conftest import WAIT, Mta, start_mta, wait_for
from tests.mta.smtp_client import (
    ACCEPT,
    GO_AHEAD,
    NOGATEWAY,
    Client,
    crashes,
    envelope_and_data,
    gone,
    proc_value,
    smtpd_pid,
    trace_events,
)
from tests.qmail.test_smuggling import REFUSED, SMUGGLED, VARIANTS

STRAY_LF = b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
NOMEM = b"421 out of memory (#4.3.0)\r\n"
TIMEOUT = b"451 timeout (#4.4.2)\r\n"
MB = 2**20


@pytest.fixture
def mta(receiving: Mta) -> Iterator[Mta]:
    """The receiving side; afterwards no program may have crashed."""
    yield receiving
    assert crashes(receiving) == []


@pytest.fixture
def client(mta: Mta) -> Iterator[Client]:
    with Client(mta) as c:
        assert c.reply() == b"220 example.test ESMTP\r\n"
        yield c


def queued(mta: Mta) -> list[tuple[QueueFile, bytes]]:
    """Each message in todo/: its envelope and its mess/ file."""
    found = []
    for todo in mta.files("todo"):
        mess = mta.queue / "mess" / str(split_of(int(todo.name))) / todo.name
        found.append((parse_queue_file(todo.read_bytes()), mess.read_bytes()))
    return found


def nothing_half_queued(mta: Mta) -> bool:
    """Every message is whole (S4: mess/, intd/ and todo/ alike; no qmail-send runs to move
    it on), and no pid/ file is left; a cancelled message leaves no file at all."""
    names = [{p.name for p in mta.files(kind)} for kind in ("mess", "intd", "todo")]
    return not mta.files("pid") and names[0] == names[1] == names[2]


def send_message(c: Client, body: bytes, *recipients: bytes) -> bytes:
    """One pipelined transaction from bob; returns the reply to the message."""
    recipients = recipients or (b"alice@example.test",)
    c.send(envelope_and_data(b"bob@example.test", *recipients))
    assert c.replies(2 + len(recipients))[-1] == GO_AHEAD
    c.send(body)
    return c.reply()


# -- SMTP smuggling, live: count what reaches the queue ---------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("together", [True, False], ids=["one segment", "fake end alone"])
def test_a_fake_end_of_data_never_queues_a_second_message(
    mta: Mta, client: Client, name: str, together: bool
) -> None:
    head = b"Subject: outer\r\n\r\nhello" + VARIANTS[name]
    rest = SMUGGLED + b"\r\n.\r\nQUIT\r\n"
    client.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
    assert client.replies(3)[-1] == GO_AHEAD
    if together:
        client.send(head + rest)
    else:  # the fake end of data ends one read of the server; the commands come in the next
        pid = smtpd_pid(mta, 1)
        before = proc_value(pid, "io", "rchar")
        client.send(head)
        wait_for(lambda: proc_value(pid, "io", "rchar") >= before + len(head), "the read")
        client.send(rest)
    if name in REFUSED:
        assert client.reply() == STRAY_LF
        assert client.closed()
        wait_for(lambda: gone(smtpd_pid(mta, 1)), "qmail-smtpd to exit")
        assert queued(mta) == []
    else:
        assert ACCEPT.match(client.reply())
        assert client.reply() == b"221 example.test\r\n"
        ((envelope, mess),) = queued(mta)
        assert envelope.sender == "bob@example.test"
        assert mess.endswith(b"Subject: forged\n\nsmuggled\n")
        assert b"\nSubject: outer\n\nhello" in mess
    assert nothing_half_queued(mta)


@pytest.mark.parametrize("cut", range(6))
def test_a_real_end_of_data_split_across_segments_ends_the_message_once(
    mta: Mta, client: Client, cut: int
) -> None:
    pid = smtpd_pid(mta, 1)
    client.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
    assert client.replies(3)[-1] == GO_AHEAD
    first = b"Subject: split\r\n\r\nbody" + b"\r\n.\r\n"[:cut]
    before = proc_value(pid, "io", "rchar")
    client.send(first)
    wait_for(lambda: proc_value(pid, "io", "rchar") >= before + len(first), "the first read")
    client.send(b"\r\n.\r\n"[cut:] + b"NOOP\r\n")
    assert ACCEPT.match(client.reply())
    assert client.reply() == b"250 ok\r\n"
    ((_, mess),) = queued(mta)
    assert mess.endswith(b"\nSubject: split\n\nbody\n")


# -- bare CR, NUL ------------------------------------------------------------------------------


def test_bare_cr_neither_ends_a_command_nor_a_line_of_data(mta: Mta, client: Client) -> None:
    assert client.command(b"NOOP\rQUIT") == b"502 unimplemented (#5.5.1)\r\n"
    assert client.command(b"MAIL FROM:<bob@example.test>\r") == b"250 ok\r\n"
    assert client.command(b"RCPT TO:<alice@example.test>\rRCPT TO:<v@other.test>") == b"250 ok\r\n"
    assert client.command(b"RCPT TO:<v@other.test>\rRCPT TO:<alice@example.test>") == NOGATEWAY
    assert client.command(b"DATA") == GO_AHEAD
    client.send(b"Subject: cr\r\n\r\na\rb\r.\rc\r\r\n.\r\n")
    assert ACCEPT.match(client.reply())
    ((envelope, mess),) = queued(mta)
    assert (envelope.sender, envelope.recipients) == ("bob@example.test", ("alice@example.test",))
    assert mess.endswith(b"\nSubject: cr\n\na\rb\r.\rc\r\n")


def test_nul_ends_a_command_as_in_c_and_passes_through_data(mta: Mta, client: Client) -> None:
    assert client.command(b"NO\0OP") == b"502 unimplemented (#5.5.1)\r\n"
    assert client.command(b"MAIL FROM:<bob@example.test>\0<evil@other.test>") == b"250 ok\r\n"
    assert client.command(b"RCPT TO:<v@other.test\0@example.test>") == NOGATEWAY
    assert client.command(b"RCPT TO:<alice@example.test\0@other.test>") == b"250 ok\r\n"
    assert client.command(b"DATA") == GO_AHEAD
    client.send(b"Subject: nul\r\n\r\na\0b\r\n\0\r\n.\r\n")
    assert ACCEPT.match(client.reply())
    ((envelope, mess),) = queued(mta)
    assert (envelope.sender, envelope.recipients) == ("bob@example.test", ("alice@example.test",))
    assert mess.endswith(b"\nSubject: nul\n\na\0b\n\0\n")


# -- overlong commands and lines: memory stays bounded ----------------------------------------


def test_a_command_line_just_under_the_limit_is_answered_one_over_is_421() -> None:
    s = SmtpdSession(SmtpdConfig(greeting="example.test"))
    s.start()
    just = b"NOOP " + b"x" * (COMMAND_MAX - 6) + b"\r\n"  # COMMAND_MAX bytes before the LF
    assert [e.text for e in s.receive(just) if isinstance(e, Reply)] == [b"250 ok\r\n"]
    over = b"NOOP " + b"x" * (COMMAND_MAX - 4)
    assert s.receive(over[:1000]) == [] and s.receive(over[1000:]) == []
    assert s.pending_input <= COMMAND_MAX
    assert [e.text for e in s.receive(b"x\r\nNOOP\r\n") if isinstance(e, Reply)] == [NOMEM]


def test_a_100_mb_command_line_gets_421_and_memory_stays_bounded(mta: Mta) -> None:
    with Client(mta) as normal:  # a normal session's peak, for comparison
        normal.reply()
        assert ACCEPT.match(send_message(normal, b"Subject: normal\r\n\r\nhi\r\n.\r\n"))
        assert normal.command(b"NOOP") == b"250 ok\r\n"
        normal_peak = proc_value(smtpd_pid(mta, 1), "status", "VmHWM")
    with Client(mta) as c:
        c.reply()
        pid = smtpd_pid(mta, 2)
        start, read_before = proc_value(pid, "status", "VmHWM"), proc_value(pid, "io", "rchar")
        line = b"NOOP " + b"x" * (100 * MB)
        sender = c.send_in_background(line)
        wait_for(lambda: proc_value(pid, "io", "rchar") >= read_before + len(line), "100 MB read")
        sender.join(WAIT)
        peak = proc_value(pid, "status", "VmHWM")  # the server is still reading the line
        assert peak - start < 4096, f"qmail-smtpd grew from {start} kB to {peak} kB"
        assert peak - normal_peak < 4096, f"normal session {normal_peak} kB, this one {peak} kB"
        c.send(b"\r\nNOOP\r\n")
        assert c.reply() == NOMEM
        assert c.closed()


def test_a_100_mb_line_of_data_streams_through_without_piling_up(mta: Mta) -> None:
    (mta.home / "control" / "databytes").write_text("1000\n")  # keep 100 MB off the disk
    with Client(mta) as c:
        c.reply()
        pid = smtpd_pid(mta, 1)
        c.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
        assert c.replies(3)[-1] == GO_AHEAD
        start = proc_value(pid, "status", "VmHWM")
        sender = c.send_in_background(b"Subject: long\r\n\r\n" + b"y" * (100 * MB) + b"\r\n.\r\n")
        assert c.reply() == b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
        sender.join(WAIT)
        peak = proc_value(pid, "status", "VmHWM")
        assert c.command(b"QUIT") == b"221 example.test\r\n"
    assert peak - start < 4096, f"qmail-smtpd grew from {start} kB to {peak} kB"
    wait_for(lambda: nothing_half_queued(mta), "the refused message to be removed")
    assert queued(mta) == []


def test_an_overlong_address_is_555(client: Client) -> None:
    assert client.command(b"MAIL FROM:<" + b"a" * 10_000 + b"@x.test>") == (
        b"555 syntax error (#5.5.4)\r\n"
    )
    assert client.command(b"MAIL FROM:<bob@example.test>") == b"250 ok\r\n"
    assert client.command(b"RCPT TO:<" + b"a" * 900 + b">") == b"555 syntax error (#5.5.4)\r\n"
    assert client.command(b"RCPT TO:<" + b"a" * 899 + b">") == b"250 ok\r\n"  # no @: local


# -- pipelining abuse and many recipients ------------------------------------------------------

PIPELINED = [
    (b"NOOP", b"250 ok\r\n"),
    (b"RSET", b"250 flushed\r\n"),
    (b"VRFY alice", b"252 send some mail, i'll try my best\r\n"),
    (b"HELP", b"214 qmail home page: http://pobox.com/~djb/qmail.html\r\n"),
    (b"EXPN list", b"502 unimplemented (#5.5.1)\r\n"),
    (b"RCPT TO:<alice@example.test>", b"503 MAIL first (#5.5.1)\r\n"),
    (b"DATA", b"503 MAIL first (#5.5.1)\r\n"),
    (b"EHLO client.test", b"250-example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
    (b"MAIL FROM:<bob@example.test>", b"250 ok\r\n"),
    (b"DATA", b"503 RCPT first (#5.5.1)\r\n"),
    (b"HELO client.test", b"250 example.test\r\n"),
]


def test_thousands_of_pipelined_commands_are_answered_in_order(client: Client) -> None:
    commands = [PIPELINED[i % len(PIPELINED)] for i in range(5000)]
    client.send_in_background(b"".join(line + b"\r\n" for line, _ in commands) + b"QUIT\r\n")
    for line, expected in commands:
        assert client.reply() == expected, line
    assert client.reply() == b"221 example.test\r\n"
    assert client.closed()


def test_twenty_messages_in_one_write_are_queued_in_order(mta: Mta, client: Client) -> None:
    one = envelope_and_data(b"bob@example.test", b"alice@example.test")
    client.send(b"".join(one + b"Subject: %d\r\n\r\n.\r\n" % n for n in range(20)) + b"QUIT\r\n")
    qps = []
    for _ in range(20):
        assert client.replies(3) == [b"250 ok\r\n", b"250 ok\r\n", GO_AHEAD]
        qps.append(int(ACCEPT.match(client.reply()).group(2)))
    assert client.reply() == b"221 example.test\r\n"
    for n, qp in enumerate(qps):
        todo = mta.todo_for(qp)
        mess = mta.queue / "mess" / str(split_of(int(todo.name))) / todo.name
        assert mess.read_bytes().endswith(b"\nSubject: %d\n\n" % n)
    assert len(queued(mta)) == 20


def test_ten_thousand_recipients_in_one_transaction(mta: Mta, client: Client) -> None:
    recipients = [b"alice-%d@example.test" % n for n in range(10_000)]
    client.send_in_background(envelope_and_data(b"bob@example.test", *recipients))
    replies = client.replies(10_002)
    assert replies[:-1] == [b"250 ok\r\n"] * 10_001 and replies[-1] == GO_AHEAD
    client.send(b"Subject: many\r\n\r\nhi\r\n.\r\n")
    assert ACCEPT.match(client.reply())
    ((envelope, _),) = queued(mta)
    assert envelope.recipients == tuple(r.decode() for r in recipients)


# -- slow and idle clients ---------------------------------------------------------------------


def test_a_silent_client_gets_451_timeout_and_the_connection_closes(mta: Mta) -> None:
    (mta.home / "control" / "timeoutsmtpd").write_text("1\n")
    with Client(mta) as c:
        assert c.reply() == b"220 example.test ESMTP\r\n"
        assert c.reply() == TIMEOUT  # nothing sent: qmail-smtpd gives up after 1 s
        assert c.closed()


def test_a_client_stalling_in_data_gets_451_timeout_and_nothing_is_queued(mta: Mta) -> None:
    (mta.home / "control" / "timeoutsmtpd").write_text("1\n")
    with Client(mta) as c:
        c.reply()
        c.send(envelope_and_data(b"bob@example.test", b"alice@example.test"))
        assert c.replies(3)[-1] == GO_AHEAD
        c.send(b"Subject: stalled\r\n\r\nhalf a mess")
        wait_for(lambda: mta.files("mess"), "qmail-queue to hold the message")
        assert c.reply() == TIMEOUT
        assert c.closed()  # qmail-smtpd has exited, after waiting for qmail-queue
    assert nothing_half_queued(mta) and queued(mta) == []


def greeted(c: Client, seconds: float) -> bool:
    """Did a greeting arrive within `seconds`? (False only proves: not yet.)"""
    c.sock.settimeout(seconds)
    try:
        return c.reply() == b"220 example.test ESMTP\r\n"
    except TimeoutError:
        return False
    finally:
        c.sock.settimeout(WAIT)


def test_a_client_over_tcpservers_limit_is_served_when_an_idle_one_leaves(make_home) -> None:
    """At the limit, new clients wait in the listen queue (not refused, nothing lost); one
    that gives up there (a reset before tcpserver accepts it) must not stop tcpserver."""
    home = make_home()
    (home / "control" / "concurrencyincoming").write_text("3\n")
    mta = start_mta(home)
    idle = []
    try:
        for _ in range(3):
            idle.append(Client(mta))
            assert idle[-1].reply() == b"220 example.test ESMTP\r\n"
        gave_up = mta.connect()  # waits in the listen queue too, then resets the connection
        gave_up.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gave_up.close()
        with Client(mta) as waiting:  # the kernel accepts it; tcpserver does not, yet
            assert not greeted(waiting, 0.3)
            assert len(trace_events(mta, '"label":"qmail-smtpd"')) == 3
            assert idle.pop(0).command(b"QUIT") == b"221 example.test\r\n"
            assert waiting.reply() == b"220 example.test ESMTP\r\n"
            assert ACCEPT.match(send_message(waiting, b"Subject: late\r\n\r\nin\r\n.\r\n"))
        assert len(queued(mta)) == 1
    finally:
        for c in idle:
            c.close()
        daemon.stop(home)
    assert crashes(mta) == []


def test_idle_clients_time_out_and_free_their_slots(make_home) -> None:
    home = make_home()
    (home / "control" / "concurrencyincoming").write_text("2\n")
    (home / "control" / "timeoutsmtpd").write_text("1\n")
    mta = start_mta(home)
    try:
        with Client(mta) as a, Client(mta) as b, Client(mta) as waiting:
            assert a.reply() == b.reply() == b"220 example.test ESMTP\r\n"
            assert a.reply() == b.reply() == TIMEOUT
            assert waiting.reply() == b"220 example.test ESMTP\r\n"
            assert ACCEPT.match(send_message(waiting, b"Subject: late\r\n\r\nin\r\n.\r\n"))
    finally:
        daemon.stop(home)
    assert crashes(mta) == []


# -- a disconnect at every byte offset ---------------------------------------------------------

SESSION = (
    b"HELO client.test\r\n"
    + envelope_and_data(b"bob@example.test", b"alice@example.test")
    + b"Subject: cut\r\n\r\nbody\r\n.\r\nQUIT\r\n"
)
COMPLETE = SESSION.index(b"\r\n.\r\n") + 5  # from here on, the message is whole


def test_closing_at_every_byte_offset_queues_the_whole_message_or_nothing(mta: Mta) -> None:
    for cut in range(len(SESSION) + 1):
        with Client(mta) as c:
            c.reply()
            c.send(SESSION[:cut])
            c.sock.shutdown(socket.SHUT_WR)
            c.read_to_end()  # the server closes once qmail-smtpd (and qmail-queue) exited
        assert nothing_half_queued(mta), f"cut at byte {cut}"
        assert len(queued(mta)) == max(0, cut - COMPLETE + 1), f"cut at byte {cut}"
    for envelope, mess in queued(mta):
        assert envelope.recipients == ("alice@example.test",)
        assert mess.endswith(b"\nSubject: cut\n\nbody\n")


def test_a_reset_at_every_byte_offset_leaves_nothing_half_queued(mta: Mta) -> None:
    for cut in range(len(SESSION) + 1):
        sock = mta.connect()
        assert sock.recv(100) == b"220 example.test ESMTP\r\n"
        sock.sendall(SESSION[:cut])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST instead of FIN, replies unread
        pid = smtpd_pid(mta, cut + 1)
        wait_for(lambda pid=pid: gone(pid), f"qmail-smtpd {pid} to exit")
        assert nothing_half_queued(mta), f"cut at byte {cut}"
        assert cut >= COMPLETE or not queued(mta), f"cut at byte {cut}"
    for envelope, mess in queued(mta):
        assert envelope.recipients == ("alice@example.test",)
        assert mess.endswith(b"\nSubject: cut\n\nbody\n")


# -- a full disk while queueing ----------------------------------------------------------------


def tcpserver_pid(mta: Mta) -> int:
    event = wait_for(lambda: trace_events(mta, '"prog":"tcpserver"'), "tcpserver in the trace")
    return event[0]["pid"]


def test_a_full_disk_while_queueing_is_451_and_leaves_nothing(mta: Mta) -> None:
    """RLIMIT_FSIZE on tcpserver (inherited by each qmail-smtpd and its qmail-queue) makes
    qmail-queue's write of mess/ fail as on a full disk: exit 53, cleaned up, 451 for the
    client. A connection started after the limit is lifted queues again."""
    server = tcpserver_pid(mta)
    soft, hard = resource.prlimit(server, resource.RLIMIT_FSIZE)
    body = b"Subject: big\r\n\r\n" + b"z" * 70 * 1000 + b"\r\n.\r\n"
    try:
        resource.prlimit(server, resource.RLIMIT_FSIZE, (4096, hard))
        with Client(mta) as c:
            c.reply()
            assert send_message(c, body) == b"451 qq write error or disk full (#4.3.0)\r\n"
            assert c.command(b"QUIT") == b"221 example.test\r\n"
            assert c.closed()
        assert nothing_half_queued(mta) and queued(mta) == []
    finally:
        resource.prlimit(server, resource.RLIMIT_FSIZE, (soft, hard))
    with Client(mta) as c:  # space is back
        c.reply()
        assert ACCEPT.match(send_message(c, body))
    ((_, mess),) = queued(mta)
    assert re.search(rb"\nSubject: big\n\nz{70000}\n$", mess)
