"""The run's books in columns: what they sum agrees with their rows read back one by one."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model.arrivals import Arrival
from sim.model.clients import OutcomeBook
from sim.model.ledger import LogBook, Message, MessageBook, host_ledger

times = st.one_of(st.none(), st.floats(0, 1e6))
messages = st.builds(
    Message,
    host=st.sampled_from(["a.test", "b.test"]),
    id=st.one_of(st.none(), st.integers(1, 2**40)),
    origin=st.sampled_from(["workload", "bounce", "relay"]),
    n=st.one_of(st.none(), st.integers(1, 10**6)),
    sender=st.sampled_from(["", "bob@a.test", "#@[]"]),
    size=st.one_of(st.none(), st.integers(0, 10**7)),
    qp=st.one_of(st.none(), st.integers(1, 2**31)),
    birth=times,
    end=times,
    bounced=st.booleans(),
)


@given(st.lists(messages, max_size=40))
def test_a_message_book_reads_back_and_sums_as_its_rows(given: list[Message]) -> None:
    book = MessageBook()
    for m in given:
        book.append(m)
    assert list(book) == given
    assert book.statuses() == Counter((m.origin, m.status) for m in given)
    assert book.qtimes() == [m.qtime for m in given if m.qtime is not None]


def test_a_book_row_changes_in_place() -> None:
    book = MessageBook()
    row = book.append(Message("a.test", 7, "relay", qp=100, birth=1.0))
    book.set(row, "origin", "workload")
    book.set(row, "end", 3.5)
    assert book[row] == Message("a.test", 7, "workload", qp=100, birth=1.0, end=3.5)
    assert book.statuses() == {("workload", "delivered"): 1} and book.qtimes() == [2.5]


def test_outcomes_keep_the_refusals_words_and_the_live_ones_as_they_are() -> None:
    book = OutcomeBook()
    arrivals = [Arrival(float(n), "a.test", "bob@x.test", ("al@a.test",), 100, "smtp", n)
                for n in (1, 2, 3)]  # fmt: skip
    (r1, o1), (r2, o2), (_, o3) = (book.start(a) for a in arrivals)
    o1.accepted, o1.reply, o1.qp, o1.done = True, "250 ok 1 qp 55", 55, 1.5
    o2.reply, o2.done = "554 sorry", 2.5
    o3.accepted, o3.qp = True, 77  # the dot was answered; QUIT not yet
    book.finish(r1)
    book.finish(r2)
    assert [o.arrival for o in book] == arrivals
    assert (book[0].accepted, book[0].qp, book[0].reply) == (True, 55, "")  # a qp says it
    assert (book[1].accepted, book[1].reply, book[1].done) == (False, "554 sorry", 2.5)
    assert book[2] is o3 and book[-1] is o3
    assert (book.refused(), book.sending()) == (1, 0)
    assert list(book.accepted()) == [
        ("a.test", 1, "bob@x.test", 55),
        ("a.test", 3, "bob@x.test", 77),
    ]


SAMPLE = Path(__file__).parent.parent / "data" / "qmail-send-sample.log"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 10**6), max_size=8))
def test_a_log_read_in_pieces_cut_anywhere_is_the_log_read_whole(cuts: list[int]) -> None:
    data = SAMPLE.read_bytes()
    whole = host_ledger("oracle.test", data, 0.0)
    book = LogBook("oracle.test", 0.0)
    points = sorted({c % len(data) for c in cuts})
    for start, end in zip([0, *points], [*points, len(data)], strict=True):
        book.feed(data[start:end])
    pieces = book.ledger()
    assert list(pieces.messages) == list(whole.messages)
    assert list(pieces.deliveries) == list(whole.deliveries)
    assert pieces.summary.counts == whole.summary.counts
    assert len(whole.messages) > 200 and whole.messages.statuses()[("bounce", "delivered")] > 0


def splogger(*lines: str) -> bytes:
    return b"".join(b"%d.000000 %s\n" % (n, line.encode()) for n, line in enumerate(lines, 1))


def test_a_message_preprocessed_again_is_one_message_and_its_last_info_says_whose() -> None:
    """A crash between `new msg` and `info msg`: qmail-send preprocesses it again; the
    second `info msg` names the qp of a bounce qmail-send injected."""
    log = splogger(
        "new msg 6",
        "info msg 6: bytes 10 from <a@b.test> qp 101 uid 7",
        "bounce msg 6 qp 102",
        "end msg 6",
        "new msg 7",
        "new msg 7",
        "info msg 7: bytes 20 from <> qp 102 uid 7",
        "end msg 7",
    )
    book = host_ledger("h.test", log, 0.0).messages
    assert [(m.id, m.origin, m.sender, m.size, m.qp, m.status) for m in book] == [
        (6, "relay", "a@b.test", 10, 101, "bounced"),
        (7, "bounce", "", 20, 102, "delivered"),
    ]
    assert (book[1].birth, book[1].end) == (5.0, 8.0)


def test_a_log_with_numbers_too_big_to_keep_skips_those_lines() -> None:
    big = 2**64
    log = splogger(
        f"new msg {big}",
        "new msg 1",
        f"info msg 1: bytes 10 from <a@b.test> qp {big} uid 7",
        f"starting delivery {big}: msg 1 to local a@b.test",
        f"delivery {big}: success: did_1+0+0/",
        "bounce msg 99 qp 5",
        "end msg 1",
    )
    ledger = host_ledger("h.test", log, 0.0)
    assert [(m.id, m.qp, m.size, m.bounced, m.status) for m in ledger.messages] == [
        (1, None, None, False, "delivered")  # no row for the bounce of a message not seen
    ]
    assert len(ledger.deliveries) == 0
    assert ledger.summary.counts["new"] == 1 and ledger.summary.counts["success"] == 0


def test_a_line_cut_short_by_a_crash_does_not_swallow_the_next_boots_first_line() -> None:
    book = LogBook("h.test", 0.0)
    book.feed(b"1.000000 new msg 5\n2.000000 info msg 5: bytes 1")  # the crash
    book.end_file()
    book.feed(b"3.000000 new msg 6\n4.000000 end msg 6\n")  # the next boot's first lines
    assert [(m.id, m.birth, m.end) for m in book.ledger().messages] == [
        (5, 1.0, None),
        (6, 3.0, 4.0),
    ]


def test_a_message_finished_again_after_a_crash_is_still_one_message() -> None:
    """qmail-send resumes a message at boot without a new `new msg`: its `end msg` (or a
    delivery started again) comes a second time, for an id no longer live."""
    log = splogger(
        "new msg 5",
        "info msg 5: bytes 10 from <a@b.test> qp 9 uid 7",
        "starting delivery 1: msg 5 to local a@b.test",
        "delivery 1: success: did_1+0+0/",
        "end msg 5",
        "starting delivery 1: msg 5 to local a@b.test",
        "delivery 1: success: did_1+0+0/",
        "end msg 5",
    )
    book = host_ledger("h.test", log, 0.0).messages
    assert [(m.id, m.origin, m.birth, m.end, m.qp, m.status) for m in book] == [
        (5, "relay", 1.0, 8.0, 9, "delivered")
    ]


def test_a_line_with_one_number_too_big_changes_nothing() -> None:
    big = 2**64
    log = splogger(
        "new msg 1",
        f"info msg 1: bytes {big} from <a@b.test> qp 42 uid 7",  # the qp alone would fit
        f"info msg 5: bytes 10 from <a@b.test> qp {big} uid 7",  # an id not seen before
        "new msg 5",
        "end msg 5",
    )
    book = host_ledger("h.test", log, 0.0).messages
    assert [(m.id, m.qp, m.size, m.sender, m.birth, m.status) for m in book] == [
        (1, None, None, None, 1.0, "queued"),
        (5, None, None, None, 4.0, "delivered"),
    ]
