"""The live MTA's receiving side with real sockets and processes: qmail's replies, qmail's queue."""

from __future__ import annotations

import re
import smtplib
import socket
import threading

import pytest

from sim.mta import daemon
from sim.qmail.constants import QMAIL_UIDS
from sim.qmail.queue import split_of
from tests.mta.conftest import WAIT, Mta, start_mta, wait_for
from tests.mta.smtp_client import ACCEPT, Client

MESSAGE = b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def client(receiving: Mta):
    c = Client(receiving)
    yield c
    c.close()


def test_greeting_and_ehlo_are_qmails(client: Client) -> None:
    assert client.reply() == b"220 example.test ESMTP\r\n"
    assert client.command(b"EHLO client.test") == (
        b"250-example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    )
    assert client.command(b"VRFY alice") == b"252 send some mail, i'll try my best\r\n"
    assert client.command(b"ETRN x") == b"502 unimplemented (#5.5.1)\r\n"
    assert client.command(b"RCPT TO:<alice@example.test>") == b"503 MAIL first (#5.5.1)\r\n"
    assert client.command(b"QUIT") == b"221 example.test\r\n"
    assert client.closed()


def test_smtplib_message_lands_in_todo_with_qmails_envelope(receiving: Mta) -> None:
    with smtplib.SMTP("127.0.0.1", receiving.port, timeout=WAIT) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("bob@example.test")
        smtp.rcpt("alice@example.test")
        code, text = smtp.data(MESSAGE)
    assert code == 250
    _, qp = re.fullmatch(rb"ok (\d+) qp (\d+)", text).groups()
    todo = receiving.todo_for(int(qp))
    assert todo is not None
    queue_id = int(todo.name)
    uid = QMAIL_UIDS["qmaild"]
    assert todo.read_bytes() == (b"u%d\0p%s\0Fbob@example.test\0Talice@example.test\0" % (uid, qp))
    mess = receiving.queue / "mess" / str(split_of(queue_id)) / str(queue_id)
    assert mess.stat().st_ino == queue_id  # the queue id is the inode number
    lines = mess.read_bytes().split(b"\n")
    assert re.fullmatch(rb"Received: \(qmail \d+ invoked from network\); .+ -0000", lines[0])
    assert lines[1] == b"Received: from unknown (HELO client.test) (127.0.0.1)"
    assert re.fullmatch(rb"  by example.test with SMTP; \d+ \w{3} \d{4} [\d:]{8} -0000", lines[2])
    assert mess.read_bytes().endswith(MESSAGE.replace(b"\r\n", b"\n"))
    assert not receiving.files("pid")


def test_two_messages_on_one_connection_pipelined(client: Client, receiving: Mta) -> None:
    client.reply()
    qps = []
    for n in (1, 2):
        client.send(b"MAIL FROM:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        assert [client.reply() for _ in range(3)] == [
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go ahead\r\n",
        ]
        client.send(b"Subject: %d\r\n\r\n..dot\r\n.\r\n" % n)
        match = ACCEPT.match(client.reply())
        assert match
        qps.append(int(match.group(2)))
    for n, qp in enumerate(qps, 1):
        todo = receiving.todo_for(qp)
        mess = receiving.queue / "mess" / str(split_of(int(todo.name))) / todo.name
        assert mess.read_bytes().endswith(b"Subject: %d\n\n.dot\n" % n)


def test_relay_attempt_is_refused(client: Client) -> None:
    client.reply()
    assert client.command(b"MAIL FROM:<spammer@else.test>") == b"250 ok\r\n"
    for rcpt in (
        b"<victim@other.test>",
        b"<victim%other.test@example.test.>",
        b"<@example.test:v@other.test>",
    ):
        assert client.command(b"RCPT TO:" + rcpt) == (
            b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"
        )
    assert client.command(b"DATA") == b"503 RCPT first (#5.5.1)\r\n"


def test_bare_lf_in_data_gets_451_and_leaves_nothing(client: Client, receiving: Mta) -> None:
    client.reply()
    client.send(b"MAIL FROM:<b@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [client.reply() for _ in range(3)][-1] == b"354 go ahead\r\n"
    client.send(b"Subject: x\r\n\r\nbare\nline\r\n.\r\n")
    assert client.reply() == b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
    assert client.closed()
    wait_for(lambda: not receiving.files("mess") and not receiving.files("intd"), "cleanup")
    assert not receiving.files("todo") and not receiving.files("pid")


def test_disconnect_mid_data_leaves_nothing_behind(client: Client, receiving: Mta) -> None:
    client.reply()
    client.send(b"MAIL FROM:<b@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [client.reply() for _ in range(3)][-1] == b"354 go ahead\r\n"
    client.send(b"Subject: half\r\n\r\nand then the client goes away")
    wait_for(lambda: receiving.files("mess"), "qmail-queue to create the message file")
    client.close()
    wait_for(lambda: not receiving.files("mess") and not receiving.files("intd"), "cleanup")
    assert not receiving.files("todo") and not receiving.files("pid")


def test_databytes_is_reread_per_connection_and_refuses_552(receiving: Mta) -> None:
    (receiving.home / "control" / "databytes").write_text("100\n")
    c = Client(receiving)
    try:
        c.reply()
        c.send(b"MAIL FROM:<b@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        assert [c.reply() for _ in range(3)][-1] == b"354 go ahead\r\n"
        c.send(b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n.\r\n")
        assert c.reply() == (
            b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
        )
    finally:
        c.close()
    wait_for(lambda: not receiving.files("mess"), "the refused message to be removed")


def test_a_hundred_hops_is_a_loop(client: Client, receiving: Mta) -> None:
    client.reply()
    client.send(b"MAIL FROM:<b@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [client.reply() for _ in range(3)][-1] == b"354 go ahead\r\n"
    client.send(b"Received: from x by y\r\n" * 100 + b"\r\nbody\r\n.\r\n")
    assert client.reply() == b"554 too many hops, this message is looping (#5.4.6)\r\n"
    wait_for(lambda: not receiving.files("mess"), "the looping message to be removed")


def test_relayclient_from_tcprules_allows_relaying(make_home) -> None:
    home = make_home()
    (home / "etc" / "tcp.smtp").write_text('127.:allow,RELAYCLIENT=""\n')
    mta = start_mta(home)
    try:
        c = Client(mta)
        c.reply()
        assert c.command(b"MAIL FROM:<alice@example.test>") == b"250 ok\r\n"
        assert c.command(b"RCPT TO:<friend@other.test>") == b"250 ok\r\n"
        c.close()
    finally:
        daemon.stop(home)


def test_fifty_concurrent_clients_are_all_queued(receiving: Mta) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", receiving.port, timeout=WAIT) as smtp:
                smtp.sendmail(
                    "bob@example.test", ["alice@example.test"], b"Subject: %d\r\n\r\nx\r\n" % n
                )
                results.append(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert not errors
    assert sorted(results) == list(range(50))
    assert len(receiving.files("todo")) == 50
    bodies = {p.read_bytes().rsplit(b"Subject: ", 1)[1] for p in receiving.files("mess")}
    assert bodies == {b"%d\n\nx\n" % n for n in range(50)}


def test_trace_of_one_message_shows_qmails_steps_in_order(receiving: Mta) -> None:
    with smtplib.SMTP("127.0.0.1", receiving.port, timeout=WAIT) as smtp:
        smtp.sendmail("bob@example.test", ["alice@example.test"], MESSAGE)

    def trigger_seen() -> list[dict]:
        events = receiving.events()
        return events if any(e.get("path") == "lock/trigger" for e in events) else []

    events = wait_for(trigger_seen, "qmail-queue to pull the trigger")
    smtpd = next(e for e in events if e.get("kind") == "fork" and e["label"] == "qmail-smtpd")
    assert smtpd["prog"] == "tcpserver"
    replies = [e["reply"] for e in events if e.get("kind") == "smtp-reply"]
    assert replies[0] == "220 example.test ESMTP\\r\\n"
    assert any(r.startswith("250 ok ") and " qp " in r for r in replies)
    queue_pid = next(
        e["result"] for e in events if e.get("kind") == "fork" and e["label"] == "qmail-queue"
    )
    child = [e for e in events if e.get("pid") == queue_pid]
    dup2s = [(e["old"], e["new"]) for e in child if e["kind"] == "dup2"]
    assert [new for _, new in dup2s] == [0, 1]  # message on fd 0, envelope on fd 1
    exec_ = next(e for e in child if e["kind"] == "exec")
    assert exec_["program"] == "qmail-queue"
    steps = [
        (e["kind"], e.get("path") or e.get("dst") or e.get("fd"))
        for e in child
        if e["prog"] == "qmail-queue"
        and e["kind"] in ("open", "link", "unlink", "fsync", "fsyncdir")
    ]
    kinds = [k for k, _ in steps]
    assert kinds == [
        "open", "link", "unlink", "fsyncdir", "fsync", "open", "fsync", "fsyncdir",
        "link", "fsyncdir", "open",
    ]  # fmt: skip
    assert steps[0][1].startswith("pid/") and steps[1][1].startswith("mess/")
    assert steps[5][1].startswith("intd/") and steps[8][1].startswith("todo/")
    assert steps[-1] == ("open", "lock/trigger")
    assert all(e["uid"] == "qmailq" for e in child if e["prog"] == "qmail-queue")


def test_a_second_start_is_refused_and_stop_ends_every_process(make_home) -> None:
    home = make_home()
    mta = start_mta(home)
    paths = daemon.Paths(home.resolve())
    pid = daemon.running_pid(paths)
    sid = daemon.session_of(paths, pid)
    assert len(daemon.session_pids(sid)) >= 3  # supervisor, collector, tcpserver
    with pytest.raises(daemon.MtaError, match="already running"):
        start_mta(home)
    assert daemon.stop(home)
    assert daemon.session_pids(sid) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", mta.port), timeout=2)


@pytest.mark.parametrize(
    ("where", "fatal"),
    [
        ("a port in use", "unable to bind: address already used"),
        ("::1", "no IP address for ::1"),  # ucspi-tcp's tcpserver knows IPv4 only
    ],
)
def test_tcpserver_that_cannot_listen_says_why_in_its_own_words(
    make_home, where: str, fatal: str
) -> None:
    home = make_home()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        smtp = ("127.0.0.1", busy.getsockname()[1]) if where == "a port in use" else (where, 0)
        with pytest.raises(daemon.MtaError, match="did not start listening"):
            daemon.start(home, smtp, {}, programs=("tcpserver",))
    log = (home / "log" / "mta.log").read_text()
    assert log.splitlines() == [f"tcpserver: fatal: {fatal}"]
