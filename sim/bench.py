"""`qmailsim bench`: measure, side by side in one run, what the architecture costs.

Figures are only compared within one run (machines are noisy), so every benchmark reports a
ratio against a baseline measured the same way a moment earlier. Benchmarks:

* `receive`: N SMTP messages queued by the live MTA (tcpserver → qmail-smtpd → qmail-queue),
  with the real kernel forking (the default) and with `--exec` (a fresh interpreter per exec,
  as qmail's real execs). The ratio is the price of exec.
* `model`: the model's events per wall second on a burst of messages, at the teaching
  and fast levels, with and without writing the trace, against bare SimPy processing the
  same number of events in the same process (a process that only yields zero timeouts):
  the ratio is the model's efficiency. The model's events are the system calls its
  programs make; at the teaching level each is an event of its own. A first row runs the
  kernel alone (a program that only calls getpid, as many times): what is left of the
  ratio after it is the calls' own work (files, pipes, sockets) and the programs' logic.
* `scale`: a busy server's day (1,000,000 messages arriving evenly) at the fast level, cut
  to N messages: wall time and memory per message, and what the whole day would take.
"""

from __future__ import annotations

import argparse
import gc
import os
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.kernel import effects as fx
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
duration = {duration}
seed = 1
detail = "{detail}"

[[host]]
name = "mail.example.test"
users = ["alice", "bob"]
fetch = {fetch}

[host.control]
locals = ["example.test"]
rcpthosts = ["example.test"]

[[workload]]
{workload}
from = "carol@other.test"
to = {to}
"""

A_DAY = 86_400.0
SCALE_TARGET = 1_000_000  # messages: the "day of a busy server"
SCALE_RATE = SCALE_TARGET / A_DAY  # 11.6 messages a second, all day
FETCH = 60  # seconds between the users' mail pickups in the day (a POP3 client's poll)
PROJECT_MEMORY_FROM = 10_000  # messages: below, a run's fixed costs swamp what each one adds


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


def _getpid_only(count: int):
    """A program that only calls getpid, `count` times: the kernel with no work to do."""

    def main(argv: list[str], env: dict[str, str]):
        for _ in range(count):
            yield fx.Getpid()
        return 0

    return main


def kernel_alone(calls: int, detail: str) -> float:
    """Seconds SimKernel takes to run `calls` getpid calls at `detail`, each charged its
    CPU cost from the default table: the kernel's own price per call."""
    import simpy

    from sim.kernel.costs import Costs
    from sim.kernel.simkernel import SimKernel

    env = simpy.Environment()
    main = _getpid_only(calls)
    kernel = SimKernel(env, lambda prog: (main, None), host="bench", costs=Costs(detail=detail))
    kernel.spawn("getpid", [], {})
    start = time.perf_counter()
    env.run()
    seconds = time.perf_counter() - start
    if kernel.calls != calls:
        raise RuntimeError(f"benchmark: the kernel ran {kernel.calls} of {calls} calls")
    return seconds


@dataclass(frozen=True, slots=True)
class ModelRun:
    """One run of the model: what it did and what it took."""

    injected: int
    delivered: int
    queued: int
    calls: int  # system calls the programs made: the model's events
    traced: int  # events written to the trace (0 without one)
    seconds: float
    grew: int  # bytes the process grew by (resident set), 0 where unknown
    peak: int  # the process's largest resident set so far, in bytes, 0 where unknown

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else float("inf")


def _peak() -> int:
    """The largest resident set this process has had, in bytes (0 where unknown)."""
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _resident() -> int:
    """This process's resident set now, in bytes (Linux), else 0."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def model_run(scenario_text: str, trace: bool) -> ModelRun:
    """Run a scenario (TOML text) in the model, with or without writing a trace."""
    from sim.run import run as run_model
    from sim.run_cli import ProgressBar
    from sim.scenario import parse_scenario

    scenario = parse_scenario(scenario_text, "bench")
    with tempfile.TemporaryDirectory(prefix="qmailsim-bench-") as tmp:
        out = str(Path(tmp) / "trace.jsonl") if trace else None
        gc.collect()
        before = _resident()
        start = time.perf_counter()
        bar = ProgressBar()  # on a terminal, for runs longer than a second
        try:
            result = run_model(scenario, trace=out, keep_trace=False, progress=bar.update)
        finally:
            bar.stop()
        seconds = time.perf_counter() - start
        grew = max(0, _resident() - before) if before else 0
    kernels = [k for host in result.world.hosts.values() for k in host.kernels]
    counts, events = result.summary["messages"], result.summary["run"]["events"]
    return ModelRun(
        counts["injected"],
        counts["delivered"],
        counts["queued"],
        sum(k.calls for k in kernels),
        events,
        seconds,
        grew,
        _peak(),
    )


def burst(count: int, detail: str) -> str:
    """A burst of `count` two-recipient messages at t=1, as TOML."""
    workload = f'kind = "burst"\nat = 1\ncount = {count}'
    to = '["alice@example.test", "bob@example.test"]'
    return BURST.format(duration=120, detail=detail, workload=workload, to=to, fetch=0)


def day(count: int) -> str:
    """`count` one-recipient messages arriving as a busy server's day does (1M a day), fast,
    picked up by their reader every `FETCH` seconds."""
    duration = count / SCALE_RATE
    workload = f'kind = "poisson"\nrate = {SCALE_RATE:.6f}\nstop = {duration:.3f}'
    to = '["alice@example.test"]'
    return BURST.format(
        duration=duration + 60, detail="fast", workload=workload, to=to, fetch=FETCH
    )


def _check(run: ModelRun) -> None:
    if run.injected != run.delivered + run.queued:
        raise RuntimeError(
            f"benchmark lost mail: {run.injected} injected, {run.delivered} delivered"
        )


def model(count: int, print_: Callable[[str], None]) -> None:
    """The model's events (calls) per second against bare SimPy, per level, trace or not."""
    print_(f"model: a burst of {count} messages (2 recipients each), against bare SimPy")
    print_("events are the programs' system calls, each one an event at the teaching level")
    print_(f"{'level':<9} {'trace':<5} {'delivered':>9} {'events':>8} {'traced':>7} "
           f"{'seconds':>7} {'events/s':>8} {'x bare':>7}")  # fmt: skip
    _check(model_run(burst(min(count, 10), "teaching"), False))  # warm up: imports, caches
    calls = 0
    for detail in ("teaching", "fast"):
        for trace in (False, True):
            r = model_run(burst(count, detail), trace)
            _check(r)
            calls = calls or r.calls
            bare = r.calls / bare_simpy(r.calls)
            print_(
                f"{detail:<9} {'yes' if trace else 'no':<5} {r.delivered:>9} {r.calls:>8} "
                f"{r.traced:>7} {r.seconds:>7.2f} {r.rate:>8.0f} {r.rate / bare:>7.3f}"
            )
    print_(f"the kernel alone: a program that only calls getpid, {calls} times")
    for detail in ("teaching", "fast"):
        seconds = kernel_alone(calls, detail)
        rate, bare = calls / seconds, calls / bare_simpy(calls)
        print_(
            f"{detail:<9} {'no':<5} {'-':>9} {calls:>8} {0:>7} {seconds:>7.2f} "
            f"{rate:>8.0f} {rate / bare:>7.3f}"
        )


def scale(count: int, print_: Callable[[str], None]) -> None:
    """A busy server's day at the fast level, cut to `count` messages, and what 1M would take."""
    print_(f"scale: about {count} messages arriving at {SCALE_RATE:.1f}/s (1,000,000 a day), "
           "fast level, no trace")  # fmt: skip
    r = model_run(day(count), trace=False)
    _check(r)
    per = r.seconds / max(1, r.injected)
    print_(f"{r.injected} injected, {r.delivered} delivered, {r.queued} queued, "
           f"{r.calls / max(1, r.injected):.0f} calls a message")  # fmt: skip
    print_(f"{r.seconds:.1f} s of wall time: {per * 1e6:.0f} us a message")
    line = f"1,000,000 messages at this rate: {per * SCALE_TARGET / 60:.0f} min (target: 5 min)"
    if r.grew and r.injected >= PROJECT_MEMORY_FROM:
        line += f"; memory grew {r.grew / r.injected:.0f} B a message, "
        line += f"{r.grew / r.injected * SCALE_TARGET / 2**30:.1f} GiB for 1M (target: 2 GB)"
    elif r.grew:
        line += f"; too few messages to project memory (from {PROJECT_MEMORY_FROM:,})"
    print_(line)
    if r.peak:
        print_(f"peak resident set of this process: {r.peak / 1e6:.0f} MB")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qmailsim bench`."""
    parser.add_argument(
        "--messages", type=int, default=50, metavar="N", help="messages per run (50)"
    )
    parser.add_argument(
        "--only",
        choices=("receive", "model", "scale"),
        help="run one benchmark (default: all three)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        metavar="N",
        help="messages in the scale benchmark (default: 20 times --messages); "
        "1000000 runs the whole day",
    )


def run(args: argparse.Namespace, print_: Callable[[str], None] = print) -> int:
    """Run the benchmarks and print a table; the ratios are what to quote."""
    if args.messages < 1:
        raise BadInput("--messages must be at least 1")
    if getattr(args, "scale", None) is not None and args.scale < 1:
        raise BadInput("--scale must be at least 1")
    only = getattr(args, "only", None)
    if only in (None, "receive"):
        print_(f"qmailsim bench: {args.messages} messages per run, fork and exec side by side")
        fork = receive(args.messages, exec_mode=False)
        exec_ = receive(args.messages, exec_mode=True)
        _report([fork, exec_], fork, print_)
        print_(f"exec costs {exec_.seconds / fork.seconds:.1f}x the time of fork-only per message")
    if only in (None, "model"):
        model(args.messages, print_)
    if only in (None, "scale"):
        scale(getattr(args, "scale", None) or args.messages * 20, print_)
    return 0
