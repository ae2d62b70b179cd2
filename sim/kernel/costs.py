"""The cost table: what each system call costs in SimKernel's virtual time.

The numbers are rough, documented guesses for a small C qmail on a current Linux machine;
`qmailsim calibrate` measures the live MTA to replace them, and a scenario overrides any
of them by name (`Costs.with_overrides`). Every CPU cost holds one of the host's cores for
its duration; disk costs (fsync, the flush of a file's data) hold a disk; blocking waits
(a pipe read, accept, sleep, wait) hold nothing. Sources, for the defaults:

- a null system call (getpid, close, dup2, …) ≈ 0.1–0.5 µs (lmbench `lat_syscall null`);
  we round up to 1 µs to include the C library and argument checks.
- fork of a small static binary ≈ 0.2 ms, fork+exec ≈ 0.5 ms, process teardown ≈ 50 µs
  (lmbench `lat_proc fork` / `exec`); split here as fork 0.2 ms + exec 0.3 ms.
- pipe creation ≈ 3 µs; a pipe read or write ≈ 2 µs plus the copy at ≈ 4 GB/s
  (lmbench `lat_pipe`, `bw_pipe`); sockets on loopback ≈ 3 µs per call.
- open ≈ 2 µs, stat ≈ 1 µs, link/unlink/rename ≈ 5 µs, mkdir ≈ 10 µs on ext4 with a warm
  dentry cache (lmbench `lat_fs`, `lat_syscall open/stat`); file data is copied to the page
  cache at ≈ 3 GB/s.
- fsync on a consumer SSD ≈ 2 ms (one FLUSH CACHE), on a 7200 rpm disk ≈ 8 ms (a
  rotation plus a seek); fsync of a directory commits the journal, about the same. The
  dirty data it flushes goes at the disk's bandwidth (≈ 200 MB/s for a SATA SSD).
- a DNS answer from a caching resolver on the LAN ≈ 1 ms.
- network: one-way latency 20 ms (a 40 ms round trip across a continent), 100 Mbit/s;
  loopback ≈ 20 µs one way and ≈ 1 GB/s. Linux gives up a connect after ≈ 127 s
  (six SYN retransmissions).
- a trace `Note` is bookkeeping, not a system call: free.

`detail` picks how the kernel charges: "teaching" charges and traces every call on its own;
"fast" adds the costs of calls that cannot block to a debt paid in one step when the process
next has to wait (a read with nothing to read, an fsync, a sleep, a connect), forks, signals
or exits,
and traces those calls only on request. Large runs are much cheaper, at the price of coarser
timestamps: what a process writes between two waits is seen by others at the time of the
first call, not after the CPU time of the calls before it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.kernel import effects as fx

DETAILS = ("teaching", "fast")
NOT_COSTS = ("disk_bandwidth", "net_bandwidth", "loopback_bandwidth", "connect_timeout")
BANDWIDTHS = ("disk_bandwidth", "net_bandwidth", "loopback_bandwidth")
SIZES = ("pipe_capacity", "socket_buffer")  # bytes: whole numbers, at least 1


@dataclass(frozen=True, slots=True)
class Costs:
    """Per-call costs in seconds (sizes in bytes, bandwidths in bytes/s); see the module doc."""

    syscall: float = 1e-6
    note: float = 0.0
    fork: float = 2e-4
    exec: float = 3e-4
    exit: float = 5e-5
    wait: float = 2e-6
    pipe: float = 3e-6
    pipe_io: float = 2e-6
    pipe_io_per_kib: float = 0.25e-6
    open: float = 2e-6
    close: float = 0.5e-6
    file_io: float = 1e-6
    file_io_per_kib: float = 0.3e-6
    fsync: float = 2e-3
    fsync_dir: float = 2e-3
    disk_bandwidth: float = 200e6
    link: float = 5e-6
    rename: float = 5e-6
    unlink: float = 5e-6
    stat: float = 1e-6
    readdir: float = 2e-6
    readdir_per_entry: float = 0.1e-6
    mkdir: float = 1e-5
    dns: float = 1e-3
    listen: float = 2e-5
    connect: float = 2e-5
    accept: float = 1e-5
    sock_io: float = 3e-6
    net_latency: float = 0.02
    net_bandwidth: float = 12.5e6
    loopback_latency: float = 2e-5
    loopback_bandwidth: float = 1e9
    connect_timeout: float = 127.0
    pipe_capacity: int = 65536
    socket_buffer: int = 131072
    detail: str = "teaching"

    def __post_init__(self) -> None:
        if self.detail not in DETAILS:
            raise ValueError(f"costs: detail must be one of {DETAILS}, not {self.detail!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wrong = None if f.name == "detail" else problem(f.name, value)
            if wrong is not None and f.name in SIZES:
                raise ValueError(
                    "costs: pipe_capacity and socket_buffer must be >= 1 (whole bytes), "
                    f"not {f.name} = {value!r}"
                )
            if wrong is not None:
                raise ValueError(f"costs: {f.name} {wrong}")

    @property
    def fast(self) -> bool:
        """True when calls that cannot block are charged together (detail "fast")."""
        return self.detail == "fast"

    @classmethod
    def free(cls) -> Costs:
        """Every cost and latency zero (bandwidths and the connect timeout kept): for tests
        that set only the costs they measure, and for runs about logic, not time."""
        return cls(**{name: 0.0 for name in DURATIONS})

    def before(self, call: type[fx.Effect]) -> float:
        """What `call` pays before it runs (see `CALL_COST`)."""
        name = CALL_COST.get(call, "syscall")
        return getattr(self, name) if name else 0.0

    def with_overrides(self, overrides: Mapping[str, Any]) -> Costs:
        """A copy with some costs replaced; ValueError names any unknown key."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            hints = [f"{key!r}{suggest(key, names)}" for key in unknown]
            raise ValueError(f"costs: unknown key {', '.join(hints)}; known: {', '.join(names)}")
        return dataclasses.replace(self, **overrides)


def problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for the numeric field `name`, None if nothing. Shared with
    the scenario loader, which names the line: a NaN or an infinite cost would make virtual
    time NaN or stop it, and messages would silently vanish from the counts."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number >= 0, not {value!r}"
    if not finite(value):
        return f"must be a finite number, not {value!r}"
    if value < 0:
        return f"must be a number >= 0, not {value!r}"
    if name in BANDWIDTHS and value <= 0:
        return "must be > 0"
    if name in SIZES and (value < 1 or value != int(value)):
        return f"must be a whole number of bytes >= 1, not {value!r}"
    return None


def finite(value: float) -> bool:
    """True for a number that is neither NaN nor infinite, nor an int too big for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def suggest(key: str, names: list[str]) -> str:
    """` (did you mean 'fsync'?)` for a misspelt key, or nothing."""
    close = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


DURATIONS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(Costs)
    if f.type in (float, "float") and f.name not in NOT_COSTS
)
"""The fields that are costs in seconds (what `Costs.free` zeroes)."""

CALL_COST: dict[type[fx.Effect], str | None] = {
    fx.Fork: "fork", fx.Exec: "exec", fx.Exit: "exit", fx.Wait: "wait", fx.Pipe: "pipe",
    fx.Close: "close", fx.Open: "open", fx.Link: "link", fx.Rename: "rename",
    fx.Unlink: "unlink", fx.Stat: "stat", fx.Readdir: "readdir", fx.Mkdir: "mkdir",
    fx.Mkfifo: "mkdir", fx.Listen: "listen", fx.Accept: "accept", fx.Connect: "connect",
    fx.Note: "note", fx.Read: None, fx.Write: None, fx.Fsync: None, fx.FsyncDir: None,
}  # fmt: skip
"""The cost field each call pays before it runs; "syscall" if not listed; None: SimKernel's
handler charges by kind (file, pipe or socket I/O; fsyncs are all disk time)."""
