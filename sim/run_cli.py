"""`qmailsim run [SCENARIO] [--seed N] [--until T] [--trace FILE] [--json] [--detail D]`.

Runs a scenario in the model (the embedded default without SCENARIO) and prints the summary:
as text for a person, or with `--json` as one JSON object (keys documented in the README).
A run that takes more than a second of wall time shows a progress bar on stderr, when
stderr is a terminal. Mistakes are `BadInput` with a message naming what to fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sim.kernel.costs import DETAILS
from sim.qmail.errors import BadInput

BAR_AFTER = 1.0  # seconds of wall time before a progress bar appears


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `qmailsim run`."""
    parser.add_argument(
        "scenario", nargs="?", type=Path, metavar="SCENARIO", help="default: the embedded lesson"
    )
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (the scenario's)")
    parser.add_argument(
        "--until", type=float, metavar="T", help="virtual seconds to run (the scenario's)"
    )
    parser.add_argument("--trace", type=Path, metavar="FILE", help="write the trace (JSON lines)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--detail", choices=DETAILS, help="teaching: every effect an event; fast: coarser"
    )


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Run and print the summary; returns the exit status (0)."""
    from sim.run import run as run_scenario

    if args.until is not None and not args.until > 0:
        raise BadInput(f"--until must be a number of seconds > 0, not {args.until:g}")
    overrides: dict[str, Any] = {"keep_trace": False}
    for name in ("seed", "until", "detail", "trace"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    bar = ProgressBar()
    try:
        result = run_scenario(args.scenario, progress=bar.update, **overrides)
    finally:
        bar.stop()
    if args.json:
        out(json.dumps(result.summary, indent=2))
    else:
        out("\n".join(format_summary(result.summary, result.scenario.description)))
    return 0


class ProgressBar:
    """A rich progress bar on stderr, shown only on a terminal and after BAR_AFTER seconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.bar: Any = None
        self.task: Any = None

    def update(self, now: float, end: float, tally: Mapping[str, int] | None = None) -> None:
        """Show `now` of `end` seconds of virtual time, and the messages `tally` counts."""
        if self.bar is None:
            if time.perf_counter() - self.start < BAR_AFTER or not sys.stderr.isatty():
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("virtual time", total=end, counts="")
        self.bar.update(self.task, completed=now, counts=tally_text(now, tally))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def tally_text(now: float, tally: Mapping[str, int] | None) -> str:
    """`1:00:00 · 41,760 sent · 41,700 delivered`: where the run is, for the progress bar."""
    hours, rest = divmod(int(now), 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    for name, count in (tally or {}).items():
        text += f" · {count:,} {name}"
    return text


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _pct(x: float) -> str:
    return f"{x * 100:.2g}%"


def format_summary(s: dict[str, Any], description: str = "") -> list[str]:
    """The summary as lines of text."""
    m, d, b, r = s["messages"], s["deliveries"], s["bounces"], s["run"]
    lines = [
        f"qmailsim run: {s['scenario']}" + (f" - {description}" if description else ""),
        f"seed {s['seed']}, detail {s['detail']}: {s['until']:g} s of virtual time "
        f"in {r['wall_seconds']:.2f} s of wall time",
        "",
        f"messages    injected {m['injected']} = delivered {m['delivered']} + bounced "
        f"{m['bounced']} + still queued {m['queued']}   (refused {m['refused']}"
        + (f", still sending {m['sending']})" if m["sending"] else ")"),
        f"deliveries  {d['local']} local and {d['remote']} remote succeeded, "
        f"{d['deferred']} deferred, {d['failed']} failed, {d['unfinished']} unfinished",
        f"bounces     {b['made']} made: {b['delivered']} delivered, {b['queued']} queued",
        "",
        f"{'latency (s)':<12}{'count':>7}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}",
    ]
    for name, p in s["latency"].items():
        cells = "".join(f"{_num(p[k]):>10}" for k in ("p50", "p90", "p99", "max"))
        lines.append(f"  {name:<10}{p['count']:>7}{cells}")
    t = s["throughput"]
    lines += [
        "",
        f"throughput  {t['messages_per_hour']:g} messages/hour, "
        f"{t['deliveries_per_hour']:g} deliveries/hour",
    ]
    for name, h in s["hosts"].items():
        q = h["queue"]
        lines.append(
            f"host {name}: cpu {_pct(h['cpu'])} of {h['cores']}, disk {_pct(h['disk'])} of "
            f"{h['disks']}; {q['messages']} in queue ({q['todo']} not preprocessed"
            + (f", {q['partial']} partly queued, never acknowledged)" if q["partial"] else ")")
            + (f"; {h['fetched']} fetched by the users" if h["fetched"] else "")
            + (f"; {h['boots']} boots" if h["boots"] > 1 else "")
        )
    per_uid = ", ".join(f"{user} {n}" for user, n in s["processes"].items())
    lines.append(f"processes per account: {per_uid}")
    if r["calls_per_message"] is not None:
        lines.append(f"system calls: {r['calls']}, {r['calls_per_message']:g} per message")
    return lines
