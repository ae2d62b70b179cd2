"""Connects that find a full accept queue wait in line: in order, until their deadline or
the listener's close, and a flood of them costs work linear in its size."""

from __future__ import annotations

import errno

import pytest
import simpy
import simpy.events

from sim.kernel.costs import Costs
from sim.kernel.simnet import Network
from sim.kernel.simwait import alarms

LATENCY = 0.01


def network() -> tuple[simpy.Environment, Network]:
    env = simpy.Environment()
    return env, Network(env, Costs.free().with_overrides({"net_latency": LATENCY}))


def client(env, net, n: int, log: list, at: float = 0.0, timeout: float | None = None):
    """Connect at `at`; log (n, when, local port) or (n, when, the error)."""
    yield env.timeout(at)
    try:
        conn = yield net.connect("a.example", "b.example", 25, timeout=timeout)
    except OSError as exc:
        log.append((n, env.now, exc))
    else:
        log.append((n, env.now, conn.local[1]))


def accept_at(env, listener, times, accepted: list, start: float = 0.0):
    """Accept once at each of `times` (the first wait scheduled at `start`)."""
    yield env.timeout(start)
    for t in times:
        yield env.timeout(t - env.now)
        conn = yield listener.accept()
        accepted.append(conn.remote[1])


def test_a_full_backlog_lets_waiting_connects_in_first_come_first_served():
    """The backlog's worth get in at once; each accept then lets in the longest waiter."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=2)
    log, accepted = [], []
    for n in reversed(range(5)):  # created in reverse, arriving in order 0..4
        env.process(client(env, net, n, log, at=n * 0.001))
    env.run(until=1)
    assert [n for n, _, _ in log] == [0, 1]  # the backlog's worth; the rest wait
    assert len(listener.listener.syns) == 3 and len(listener.listener.queue) == 2
    env.process(accept_at(env, listener, [1, 2, 3], accepted))
    env.run(until=2)
    assert [n for n, _, _ in log] == [0, 1, 2]
    env.run()
    assert [n for n, _, _ in log] == [0, 1, 2, 3, 4]
    assert [when for _, when, _ in log[2:]] == pytest.approx(
        [1 + LATENCY, 2 + LATENCY, 3 + LATENCY]
    )
    ports = {n: port for n, _, port in log}
    assert accepted == [ports[0], ports[1], ports[2]]  # each accept took the queue's head
    line = listener.listener
    assert not line.syns and line.reserved == 0
    assert [endpoint.remote[1] for endpoint in line.queue] == [ports[3], ports[4]]


def test_a_newcomer_does_not_take_the_room_promised_to_the_head_of_the_line():
    """Client 2's SYN lands in the instant the accept at 1 s lets client 1 in, before
    client 1 has queued: the room is reserved, so client 2 waits for the next accept."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    log, accepted = [], []
    env.process(client(env, net, 0, log))
    env.process(client(env, net, 1, log))
    env.process(client(env, net, 2, log, at=1 - LATENCY))
    env.process(accept_at(env, listener, [1, 2, 3], accepted))
    env.run()
    assert [(n, when) for n, when, _ in log] == [
        (0, pytest.approx(2 * LATENCY)),
        (1, pytest.approx(1 + LATENCY)),
        (2, pytest.approx(2 + LATENCY)),
    ]
    assert accepted == [port for _, _, port in log]


def test_a_connect_waiting_in_line_times_out_and_leaves_nothing_behind():
    """The timed-out waiter leaves the line at once; the next one, admitted, drops its alarm."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    line, log, accepted = listener.listener, [], []
    env.process(client(env, net, 0, log))  # fills the queue
    env.process(client(env, net, 1, log, timeout=5.0))
    env.process(client(env, net, 2, log, at=6.0, timeout=100.0))
    env.process(accept_at(env, listener, [10, 11], accepted))
    env.run(until=5.5)
    (n, when, exc) = log[1]
    assert n == 1 and when == pytest.approx(5.0)
    assert isinstance(exc, TimeoutError) and exc.errno == errno.ETIMEDOUT
    assert not line.syns  # no stale ticket
    env.run(until=10.5)
    assert log[2][:2] == (2, pytest.approx(10 + LATENCY))  # got in at the first accept
    assert [alarm for alarm in alarms(env).heap if alarm[2] is not None] == []
    env.run()
    assert accepted == [log[0][2], log[2][2]]
    assert not line.syns and line.reserved == 0


@pytest.mark.parametrize("alarm_first", [False, True])
def test_room_at_the_very_deadline_admits_or_times_out_and_leaks_nothing(alarm_first):
    """Room appears at 5 s, the waiter's deadline: SimPy's event order decides who wins
    (the earlier-scheduled), and either way no reservation or ticket is left behind."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    log, accepted = [], []
    env.process(client(env, net, 0, log))
    env.process(client(env, net, 1, log, timeout=5.0))  # its alarm is set at LATENCY
    env.process(accept_at(env, listener, [5, 6, 7], accepted, start=1.0 if alarm_first else 0))
    env.process(client(env, net, 2, log, at=5.5))
    env.run()
    outcome = {n: what for n, _, what in log}
    if alarm_first:
        assert isinstance(outcome[1], TimeoutError) and log[1][1] == pytest.approx(5.0)
    else:
        assert isinstance(outcome[1], int) and log[1][1] == pytest.approx(5 + LATENCY)
    assert isinstance(outcome[0], int) and isinstance(outcome[2], int)
    assert accepted == [what for _, _, what in log if isinstance(what, int)]
    assert not listener.listener.syns and listener.listener.reserved == 0


def test_closing_the_listener_refuses_the_connects_in_line():
    """Without this they would wait forever on a listener nobody can reach again."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    log = []
    for n in range(3):
        env.process(client(env, net, n, log))
    env.run(until=1)
    assert len(listener.listener.syns) == 2
    listener.close()
    env.run()
    assert log[0][0] == 0 and isinstance(log[0][2], int)
    refused = log[1:]
    assert [n for n, _, _ in refused] == [1, 2]
    for _, when, exc in refused:
        assert isinstance(exc, ConnectionRefusedError) and exc.errno == errno.ECONNREFUSED
        assert 1.0 <= when <= 1.0 + 2 * LATENCY
    assert not listener.listener.syns


def test_a_flood_against_a_small_backlog_costs_linear_work(monkeypatch):
    """Each waiter must wake once when let in, not at every change (a thundering herd).

    Process resumptions are counted, not SimPy events: the old herd all slept on one shared
    event, so its event count was the same as now (11 per connect) while it resumed every
    waiter at every accept (257 resumptions per connect here, against 9 now)."""
    clients, resumes = 500, [0]
    resume = simpy.events.Process._resume

    def counted(self, event):
        resumes[0] += 1
        return resume(self, event)

    monkeypatch.setattr(simpy.events.Process, "_resume", counted)
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    log, accepted = [], []

    def acceptor():
        for _ in range(clients):
            conn = yield listener.accept()
            accepted.append(conn.remote[1])
            conn.close()

    for n in range(clients):
        env.process(client(env, net, n, log))
    env.process(acceptor())
    env.run()
    assert [n for n, _, _ in log] == list(range(clients))
    assert accepted == [port for _, _, port in log]
    assert resumes[0] < 20 * clients  # the herd made ~clients**2 / 2


def test_a_connect_stopped_as_it_is_let_in_gives_its_room_back():
    """A client killed in the instant it is admitted must not keep the room it was given."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    line, log, caught = listener.listener, [], []
    env.process(client(env, net, 0, log))  # takes the one place
    env.run(until=0.5)
    waiting = net.connect("a.example", "b.example", 25)

    def watch():
        try:
            yield waiting
        except simpy.Interrupt:
            caught.append(env.now)

    def accept_and_kill():
        line.queue.popleft()
        line.notify()  # lets the waiting connect in ...
        waiting.interrupt("killed")  # ... as it is stopped
        yield env.timeout(0)

    env.process(watch())
    env.run(until=1)
    assert len(line.syns) == 1
    env.process(accept_and_kill())
    env.run(until=2)
    assert caught == [1] and line.reserved == 0 and not line.syns
    env.process(client(env, net, 2, log))
    env.run(until=3)
    assert [n for n, _, _ in log] == [0, 2]


def test_a_connect_let_in_as_the_listener_closes_is_refused():
    """Admitted in the instant the listener closes: refused, not connected to nobody."""
    env, net = network()
    listener = net.listen("b.example", 25, backlog=1)
    line, log = listener.listener, []
    env.process(client(env, net, 0, log))
    env.process(client(env, net, 1, log, at=0.1))
    env.run(until=1)

    def accept_then_close():
        line.queue.popleft()
        line.notify()
        listener.close()
        yield env.timeout(0)

    env.process(accept_then_close())
    env.run(until=2)
    assert [n for n, _, _ in log] == [0, 1]
    assert isinstance(log[1][2], ConnectionRefusedError)
    assert log[1][2].errno == errno.ECONNREFUSED and line.reserved == 0
