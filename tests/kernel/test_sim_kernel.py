"""SimKernel runs the same effect programs as RealKernel, in virtual time, with the same results."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import simpy

import tests.kernel.progs  # noqa: F401  (registers the tiny programs)
from sim.kernel import effects as fx
from sim.kernel import memfs, trace
from sim.kernel.costs import Costs
from sim.kernel.io import read_all
from sim.kernel.real import RealKernel
from sim.kernel.simkernel import Proc, SimKernel
from sim.programs import registry


class Box:
    """A SimKernel on a fresh environment, its trace, and a table of inline programs."""

    def __init__(self, programs: dict[str, Callable] | None = None, **kernel: Any) -> None:
        self.env = simpy.Environment()
        self.events: list[dict] = []
        self.programs = dict(programs or {})
        self.kernel = SimKernel(
            self.env, self.resolve, host="sim.example", trace=self.events.append, **kernel
        )

    def resolve(self, name: str):
        if name in self.programs:
            return self.programs[name], None
        return registry.resolve(name)

    def spawn(self, prog: str, *argv: str, user: str | None = None, **kw: Any) -> Proc:
        return self.kernel.procs[self.kernel.spawn(prog, list(argv), {}, user, **kw)]

    def run(self, prog: str, *argv: str, user: str | None = None, **kw: Any) -> Proc:
        proc = self.spawn(prog, *argv, user=user, **kw)
        self.env.run()
        return proc

    def kinds(self, pid: int | None = None) -> list[str]:
        return [e["kind"] for e in self.events if pid is None or e["pid"] == pid]


def costs(**only: float) -> Costs:
    """Every cost zero but the ones named: exact arithmetic on virtual time."""
    return Costs.free().with_overrides(only)


# -- the programs of tests/kernel/progs.py, as test_real_kernel.py runs them --------------


def test_fork_exec_pipe_carries_bytes_and_exit_status():
    box = Box()
    parent = box.run("t-parent", "hello", user="root")
    assert parent.status == 7
    kinds = [(e["prog"], e["kind"]) for e in box.events]
    assert ("t-parent", "fork") in kinds
    assert ("t-parent", "exec") in kinds  # the child, before exec, still runs t-parent
    assert ("t-writer", "write") in kinds
    assert ("t-parent", "heard") in kinds
    said = next(e for e in box.events if e["kind"] == "said")
    assert said["uid"] == "qmaild" and said["why"] == "asked to"
    parent_pid = next(e["pid"] for e in box.events if e["kind"] == "fork")
    assert said["ppid"] == parent_pid and said["pid"] != parent_pid


def test_failed_call_is_thrown_into_program_and_traced_with_errno():
    box = Box()
    assert box.run("t-open", "/missing").status == 3
    (opened,) = [e for e in box.events if e["kind"] == "open"]
    assert opened["err"] == "ENOENT"


def test_setuid_program_keeps_real_account():
    box = Box()
    assert box.run("t-whoami", user="qmaild").status == 0
    (who,) = [e for e in box.events if e["kind"] == "whoami"]
    assert (who["user"], who["uid_"]) == ("qmaild", 7791)
    assert (who["uid"], who["prog"]) == ("qmailq", "t-whoami")


def test_bug_in_child_looks_like_a_crash_to_the_parent():
    box = Box()
    assert box.run("t-crash-parent").status == 9
    assert any(e["kind"] == "crash" and "RuntimeError" in e["traceback"] for e in box.events)
    crashed = next(p for p in box.kernel.procs.values() if p.prog == "t-crasher")
    assert crashed.status == -9 and isinstance(crashed.error, RuntimeError)


def test_strict_kernel_raises_a_program_bug():
    box = Box(strict=True)
    box.spawn("t-crasher")
    with pytest.raises(RuntimeError, match="bug"):
        box.env.run()


def test_every_effect_has_a_sim_handler():
    assert set(Box().kernel.dispatch) == set(fx.ALL_EFFECTS)


def _program_level(events: list[dict]) -> list[tuple[str, ...]]:
    """Each process's calls in order, pids renamed by first appearance: comparable traces."""
    names: dict[int, int] = {}
    rows = []
    for e in events:
        if e["kind"] == "exit" and e.get("status") is not None and e["prog"] != "?":
            continue  # SimKernel also traces implicit exits, RealKernel does not
        number = names.setdefault(e["pid"], len(names))
        rows.append((str(number), e["prog"], e["uid"], e["kind"], e.get("err", "")))
    return sorted(rows, key=lambda row: row[0])


def test_program_level_trace_matches_real_kernel(tmp_path: Path):
    path = tmp_path / "trace.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    real = RealKernel(registry.resolve, host="sim.example", trace_fd=fd)
    try:
        assert real.run("t-parent", ["hello"], {"PATH": os.environ["PATH"]}, user="root") == 7
    finally:
        os.close(real.trace_fd)  # the kernel owns the descriptor it was given
    real_events = list(trace.read_events(path.read_text().splitlines()))
    box = Box()
    box.run("t-parent", "hello", user="root")
    assert _program_level(box.events) == _program_level(real_events)


# -- pipes ----------------------------------------------------------------------------


def reader(argv, env):
    """Fork a writer that sleeps argv[1] seconds, then writes; read everything."""
    r, w = yield fx.Pipe()

    def child():
        yield fx.Close(r)
        yield fx.Sleep(float(argv[1]))
        yield fx.Write(w, b"x" * int(argv[2]))
        yield fx.Note("wrote")

    yield fx.Fork(child)
    yield fx.Close(w)
    data = yield from read_all(r)
    yield fx.Note("got", {"n": len(data)})
    return 0


def test_reader_blocks_until_the_writer_writes_then_sees_eof():
    box = Box({"t-reader": reader}, costs=Costs.free())
    proc = box.spawn("t-reader", "5", "3")
    box.env.run(until=4)
    assert proc.state == "blocked"
    box.env.run()
    reads = [(e["t"], e["n"]) for e in box.events if e["kind"] == "read"]
    assert reads == [(5, 3), (5, 0)]  # the data, then end of file when the writer exits
    assert next(e for e in box.events if e["kind"] == "got")["n"] == 3


def test_writer_blocks_while_the_pipe_is_full():
    def slow_reader(argv, env):
        r, w = yield fx.Pipe()

        def child():
            yield fx.Close(r)
            yield fx.Write(w, b"y" * 25)
            yield fx.Note("written")

        yield fx.Fork(child)
        yield fx.Close(w)
        got = b""
        while chunk := (yield fx.Read(r, 4)):
            yield fx.Sleep(1)
            got += chunk
        return len(got)

    box = Box({"t-slow": slow_reader}, costs=costs().with_overrides({"pipe_capacity": 10}))
    proc = box.run("t-slow")
    assert proc.status == 25
    written = next(e for e in box.events if e["kind"] == "written")
    assert written["t"] == 3  # 10 fit at once; the reads at 0, 1, 2 and 3 s made room for 15


def test_eof_waits_for_every_copy_of_the_write_end():
    def holder(argv, env):
        r, w = yield fx.Pipe()

        def child():
            yield fx.Sleep(3)  # holds its copy of w (and r) for 3 s

        yield fx.Fork(child)
        yield fx.Close(w)
        yield fx.Read(r)
        yield fx.Note("eof")
        return 0

    box = Box({"t-holder": holder}, costs=Costs.free())
    box.run("t-holder")
    assert next(e["t"] for e in box.events if e["kind"] == "eof") == 3


def attempt(*calls: fx.Effect):
    """A program that makes `calls` in order and exits with the errno of the one that fails."""

    def main(argv, env):
        results = []
        for call in calls:
            try:
                results.append((yield call))
            except OSError as exc:
                return exc.errno or 255
        return 0

    return main


ERRNO_CASES = {
    "close of a closed fd": ([fx.Close(9)], errno.EBADF),
    "write to a pipe nobody reads": ([fx.Pipe(), fx.Close(3), fx.Write(4, b"x")], errno.EPIPE),
    "read from a write end": ([fx.Pipe(), fx.Read(4)], errno.EBADF),
    "seek on a pipe": ([fx.Pipe(), fx.Seek(3, 0)], errno.ESPIPE),
    "fsync a pipe": ([fx.Pipe(), fx.Fsync(3)], errno.EINVAL),
    "read timeout": ([fx.Pipe(), fx.Read(3, timeout=2)], errno.ETIMEDOUT),
    "open missing": ([fx.Open("/nope")], errno.ENOENT),
    "exclusive create of an existing file": (
        [fx.Open("/f", "w", create=True), fx.Open("/f", "w", exclusive=True)],
        errno.EEXIST,
    ),
    "mkdir existing": ([fx.Mkdir("/d"), fx.Mkdir("/d")], errno.EEXIST),
    "mkdir under a file": ([fx.Open("/f", "w", create=True), fx.Mkdir("/f/d")], errno.ENOTDIR),
    "unlink a directory": ([fx.Mkdir("/d"), fx.Unlink("/d")], errno.EISDIR),
    "unlink missing": ([fx.Unlink("/nope")], errno.ENOENT),
    "link onto an existing name": (
        [fx.Open("/a", "w", create=True), fx.Link("/a", "/a")],
        errno.EEXIST,
    ),
    "open a directory for writing": ([fx.Mkdir("/d"), fx.Open("/d", "w")], errno.EISDIR),
    "read a write-only file": ([fx.Open("/f", "w", create=True), fx.Read(3)], errno.EBADF),
    "chdir to a file": ([fx.Open("/f", "w", create=True), fx.Chdir("/f")], errno.ENOTDIR),
    "trigger without qmail-send": (
        [fx.Mkfifo("/trigger"), fx.Open("/trigger", "w", nonblock=True)],
        errno.ENXIO,
    ),
    "nonblocking read of an empty fifo": (
        [fx.Mkfifo("/p"), fx.Open("/p", "rw"), fx.Open("/p", "r", nonblock=True), fx.Read(4)],
        errno.EAGAIN,
    ),
    "too many open files": ([fx.Pipe()] * 511, errno.EMFILE),
    "wait without children": ([fx.Wait()], errno.ECHILD),
    "kill a process that never was": ([fx.Kill(99999, "TERM")], errno.ESRCH),
    "catch KILL": ([fx.CatchSignals(("KILL",))], errno.EINVAL),
    "exec an unknown program": ([fx.Exec("no-such-program")], errno.ENOENT),
    "accept on a pipe": ([fx.Pipe(), fx.Accept(3)], errno.ENOTSOCK),
    "connect to a closed port": ([fx.Connect("127.0.0.1", 9)], errno.ECONNREFUSED),
    "listen twice on a port": (
        [fx.Listen("0.0.0.0", 25), fx.Listen("0.0.0.0", 25)],
        errno.EADDRINUSE,
    ),
}


@pytest.mark.parametrize("case", list(ERRNO_CASES))
def test_failed_calls_raise_the_errno_a_real_kernel_gives(case: str):
    calls, code = ERRNO_CASES[case]
    box = Box({"t-attempt": attempt(*calls)})
    assert box.run("t-attempt").status == code
    assert box.events[-2]["err"] == errno.errorcode[code]  # the last call, before the exit


# -- processes and signals ------------------------------------------------------------


def test_child_is_a_zombie_until_waited_and_wait_nohang_does_not_block():
    def lazy_parent(argv, env):
        def child():
            yield fx.Sleep(1)
            return 300  # exit codes are 8 bits, as _exit(2)

        pid = yield fx.Fork(child)
        early = yield fx.Wait(pid, nohang=True)
        yield fx.Sleep(2)
        yield fx.Note("slept", {"early": early})
        return (yield fx.Wait(-1))[1]

    box = Box({"t-lazy": lazy_parent}, costs=Costs.free())
    parent = box.spawn("t-lazy")
    box.env.run(until=1.5)
    (child,) = [p for p in box.kernel.procs.values() if p.ppid == parent.pid]
    assert child.state == "zombie"
    box.env.run()
    assert parent.status == 300 & 0xFF and child.state == "exited"
    assert next(e for e in box.events if e["kind"] == "slept")["early"] is None


def test_orphans_are_reaped_by_init():
    def quitter(argv, env):
        def child():
            yield fx.Sleep(5)

        yield fx.Fork(child)
        return 0

    box = Box({"t-quit": quitter}, costs=Costs.free())
    box.run("t-quit")
    orphan = max(box.kernel.procs.values(), key=lambda p: p.pid)
    assert (orphan.ppid, orphan.state, orphan.end) == (1, "exited", 5)


def signal_parent(argv, env):
    """Fork a child that runs argv[1]; signal it with argv[2] after 1 s; exit its status."""

    def child():
        yield fx.Exec(argv[1])

    pid = yield fx.Fork(child)
    yield fx.Sleep(1)
    yield fx.Kill(pid, argv[2])
    _, status = yield fx.Wait(pid)
    return status & 0xFF


def sleeper(argv, env):
    yield fx.Sleep(100)
    return 0


def alarmed(argv, env):
    """qmail-send's loop in small: catch ALRM and TERM, learn of them from Select."""
    yield fx.CatchSignals(("ALRM", "TERM"))
    while True:
        _, _, signals = yield fx.Select(timeout=50)
        yield fx.Note("woke", {"signals": signals})
        if "TERM" in signals:
            return 0
        if "ALRM" in signals:
            return 42


@pytest.mark.parametrize(
    ("program", "signal", "status"),
    [
        ("t-sleeper", "TERM", -15 & 0xFF),
        ("t-sleeper", "KILL", -9 & 0xFF),
        ("t-sleeper", "HUP", -1 & 0xFF),
        ("t-alarmed", "ALRM", 42),
        ("t-alarmed", "TERM", 0),
        ("t-alarmed", "KILL", -9 & 0xFF),
    ],
)
def test_signals_kill_unless_caught_and_caught_ones_reach_select(program, signal, status):
    programs = {"t-signal": signal_parent, "t-sleeper": sleeper, "t-alarmed": alarmed}
    box = Box(programs, costs=Costs.free())
    assert box.run("t-signal", program, signal).status == status
    child = max(box.kernel.procs.values(), key=lambda p: p.pid)
    assert child.end == 1  # woken or killed at once, not after its sleep or select timeout


def test_killed_reader_releases_its_pipe_end():
    def feeder(argv, env):
        r, w = yield fx.Pipe()

        def child():
            yield fx.Close(w)
            yield fx.Sleep(100)

        pid = yield fx.Fork(child)
        yield fx.Close(r)
        yield fx.Kill(pid, "TERM")
        yield fx.Wait(pid)
        try:
            yield fx.Write(w, b"x")
        except BrokenPipeError:
            return 32
        return 0

    box = Box({"t-feeder": feeder})
    assert box.run("t-feeder").status == 32


def test_fifo_trigger_wakes_a_select_as_qmail_send_expects():
    def sender(argv, env):
        yield fx.Mkfifo("/trigger")
        fd = yield fx.Open("/trigger", "r", nonblock=True)

        def queue():
            yield fx.Sleep(7)
            t = yield fx.Open("/trigger", "w", nonblock=True)
            yield fx.Write(t, b"\0")
            yield fx.Close(t)

        yield fx.Fork(queue)
        readable, _, _ = yield fx.Select((fd,), timeout=1500)
        yield fx.Note("pulled", {"readable": readable, "byte": (yield fx.Read(fd, 1))})
        return 0

    box = Box({"t-send": sender}, costs=Costs.free())
    box.run("t-send")
    pulled = next(e for e in box.events if e["kind"] == "pulled")
    assert (pulled["t"], pulled["readable"], pulled["byte"]) == (7, [3], "\\x00")


def test_a_fifo_keeps_its_data_while_a_writer_has_it_open_as_linux_does():
    reopened = attempt(
        fx.Mkfifo("/p"),
        fx.Open("/p", "r", nonblock=True),  # 3
        fx.Open("/p", "w", nonblock=True),  # 4
        fx.Write(4, b"x"),
        fx.Close(3),
        fx.Open("/p", "r", nonblock=True),  # 3 again
        fx.Read(3, 1),
        fx.Close(4),
        fx.Close(3),
        fx.Open("/p", "r", nonblock=True),  # both ends were closed: the byte is gone
        fx.Read(3, 1),
    )
    box = Box({"t-reopen": reopened})
    assert box.run("t-reopen").status == 0
    reads = [e["data"] for e in box.events if e["kind"] == "read"]
    assert reads == ["x", ""]


# -- costs ----------------------------------------------------------------------------


def true(argv, env):
    return 0
    yield


def fork_true(argv, env):
    def child():
        yield fx.Exec("t-true")

    pid = yield fx.Fork(child)
    yield fx.Wait(pid)
    return 0


def test_fork_exec_exit_costs_exactly_their_table_entries():
    box = Box({"t-fork": fork_true, "t-true": true}, costs=costs(fork=1, exec=2, exit=4), cores=1)
    parent = box.run("t-fork")
    (child,) = [p for p in box.kernel.procs.values() if p.ppid == parent.pid]
    assert (child.start, child.end) == (1, 1 + 2 + 4)
    assert parent.end == 1 + 2 + 4 + 4  # woken by the child's end, then its own exit


def spin(argv, env):
    """CPU-bound: many quick system calls."""
    for _ in range(int(argv[1])):
        yield fx.Getpid()
    return 0


@pytest.mark.parametrize(("cores", "end"), [(1, 2.0), (2, 1.0)])
def test_two_cpu_bound_programs_share_the_cores(cores: int, end: float):
    box = Box({"t-spin": spin}, costs=costs(syscall=0.01), cores=cores)
    a, b = box.spawn("t-spin", "100"), box.spawn("t-spin", "100")
    box.env.run()
    assert max(a.end, b.end) == pytest.approx(end)  # each alone takes 1.0


def test_fsyncs_queue_for_the_disk_and_sleep_holds_no_cpu():
    def syncer(argv, env):
        fd = yield fx.Open(argv[1], "w", create=True)
        yield fx.Fsync(fd)
        return 0

    def napper(argv, env):
        yield fx.Sleep(0.5)
        return 0

    programs = {"t-sync": syncer, "t-nap": napper, "t-spin": spin}
    box = Box(programs, costs=costs(fsync=0.5, syscall=0.01), cores=1, disks=1)
    one, two = box.spawn("t-sync", "/a"), box.spawn("t-sync", "/b")
    nap, spinner = box.spawn("t-nap"), box.spawn("t-spin", "50")
    box.env.run()
    assert (one.end, two.end) == (0.5, 1.0)
    # the nap's own sleep call costs 0.01 of CPU, its 0.5 s of sleep none: both end at 0.51
    assert nap.end == pytest.approx(0.51) and spinner.end == pytest.approx(0.51)


def test_fast_detail_charges_the_same_time_with_fewer_events():
    programs = {"t-spin": spin}
    teaching = Box(programs, costs=costs(syscall=0.01, exit=0.1))
    fast = Box(programs, costs=costs(syscall=0.01, exit=0.1, detail="fast"))
    assert teaching.run("t-spin", "30").end == pytest.approx(fast.run("t-spin", "30").end)
    assert fast.kinds() == ["exit"] and teaching.kinds().count("getpid") == 0  # getpid: QUIET


def test_fast_detail_keeps_protocol_steps_and_blocking_calls():
    fast = Box(costs=Costs(detail="fast"))
    assert fast.run("t-parent", "hi").status == 7
    kinds = fast.kinds()
    assert {"fork", "exec", "read", "write", "said", "heard", "wait"} <= set(kinds)
    assert "close" not in kinds and "dup2" not in kinds


def files(argv, env):
    """Make, link, rename, look at and remove names, as the queue and a Maildir see."""
    yield fx.Mkdir("/q")
    yield fx.Chdir("/q")
    fd = yield fx.Open("tmp", "w", create=True)
    yield fx.Close(fd)
    yield fx.Link("tmp", "new")
    yield fx.Rename("new", "cur")
    yield fx.Stat("cur")
    yield fx.Unlink("tmp")
    return 0


def test_fast_detail_traces_every_name_made_or_removed():
    """A reader of a fast trace (the TUI) folds each message's state from its files."""
    fast = Box({"t-files": files}, costs=Costs(detail="fast"))
    assert fast.run("t-files").status == 0
    assert fast.kinds() == ["chdir", "open", "link", "rename", "unlink", "exit"]


# -- determinism ----------------------------------------------------------------------


def _busy_trace(seed: int) -> bytes:
    programs = {"t-spin": spin, "t-reader": reader, "t-fork": fork_true, "t-true": true}
    box = Box(programs, seed=seed, cores=1)
    for name, argv in [("t-parent", ["a"]), ("t-reader", ["0.001", "70000"]), ("t-fork", [])]:
        box.spawn(name, *argv)
        box.spawn("t-spin", "20")
    box.spawn("t-crash-parent")
    box.env.run()
    return b"".join(trace.encode(e) for e in box.events)


def test_same_seed_and_programs_give_a_byte_identical_trace():
    first = _busy_trace(seed=3)
    assert first == _busy_trace(seed=3)
    assert first.count(b"\n") > 40


# -- the filesystem through the kernel ----------------------------------------------


def queue_message(argv, env):
    """qmail-queue's steps in small: create, write, fsync, link into todo/ (as its last step),
    then FsyncDir("todo") if argv[1] is "sync" (qmail 1.03 does not)."""
    yield fx.Chdir("/var/qmail/queue")
    fd = yield fx.Open("mess/0/new", "w", create=True, exclusive=True, perm=0o644)
    yield fx.Write(fd, b"Subject: hi\n\nbody\n")
    yield fx.Fsync(fd)
    st = yield fx.Stat(fd=fd)
    yield fx.Rename("mess/0/new", f"mess/0/{st.ino}")
    yield fx.Link(f"mess/0/{st.ino}", f"todo/{st.ino}")
    if argv[1] == "sync":
        yield fx.FsyncDir("todo")
    yield fx.Note("queue", {"id": st.ino}, msg=st.ino)
    return 0


@pytest.mark.parametrize(("mode", "survives"), [("sync", True), ("nosync", False)])
def test_the_todo_link_survives_a_crash_only_if_something_fsyncs_after_it(mode, survives):
    box = Box({"t-queue": queue_message})
    box.kernel.fs.populate({f"/var/qmail/queue/{d}": memfs.Special.DIR for d in ("mess/0", "todo")})
    box.run("t-queue", mode)
    queue_id = next(e["msg"] for e in box.events if e["kind"] == "queue")
    mess, todo = f"/var/qmail/queue/mess/0/{queue_id}", f"/var/qmail/queue/todo/{queue_id}"
    assert box.kernel.fs.lookup(todo).ino == queue_id  # the queue id is the inode number
    after = box.kernel.fs.crash().dump()
    assert (todo in after) is survives
    # the message's own fsync committed its first name; the rename after it is committed
    # only by the FsyncDir, so without one the message is still at its first name
    assert (
        after.get(mess if survives else "/var/qmail/queue/mess/0/new") == b"Subject: hi\n\nbody\n"
    )


def test_the_model_can_signal_a_program_and_halt_the_host():
    box = Box({"t-alarmed": alarmed, "t-sleeper": sleeper}, costs=Costs.free())
    alarmed_proc, sleeping = box.spawn("t-alarmed"), box.spawn("t-sleeper")
    box.env.run(until=2)
    box.kernel.kill(alarmed_proc.pid, "ALRM")
    box.env.run(until=3)
    assert alarmed_proc.status == 42 and sleeping.state == "blocked"
    box.kernel.halt()
    box.env.run()
    assert (sleeping.status, sleeping.end) == (-9, 3)
    with pytest.raises(ProcessLookupError):
        box.kernel.kill(alarmed_proc.pid, "TERM")
    assert [row["state"] for row in box.kernel.ps()] == ["exited", "exited"]


def test_a_spawned_program_reads_stdin_and_its_output_is_kept():
    def cat(argv, env):
        data = yield from read_all(0)
        yield fx.Write(1, data.upper())
        yield fx.Write(0, b"log on fd 0, as qmail-send writes it\n")
        yield fx.Write(2, b"done\n")
        return 0

    box = Box({"t-cat": cat})
    proc = box.run("t-cat", stdin=b"hello\n")
    assert bytes(proc.stdout) == b"HELLO\nlog on fd 0, as qmail-send writes it\n"
    assert bytes(proc.stderr) == b"done\n"


def test_lock_is_held_by_the_open_file_until_its_last_descriptor_closes():
    """flock semantics: a forked child shares the lock; it goes when the last holder closes."""

    def holder(argv, env):
        fd = yield fx.Open("/mutex", "w", create=True)
        yield fx.Lock(fd)
        yield fx.Lock(fd)  # again through the same open file: still ours

        def child():
            yield fx.Sleep(4)  # holds the inherited descriptor, and so the lock, until 4
            return 0

        yield fx.Fork(child)
        yield fx.Sleep(2)
        return 0

    def piper(argv, env):
        r, w = yield fx.Pipe()
        yield fx.Lock(r)  # Linux locks a pipe too: both ends are one file
        try:
            yield fx.Lock(w)
        except BlockingIOError:
            yield fx.Close(r)
            yield fx.Lock(w)  # the read end's lock went with its last descriptor
            return 0
        return 1

    box = Box({"t-hold": holder, "t-pipe": piper}, costs=Costs.free())
    box.spawn("t-hold")
    tries = [box.spawn("t-lock", "/mutex", at) for at in ("1", "3", "5")]  # tests/kernel/progs
    pipe = box.spawn("t-pipe")
    box.env.run()
    assert [p.status for p in tries] == [11, 11, 0]
    assert pipe.status == 0 and box.kernel.locks == {}  # all gone with the processes


@pytest.mark.parametrize(("held", "code", "after"), [(5.0, 0, 5.0), (40.0, 111, 30.0)])
def test_mbox_delivery_waits_for_the_flock_and_gives_up_after_30_seconds(held, code, after):
    """qmail-local's mailfile: lock_ex under a 30 s alarm, here tries every 0.1 s."""
    from sim.programs.local_effects import deliver_mbox
    from sim.qmail.local import HeaderLines

    def hold(argv, env):
        fd = yield fx.Open("/Mailbox", "a", create=True)
        yield fx.Lock(fd)
        yield fx.Sleep(float(argv[1]))
        return 0

    results = []

    def deliver(argv, env):
        yield fx.Sleep(0.05)
        lines = HeaderLines("Delivered-To: bob@a.example\n", "Return-Path: <>\n", "")
        outcome = yield from deliver_mbox("/Mailbox", lines, b"Subject: x\n\nhi\n")
        results.append((outcome.code, (yield fx.Time())))
        return 0

    box = Box({"t-hold": hold, "t-deliver": deliver}, costs=Costs.free())
    box.spawn("t-hold", str(held))
    box.spawn("t-deliver")
    box.env.run()
    ((got, when),) = results
    assert got == code and when == pytest.approx(after, abs=0.11)
    mbox = box.kernel.fs.read(box.kernel.fs.lookup("/Mailbox"), 0, 1000)
    assert (b"\n\nhi\n" in mbox) == (code == 0)


def test_the_kernel_counts_every_call_traced_or_quiet():
    def calls(argv, env):
        for _ in range(5):
            yield fx.Getpid()  # quiet: never traced
        yield fx.Note("step", {}, "a protocol step")
        yield fx.Sleep(1)
        return 0

    box = Box({"t-calls": calls}, costs=Costs.free())
    box.run("t-calls")
    assert box.kernel.calls == 6  # the note is bookkeeping, not a system call
    assert box.kinds() == ["step", "sleep", "exit"]  # the exit is the kernel's, not a call


@pytest.mark.parametrize(("detail", "after_io", "after_sleep"), [
    ("teaching", 0.04, 1.04),  # each call paid as it is made
    ("fast", 0.0, 1.04),  # calls that need not wait run up a debt, paid before the sleep
])  # fmt: skip
def test_fast_detail_pays_its_debt_only_when_the_process_must_wait(detail, after_io, after_sleep):
    stamps = []

    def io(argv, env):
        r, w = yield fx.Pipe()
        for _ in range(3):
            yield fx.Write(w, b"x")
        assert (yield fx.Read(r, 10)) == b"xxx"  # ready: no wait
        stamps.append((yield fx.Time()))
        yield fx.Sleep(1)
        stamps.append((yield fx.Time()))
        return 0

    box = Box({"t-io": io}, costs=costs(pipe_io=0.01, detail=detail))
    box.run("t-io")
    assert stamps == pytest.approx([after_io, after_sleep])
