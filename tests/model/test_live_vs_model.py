"""One message through the live MTA and through the model: the same program-level events.

Each process is named by its ancestry of fork labels (`qmail-start/qmail-lspawn#1/…`), so
processes that run at the same time may interleave differently in the two worlds without
mattering; within each process the order must be the same. Compared: forks (with labels),
execs (program and argv), pipe creations, descriptor plumbing (dup2, close), setuid, chdir,
mkdir, open, and the file operations on the queue and the Maildir (link, unlink, rename,
fsync, fsyncdir). Normalised, because they must differ: pids, times, numbers in paths (queue
ids, Maildir names), the qmail home's path, and descriptor numbers. qmail-start fills the free
descriptors among 2-6 with dup2(0, fd): how many depends on what the caller left open (the
live supervisor leaves its start-up pipe open, and whatever the test runner holds), so those
fill-ins are not compared. Nor is the trigger FIFO's opening and closing: whether qmail-send
reopens it once or twice, and whether qmail-queue finds a reader (ENXIO), depends on how the
two processes' calls interleave in real time. Exits are not compared: the live MTA is
stopped, the model's run just ends.
"""

from __future__ import annotations

import json
import re
import smtplib
from collections import defaultdict
from pathlib import Path

import sim
from sim.mta import daemon
from sim.mta.home import init_home
from sim.scenario import parse_scenario
from tests.mta.conftest import WAIT, wait_for

KINDS = {"fork", "exec", "pipe", "dup2", "close", "setuid", "chdir", "mkdir", "open",
         "link", "unlink", "rename", "fsync", "fsyncdir"}  # fmt: skip
SHOWN = ("label", "program", "argv", "path", "src", "dst", "err", "mode", "create", "to_user")
NUMBERED = ("fd", "old", "new", "result")
TRIGGER = "lock/trigger"
SCENARIO = """
[scenario]
duration = 20
[[host]]
name = "example.test"
users = ["alice"]
[[workload]]
kind = "message"
at = 1
from = "bob@example.test"
to = ["alice@example.test"]
"""


def _norm(value: object, home: str) -> str:
    return re.sub(r"\d+", "N", str(value).replace(home, "$HOME"))


def names_by_ancestry(events: list[dict]) -> dict[int, str]:
    """pid -> `root/label#k/…`. Live events of different processes reach the collector in
    no particular order (a child may write before its parent's fork event), so the forks are
    read first, each parent's in its own order."""
    parent: dict[int, tuple[int, str]] = {}
    first_prog: dict[int, str] = {}
    forks: dict[tuple[int, str], int] = defaultdict(int)
    for e in events:
        if "pid" not in e or e.get("prog") == "model":
            continue
        first_prog.setdefault(e["pid"], e["prog"])
        if e["kind"] == "fork":
            forks[(e["pid"], e["label"])] += 1
            parent[e["result"]] = (e["pid"], f"{e['label']}#{forks[(e['pid'], e['label'])]}")

    def name(pid: int) -> str:
        if pid not in parent:
            return first_prog[pid]
        up, label = parent[pid]
        return f"{name(up)}/{label}"

    return {pid: name(pid) for pid in first_prog}


def per_process(events: list[dict], home: str) -> dict[str, list[str]]:
    """{process name by fork ancestry: its compared events, normalised}."""
    names = names_by_ancestry(events)
    out: dict[str, list[str]] = defaultdict(list)
    trigger: set[tuple[int, int]] = set()  # (pid, fd) open on lock/trigger
    for e in events:
        if "pid" not in e or e.get("prog") == "model" or e["kind"] not in KINDS:
            continue
        if e["prog"] == "qmail-start" and e["kind"] == "dup2" and e["old"] == 0:
            continue  # filling a free descriptor among 2-6
        if e["kind"] == "open" and e["path"].endswith(TRIGGER):
            trigger.add((e["pid"], e.get("result", -1)))
            continue
        if e["kind"] == "close" and (e["pid"], e["fd"]) in trigger:
            trigger.discard((e["pid"], e["fd"]))
            continue
        fields = {k: _norm(e[k], home) for k in SHOWN if k in e}
        if e["kind"] != "fork":
            fields.update({k: _norm(e[k], home) for k in NUMBERED if k in e})
        out[names[e["pid"]]].append(f"{e['kind']} {json.dumps(fields, sort_keys=True)}")
    return out


def live_trace(tmp_path: Path) -> tuple[list[dict], str]:
    home = tmp_path / "q"
    init_home(home, "example.test", users=["alice"])
    _, port = daemon.start(home, ("127.0.0.1", 0), {})
    trace = home / "log" / "trace.jsonl"
    try:
        # As in the model, the message comes once qmail-send waits (its start-up scans done).
        wait_for(lambda: b'"path":"mess/22"' in trace.read_bytes(), "qmail-send's first scans")
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: hi\r\n\r\nhi\r\n")
        new = home / "home" / "alice" / "Maildir" / "new"
        wait_for(lambda: list(new.iterdir()), "the Maildir delivery")
        log = home / "log" / "qmail-send.log"
        wait_for(lambda: log.exists() and b"end msg" in log.read_bytes(), "end msg")
    finally:
        daemon.stop(home)
    lines = trace.read_text().splitlines()
    return [json.loads(line) for line in lines if line], str(home.resolve())


def test_one_message_gives_the_same_program_events_live_and_in_the_model(tmp_path: Path):
    live_events, home = live_trace(tmp_path)
    live = per_process(live_events, home)
    model = per_process(sim.run(parse_scenario(SCENARIO)).trace, "/var/qmail")
    assert sorted(live) == sorted(model)
    for name in sorted(live):
        assert live[name] == model[name], name
    assert len(live) == 10 and sum(map(len, live.values())) > 150
