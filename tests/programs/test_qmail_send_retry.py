"""qmail-send as real processes: the retry schedule, queuelifetime, ALRM, TERM, HUP, limits.

The harness and the fake spawners are in `test_qmail_send`. Tests that wait for a retry run
with QMAILSIM_TIMESCALE=0.001 (the first remote retry at 0.4 s); tests that show a signal
makes something happen run on qmail's own clock, where nothing else would for 400 s.
"""

from __future__ import annotations

import pytest

from sim.qmail.bounce import parse_bounce
from sim.qmail.queue import queue_path

from .test_qmail_send import make_home, msg_id, queue_is_empty, running_mtas, stamped

FAST = "0.001"


@pytest.fixture
def mtas():
    yield from running_mtas()


def stamp_of(mta, text: str) -> float:
    """When splogger stamped the first log line equal to `text`."""
    return next(t for t, line in mta.stamped_log() if line == text)


def test_a_deferral_is_retried_on_qmails_schedule_until_delivered(tmp_path, mtas):
    mta = mtas(make_home(tmp_path), timescale=FAST)
    mta.inject("alice@test.example", "flaky@far.example")
    mta.wait_for("delivery 1: deferral: Mailbox_busy._(#4.2.1)/")
    id = msg_id(mta.log(), "new msg")
    birth = (mta.queue / queue_path("info", id)).stat().st_mtime
    start = f"starting delivery 2: msg {id} to remote flaky@far.example"
    mta.wait_for(start)
    assert stamp_of(mta, start) >= birth + 0.4  # (0 + 20)**2 units of 1 ms
    mta.wait_for("delivery 2: deferral: Mailbox_busy._(#4.2.1)/")
    (mta.home / "up").touch()
    third = f"starting delivery 3: msg {id} to remote flaky@far.example"
    mta.wait_for(third)
    assert stamp_of(mta, third) >= birth + 1.6  # (20 + 20)**2
    mta.wait_for("delivery 3: success: did_1+0+0/")
    mta.wait_for(lambda: queue_is_empty(mta.home))
    assert mta.stop() == 0


def test_past_queuelifetime_a_deferral_becomes_a_failure_and_bounces(tmp_path, mtas):
    mta = mtas(make_home(tmp_path, queuelifetime="300"), timescale=FAST)
    mta.inject("alice@test.example", "defer@far.example")
    mta.wait_for("delivery 1: deferral: Mailbox_busy._(#4.2.1)/")
    mta.wait_for(lambda: any(line.startswith("bounce msg") for line in mta.log()))
    assert (
        "delivery 2: failure: Mailbox_busy._(#4.2.1)/I'm_not_going_to_try_again;"
        "_this_message_has_been_in_the_queue_too_long./"
    ) in mta.log()
    mta.wait_for(lambda: list((mta.home / "got").glob("alice@test.example-*")))
    (path,) = (mta.home / "got").glob("alice@test.example-*")
    text = path.read_bytes()
    bounce = parse_bounce(text[text.index(b"\n") + 1 :])
    assert bounce.recipients == (
        (
            "defer@far.example",
            b"Mailbox busy. (#4.2.1)\n"
            b"I'm not going to try again; this message has been in the queue too long.\n",
        ),
    )
    assert mta.stop() == 0


def test_alrm_retries_a_deferred_message_at_once(tmp_path, mtas):
    mta = mtas(make_home(tmp_path))  # qmail's clock: the next try would be 400 s away
    mta.inject("alice@test.example", "defer@far.example")
    mta.wait_for("delivery 1: deferral: Mailbox_busy._(#4.2.1)/")
    id = msg_id(mta.log(), "new msg")
    mta.kill("ALRM")
    mta.wait_for(f"starting delivery 2: msg {id} to remote defer@far.example")
    assert mta.stop() == 0


def test_term_waits_for_running_deliveries_and_keeps_retry_times_for_the_restart(tmp_path, mtas):
    home = make_home(tmp_path)
    mta = mtas(home)
    mta.inject("alice@test.example", "slow@test.example", "defer@far.example")
    mta.wait_for(lambda: any("deferral" in line for line in mta.log()))
    id = msg_id(mta.log(), "new msg")
    mta.kill("TERM")
    mta.wait_for(lambda: any(e["kind"] == "signal" for e in mta.events()))
    assert mta.status is None and not any("exiting" in line for line in mta.log())
    (home / "release").touch()
    assert mta.wait_exit() == 0
    log = mta.log()
    success = next(line for line in log if "success" in line)
    assert log[log.index(success) :] == [
        success,
        "status: local 0/10 remote 0/20 exitasap",
        "status: exiting",
    ]
    birth = (home / "queue" / queue_path("info", id)).stat().st_mtime
    remote = home / "queue" / queue_path("remote", id)
    assert remote.stat().st_mtime == pytest.approx(birth + 400, abs=1e-3)
    assert not (home / "queue" / queue_path("local", id)).exists()
    mta.stop()
    again = mtas(home)
    again.kill("ALRM")
    again.wait_for(lambda: any(line.startswith("starting delivery 1: msg") for line in again.log()))
    assert f"starting delivery 1: msg {id} to remote defer@far.example" in again.log()
    assert again.stop() == 0


def test_hup_rereads_virtualdomains(tmp_path, mtas):
    home = make_home(tmp_path)
    mta = mtas(home)
    mta.inject("alice@test.example", "dude@virt.example")
    mta.wait_for(lambda: any(" to remote dude@virt.example" in line for line in mta.log()))
    (home / "control" / "virtualdomains").write_text("virt.example:fred\n")
    mta.kill("HUP")
    mta.wait_for(lambda: any(e["kind"] == "reread" for e in mta.events()))
    mta.inject("alice@test.example", "dude@virt.example")
    mta.wait_for(lambda: any(" to local fred-dude@virt.example" in line for line in mta.log()))
    assert mta.stop() == 0


def test_concurrency_is_capped_by_control_and_by_the_spawners_byte(tmp_path, mtas):
    home = make_home(tmp_path, concurrencylocal="2")
    mta = mtas(home, rspawn="t-spawner remote 1")
    assert mta.log() == ["status: local 0/2 remote 0/1"]
    locals_ = [f"slow{i}@test.example" for i in range(4)]
    mta.inject("alice@test.example", *locals_, "slow1@far.example", "slow2@far.example")
    mta.wait_for("status: local 2/2 remote 1/1")
    (home / "release").touch()
    mta.wait_for(lambda: sum("success" in line for line in mta.log()) == 6)
    statuses = [line.split() for line in mta.log() if line.startswith("status: local")]
    assert max(int(s[2].split("/")[0]) for s in statuses) == 2
    assert max(int(s[4].split("/")[0]) for s in statuses) == 1
    assert mta.stop() == 0


def test_a_spawner_without_its_handshake_byte_stops_qmail_send(tmp_path, mtas):
    mta = mtas(make_home(tmp_path), lspawn="t-nofire")
    assert mta.wait_exit() == 111
    assert mta.log() == ["alert: cannot start: hath the daemon spawn no fire?"]
    mta.stop()


def test_a_lost_spawner_makes_qmail_send_leave(tmp_path, mtas):
    mta = mtas(make_home(tmp_path))
    mta.inject("alice@test.example", "crash@far.example")
    assert mta.wait_exit() == 0
    log = mta.log()
    assert log[-2:] == ["alert: oh no! lost spawn connection! dying...", "status: exiting"]
    mta.stop()


def test_log_lines_carry_splogger_stamps(tmp_path, mtas):
    mta = mtas(make_home(tmp_path))
    raw = (mta.home / "log" / "qmail-send.log").read_text()
    stamp, _ = stamped(raw.splitlines()[0])
    seconds, _, micros = raw.split(" ", 1)[0].partition(".")
    assert len(micros) == 6 and int(seconds) == int(stamp)
    assert mta.stop() == 0
