"""qmail-send's scheduler without I/O: passes, slots, jobs, retries, and the plans it hands out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail import queue as q
from sim.qmail.bounce import bounce_paragraph
from sim.qmail.envelope import (
    EnvelopeError,
    encode_channel_file,
    encode_queue_file,
    mark_done,
    parse_channel_file,
)
from sim.qmail.lifecycle import failure_ops, mark_done_ops
from sim.qmail.retry import DYING_TEXT
from sim.qmail.routing import RoutingConfig
from sim.qmail.send import (
    Closed,
    Delivery,
    Finished,
    Scheduler,
    outcome_ops,
    preprocess_plan,
)
from sim.qmail.spawn import SpawnResult

ID = 26902  # split 15


def records(*addresses: str):
    return parse_channel_file(encode_channel_file(addresses))


def started(sched: Scheduler, channel: str = "local") -> Delivery:
    """Step once, expecting a delivery, and let its command reach the spawner."""
    step = sched.step(channel)
    assert isinstance(step, Delivery)
    sched.command_written(channel)
    return step


def open_due(sched: Scheduler, recs, *, retry=500.0, dying=False, now=0.0, channel="local"):
    assert sched.due_pass(channel, now) == ID
    sched.open_pass(channel, ID, "joe@a.example", recs, retry, dying)


def test_a_pass_starts_recipients_in_file_order_in_the_lowest_free_slots():
    sched = Scheduler({"local": 2, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x", "b@x", "c@x"))
    first = sched.step("local")
    assert first == Delivery(1, 0, "local", ID, "a@x", 0)
    assert sched.commands["local"] == b"\x0015/26902\0joe@a.example\0a@x\0"
    assert sched.step("local") is None  # one command buffered per channel
    sched.command_written("local")
    assert started(sched).recipient == "b@x"
    assert sched.step("local") is None  # both slots busy
    assert sched.status() == (2, 2, 0, 20, False)
    done = sched.finish("local", SpawnResult(0, "K", b"did 1+0+0\n"))
    assert done == Finished(first, "K", b"did 1+0+0\n", False, None)
    third = started(sched)
    assert (third.delid, third.delnum, third.recipient) == (3, 0, "c@x")


def test_the_channel_is_finished_when_the_file_is_read_and_every_recipient_done():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x", "b@x"))
    started(sched), started(sched)
    assert sched.step("local") is None  # the end of the file; two deliveries still hold the job
    assert sched.passes["local"] is None
    assert sched.finish("local", SpawnResult(0, "K", b"")).closed is None
    fin = sched.finish("local", SpawnResult(1, "D", b"no.\n"))
    assert fin.closed == Closed(ID, "local", True, 500.0)
    assert sched.jobs == 0 and not sched.queues["local"]


def test_a_deferral_requeues_the_message_at_the_retry_time_of_the_pass():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("remote", ID, 0)
    open_due(sched, records("a@y"), retry=400.0, channel="remote")
    started(sched, "remote")
    assert sched.step("remote") is None  # end of file, a delivery still running
    fin = sched.finish("remote", SpawnResult(0, "Z", b"try later\n"))
    assert fin.closed == Closed(ID, "remote", False, 400.0)
    assert sched.wakeup(1.0) == 400.0
    assert sched.due_pass("remote", 399.0) is None
    assert sched.due_pass("remote", 400.0) == ID


def test_done_records_are_skipped_by_the_next_pass():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    data = mark_done(encode_channel_file(["a@x", "b@x"]), 0)
    open_due(sched, parse_channel_file(data))
    assert started(sched).recipient == "b@x"


def test_a_pass_over_a_file_with_nothing_left_finishes_the_channel_at_once():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, parse_channel_file(mark_done(encode_channel_file(["a@x"]), 0)))
    assert sched.step("local") == Closed(ID, "local", True, 500.0)


def test_a_dying_job_turns_a_deferral_into_a_failure_with_qmails_sentence():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x"), dying=True)
    started(sched)
    sched.step("local")  # the end of the file
    fin = sched.finish("local", SpawnResult(0, "Z", b"mailbox busy\n"))
    assert (fin.status, fin.text, fin.dying_rewrite) == ("D", b"mailbox busy\n" + DYING_TEXT, True)
    assert fin.closed.finished


def test_a_mangled_report_defers():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x"))
    started(sched)
    sched.step("local")
    fin = sched.finish("local", SpawnResult(0, "?", b"huh"))
    assert fin.status == "?" and fin.closed == Closed(ID, "local", False, 500.0)


@pytest.mark.parametrize("delnum", [1, 9, 200])
def test_a_result_for_an_idle_or_missing_slot_is_out_of_range(delnum):
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x"))
    started(sched)
    assert sched.finish("local", SpawnResult(delnum, "K", b"")) is None


def test_alrm_makes_every_queued_message_due_now_in_order():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("remote", 2, 900.0)
    sched.add("remote", 1, 400.0)
    sched.run_now(50.0)
    assert sched.pending() == [("remote", 1, 50.0), ("remote", 2, 50.0)]
    assert sched.due_pass("remote", 50.0) == 1


def test_exitasap_starts_nothing_and_waits_for_running_deliveries():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    sched.add("local", ID + 1, 0)
    open_due(sched, records("a@x", "b@x"))
    started(sched)
    sched.exitasap = True
    assert sched.step("local") is None and sched.due_pass("local", 0) is None
    assert not sched.can_exit() and sched.wakeup(0) is None
    sched.finish("local", SpawnResult(0, "K", b""))
    assert sched.can_exit() and sched.status()[-1]


def test_a_dead_spawner_frees_qmail_send_to_exit():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add("local", ID, 0)
    open_due(sched, records("a@x"))
    started(sched)
    sched.spawn_died("local")
    assert sched.exitasap and sched.can_exit()


def test_a_pass_needs_a_free_job_slot():
    sched = Scheduler({"local": 1, "remote": 0})  # one job slot in all
    sched.add("local", ID, 0)
    sched.add("remote", ID + 1, 0)
    open_due(sched, records("a@x"))
    assert sched.due_pass("remote", 0) is None
    assert sched.wakeup(0) == 0  # the local pass can start a delivery now


def test_the_done_queue_is_served_when_due():
    sched = Scheduler({"local": 10, "remote": 20})
    sched.add_done(7, 123.0)
    assert sched.wakeup(0.0) == 123.0
    assert sched.due_done(122.0) is None and sched.due_done(123.0) == 7


CONFIG = RoutingConfig("a.example", ["a.example"], {"virt.example": "fred"})


def test_preprocessing_logs_info_msg_right_after_the_info_record():
    todo = encode_queue_file(100, 5678, "joe@a.example", ["bob", "x@virt.example", "y@far.example"])
    plan = preprocess_plan(ID, todo, 1234, CONFIG)
    assert [(r, rt.channel, rt.address) for r, rt in plan.routes] == [
        ("bob", "local", "bob@a.example"),
        ("x@virt.example", "local", "fred-x@virt.example"),
        ("y@far.example", "remote", "y@far.example"),
    ]
    kinds = [type(op).__name__ for op in plan.ops]
    at = kinds.index("Write")
    assert plan.ops[at].path == q.queue_path("info", ID)
    assert plan.ops[at + 1] == q.Log(
        f"info msg {ID}: bytes 1234 from <joe@a.example> qp 5678 uid 100"
    )
    assert plan.ops[at - 1] == q.Log(f"new msg {ID}")


def test_preprocessing_refuses_an_unknown_record_type():
    with pytest.raises(EnvelopeError):
        preprocess_plan(ID, b"u1\0p2\0Fa@b\0Xbad\0", 10, CONFIG)


def test_outcomes_mark_done_or_bounce_with_the_prepend_stripped():
    d = Delivery(5, 0, "local", ID, "fred-x@virt.example", 17)
    assert outcome_ops(Finished(d, "K", b"", False, None), CONFIG) == mark_done_ops(ID, "local", 17)
    assert outcome_ops(Finished(d, "Z", b"", False, None), CONFIG) == []
    para = bounce_paragraph("x@virt.example", b"Sorry.\n")
    failed = Finished(d, "D", b"Sorry.\n", False, None)
    assert outcome_ops(failed, CONFIG) == failure_ops(ID, "local", 17, para)


# -- the whole schedule, driven at random -------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    concurrency=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    messages=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4)).filter(lambda m: any(m)),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_every_recipient_is_done_exactly_once_and_slots_never_overflow(concurrency, messages, data):
    """Messages of random local/remote recipients; results K, Z or D at random, in any order."""
    caps = dict(zip(("local", "remote"), concurrency, strict=True))
    sched = Scheduler(caps)
    files: dict[tuple[str, int], bytes] = {}
    outcomes: dict[tuple[str, int, int], str] = {}
    for id, counts in enumerate(messages, 1):
        for channel, n in zip(("local", "remote"), counts, strict=True):
            if n:
                files[channel, id] = encode_channel_file(f"r{i}@h" for i in range(n))
                sched.add(channel, id, 0.0)
    running: dict[str, list[Delivery]] = {"local": [], "remote": []}
    finished_channels: set[tuple[str, int]] = set()
    now = 0.0
    for _ in range(2000):
        for channel in ("local", "remote"):
            id = sched.due_pass(channel, now)
            if id is not None:
                recs = parse_channel_file(files[channel, id])
                sched.open_pass(channel, id, "s@h", recs, now + 10, dying=False)
            step = sched.step(channel)
            if isinstance(step, Delivery):
                key = (channel, step.id, step.offset)
                assert key not in outcomes, "a done recipient was started again"
                assert all(d.offset != step.offset or d.id != step.id for d in running[channel])
                running[channel].append(step)
                sched.command_written(channel)
            elif isinstance(step, Closed) and step.finished:
                finished_channels.add((channel, step.id))
            assert sched.used(channel) <= caps[channel]
        busy = [c for c in running if running[c]]
        for _ in range(data.draw(st.integers(1, 2)) if busy else 0):
            busy = [c for c in running if running[c]]
            if not busy:
                break
            channel = data.draw(st.sampled_from(busy))
            d = running[channel].pop(data.draw(st.integers(0, len(running[channel]) - 1)))
            status = data.draw(st.sampled_from("KKZD"))
            fin = sched.finish(channel, SpawnResult(d.delnum, status, b""))
            assert fin is not None and fin.delivery == d
            if status in "KD":
                outcomes[channel, d.id, d.offset] = status
                files[channel, d.id] = mark_done(files[channel, d.id], d.offset)
            if fin.closed and fin.closed.finished:
                finished_channels.add((channel, d.id))
        if not busy:
            wake = sched.wakeup(now)
            if wake is None:
                break
            now = max(now, wake)
    assert finished_channels == set(files)
    assert len(outcomes) == sum(sum(counts) for counts in messages)
