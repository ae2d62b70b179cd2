"""`sim.run` and `qmailsim run`: determinism, overrides, levels of detail, output, mistakes."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sim
from sim.kernel.trace import read_events
from sim.qmail.errors import BadInput
from sim.run_cli import add_arguments, format_summary, run
from sim.scenario import load_scenario

SHORT = {"until": 120.0}
KEYS = {"scenario", "seed", "detail", "until", "messages", "deliveries", "bounces", "latency",
        "throughput", "hosts", "processes", "run"}  # fmt: skip


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_same_scenario_and_seed_give_byte_identical_traces(tmp_path: Path) -> None:
    first, second, other = tmp_path / "1.jsonl", tmp_path / "2.jsonl", tmp_path / "3.jsonl"
    sim.run(trace=first, keep_trace=False, **SHORT)
    sim.run(trace=second, keep_trace=False, **SHORT)
    sim.run(trace=other, keep_trace=False, seed=99, **SHORT)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    header, *rest = read_events(first.read_bytes().splitlines())
    assert header["kind"] == "trace" and header["source"] == "model" and len(rest) > 1000


def test_traces_are_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    code = "import sim, sys; sim.run(until=60.0, trace=sys.argv[1], keep_trace=False)"
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / seed)], env=env, check=True)
    assert (tmp_path / "1").read_bytes() == (tmp_path / "2").read_bytes()


def test_sim_run_is_callable_before_and_after_the_module_is_imported() -> None:
    module = importlib.import_module("sim.run")
    assert sim.run is module
    assert callable(sim.run) and sim.run.run is module.run
    result = sim.run(load_scenario(), until=5.0, keep_trace=False)
    assert result.trace == [] and result.summary["until"] == 5.0


def test_overrides_reach_the_run() -> None:
    result = sim.run(seed=7, detail="fast", costs={"fsync": 0.05}, **SHORT)
    s = result.summary
    assert (s["seed"], s["detail"], s["until"]) == (7, "fast", 120.0)
    assert result.world.costs.fsync == 0.05
    assert s["latency"]["ddelay"]["p50"] > 0.05  # qmail-local fsyncs the Maildir file


def test_fast_detail_counts_the_same_with_fewer_events() -> None:
    teaching = sim.run(**SHORT)
    fast = sim.run(detail="fast", **SHORT)
    for key in ("messages", "deliveries", "bounces"):
        assert teaching.summary[key] == fast.summary[key]
    assert len(fast.trace) < 0.8 * len(teaching.trace)
    assert {e["kind"] for e in fast.trace} >= {"fork", "exec", "fsync", "delivered", "bounce"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sede": 1}, "unknown override 'sede'"),
        ({"until": -1}, "until must be a number of seconds > 0"),
        ({"costs": {"fsnyc": 1.0}}, "unknown key 'fsnyc' (did you mean 'fsync'?)"),
        ({"detail": "slow"}, "detail must be one of"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"costs": 3}, "costs must be a dict"),
    ],
)
def test_mistakes_are_bad_input_with_clear_words(kwargs: dict, message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        sim.run(**kwargs)


def test_missing_scenario_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read"):
        sim.run(tmp_path / "nope.toml")


def test_cli_prints_the_summary_as_text_and_as_json(tmp_path: Path, capsys) -> None:
    lines: list[str] = []
    assert run(cli("--until", "120", "--seed", "3"), lines.append) == 0
    text = "\n".join(lines)
    assert "messages    injected" in text and "qtime" in text and "xdelay" in text
    assert "processes per account:" in text and "seed 3" in text
    assert re.search(r"^system calls: \d+, [\d.]+ per message$", text, re.M)
    lines.clear()
    trace = tmp_path / "t.jsonl"
    run(cli("--json", "--until", "120", "--trace", str(trace), "--detail", "fast"), lines.append)
    (printed,) = lines
    summary = json.loads(printed)
    assert set(summary) == KEYS and summary["detail"] == "fast"
    assert trace.read_bytes().count(b"\n") > 100
    assert capsys.readouterr().err == ""  # no progress bar when stderr is not a terminal


def test_cli_refuses_a_negative_until() -> None:
    with pytest.raises(BadInput, match="--until"):
        run(cli("--until", "-5"), print)


def test_format_summary_counts_the_messages_still_being_sent() -> None:
    summary = sim.run(until=0.5, keep_trace=False).summary
    assert "still sending" not in "\n".join(format_summary(summary))
    summary["messages"]["sending"] = 260
    assert "(refused 0, still sending 260)" in "\n".join(format_summary(summary))


def test_format_summary_shows_missing_latencies_as_dashes() -> None:
    summary = sim.run(until=0.5, keep_trace=False).summary
    text = "\n".join(format_summary(summary))
    assert "injected 0 = delivered 0 + bounced 0 + still queued 0" in text
    assert "  qtime           0         -         -         -         -" in text
