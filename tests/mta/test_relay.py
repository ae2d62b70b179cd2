"""Relay protection, live: the classic relay-test battery against qmail-smtpd's rcpthosts.

qmail-smtpd decides one thing about a recipient: is the domain after its *last* `@`
(lowercased) in control/rcpthosts or morercpthosts, or is RELAYCLIENT set (tcpserver sets it
from etc/tcp.smtp)? Everything else in the battery only changes what that domain is.

Some tricks are *accepted*, as qmail accepts them, because the domain after the last `@` is
ours: `user%other.test@example.test`, `other.test!user@example.test`,
`"user@other.test"@example.test`. That is not a relay. Delivery is another program's job:
qmail-send treats the address as local (the domain is in locals), and only rewrites the
percent hack if control/percenthack lists the domain (it is empty by default); the local
part `user%other.test` is no user, so the message bounces. So the count that matters here is
the envelope qmail-queue writes: zero recipients whose domain is outside rcpthosts.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator

import pytest

from sim.mta import daemon
from sim.qmail.envelope import parse_queue_file
from sim.qmail.routing import RoutingConfig, rewrite
from tests.mta.conftest import WAIT, Mta, start_mta, wait_for
from tests.mta.smtp_client import ACCEPT, GO_AHEAD, NOGATEWAY, Client, crashes
from tests.mta.test_cli import qmailsim

OK = b"250 ok\r\n"

# (what the trick is, the RCPT argument, qmail-smtpd's reply by default, the stored recipient)
BATTERY: list[tuple[str, bytes, bytes, str | None]] = [
    ("plain relay", b"<user@other.test>", NOGATEWAY, None),
    ("percent hack", b"<user%other.test@example.test>", OK, "user%other.test@example.test"),
    ("percent hack, last", b"<user@other.test%example.test>", NOGATEWAY, None),
    ("bang path", b"<other.test!user@example.test>", OK, "other.test!user@example.test"),
    ("bang path, domain", b"<example.test!user@other.test>", NOGATEWAY, None),
    ("source route", b"<@example.test:user@other.test>", NOGATEWAY, None),
    ("source route, two hops", b"<@example.test,@example.test:user@other.test>", NOGATEWAY, None),
    ("quoted local part", b'<"user@other.test">', NOGATEWAY, None),
    ("quoted, then local", b'<"user@other.test"@example.test>', OK, "user@other.test@example.test"),
    (
        "escaped @, then local",
        b"<user\\@other.test@example.test>",
        OK,
        "user@other.test@example.test",
    ),
    ("local, then other", b"<user@example.test@other.test>", NOGATEWAY, None),
    ("trailing dot", b"<user@other.test.>", NOGATEWAY, None),
    ("trailing dot, local", b"<user@example.test.>", NOGATEWAY, None),
    ("IP literal, ours", b"<user@[127.0.0.1]>", OK, "user@example.test"),
    ("IP literal, ours mod 256", b"<user@[127.0.0.257]>", OK, "user@example.test"),
    ("IP literal, not ours", b"<user@[192.0.2.1]>", NOGATEWAY, None),
    (
        "percent hack via IP literal",
        b"<user%other.test@[127.0.0.1]>",
        OK,
        "user%other.test@example.test",
    ),
    ("upper case", b"<USER@OTHER.TEST>", NOGATEWAY, None),
    ("upper case, local", b"<USER@EXAMPLE.TEST>", OK, "USER@EXAMPLE.TEST"),
    ("empty domain", b"<user@>", NOGATEWAY, None),
    ("no domain", b"<user>", OK, "user"),
    ("null address", b"<>", OK, ""),
    ("subdomain", b"<user@mail.example.test>", NOGATEWAY, None),
    ("suffix without dot", b"<user@evilexample.test>", NOGATEWAY, None),
    ("local as a subdomain", b"<user@example.test.other.test>", NOGATEWAY, None),
    ("no angle brackets", b" user@other.test", NOGATEWAY, None),
    ("no angle brackets, local", b"user@example.test", OK, "user@example.test"),
    ("text after >", b"<user@other.test>@example.test", NOGATEWAY, None),
    ("two <", b"<<user@other.test>>", NOGATEWAY, None),
    ("escaped >", b"<user@other.test\\>@example.test>", OK, "user@other.test>@example.test"),
    ("comment", b"<user@other.test (example.test)>", NOGATEWAY, None),
    ("NUL", b"<user@other.test\0@example.test>", NOGATEWAY, None),
    ("localhost", b"<user@localhost>", NOGATEWAY, None),
    ("IPv6 literal", b"<user@[IPv6:::1]>", NOGATEWAY, None),
]


def run_battery(mta: Mta, battery=BATTERY) -> tuple[list[bytes], tuple[str, ...]]:
    """Every RCPT of the battery in one transaction: the replies, then the envelope queued."""
    with Client(mta) as c:
        c.reply()
        assert c.command(b"MAIL FROM:<spammer@else.test>") == OK
        replies = [c.command(b"RCPT TO:" + arg) for _, arg, _, _ in battery]
        if OK not in replies:
            return replies, ()
        assert c.command(b"DATA") == GO_AHEAD
        qp = int(ACCEPT.match(c.command(b"Subject: relay?\r\n\r\nx\r\n.")).group(2))
    return replies, parse_queue_file(mta.todo_for(qp).read_bytes()).recipients


def outside(recipient: str, rcpthosts: tuple[str, ...]) -> bool:
    """Is the domain after the last @ outside rcpthosts? (An independent reading of the rule.)"""
    if "@" not in recipient:
        return False
    domain = recipient.rsplit("@", 1)[1].lower()
    return not any(
        domain == host or (host.startswith(".") and domain.endswith(host)) for host in rcpthosts
    )


@pytest.fixture
def relay_home(make_home):
    """A home as `qmailsim mta init` makes it (rcpthosts = me = example.test), and a starter."""
    started: list = []

    def start(rules: str | None = None, **controls: str) -> Mta:
        home = make_home()
        if rules is not None:
            (home / "etc" / "tcp.smtp").write_text(rules)
        for name, text in controls.items():
            (home / "control" / name).write_text(text)
        started.append(mta := start_mta(home))
        return mta

    yield start
    for mta in started:
        daemon.stop(mta.home)
        assert crashes(mta) == []


@pytest.fixture
def default(relay_home) -> Iterator[Mta]:
    yield relay_home()


def test_the_default_configuration_relays_for_nobody(default: Mta) -> None:
    assert (default.home / "control" / "rcpthosts").read_text() == "example.test\n"
    replies, recipients = run_battery(default)
    for (name, _, expected, _), reply in zip(BATTERY, replies, strict=True):
        assert reply == expected, name
    assert recipients == tuple(stored for *_, stored in BATTERY if stored is not None)
    relayed = [r for r in recipients if outside(r, ("example.test",))]
    assert relayed == []  # zero unauthorised relays


def test_what_the_default_accepts_qmail_send_delivers_locally() -> None:
    """qmail-send's routing (pure) of every recipient the battery got accepted: all local,
    unless the admin lists the domain in control/percenthack (then the hack relays, as asked)."""
    config = RoutingConfig(envnoathost="example.test", locals=("example.test",))
    accepted = [stored for *_, stored in BATTERY if stored is not None]
    assert {rewrite(r, config).channel for r in accepted} == {"local"}
    hack = RoutingConfig(
        envnoathost="example.test", locals=("example.test",), percenthack=("example.test",)
    )
    assert rewrite("user%other.test@example.test", hack).address == "user@other.test"
    assert rewrite("user%other.test@example.test", hack).channel == "remote"


def test_tcprules_relayclient_lets_the_listed_client_relay_verbatim(relay_home) -> None:
    mta = relay_home('127.:allow,RELAYCLIENT=""\n:deny\n')
    replies, recipients = run_battery(mta)
    assert replies == [OK] * len(BATTERY)  # rcpthosts is not even consulted
    assert len(recipients) == len(BATTERY)
    assert recipients[:2] == ("user@other.test", "user%other.test@example.test")
    assert "USER@OTHER.TEST" in recipients and "user@[192.0.2.1]" in recipients


def test_relayclient_is_appended_to_every_recipient(relay_home) -> None:
    mta = relay_home('127.0.0.1:allow,RELAYCLIENT="@hub.test"\n')
    battery = [case for case in BATTERY if case[0] in ("plain relay", "no domain")]
    replies, recipients = run_battery(mta, battery)
    assert replies == [OK, OK]
    assert recipients == ("user@other.test@hub.test", "user@hub.test")


def test_relayclient_for_another_network_does_not_reach_us(relay_home) -> None:
    mta = relay_home('10.:allow,RELAYCLIENT=""\n192.0.2.7:allow,RELAYCLIENT=""\n127.:allow\n')
    replies, recipients = run_battery(mta)
    assert replies == [expected for _, _, expected, _ in BATTERY]
    assert [r for r in recipients if outside(r, ("example.test",))] == []


def test_relayclient_does_not_override_badmailfrom(relay_home) -> None:
    mta = relay_home('127.:allow,RELAYCLIENT=""\n', badmailfrom="@else.test\n")
    replies, recipients = run_battery(mta, BATTERY[:3])
    assert (
        replies == [b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"] * 3
    )
    assert recipients == ()


MORE = [
    ("listed", b"<user@other.test>", OK),
    ("listed, upper case", b"<USER@OTHER.TEST>", OK),
    ("subdomain of a plain line", b"<user@sub.other.test>", NOGATEWAY),
    ("subdomain of a dot line", b"<user@a.b.wild.test>", OK),
    ("dot line itself", b"<user@wild.test>", NOGATEWAY),
    ("not listed", b"<user@third.test>", NOGATEWAY),
    ("listed, trailing dot", b"<user@other.test.>", NOGATEWAY),
    ("percent hack to a listed domain", b"<user%third.test@other.test>", OK),
]


def test_morercpthosts_adds_domains_and_nothing_else(relay_home) -> None:
    mta = relay_home(morercpthosts="other.test\n.wild.test\n")
    battery = [(name, arg, expected, None) for name, arg, expected in MORE]
    replies, recipients = run_battery(mta, battery)
    for (name, _, expected), reply in zip(MORE, replies, strict=True):
        assert reply == expected, name
    allowed = ("example.test", "other.test", ".wild.test")
    assert len(recipients) == 4 and [r for r in recipients if outside(r, allowed)] == []


def test_rcpthosts_dot_line_covers_subdomains_only(relay_home) -> None:
    mta = relay_home(rcpthosts=".example.test\n")
    cases = [
        ("subdomain", b"<user@mail.example.test>", OK, None),
        ("the domain itself", b"<user@example.test>", NOGATEWAY, None),
        ("lookalike", b"<user@mail.example.test.other.test>", NOGATEWAY, None),
    ]
    replies, _ = run_battery(mta, cases)
    assert replies == [expected for _, _, expected, _ in cases]


def test_mta_start_refuses_an_open_relay_unless_asked(tmp_path) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    (home / "control" / "rcpthosts").unlink()
    refused = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
    assert refused.returncode == 100 and "--open-relay" in refused.stderr
    assert daemon.running_pid(daemon.Paths(home)) is None  # nothing was started
    started = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0", "--open-relay")
    try:
        assert started.returncode == 0, started.stderr
        port = int(re.search(r"SMTP on 127\.0\.0\.1:(\d+)", started.stdout).group(1))
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.mail("spammer@else.test")
            assert smtp.rcpt("victim@other.test")[0] == 250  # what the user asked for
    finally:
        assert qmailsim("mta", "stop", str(home)).returncode == 0


def relays(mta: Mta) -> bytes:
    """A new connection's reply to a recipient outside rcpthosts (b"" if it is dropped)."""
    with Client(mta) as c:
        if not c.reply():
            return b""
        assert c.command(b"MAIL FROM:<spammer@else.test>") == OK
        return c.command(b"RCPT TO:<user@other.test>")


def test_tcp_smtp_is_read_again_for_each_connection(relay_home) -> None:
    """tcpserver opens its rules for every connection: an edit applies to the next one."""
    mta = relay_home("127.:allow\n")
    rules, log = mta.home / "etc" / "tcp.smtp", mta.home / "log" / "mta.log"
    assert relays(mta) == NOGATEWAY
    rules.write_text('127.:allow,RELAYCLIENT=""\n')
    assert relays(mta) == OK
    rules.write_text("127.:deny\n")
    assert relays(mta) == b""  # tcpserver closes the connection before qmail-smtpd runs
    assert "dropping connection" not in log.read_text()  # a deny is no error


def test_tcp_smtp_made_while_the_mta_runs_counts_from_the_next_connection(relay_home) -> None:
    mta = relay_home()  # no etc/tcp.smtp at start: every client allowed, none relays
    rules = mta.home / "etc" / "tcp.smtp"
    assert not rules.exists() and relays(mta) == NOGATEWAY
    rules.write_text('127.:allow,RELAYCLIENT=""\n')
    assert relays(mta) == OK
    rules.unlink()
    assert relays(mta) == NOGATEWAY


@pytest.mark.parametrize(
    ("rules", "why"),
    [
        ("127.:allow\n127.0.0.1:bogus\n", "line 2: unable to parse this line: '127.0.0.1:bogus'"),
        (None, "is a directory"),  # a directory where the rules should be
    ],
)
def test_tcp_smtp_that_cannot_be_read_drops_the_connection_and_says_why(
    relay_home, rules: str | None, why: str
) -> None:
    mta = relay_home('127.:allow,RELAYCLIENT=""\n')
    path, log = mta.home / "etc" / "tcp.smtp", mta.home / "log" / "mta.log"
    if rules is None:
        path.unlink()
        path.mkdir()
    else:
        path.write_text(rules)
    assert relays(mta) == b""
    expected = f"tcpserver: warning: dropping connection, unable to read {path.resolve()}: {why}"
    wait_for(lambda: expected in log.read_text().splitlines(), "tcpserver's warning in mta.log")
    if path.is_dir():
        path.rmdir()
    path.write_text('127.:allow,RELAYCLIENT=""\n')
    assert relays(mta) == OK  # the server lives on: the next connection reads good rules
