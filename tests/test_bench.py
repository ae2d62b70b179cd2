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
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"teaching", "fast"}
    assert all(row[1] == "3" and int(row[2]) > 100 for row in rows.values())
    assert int(rows["teaching"][2]) > int(rows["fast"][2])  # fast traces fewer events
