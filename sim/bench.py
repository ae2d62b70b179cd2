"""`qmailsim bench`: measure, side by side in one run, what the architecture costs.

Figures are only compared within one run (machines are noisy), so every benchmark reports a
ratio against a baseline measured the same way a moment earlier. Benchmarks:

* `receive`: N SMTP messages queued by the live MTA (tcpserver → qmail-smtpd → qmail-queue),
  with the real kernel forking (the default) and with `--exec` (a fresh interpreter per exec,
  as qmail's real execs). The ratio is the price of exec.
* `model`: the SimPy model's speed on the default scenario (virtual seconds per wall second),
  when the model is available.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qmailsim bench`."""
    parser.add_argument(
        "--messages", type=int, default=50, metavar="N", help="messages per run (50)"
    )


def run(args: argparse.Namespace, print_: Callable[[str], None] = print) -> int:
    """Run the benchmarks and print a table; the ratios are what to quote."""
    if args.messages < 1:
        raise BadInput("--messages must be at least 1")
    print_(f"qmailsim bench: {args.messages} messages per run, fork and exec side by side")
    fork = receive(args.messages, exec_mode=False)
    exec_ = receive(args.messages, exec_mode=True)
    _report([fork, exec_], fork, print_)
    print_(f"exec costs {exec_.seconds / fork.seconds:.1f}x the time of fork-only per message")
    return 0
