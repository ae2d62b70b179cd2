"""Waits with deadlines: they time out when they should and leave nothing in SimPy's heap."""

from __future__ import annotations

import errno

import pytest
import simpy

from sim.kernel import effects as fx
from sim.kernel.costs import Costs
from sim.kernel.simwait import COMPACT_AT, Alarms, Waitable, wait_until
from tests.kernel.test_sim_kernel import Box

ROUNDS = 300


def chatty(argv, env):
    """A child writes one byte a second; we read each with qmail-smtpd's 1200 s timeout."""
    r, w = yield fx.Pipe()

    def child():
        for _ in range(ROUNDS):
            yield fx.Write(w, b"x")
            yield fx.Sleep(1)

    yield fx.Fork(child)
    for _ in range(ROUNDS):
        yield fx.Read(r, 1, timeout=1200)
    return 0


def test_reads_that_end_early_leave_no_timeouts_in_simpys_heap():
    box = Box({"t-chatty": chatty}, costs=Costs.free())
    proc = box.spawn("t-chatty")
    box.env.run(until=ROUNDS // 2)
    assert len(box.env._queue) < 10  # not one 1200 s timeout per read that was answered
    box.env.run()
    assert proc.status == 0


def waiter(env: simpy.Environment, timeout: float, ends: list[tuple[float, float]]):
    """Wait on something that never changes; note (deadline, when it timed out)."""
    deadline = env.now + timeout
    with pytest.raises(TimeoutError) as caught:
        yield from wait_until(env, lambda: False, [Waitable(env)], timeout)
    assert caught.value.errno == errno.ETIMEDOUT
    ends.append((deadline, env.now))


@pytest.mark.parametrize("timeouts", [(5, 1, 3), (1, 3, 5), (3, 3, 0.5)])
def test_each_wait_times_out_at_its_own_deadline_whatever_the_order(timeouts):
    env, ends = simpy.Environment(), []
    for n, timeout in enumerate(timeouts):
        env.process(_later(env, n * 0.25, waiter(env, timeout, ends)))
    env.run()
    assert len(ends) == len(timeouts)
    assert [end for _, end in ends] == pytest.approx([deadline for deadline, _ in ends])


def _later(env: simpy.Environment, delay: float, body):
    yield env.timeout(delay)
    yield from body


def test_a_wait_that_becomes_ready_is_not_timed_out_and_cancels_its_alarm():
    env, thing, done = simpy.Environment(), None, []
    thing = Waitable(env)
    state = {"ready": False}

    def wait():
        yield from wait_until(env, lambda: state["ready"], [thing], 10)
        done.append(env.now)

    def wake():
        yield env.timeout(2)
        state["ready"] = True
        thing.notify()

    env.process(wait())
    env.process(wake())
    env.run()
    assert done == [2]


def test_cancelled_alarms_are_dropped_when_they_are_most_of_the_heap():
    env, clock = simpy.Environment(), Alarms()
    alarms = [clock.set(env, 100.0 + n) for n in range(2 * COMPACT_AT)]
    for alarm in alarms[: COMPACT_AT + 1]:
        clock.cancel(alarm)
    assert len(clock.heap) == COMPACT_AT - 1 and clock.cancelled == 0
    env.run()
    assert [alarm[2].triggered for alarm in alarms[COMPACT_AT + 1 :]] == [True] * (COMPACT_AT - 1)


def test_a_wait_woken_for_nothing_keeps_its_deadline_and_leaves_no_watchers():
    """Changes that do not make it ready wake a wait; it waits on, and still times out."""
    env = simpy.Environment()
    a, b = Waitable(env), Waitable(env)
    ends: list[float] = []

    def wait():
        with pytest.raises(TimeoutError):
            yield from wait_until(env, lambda: False, [a, b], 10)
        ends.append(env.now)

    def poke():
        for thing in (a, b, a, a, b):
            yield env.timeout(1)
            thing.notify()

    env.process(wait())
    env.process(poke())
    env.run()
    assert ends == [10]
    assert a._wakes == {} and b._wakes == {}  # nothing left behind for the next waiter
    clock = env.__dict__["qmailsim_alarms"]
    assert all(alarm[2] is None or alarm[3] for alarm in clock.heap)


def test_the_first_of_several_changes_wakes_a_select_once():
    env = simpy.Environment()
    a, b, state = Waitable(env), Waitable(env), {"ready": False}
    woke: list[float] = []

    def wait():
        yield from wait_until(env, lambda: state["ready"], [a, b])
        woke.append(env.now)

    def both_at_once():
        yield env.timeout(2)
        state["ready"] = True
        a.notify()
        b.notify()  # the same wake: already fired, not fired again

    env.process(wait())
    env.process(both_at_once())
    env.run()
    assert woke == [2] and a._wakes == {} and b._wakes == {}
