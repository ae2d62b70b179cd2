"""The end of a SimKernel run: halt and shutdown leave nothing half-run; reap keeps it small."""

from __future__ import annotations

import gc
import sys

import pytest

from sim.kernel import effects as fx
from sim.kernel.costs import Costs
from sim.kernel.simkernel import PS_KEYS
from tests.kernel.test_sim_kernel import Box


def tidy(argv, env):
    """Hold a pipe and a listening port; close them in `finally` blocks around a long read."""
    r, w = yield fx.Pipe()
    yield fx.Listen("0.0.0.0", 2525)
    try:
        try:
            yield fx.Read(r)  # never returns: we hold the write end ourselves
        finally:
            yield fx.Close(w)
    finally:
        yield fx.Close(r)
        yield fx.Note("tidied")
    return 0


def parent_of_zombie(argv, env):
    """Fork a child that exits at once; never wait for it."""

    def child():
        return 3
        yield

    yield fx.Fork(child)
    yield fx.Sleep(100)
    return 0


def spin(argv, env):
    while True:
        yield fx.Getpid()


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list:
    """What Python reports as "Exception ignored in …" (a generator that ignored close)."""
    seen: list = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


def collect(box: Box) -> None:
    """Drop every reference to the run and let the garbage collector finalize it."""
    box.kernel.procs.clear()
    box.__dict__.clear()
    gc.collect()


@pytest.mark.filterwarnings("error")
def test_a_halted_program_whose_finally_makes_calls_ends_quietly(unraisable: list):
    box = Box({"t-tidy": tidy}, costs=Costs.free())
    proc = box.spawn("t-tidy")
    box.env.run(until=1)
    box.kernel.halt()
    box.env.run()
    assert (proc.state, proc.status) == ("exited", -9)
    assert proc.gen.gi_frame is None  # finished, not left suspended in its `finally`
    assert "tidied" not in box.kinds()  # a killed program runs no more system calls
    del proc
    collect(box)
    assert unraisable == []


@pytest.mark.filterwarnings("error")
def test_shutdown_stops_every_process_quietly_and_releases_what_it_held(unraisable: list):
    programs = {"t-tidy": tidy, "t-zombie": parent_of_zombie, "t-spin": spin}
    box = Box(programs, costs=Costs.free().with_overrides({"syscall": 0.25}), cores=1)
    tidy_proc, parent = box.spawn("t-tidy"), box.spawn("t-zombie")
    spinners = [box.spawn("t-spin"), box.spawn("t-spin")]  # one on the CPU, one queued for it
    box.env.run(until=10)
    (zombie,) = [p for p in box.kernel.procs.values() if p.ppid == parent.pid]
    assert zombie.state == "zombie" and box.kernel.net.listeners
    traced = len(box.events)

    assert box.kernel.cpu.count == 1  # a spinner's turn is booked ahead
    box.kernel.shutdown()

    assert box.kernel.cpu.count == 0  # cancelled, not left to run out
    assert box.kernel.cpu.busy() == pytest.approx(box.env.now)  # one core, busy all along
    assert {row["state"] for row in box.kernel.ps()} == {"exited"}
    assert [p.status for p in (tidy_proc, parent, *spinners)] == [-9] * 4
    assert all(p.gen.gi_frame is None for p in box.kernel.procs.values())
    assert box.kernel.net.listeners == {}  # the port is free again
    assert len(box.events) == traced  # untraced: the run is over
    box.env.run(until=20)  # nothing resumes: no program runs, the CPU is free
    assert len(box.events) == traced and box.kernel.cpu.count == 0
    del tidy_proc, parent, spinners, zombie
    collect(box)
    assert unraisable == []


def test_reap_drops_collected_processes_and_ps_keeps_their_rows():
    def waiter(argv, env):
        def child():
            yield fx.Sleep(1)

        def lazy_child():
            yield fx.Sleep(2)

        pid = yield fx.Fork(child)
        yield fx.Fork(lazy_child)  # never waited for: a zombie
        yield fx.Wait(pid)
        yield fx.Sleep(10)
        return 0

    def quick(argv, env):
        yield fx.Sleep(float(argv[1]))
        return 0

    box = Box({"t-waiter": waiter, "t-quick": quick}, costs=Costs.free())
    parent, early, late = (
        box.spawn("t-waiter"),
        box.spawn("t-quick", "2"),
        box.spawn("t-quick", "4"),
    )
    box.env.run(until=5)
    rows = box.kernel.ps()
    child, lazy = (p for p in box.kernel.procs.values() if p.ppid == parent.pid)

    assert box.kernel.reap(before=3) == 2
    assert sorted(box.kernel.procs) == sorted([parent.pid, late.pid, lazy.pid])
    assert child.pid not in box.kernel.procs and early.pid not in box.kernel.procs
    assert lazy.state == "zombie"  # not collected yet: kept
    assert box.kernel.ps() == rows
    box.env.run()
    assert box.kernel.reap() == 3 and box.kernel.procs == {}
    assert [row["state"] for row in box.kernel.ps()] == ["exited"] * 5


def test_reap_can_hand_the_rows_to_a_keeper_of_its_own():
    """The model keeps reaped rows in columns: `into` gets each row instead of `ps`."""

    def quick(argv, env):
        yield fx.Sleep(float(argv[1]))
        return 0

    box = Box({"t-quick": quick}, costs=Costs.free())
    done = [box.spawn("t-quick", str(n)) for n in (1, 2, 3)]
    box.env.run()
    expected = [row for row in box.kernel.ps() if row["pid"] in {p.pid for p in done[:2]}]
    kept: list[tuple] = []
    assert box.kernel.reap(before=2.5, into=kept.append) == 2
    assert [dict(zip(PS_KEYS, row, strict=True)) for row in kept] == expected
    assert box.kernel.reaped == [] and [r["pid"] for r in box.kernel.ps()] == [done[2].pid]
