"""Sockets between simulated hosts: programs listen and connect; the model's SimPy code too."""

from __future__ import annotations

import errno
import socket

import pytest
import simpy

from sim.kernel import effects as fx
from sim.kernel.costs import Costs
from sim.kernel.simkernel import SimKernel
from sim.kernel.simnet import Network
from sim.programs import registry

LATENCY = 0.01


def echo_server(argv, env):
    """Listen on port argv[1]; echo each of argv[2] connections until the client closes."""
    fd, port = yield fx.Listen("0.0.0.0", int(argv[1]))
    yield fx.Note("listening", {"port": port})
    for _ in range(int(argv[2])):
        conn, remote = yield fx.Accept(fd)
        local, peer = yield fx.Sockname(conn)
        yield fx.Note("accepted", {"remote": remote, "local": local, "peer": peer})
        while data := (yield fx.Read(conn)):
            yield fx.Write(conn, data)
        yield fx.Close(conn)
    return 0


def echo_client(argv, env):
    """Connect to argv[1]:argv[2], send argv[3], read the echo; exit 0 if it matched."""
    fd = yield fx.Connect(argv[1], int(argv[2]), timeout=30)
    local, remote = yield fx.Sockname(fd)
    yield fx.Note("connected", {"local": local, "remote": remote})
    yield fx.Write(fd, argv[3].encode())
    echo = yield fx.Read(fd)
    yield fx.Close(fd)
    return 0 if echo == argv[3].encode() else 1


registry.register("t-echo", "tests.kernel.test_sim_net:echo_server")
registry.register("t-echo-client", "tests.kernel.test_sim_net:echo_client")


def network(**overrides: float) -> tuple[simpy.Environment, Costs, Network, list[dict]]:
    env = simpy.Environment()
    costs = Costs.free().with_overrides({"net_latency": LATENCY, **overrides})
    return env, costs, Network(env, costs), []


def host(env, costs, net, events, name: str) -> SimKernel:
    return SimKernel(env, registry.resolve, host=name, costs=costs, net=net, trace=events.append)


def notes(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["kind"] == kind]


def test_echo_program_serves_a_simpy_client_with_the_network_delays():
    env, costs, net, events = network(dns=0.001, net_bandwidth=1e12)
    mx = host(env, costs, net, events, "mx.example")
    server = mx.spawn("t-echo", ["7", "1"], {})
    got: list = []

    def client():
        conn = yield net.connect("client.example", "mx.example", 7)
        got.append(("connected", env.now, conn.local, conn.remote))
        yield conn.send(b"ping\r\n")
        echo = yield conn.recv_until(b"\r\n")
        got.append(("echo", env.now, echo))
        conn.close()

    env.process(client())
    env.run()
    client_ip, mx_ip = net.hosts["client.example"], net.hosts["mx.example"]
    (_, at, local, remote) = got[0]
    assert at == pytest.approx(0.001 + 2 * LATENCY)  # DNS, then SYN and SYN-ACK
    assert local[0] == client_ip and remote == (mx_ip, 7)
    assert got[1][1:] == (pytest.approx(0.001 + 4 * LATENCY), b"ping\r\n")
    (accepted,) = notes(events, "accepted")
    assert accepted["remote"] == [client_ip, local[1]] and accepted["local"] == [mx_ip, 7]
    assert mx.procs[server].status == 0  # the client's close ended the echo loop


def test_a_program_talks_to_a_program_on_another_host_and_on_loopback():
    env, costs, net, events = network()
    mx, relay = (host(env, costs, net, events, n) for n in ("mx.example", "relay.example"))
    mx.spawn("t-echo", ["25", "2"], {})
    far = relay.spawn("t-echo-client", ["mx.example", "25", "hello"], {})
    near = mx.spawn("t-echo-client", ["127.0.0.1", "25", "loop"], {})
    env.run()
    assert relay.procs[far].status == 0 and mx.procs[near].status == 0
    remotes = {tuple(e["remote"]) for e in notes(events, "connected")}
    assert remotes == {(net.hosts["mx.example"], 25), ("127.0.0.1", 25)}


@pytest.mark.parametrize(
    ("target", "error", "after"),
    [
        ("mx.example", ConnectionRefusedError, 2 * LATENCY),  # nobody listens: SYN, RST
        ("nowhere.example", socket.gaierror, 0.0),
        ("down.example", TimeoutError, 5.0),
    ],
)
def test_failed_connects_from_the_model(target: str, error: type, after: float):
    env, _, net, _ = network()
    net.add_host("mx.example")
    net.add_host("down.example")
    net.down.add("down.example")
    failures: list = []

    def client():
        try:
            yield net.connect("client.example", target, 25, timeout=5.0)
        except OSError as exc:
            failures.append((type(exc), env.now))

    env.process(client())
    env.run()
    assert len(failures) == 1
    assert issubclass(failures[0][0], error) and failures[0][1] == pytest.approx(after)


def test_bandwidth_and_socket_buffer_pace_a_large_transfer():
    size, bandwidth = 1_250_000, 12.5e6
    env, _, net, _ = network(net_bandwidth=bandwidth, socket_buffer=size)
    listener = net.listen("b.example", 9)
    times: dict[str, float] = {}

    def sender():
        conn = yield net.connect("a.example", "b.example", 9)
        yield conn.send(b"x" * size)
        times["sent"] = env.now
        conn.close()

    def receiver():
        conn = yield listener.accept()
        total = 0
        while chunk := (yield conn.recv(size)):
            total += len(chunk)
        times["received"], times["bytes"] = env.now, total

    env.process(sender())
    env.process(receiver())
    env.run()
    assert times["sent"] == pytest.approx(2 * LATENCY)  # the buffer took it all at once
    assert times["bytes"] == size
    assert times["received"] == pytest.approx(3 * LATENCY + size / bandwidth)


def test_a_full_socket_buffer_blocks_the_sender_until_the_reader_reads():
    env, _, net, _ = network(socket_buffer=100, net_bandwidth=1e12)
    listener = net.listen("b.example", 9)
    times: dict[str, float] = {}

    def sender():
        conn = yield net.connect("a.example", "b.example", 9)
        yield conn.send(b"x" * 250)
        times["sent"] = env.now

    def receiver():
        conn = yield listener.accept()
        yield env.timeout(1)
        while (yield conn.recv(100)):
            if len(times) == 1:
                break

    env.process(sender())
    env.process(receiver())
    env.run()
    assert times["sent"] > 1  # two buffers' worth waited for the reader's first reads


def test_listen_on_port_zero_picks_an_ephemeral_port_and_a_taken_port_is_eaddrinuse():
    env, costs, net, events = network()

    def listener(argv, env):
        _, port = yield fx.Listen("0.0.0.0", 0)
        try:
            yield fx.Listen("0.0.0.0", port)
        except OSError as exc:
            return exc.errno
        return 0

    kernel = SimKernel(
        env, lambda name: (listener, None), host="h", costs=costs, net=net, trace=events.append
    )
    pid = kernel.spawn("t-listen", [], {})
    env.run()
    assert kernel.procs[pid].status == errno.EADDRINUSE
    port = events[0]["result"][1]
    assert 32768 <= port <= 60999
