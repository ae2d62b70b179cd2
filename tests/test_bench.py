"""`qmailsim bench` measures both modes side by side and never loses mail (no timing asserts)."""

from __future__ import annotations

import argparse

import pytest

from sim import bench
from sim.qmail.errors import BadInput


def test_bench_reports_fork_and_exec_side_by_side() -> None:
    lines: list[str] = []
    assert bench.run(argparse.Namespace(messages=2, only="receive"), lines.append) == 0
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in lines[2:4]}
    assert set(rows) == {"receive (fork)", "receive --exec"}
    assert all(row[2] == "2" for row in rows.values())  # both runs queued both messages
    assert lines[-1].startswith("exec costs ")


def test_bench_refuses_nonsense() -> None:
    with pytest.raises(BadInput):
        bench.run(argparse.Namespace(messages=0), print)


def test_bench_model_compares_with_bare_simpy() -> None:
    lines: list[str] = []
    assert bench.run(argparse.Namespace(messages=3, only="model"), lines.append) == 0
    rows = [line.split() for line in lines[3:7]]
    assert [(row[0], row[1]) for row in rows] == [
        ("teaching", "no"), ("teaching", "yes"), ("fast", "no"), ("fast", "yes")
    ]  # fmt: skip
    assert all(row[2] == "3" and int(row[3]) > 100 for row in rows)  # delivered, events
    by = {(row[0], row[1]): row for row in rows}
    assert int(by["teaching", "no"][4]) == 0 < int(by["teaching", "yes"][4])  # traced
    assert by["teaching", "no"][3] == by["teaching", "yes"][3]  # the trace changes no call
    assert int(by["teaching", "yes"][4]) > int(by["fast", "yes"][4])  # fast traces fewer
    assert all(float(row[7]) > 0 for row in rows)  # a ratio against bare SimPy
    calls = by["teaching", "no"][3]
    assert lines[7] == f"the kernel alone: a program that only calls getpid, {calls} times"
    alone = [line.split() for line in lines[8:]]
    assert [(row[0], row[2], row[3]) for row in alone] == [
        ("teaching", "-", calls), ("fast", "-", calls)
    ]  # fmt: skip
    assert all(float(row[7]) > 0 for row in alone)


def test_the_kernel_alone_runs_every_call_it_is_asked_for() -> None:
    assert bench.kernel_alone(500, "teaching") > 0
    assert bench.kernel_alone(500, "fast") > 0


def test_bench_scale_runs_a_day_cut_short_and_projects_the_whole_day() -> None:
    lines: list[str] = []
    args = argparse.Namespace(messages=1, only="scale", scale=40)
    assert bench.run(args, lines.append) == 0
    injected, _, delivered, *_ = lines[1].split()
    assert int(injected) == int(delivered) > 20  # a Poisson day of ~40 messages, all delivered
    assert lines[3].startswith("1,000,000 messages at this rate: ")
    assert "GiB for 1M" not in lines[3]  # 40 messages say nothing of a day's memory
    peak = float(lines[4].removeprefix("peak resident set of this process: ").removesuffix(" MB"))
    assert peak > 10  # a Python process with the model loaded: tens of MB at least


def test_the_day_is_a_million_messages_at_an_even_rate() -> None:
    from sim.model.arrivals import plan
    from sim.scenario import parse_scenario

    scenario = parse_scenario(bench.day(500), "bench")
    arrivals = plan(scenario, scenario.duration, scenario.seed)
    assert scenario.detail == "fast"
    assert 450 < len(arrivals) < 550 and arrivals[-1].t < 500 / bench.SCALE_RATE
    assert pytest.approx(1_000_000) == bench.SCALE_RATE * 86_400


def test_bench_refuses_a_scale_of_nothing() -> None:
    with pytest.raises(BadInput, match="--scale"):
        bench.run(argparse.Namespace(messages=1, only="scale", scale=0), print)
