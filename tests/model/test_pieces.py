"""The model's small parts: the home it builds, its DNS, log reading, progress, shutdown."""

from __future__ import annotations

import io

import pytest
import simpy

import sim
from sim.kernel import effects as fx
from sim.kernel.costs import Costs
from sim.kernel.memfs import MemFS
from sim.kernel.simkernel import SimKernel
from sim.kernel.simproc import finish
from sim.model.dns import Directory, model_resolver
from sim.model.host import build_home, dotqmail_path
from sim.model.logs import parse_send_log
from sim.qmail.errors import BadInput
from sim.qmail.sendlog import EndMsg, NewMsg
from sim.run_cli import ProgressBar, tally_text
from sim.scenario import Host, parse_scenario


def test_the_home_is_the_live_layout_with_the_scenarios_files_on_top() -> None:
    fs = MemFS()
    host = Host(
        "mail.example.test",
        users=("Alice",),
        control={"locals": "example.test\n", "concurrencyremote": "5\n"},
        dotqmail={"alice-list": "&bob@example.test\n"},
    )
    build_home(fs, host)
    files = fs.dump("/var/qmail")
    assert files["/var/qmail/control/me"] == b"mail.example.test\n"
    assert files["/var/qmail/control/locals"] == b"example.test\n"
    assert files["/var/qmail/control/rcpthosts"] == b"example.test\n"
    assert files["/var/qmail/control/concurrencyremote"] == b"5\n"
    assert files["/var/qmail/home/alice/.qmail-list"] == b"&bob@example.test\n"
    assert fs.lookup("/var/qmail/queue/lock/trigger").kind == "fifo"
    assert fs.crash().dump("/var/qmail") == files  # all of it was on disk at boot


def test_a_dotqmail_for_an_unknown_user_is_bad_input() -> None:
    assert dotqmail_path("alias-postmaster", ()) == "alias/.qmail-postmaster"
    with pytest.raises(BadInput, match="'carol' is neither a user"):
        dotqmail_path("carol-list", ("alice",))


def test_a_dotqmail_forward_is_delivered_by_the_programs() -> None:
    text = """
[scenario]
duration = 30
[[host]]
name = "example.test"
users = ["alice", "bob"]
[host.dotqmail]
alice-list = ["&bob@example.test", "./Maildir/"]
[[workload]]
kind = "message"
at = 1
to = ["alice-list@example.test"]
"""
    result = sim.run(parse_scenario(text))
    assert result.summary["messages"] == {
        "injected": 1, "delivered": 1, "bounced": 0, "queued": 0, "refused": 0, "sending": 0,
    }  # fmt: skip
    assert result.summary["deliveries"]["local"] == 2  # alice-list, then bob (forwarded)
    forwarded = [r for r in result.rows["messages"] if r["origin"] == "relay"]
    assert len(forwarded) == 1 and forwarded[0]["status"] == "delivered"


def run_helper(name: str, arg: str) -> tuple[int, bytes, list[dict]]:
    directory = Directory()
    directory.add_host("mx.other.test", "10.0.0.2")
    directory.add_domain("other.test", "mx.other.test")
    env, events = simpy.Environment(), []
    costs = Costs.free().with_overrides({"dns": 0.001})
    kernel = SimKernel(
        env, model_resolver(directory, costs), host="h", costs=costs, trace=events.append
    )
    pid = kernel.spawn(name, [arg], {})
    env.run()
    proc = kernel.procs[pid]
    assert env.now == pytest.approx(0.001)
    return proc.status, bytes(proc.stdout), events


@pytest.mark.parametrize(
    ("helper", "name", "status", "output"),
    [
        ("dnsmx", "other.test", 0, b"10 mx.other.test\n"),
        ("dnsmx", "mx.other.test", 0, b""),  # no MX: qmail-remote uses the address
        ("dnsmx", "nowhere.test", 100, b""),
        ("dnsip", "MX.Other.Test.", 0, b"10.0.0.2\n"),
        ("dnsip", "nowhere.test", 100, b""),
    ],
)
def test_the_models_dns_helpers(helper: str, name: str, status: int, output: bytes) -> None:
    got, out, events = run_helper(helper, name)
    assert (got, out) == (status, output)
    assert [e["kind"] for e in events if e["kind"] == "dns"] == ["dns"]


def test_splogger_and_multilog_stamps_are_read_and_strangers_skipped() -> None:
    data = (
        b"1700000001.250000 new msg 5\n"
        b"1700000001.250000+continued\n"
        b"@400000006553f1a20ee6b280 end msg 5\n"
        b"garbage\n"
    )
    got = parse_send_log(data, epoch=1_700_000_000)
    assert got[0] == (1.25, NewMsg(5))
    assert got[1][1] == EndMsg(5) and got[1][0] is not None
    assert len(got) == 2


def test_the_progress_bar_shows_only_on_a_terminal_after_a_second(monkeypatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = ProgressBar()
    bar.update(1, 10)
    assert bar.bar is None  # too early
    bar.start -= 5
    bar.update(2, 10)
    assert bar.bar is None  # not a terminal
    err.isatty = lambda: True  # type: ignore[method-assign]
    bar.update(3, 10, {"sent": 1200, "delivered": 7})
    assert bar.bar is not None
    task = bar.bar.tasks[0]
    assert (task.completed, task.total) == (3, 10)
    assert task.fields["counts"] == "0:00:03 · 1,200 sent · 7 delivered"
    bar.stop()


def test_a_run_reports_its_progress_in_virtual_time_and_messages() -> None:
    seen: list[tuple[float, float, dict[str, int]]] = []
    result = sim.run(until=900, progress=lambda now, end, tally: seen.append((now, end, tally)))
    assert len(seen) == 200 and seen[-1][:2] == (900, 900)
    assert [now for now, _, _ in seen] == sorted(now for now, _, _ in seen)
    sent = [tally["sent"] for *_, tally in seen]
    delivered = [tally["delivered"] for *_, tally in seen]
    assert sent == sorted(sent) and delivered == sorted(delivered)  # counts only grow
    assert (
        sent[-1] == result.summary["messages"]["injected"] + result.summary["messages"]["refused"]
    )
    deliveries = result.summary["deliveries"]
    assert delivered[-1] == deliveries["local"] + deliveries["remote"] > 0


def test_tally_text_reads_as_a_clock_and_counts() -> None:
    assert tally_text(3725.5, {"sent": 41760, "delivered": 41700}) == (
        "1:02:05 · 41,760 sent · 41,700 delivered"
    )
    assert tally_text(0, None) == "0:00:00"


def test_finish_ends_a_program_that_makes_calls_in_finally() -> None:
    def program() -> fx.Program:
        try:
            yield fx.Sleep(10)
        finally:
            yield fx.Close(3)
            yield fx.Close(4)
        return 0

    gen = program()
    next(gen)
    finish(gen)
    assert gen.gi_frame is None
