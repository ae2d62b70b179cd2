"""`qmailsim bench` measures both modes side by side and never loses mail (no timing asserts)."""

from __future__ import annotations

import argparse

import pytest

from sim import bench
from sim.qmail.errors import BadInput


def test_bench_reports_fork_and_exec_side_by_side() -> None:
    lines: list[str] = []
    assert bench.run(argparse.Namespace(messages=2), lines.append) == 0
    rows = {line.split()[0] + " " + line.split()[1]: line.split() for line in lines[2:4]}
    assert set(rows) == {"receive (fork)", "receive --exec"}
    assert all(row[2] == "2" for row in rows.values())  # both runs queued both messages
    assert lines[-1].startswith("exec costs ")


def test_bench_refuses_nonsense() -> None:
    with pytest.raises(BadInput):
        bench.run(argparse.Namespace(messages=0), print)
