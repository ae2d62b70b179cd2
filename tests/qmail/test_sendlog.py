"""qmail-send's log lines: formatters, the safe filter, TAI64N, the parser, qmailanalog metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.sendlog import (
    AlertLine,
    BounceMsg,
    Delivery,
    EndMsg,
    InfoMsg,
    LogLine,
    NewMsg,
    StartingDelivery,
    Status,
    StatusExiting,
    Tai64n,
    TripleBounce,
    WarningLine,
    alert,
    bounce_msg,
    delivery_report,
    end_msg,
    format_event,
    format_line,
    info_msg,
    new_msg,
    parse_event,
    parse_line,
    parse_log,
    safe,
    starting_delivery,
    status,
    status_exiting,
    triple_bounce,
    warning,
)
from sim.qmail.sendlog_metrics import Analyzer, analyze

SAMPLE = Path(__file__).parent.parent / "data" / "qmail-send-sample.log"


@pytest.fixture(scope="module")
def raw() -> bytes:
    return SAMPLE.read_bytes()


@pytest.fixture(scope="module")
def text(raw) -> str:
    return raw.decode("latin-1")


@pytest.fixture(scope="module")
def lines(raw):
    return parse_log(raw)


@pytest.mark.parametrize(
    ("untrusted", "logged"),
    [
        ("did 1+0+0\n", "did_1+0+0/"),
        ("a b\tc", "a_b_c"),
        ("100%", "100_"),
        ("\x7f\x1b\u00e9", "___"),
        (b"bytes\xff\n", "bytes_/"),
        ("cut\0here", "cut"),
        ("1.2.3.4 does not like recipient.\nRemote host said: 550 no\n",
         "1.2.3.4_does_not_like_recipient./Remote_host_said:_550_no/"),
    ],
)  # fmt: skip
def test_safe_filter_as_logsafe(untrusted, logged):
    assert safe(untrusted) == logged


LINES = [
    (status(2, 10, 3, 20), b"status: local 2/10 remote 3/20\n", Status(2, 10, 3, 20)),
    (
        status(0, 10, 1, 20, exitasap=True),
        b"status: local 0/10 remote 1/20 exitasap\n",
        Status(0, 10, 1, 20, True),
    ),
    (status_exiting(), b"status: exiting\n", StatusExiting()),
    (new_msg(457), b"new msg 457\n", NewMsg(457)),
    (
        info_msg(457, 1234, "joe@a", 5678, 100),
        b"info msg 457: bytes 1234 from <joe@a> qp 5678 uid 100\n",
        InfoMsg(457, 1234, "joe@a", 5678, 100),
    ),
    (
        info_msg(457, 1234, "", 5678, 100),
        b"info msg 457: bytes 1234 from <> qp 5678 uid 100\n",
        InfoMsg(457, 1234, "", 5678, 100),
    ),
    (
        starting_delivery(12, 457, "local", "fred@heaven.af.mil"),
        b"starting delivery 12: msg 457 to local fred@heaven.af.mil\n",
        StartingDelivery(12, 457, "local", "fred@heaven.af.mil"),
    ),
    (
        starting_delivery(13, 457, "remote", "joe smith@example.com"),
        b"starting delivery 13: msg 457 to remote joe_smith@example.com\n",
        StartingDelivery(13, 457, "remote", "joe_smith@example.com"),
    ),
    (
        delivery_report(12, "K", b"did 1+0+0\n"),
        b"delivery 12: success: did_1+0+0/\n",
        Delivery(12, "success", "did_1+0+0/"),
    ),
    (
        delivery_report(13, "Z", b""),
        b"delivery 13: deferral: \n",
        Delivery(13, "deferral", ""),
    ),
    (
        delivery_report(14, "D", b"Sorry, no mailbox here by that name. (#5.1.1)\n"),
        b"delivery 14: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/\n",
        Delivery(14, "failure", "Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"),
    ),
    (
        delivery_report(15, "X", b"junk"),
        b"delivery 15: report mangled, will defer\n",
        Delivery(15, "mangled"),
    ),
    (bounce_msg(457, 5690), b"bounce msg 457 qp 5690\n", BounceMsg(457, 5690)),
    (end_msg(457), b"end msg 457\n", EndMsg(457)),
    (triple_bounce(457), b"triple bounce: discarding bounce/457\n", TripleBounce(457)),
    (
        alert("lost_spawn"),
        b"alert: oh no! lost spawn connection! dying...\n",
        AlertLine("oh no! lost spawn connection! dying..."),
    ),
    (
        alert("opendir", dir="todo"),
        b"alert: unable to opendir todo, sleeping...\n",
        AlertLine("unable to opendir todo, sleeping..."),
    ),
    (
        alert("start_spawn"),
        b"alert: cannot start: hath the daemon spawn no fire?\n",
        AlertLine("cannot start: hath the daemon spawn no fire?"),
    ),
    (
        warning("mark", fn="local/15/26902"),
        b"warning: trouble marking local/15/26902; message will be delivered twice!\n",
        WarningLine("trouble marking local/15/26902; message will be delivered twice!"),
    ),
    (
        warning("clean", fn="foop/26902"),
        b"warning: qmail-clean unable to clean up foop/26902\n",
        WarningLine("qmail-clean unable to clean up foop/26902"),
    ),
]


@pytest.mark.parametrize(("written", "line", "event"), LINES)
def test_log_line_written_parsed_and_rebuilt(written, line, event):
    assert written == line
    assert parse_line(line) == LogLine(event)
    assert format_event(event) == line


def test_tai64n_label_decodes_like_tai64nlocal():
    stamp = Tai64n.parse("@400000006b074cac2f647434")
    assert stamp == Tai64n(0x6B074CAC - 10, 0x2F647434)
    assert stamp.seconds == 1795640482  # 2026-11-25 21:01:22 UTC
    assert stamp.t == pytest.approx(1795640482.795112)
    assert stamp.label() == "@400000006b074cac2f647434"


def test_tai64n_from_time():
    assert Tai64n.from_time(1795640482.5) == Tai64n(1795640482, 500_000_000)
    assert Tai64n.from_time(0).label() == "@400000000000000a00000000"


@pytest.mark.parametrize(
    "bad",
    [
        b"hello world",
        b"new msg 0457",
        b"new msg -1",
        b"new msg 457 ",
        b"delivery 1: success: did 1+0+0",
        b"delivery 1: success: 100%",
        b"starting delivery 1: msg 2 to nowhere a@b",
        b"status: local 1/10 remote 0/20 exitsoon",
        b"@4000 new msg 1",
        b"@400000006b074cac2f647434",
        b"@400000006B074CAC2F647434 new msg 1",
        b"",
    ],
)
def test_line_not_in_qmail_send_form_is_bad_input(bad):
    with pytest.raises(BadInput):
        parse_line(bad)


def test_stamped_line_round_trips():
    line = b"@400000006b074cac2f647434 new msg 1451746\n"
    parsed = parse_line(line)
    assert parsed == LogLine(NewMsg(1451746), Tai64n(1795640482, 0x2F647434))
    assert format_line(parsed) == line


# -- the sample log --------------------------------------------------------------------------------


def test_sample_parses_every_line(raw, lines):
    assert len(lines) == 2117 == raw.count(b"\n")
    assert all(line.stamp is not None for line in lines)


def test_sample_round_trips_byte_for_byte(raw, lines):
    assert b"".join(format_line(line) for line in lines) == raw


def test_sample_counts_match_the_raw_text(text, lines):
    summary = analyze(lines)
    expected = {
        "new": text.count(" new msg "),
        "end": text.count(" end msg "),
        "bounce": text.count(" bounce msg "),
        "triple_bounce": text.count(" triple bounce: "),
        "started": text.count(" starting delivery "),
        "success": text.count(": success: "),
        "deferral": text.count(": deferral: "),
        "failure": text.count(": failure: "),
        "mangled": text.count(": report mangled, will defer"),
        "alert": text.count(" alert: "),
        "warning": text.count(" warning: "),
    }
    assert summary.counts == expected
    assert (expected["new"], expected["end"], expected["bounce"]) == (249, 250, 49)
    assert sum(isinstance(line.event, NewMsg) for line in lines) == expected["new"]


def test_sample_every_started_delivery_has_exactly_one_result(text, lines):
    started = re.findall(r" starting delivery (\d+): ", text)
    finished = re.findall(r" delivery (\d+): (?:success|deferral|failure|report mangled)", text)
    assert sorted(started) == sorted(finished)
    assert len(set(started)) == len(started) == 330
    deliveries = analyze(lines).deliveries
    assert len(deliveries) == 330
    assert all(d.started is not None and d.outcome is not None for d in deliveries)


def test_sample_deferrals_are_the_exit_111_recipient(lines):
    deferred = [d for d in analyze(lines).deliveries if d.outcome == "deferral"]
    assert len(deferred) == 7
    assert {d.started.recipient for d in deferred} == {"alice-defer@oracle.test"}


def test_sample_concurrency_matches_status_lines(text, lines):
    reported = [
        (int(a), int(b)) for a, b in re.findall(r" status: local (\d+)/10 remote (\d+)/20", text)
    ]
    computed = [(p.local, p.remote) for p in analyze(lines).concurrency]
    assert computed == reported
    assert len(computed) == 660


def _gap(a: str, b: str) -> float:
    """Seconds between two TAI64N labels, computed by hand."""
    return (int(b[1:17], 16) - int(a[1:17], 16)) + (int(b[17:], 16) - int(a[17:], 16)) / 1e9


def test_sample_qtime_ddelay_xdelay_of_first_message(lines):
    summary = analyze(lines)
    first = summary.messages[0]
    assert (first.id, first.size, first.sender) == (1451746, 1404, "bob@oracle.test")
    assert (first.qp, first.bounced) == (9301, True)  # nosuchuser@ made it bounce
    assert first.qtime == pytest.approx(
        _gap("@400000006b074cac2f647434", "@400000006b074cac30d3ee6c"), abs=1e-6
    )
    d = summary.deliveries[0]
    assert (d.delivery, d.outcome, d.started.recipient) == (
        12807,
        "failure",
        "nosuchuser@oracle.test",
    )
    assert d.ddelay == pytest.approx(
        _gap("@400000006b074cac2f8a0564", "@400000006b074cac30809294"), abs=1e-6
    )
    assert d.xdelay == pytest.approx(
        _gap("@400000006b074cac2f647434", "@400000006b074cac30809294"), abs=1e-6
    )


def test_sample_reused_queue_ids_are_separate_messages(text, lines):
    messages = analyze(lines).messages
    lives = [m for m in messages if m.id == 1451746]
    assert len(lives) == text.count(" new msg 1451746\n")
    assert len(lives) >= 2
    assert lives[1].sender == "bob@oracle.test" and lives[1].size == 427


def test_sample_delays_are_consistent(lines):
    summary = analyze(lines)
    with_birth = [d for d in summary.deliveries if d.birth is not None]
    assert with_birth
    assert all(0 <= d.ddelay <= d.xdelay for d in with_birth)
    qtimes = [m.qtime for m in summary.messages if m.qtime is not None]
    assert len(qtimes) == 249  # the one end msg without its new msg has no qtime
    assert all(q >= 0 for q in qtimes)


def test_sample_column_figures_match_the_records(text, lines):
    """The tables' own sums (used for a day's summary) agree with their records, row by row."""
    from collections import Counter

    summary = analyze(lines)
    messages, deliveries = summary.messages, summary.deliveries
    assert messages.qtimes() == [m.qtime for m in messages if m.qtime is not None]
    assert deliveries.ddelays() == [d.ddelay for d in deliveries if d.ddelay is not None]
    assert deliveries.xdelays() == [d.xdelay for d in deliveries if d.xdelay is not None]
    by_records = Counter((d.started.channel if d.started else "?", d.outcome) for d in deliveries)
    assert deliveries.done() == by_records
    assert by_records[("local", "success")] > 0 and by_records[("remote", "failure")] > 0
    assert messages[-1] == list(messages)[-1] and messages[:2] == [messages[0], messages[1]]
    bounced = re.findall(r" bounce msg (\d+) qp ", text)
    assert sum(m.bounced for m in messages) == len(bounced) == 49


@pytest.mark.parametrize("cut", [0, 1, 4, 29, 500, 1337, 2116])
def test_sample_fed_in_two_parts_with_a_summary_between_is_the_whole(lines, cut):
    """A log read as it is written (a summary asked for part way) ends as one read whole."""
    whole = analyze(lines)
    analyzer = Analyzer()
    analyzer.feed(lines[:cut])
    early = analyzer.summary()
    assert len(early.deliveries) == len(analyze(lines[:cut]).deliveries)  # unfinished included
    analyzer.feed([])  # nothing new: the summary stays what it was
    assert analyzer.summary() is early
    analyzer.feed(lines[cut:])
    last = analyzer.summary()
    part = analyze(lines[:cut])
    assert list(early.messages) == list(part.messages)  # held while more was fed
    assert list(early.deliveries) == list(part.deliveries)
    assert list(last.messages) == list(whole.messages)
    assert list(last.deliveries) == list(whole.deliveries)
    assert list(last.concurrency) == list(whole.concurrency)
    assert last.counts == whole.counts


def test_unfinished_delivery_and_message_are_kept_open():
    log = [
        LogLine(NewMsg(1), Tai64n(100)),
        LogLine(StartingDelivery(1, 1, "remote", "a@b"), Tai64n(101)),
        LogLine(Delivery(9, "success", "x"), Tai64n(102)),
    ]
    summary = analyze(log)
    assert summary.messages[0].qtime is None
    assert [(d.delivery, d.outcome, d.ddelay) for d in summary.deliveries] == [
        (9, "success", None),
        (1, None, None),
    ]
    assert [(p.t, p.local, p.remote) for p in summary.concurrency] == [(101.0, 0, 1)]
    assert summary.deliveries.done() == {("?", "success"): 1, ("remote", None): 1}


# -- properties ------------------------------------------------------------------------------------

untrusted = st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda s: s[:40]))
numbers = st.integers(0, 10**12)


def _printable_field(field: bytes) -> bool:
    return all(33 <= b <= 126 and b != 37 for b in field)


@settings(max_examples=200, deadline=None)
@given(numbers, numbers, st.sampled_from(["local", "remote"]), untrusted)
def test_recipient_field_is_always_printable(delivery, id, channel, recipient):
    line = starting_delivery(delivery, id, channel, recipient)
    prefix = f"starting delivery {delivery}: msg {id} to {channel} ".encode()
    assert line.startswith(prefix) and line.endswith(b"\n")
    assert _printable_field(line[len(prefix) : -1])
    assert format_event(parse_event(line[:-1].decode("latin-1"))) == line


@settings(max_examples=200, deadline=None)
@given(numbers, st.sampled_from("KZD"), untrusted)
def test_report_field_is_always_printable(delivery, letter, text):
    line = delivery_report(delivery, letter, text)
    field = line[:-1].split(b": ", 2)[2]
    assert b"\n" not in line[:-1]
    assert _printable_field(field)
    assert format_event(parse_event(line[:-1].decode("latin-1"))) == line


@settings(max_examples=200, deadline=None)
@given(numbers, numbers, untrusted, numbers, numbers)
def test_sender_field_is_always_printable(id, size, sender, qp, uid):
    line = info_msg(id, size, sender, qp, uid)
    field = line.split(b" from <", 1)[1].rsplit(b"> qp ", 1)[0]
    assert _printable_field(field)
    assert parse_line(line) == LogLine(InfoMsg(id, size, safe(sender), qp, uid))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.sampled_from([x[1] for x in LINES])))
def test_parser_raises_nothing_but_bad_input(data):
    try:
        parsed = parse_line(data)
    except BadInput:
        return
    assert format_line(parsed) == (data if data.endswith(b"\n") else data + b"\n")


def test_concurrency_points_are_kept_in_columns_and_read_back_as_points() -> None:
    lines = [
        LogLine(parse_event("starting delivery 1: msg 5 to local a@x")),  # unstamped
        LogLine(parse_event("starting delivery 2: msg 5 to remote b@y"), Tai64n(100)),
        LogLine(parse_event("delivery 1: success: did_1+0+0/"), Tai64n(101)),
    ]
    points = analyze(lines).concurrency
    assert len(points) == 3
    assert [(p.t, p.local, p.remote) for p in points] == [
        (None, 1, 0), (100.0, 1, 1), (101.0, 0, 1)
    ]  # fmt: skip
    assert points[-1] == points[2] and next(reversed(points)) == points[2]
