"""Fuzz targets: every parser in sim/qmail, fed anything, raises nothing but BadInput.

`sim.qmail.errors` splits faults: a `BadInput` (or subclass) is the peer's or the user's
mistake, told in qmail's words; any other exception is a bug of ours. Each target below draws
arbitrary bytes or text, mixed with the tokens its grammar cares about so that hypothesis
reaches the interesting corners (a `<` in an address, a `T` record after `F`, a `,VAR=` in a
rule), and calls the parser. A failure prints the input that broke it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.programs import tcpserver
from sim.qmail import (
    address,
    bounce,
    clean,
    control,
    dotqmail,
    envelope,
    inject,
    inject_address,
    inject_header,
    inject_token822,
    local,
    maildir,
    mbox,
    pop3,
    pop3d,
    popup,
    queue,
    remote,
    sendlog,
    spawn,
    tcprules,
    users,
)
from sim.qmail.constants import ADDRESS_MAX_SMTPD
from sim.qmail.errors import BadInput
from sim.qmail.smtp_data import DataDecoder
from sim.qmail.smtpd import SmtpdConfig, SmtpdSession, SmtpdState

text = st.text(alphabet=st.characters(codec="latin-1"), max_size=120)
data = st.binary(max_size=200)


def near(*tokens: bytes | str) -> st.SearchStrategy:
    """Arbitrary input, or a string built from `tokens` (and a few odd bytes) in any order."""
    if isinstance(tokens[0], bytes):
        extra: tuple = (b"\0", b"\n", b"\r", b" ", b"x", b"\xff")
        built = st.lists(st.sampled_from(tokens + extra), max_size=40).map(b"".join)
        return data | built
    extra = ("\0", "\n", "\r", " ", "x", "\xff")
    return text | st.lists(st.sampled_from(tokens + extra), max_size=40).map("".join)


def chunks(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(strategy, max_size=6)


CONTROL = control.load_control({"me": "example.test"})
SMTPD = SmtpdConfig(
    greeting="example.test",
    rcpthosts=frozenset({"example.test", ".example.test"}),
    morercpthosts=frozenset({"more.test"}),
    badmailfrom=frozenset({"@bad.test"}),
    local_ips=frozenset({"127.0.0.1"}),
    localiphost="example.test",
    databytes=64,
)


# -- the drivers for parsers that take input in pieces --------------------------------------


def smtp_address(arg: bytes) -> None:
    parsed = address.addrparse(arg, ["127.0.0.1"], "example.test")
    assert parsed is None or ("\0" not in parsed and len(parsed) < ADDRESS_MAX_SMTPD)
    if parsed is not None:
        address.rcpthosts_verdict(parsed, SMTPD.rcpthosts, SMTPD.morercpthosts)
        address.in_badmailfrom(parsed, SMTPD.badmailfrom)


def smtpd_session(pieces: list[bytes]) -> None:
    """qmail-smtpd fed the pieces; qmail-queue starts and succeeds; nothing but replies."""
    s = SmtpdSession(SMTPD)
    s.start()
    for piece in pieces:
        if s.state is SmtpdState.CLOSED:
            return
        s.receive(piece)
        while s.state in (SmtpdState.QUEUE_STARTING, SmtpdState.QUEUE_CLOSING):
            if s.state is SmtpdState.QUEUE_STARTING:
                s.queue_started(812345679)
            else:
                s.queue_result(0, 7, 812345679)
    if s.state is not SmtpdState.CLOSED:
        s.eof()


def data_decoder(pieces: list[bytes]) -> None:
    decoder = DataDecoder(databytes=32)
    for piece in pieces:
        if decoder.done:
            return
        decoder.feed(piece)


def envelope_reader(pieces: list[bytes]) -> None:
    reader = envelope.EnvelopeReader()
    for piece in pieces:
        reader.feed(piece)
    reader.eof()


def pop3_commands(pieces: list[bytes]) -> None:
    reader = pop3.CommandReader()
    for piece in [*pieces, b""]:
        if reader.at_eof:
            return
        reader.receive_data(piece)
        while reader.next_command() is not None:
            pass


def popup_session(pieces: list[bytes]) -> None:
    session = popup.Popup("example.test", 42, 812345679)
    session.greeting()
    for piece in [*pieces, b""]:
        session.receive_data(piece)
        while True:
            out = session.next_output()
            if isinstance(out, popup.Authenticate):
                session.checkpassword_reply(1)
            elif isinstance(out, pop3.Exit):
                return
            elif out is pop3.NEED_DATA:
                break


def pop3d_session(pieces: list[bytes]) -> None:
    entries = [
        pop3d.MaildirEntry("1.2.h", "new", 10, 1),
        pop3d.MaildirEntry("3.h:2,S", "cur", 7, 2),
    ]
    session = pop3d.Pop3d(entries, 812345679)
    session.greeting()
    for piece in [*pieces, b""]:
        session.receive_data(piece)
        while True:
            out = session.next_output()
            if isinstance(out, pop3d.NeedMessage):
                session.message(b"Subject: x\n\n.body\n")
            elif isinstance(out, pop3d.Quit):
                session.quit_reply()
                return
            elif isinstance(out, pop3.Exit):
                return
            elif out is pop3.NEED_DATA:
                break


def remote_session(pieces: list[bytes]) -> None:
    session = remote.RemoteSession("192.0.2.1", "example.test", "bob@example.test", ["a@b.test"])
    for piece in pieces:
        session.receive_data(piece)


def spawn_streams(pieces: list[bytes]) -> None:
    commands, results = spawn.CommandParser(), spawn.ResultParser()
    for piece in pieces:
        commands.feed(piece)
        results.feed(piece)


def tcp_rules(rules: str, ip: str, host: str | None) -> None:
    tcprules.match_rules(tcprules.parse_tcprules(rules), ip, host, None)


def control_files(files: dict[str, str | bytes]) -> None:
    control.load_control(files)


def qmail_inject(message: bytes, args: list[str], env: dict[str, str]) -> None:
    inject.inject(message, ["qmail-inject", *args], env, CONTROL, 812345679.0, 42)


def inject_addresses(addr: str) -> None:
    config = inject_address.inject_config(CONTROL, {})
    inject_address.rewrite_address(addr, config)
    inject_address.rewrite_sender_option(addr, config)
    inject_token822.unparse(inject_token822.tokenize(addr))


# -- the targets: name -> (strategy for the arguments, the call) ------------------------------

SMTP_TOKENS = (b"MAIL FROM:", b"RCPT TO:", b"<", b">", b"@", b"DATA\r\n", b"\r\n", b".")
RFC822 = ("<", ">", '"', "\\", "@", ":", ",", ";", "(", ")", "[", "]", ".", "a", "\t")
TARGETS: dict[str, tuple[st.SearchStrategy, Callable[..., object]]] = {
    "addrparse": (
        st.tuples(near(b"<", b">", b'"', b"\\", b"@", b":", b",", b"[127.0.0.1]", b"[1.2.3.4]")),
        smtp_address,
    ),
    "smtpd session": (st.tuples(chunks(near(*SMTP_TOKENS))), smtpd_session),
    "blast": (st.tuples(chunks(near(b"\r\n", b".", b"Received: x\r\n"))), data_decoder),
    "qmail-inject address": (st.tuples(near(*RFC822)), inject_addresses),
    "qmail-inject message": (
        st.tuples(
            near(b"To: ", b"Cc: ", b"Bcc: ", b"From: ", b"Resent-To: ", b"a@b", b"<", b">", b","),
            st.lists(near("-f", "-a", "-h", "-n", "a@b", "<"), max_size=3),
            st.dictionaries(st.sampled_from(["QMAILUSER", "QMAILHOST", "QMAILINJECT"]), text),
        ),
        qmail_inject,
    ),
    "parse_envelope": (
        st.tuples(near(b"F", b"T", b"\0", b"a@b", b"a" * 1003)),
        envelope.parse_envelope,
    ),
    "EnvelopeReader": (st.tuples(chunks(near(b"F", b"T", b"\0", b"a@b"))), envelope_reader),
    "parse_queue_file": (
        st.tuples(near(b"u", b"p", b"F", b"T", b"\0", b"7")),
        envelope.parse_queue_file,
    ),
    "parse_info": (st.tuples(near(b"F", b"\0")), envelope.parse_info),
    "parse_channel_file": (st.tuples(near(b"T", b"D", b"\0")), envelope.parse_channel_file),
    "parse_dotqmail": (
        st.tuples(near(b"|", b"&", b"#", b"./", b"/", b"+list", b"\t")),
        dotqmail.parse_dotqmail,
    ),
    "load_dotqmail": (
        st.tuples(
            st.none() | near(b"|", b"&", b"./Maildir/", b"\t"), near("./Maildir/", "|", "\n")
        ),
        dotqmail.load_dotqmail,
    ),
    "load_control": (
        st.tuples(
            st.dictionaries(
                st.sampled_from(sorted(control.CONTROL_FILES)),
                near("1", "#", ":", ".", "\t", "a.test:relay:25", "65536") | data,
            )
        ),
        control_files,
    ),
    "tcprules": (
        st.tuples(
            near(
                "127.", "10.0.0.1-7", ":", "allow", "deny", ",", "RELAYCLIENT=", '"', "=", "@", "#"
            ),
            near("127.0.0.1", "."),
            st.none() | near("=", ".", "host.test"),
        ),
        tcp_rules,
    ),
    "users/assign": (
        st.tuples(near("=", "+", ":", ".", "7791", "alice", "/home")),
        users.parse_assign,
    ),
    "qmail-getpw output": (st.tuples(near(b"\0", b"7791", b"alice", b"/home")), users.parse_nughde),
    "parse_bounce": (
        st.tuples(near(b"Hi. This is the", b"\n", b"<a@b>:", b"-", b"/", b"Return-Path: <", b">")),
        bounce.parse_bounce,
    ),
    "sendlog": (
        st.tuples(near(b"@4000000065a1b2c30a1b2c3d ", b"new msg ", b"1", b"status: local ", b"/")),
        sendlog.parse_log,
    ),
    "pop3 command reader": (st.tuples(chunks(near(b"user ", b"retr ", b"\r\n"))), pop3_commands),
    "qmail-popup": (
        st.tuples(chunks(near(b"user ", b"pass ", b"apop ", b"quit", b"\r\n"))),
        popup_session,
    ),
    "qmail-pop3d": (
        st.tuples(
            chunks(near(b"retr ", b"top ", b"dele ", b"list ", b"uidl", b"1", b"-1", b"\r\n"))
        ),
        pop3d_session,
    ),
    "checkpassword input": (st.tuples(near(b"\0", b"alice", b"x" * 500)), pop3.parse_checkpassword),
    "qmail-clean command": (
        st.tuples(near(b"foop", b"todo", b"/", b"12", b"\0")),
        clean.parse_clean_command,
    ),
    "qmail-clean reply": (st.tuples(near(b"+", b"!", b"x")), clean.parse_clean_reply),
    "queue path": (st.tuples(near("mess", "todo", "/", "12", "0", "22")), queue.parse_queue_path),
    "maildir entry": (st.tuples(near("new", "cur"), near(".", ":2,", "/")), maildir.parse_entry),
    "mbox": (st.tuples(near(b"From ", b">From ", b"\n")), mbox.split_mbox),
    "qmail-local argv": (
        st.tuples(st.lists(near("-n", "-N", "--", "/home"), max_size=10)),
        local.parse_args,
    ),
    "qmail-remote replies": (
        st.tuples(chunks(near(b"250", b"-", b"220 ", b"354 ", b"\r\n"))),
        remote_session,
    ),
    "spawn streams": (st.tuples(chunks(near(b"\0", b"K", b"Z", b"D"))), spawn_streams),
    "header split": (
        st.tuples(near(b"a: b\n", b"\n", b" x", b"From x")),
        inject_header.split_message,
    ),
    "tcpserver argv": (
        st.tuples(st.lists(near("-1", "-c", "-x", "-u", "-l", "0", "25"), max_size=8)),
        lambda args: tcpserver.parse_args(["tcpserver", *args]),
    ),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(suppress_health_check=[HealthCheck.too_slow])  # examples: the profile's
@given(st.data())
def test_parser_raises_nothing_but_bad_input(name: str, data: st.DataObject) -> None:
    strategy, parse = TARGETS[name]
    args = data.draw(strategy, label="arguments")
    with contextlib.suppress(BadInput):
        parse(*args)


# -- a few invariants of the parsers this suite may fix (address, tcprules) -------------------


@settings(max_examples=200, deadline=None)
@given(near(b"<", b">", b'"', b"\\", b"@", b":", b"\0", b"a" * 300))
def test_addrparse_never_lets_a_nul_or_900_bytes_into_the_envelope(arg: bytes) -> None:
    parsed = address.addrparse(arg)
    assert parsed is None or ("\0" not in parsed and len(parsed) < ADDRESS_MAX_SMTPD)
    assert (parsed is None) == (len(address.extract_address(arg)) >= ADDRESS_MAX_SMTPD)


@settings(max_examples=200, deadline=None)
@given(near("127.", "10.0.0.1-300", ":", "allow", "deny", ",", "X=", '"', "\n", "#"))
def test_tcprules_range_expansion_stays_small(rules: str) -> None:
    try:
        table = tcprules.parse_tcprules(rules).table
    except BadInput:
        return
    assert len(table) <= 256 * max(1, rules.count("\n") + 1)
