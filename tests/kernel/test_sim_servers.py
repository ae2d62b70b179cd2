"""Booked FCFS servers: the same finish times as a `simpy.Resource`, and honest busy time."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given
from hypothesis import strategies as st

from sim.kernel.servers import Server

# Arrivals and durations on a quarter-second grid: many exact ties, no rounding noise.
QUARTERS = st.integers(0, 12).map(lambda n: n / 4)
JOBS = st.lists(st.tuples(QUARTERS, QUARTERS), min_size=1, max_size=25)


def booked_job(env, server: Server, arrival: float, seconds: float, ends: dict, n: int):
    yield env.timeout(arrival)
    yield server.hold(seconds)
    ends[n] = env.now


def resource_job(env, res: simpy.Resource, arrival: float, seconds: float, ends: dict, n: int):
    yield env.timeout(arrival)
    with res.request() as req:
        yield req
        yield env.timeout(seconds)
    ends[n] = env.now


def finish_times(jobs, units: int, booked: bool) -> tuple[list[float], simpy.Environment, Server]:
    env = simpy.Environment()
    server, res, ends = Server(env, units), simpy.Resource(env, capacity=units), {}
    for n, (arrival, seconds) in enumerate(jobs):
        if booked:
            env.process(booked_job(env, server, arrival, seconds, ends, n))
        else:
            env.process(resource_job(env, res, arrival, seconds, ends, n))
    env.run()
    return [ends[n] for n in range(len(jobs))], env, server


@given(jobs=JOBS, units=st.integers(1, 3))
def test_each_job_ends_when_a_simpy_resource_would_end_it(jobs, units):
    """The booking shortcut must reproduce the Resource it replaces, ties included."""
    booked, _, server = finish_times(jobs, units, booked=True)
    expected, _, _ = finish_times(jobs, units, booked=False)
    assert booked == pytest.approx(expected)
    assert server.busy() == pytest.approx(sum(seconds for _, seconds in jobs))
    assert server.count == 0


def test_busy_counts_only_the_service_given_so_far():
    """Jobs are booked ahead; busy() and count must not count what is still to come."""
    env = simpy.Environment()
    server = Server(env, 2)
    ends = [server.hold(3), server.hold(5), server.hold(2)]  # units: 0-3 then 3-5; 0-5
    seen = {}

    def probe():
        for t in (0, 1, 3, 4, 5, 7):
            yield env.timeout(t - env.now)
            seen[t] = (server.count, server.busy())

    env.process(probe())
    env.run()
    assert all(end.processed for end in ends)
    assert seen[0] == (2, 0.0)
    assert seen[1] == (2, pytest.approx(2.0))
    assert seen[3] == (2, pytest.approx(6.0))  # the third job has just started
    assert seen[4] == (2, pytest.approx(8.0))
    assert seen[5] == (0, pytest.approx(10.0))
    assert seen[7] == (0, pytest.approx(10.0))


def test_a_job_waits_for_the_unit_that_frees_first():
    env = simpy.Environment()
    server = Server(env, 2)
    server.hold(4)
    server.hold(1)
    third = server.hold(2)  # starts at 1 on the second unit, not at 4
    env.run(third)
    assert env.now == pytest.approx(3.0)


@pytest.mark.parametrize("units", [0, -1])
def test_a_server_needs_a_unit(units):
    with pytest.raises(ValueError, match="at least one unit"):
        Server(simpy.Environment(), units)


def test_stop_cancels_the_service_booked_ahead():
    """A power cut: what was booked but not yet served neither runs nor counts as busy."""
    env = simpy.Environment()
    disk = Server(env, 2)
    for seconds in (3, 5, 2):
        disk.hold(seconds)
    env.run(until=1)
    disk.stop()
    assert disk.count == 0 and disk.busy() == pytest.approx(2)  # two units, one second each
    env.run(until=10)
    assert disk.busy() == pytest.approx(2)
    done = disk.hold(1)
    env.run(until=done)
    assert env.now == pytest.approx(11) and disk.busy() == pytest.approx(3)
