"""`qmailsim bench`: measure, side by side in one run, what the architecture costs.

Figures are only compared within one run (machines are noisy), so every benchmark reports a
ratio against a baseline measured the same way a moment earlier. Benchmarks:

* `receive`: N SMTP messages queued by the live MTA (tcpserver → qmail-smtpd → qmail-queue),
  with the real kernel forking (the default) and with `--exec` (a fresh interpreter per exec,
  as qmail's real execs). The ratio is the price of exec.
* `model`: the model's trace events per wall second on a burst of messages, at the teaching
  and fast levels, against bare SimPy processing the same number of events in the same
  process (a process that only yields zero timeouts): the ratio is the model's efficiency.
"""

from __future__ import annotations

import argparse
import smtplib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.mta import daemon
from sim.mta.home import init_home
from sim.qmail.errors import BadInput

MESSAGE = b"Subject: bench\r\n\r\n" + b"x" * 1000 + b"\r\n"


@dataclass(frozen=True, slots=True)
class Result:
    """One measurement: what, how many, how long."""

    name: str
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def receive(count: int, exec_mode: bool) -> Result:
    """Queue `count` messages over SMTP, one connection each; returns the time taken."""
    with tempfile.TemporaryDirectory(prefix="qmailsim-bench-") as tmp:
        home = Path(tmp) / "q"
        init_home(home, "example.test", users=["alice"])
        _, port = daemon.start(
            home, ("127.0.0.1", 0), {}, exec_mode=exec_mode, programs=("tcpserver",)
        )
        try:
            start = time.perf_counter()
            for _ in range(count):
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                    smtp.sendmail("bob@example.test", ["alice@example.test"], MESSAGE)
            seconds = time.perf_counter() - start
        finally:
            daemon.stop(home)
        queued = len(list((home / "queue" / "todo").iterdir()))
    if queued != count:
        raise RuntimeError(f"benchmark lost mail: {queued} of {count} queued")
    name = "receive --exec" if exec_mode else "receive (fork)"
    return Result(name, count, seconds)


def _report(results: list[Result], baseline: Result, print_: Callable[[str], None]) -> None:
    print_(f"{'benchmark':<18} {'messages':>8} {'seconds':>8} {'msg/s':>8} {'x baseline':>10}")
    for r in results:
        ratio = baseline.rate / r.rate if r.rate else float("inf")
        print_(f"{r.name:<18} {r.count:>8} {r.seconds:>8.2f} {r.rate:>8.1f} {ratio:>9.2f}x")


BURST = """\
[scenario]
name = "bench"
duration = 120
seed = 1
detail = "{detail}"

[[host]]
name = "mail.example.test"
users = ["alice", "bob"]

[host.control]
locals = ["example.test"]
rcpthosts = ["example.test"]

[[workload]]
kind = "burst"
at = 1
count = {count}
from = "carol@other.test"
to = ["alice@example.test", "bob@example.test"]
"""


def bare_simpy(events: int) -> float:
    """Seconds bare SimPy takes to process `events` events (zero timeouts) here and now."""
    import simpy

    env = simpy.Environment()

    def ticker(env: simpy.Environment):
        for _ in range(events):
            yield env.timeout(0)

    env.process(ticker(env))
    start = time.perf_counter()
    env.run()
    return time.perf_counter() - start


def model(count: int, detail: str) -> tuple[int, int, float]:
    """(messages delivered, trace events, wall seconds) for a burst of `count` messages."""
    from sim.run import run as run_model
    from sim.scenario import parse_scenario

    scenario = parse_scenario(BURST.format(detail=detail, count=count), "bench")
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as trace:
        start = time.perf_counter()
        result = run_model(scenario, trace=trace.name, keep_trace=False)
        seconds = time.perf_counter() - start
    summary = result.summary
    return summary["messages"]["delivered"], summary["run"]["events"], seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qmailsim bench`."""
    parser.add_argument(
        "--messages", type=int, default=50, metavar="N", help="messages per run (50)"
    )
    parser.add_argument(
        "--only", choices=("receive", "model"), help="run one benchmark (default: both)"
    )


def run(args: argparse.Namespace, print_: Callable[[str], None] = print) -> int:
    """Run the benchmarks and print a table; the ratios are what to quote."""
    if args.messages < 1:
        raise BadInput("--messages must be at least 1")
    only = getattr(args, "only", None)
    if only in (None, "receive"):
        print_(f"qmailsim bench: {args.messages} messages per run, fork and exec side by side")
        fork = receive(args.messages, exec_mode=False)
        exec_ = receive(args.messages, exec_mode=True)
        _report([fork, exec_], fork, print_)
        print_(f"exec costs {exec_.seconds / fork.seconds:.1f}x the time of fork-only per message")
    if only in (None, "model"):
        print_(f"model: a burst of {args.messages} messages, against bare SimPy")
        print_(f"{'level':<10} {'delivered':>9} {'events':>9} {'events/s':>10} {'x bare':>7}")
        for detail in ("teaching", "fast"):
            delivered, events, seconds = model(args.messages, detail)
            if delivered != args.messages:
                raise RuntimeError(f"benchmark lost mail: {delivered} of {args.messages}")
            rate = events / seconds
            bare = events / bare_simpy(events)
            print_(f"{detail:<10} {delivered:>9} {events:>9} {rate:>10.0f} {rate / bare:>7.3f}")
    return 0
