"""One simulated qmail host: its home in a MemFS, its kernel, and its boot script.

The home is `sim.mta.home.layout`'s, the very entries `qmailsim mta init` writes to disk,
rooted at /var/qmail, then the scenario's control and .qmail files on top. Booting does what
`sim.mta.daemon` does for the live MTA: tcpserver as root (`-1 -c N -u qmaild -l ME IP 25
qmail-smtpd`, with `-x etc/tcp.smtp` if the scenario gives rules) and `qmail-start ./Maildir/
splogger qmail` as root, with QMAILHOME and PATH, in the home; a host with `mta = "monolith"`
boots `mta-monolith -1 IP 25` as root instead, as `mta start --monolith` does. The monolith
writes no qmail-send log, so the host keeps its `queue` and `delivery` notes (and the ends of
its sleeps) in `notes`, whether or not the run keeps a trace. A crash powers the kernel off,
keeps what the disk holds (`MemFS.crash`), and boots a new kernel on it: the same programs
then recover the queue as qmail does.
"""

from __future__ import annotations

import contextlib
import functools
import posixpath
from collections import Counter
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.kernel.costs import Costs
from sim.kernel.memfs import MemFS, Special
from sim.kernel.real import Resolver
from sim.kernel.simkernel import SimKernel
from sim.kernel.simnet import Network
from sim.model.ledger import LogBook
from sim.model.proctable import ProcessRows
from sim.mta.home import Entry, layout, user_uid
from sim.qmail.control import incoming_limit
from sim.qmail.errors import BadInput
from sim.scenario import Host

ROOT = "/var/qmail"
SMTP_PORT = 25
PATH = "/usr/bin:/bin"
LOG_DIR = "log"
SEND_LOG = f"{LOG_DIR}/qmail-send.log"
LOG_KEEP = 64 * 2**20  # past this, a host keeps the last half of qmail-send's log (read first)
RULES = "etc/tcp.smtp"
MONOLITH_NOTES = frozenset({"queue", "delivery", "sleep"})  # what `sim.model.ledger` reads


def dotqmail_path(key: str, users: tuple[str, ...]) -> str:
    """Where a scenario's `dotqmail` key goes: `alice-list` -> home/alice/.qmail-list."""
    user, dash, ext = key.partition("-")
    if user == "alias":
        base = "alias"
    elif user in (u.lower() for u in users):
        base = f"home/{user}"
    else:
        raise BadInput(f"dotqmail.{key}: {user!r} is neither a user of the host nor alias")
    return f"{base}/.qmail{dash}{ext}"


def build_home(fs: MemFS, host: Host, root: str = ROOT) -> None:
    """Lay out the host's qmail home in `fs`, all of it durable (it was on disk at boot)."""
    control = dict(host.control)
    locals_ = control.get("locals", "").split() or None
    rcpthosts = control.get("rcpthosts", "").split() or None
    entries = sorted(layout(root, host.name, locals_, rcpthosts, host.users), key=_path_of)
    fs.populate({root: Special.DIR})
    for entry in entries:
        full = posixpath.join(root, entry.path)
        if entry.kind == "dir":
            fs.mkdir(full, entry.mode)
            fs.fsync(fs.lookup(full))
            fs.fsync(fs.parent(full)[0])
        elif entry.kind == "fifo":
            fs.mkfifo(full, entry.mode)
            fs.fsync(fs.parent(full)[0])
        else:
            _write_durable(fs, full, entry.data, entry.mode)
    fs.mkdir(posixpath.join(root, LOG_DIR), 0o755)  # as `mta start` makes it for the live MTA
    fs.fsync(fs.lookup(root))
    extra = {f"control/{name}": text for name, text in control.items()}
    extra.update({dotqmail_path(k, host.users): v for k, v in host.dotqmail.items()})
    for path, text in sorted(extra.items()):
        _write_durable(fs, posixpath.join(root, path), text.encode("latin-1"))


def _path_of(entry: Entry) -> str:
    return entry.path


def _write_durable(fs: MemFS, path: str, data: bytes, mode: int = 0o644) -> None:
    try:
        node = fs.lookup(path)
    except FileNotFoundError:
        node = fs.create(path, mode, 0)
    fs.truncate(node, 0)
    fs.write(node, 0, data)
    fs.fsync(node)
    fs.fsync(fs.parent(path)[0])


def boot_commands(host: Host, ip: str, root: str = ROOT) -> list[tuple[str, list[str]]]:
    """(program, argv) of the boot script, as `sim.mta.daemon._argv_for` starts the live MTA."""
    if host.mta == "monolith":
        return [("mta-monolith", ["-1", ip, str(SMTP_PORT)])]
    limit = incoming_limit(host.control.get("concurrencyincoming"))
    argv = ["-1", "-c", str(limit), "-X", "-x", posixpath.join(root, RULES)]
    argv += ["-u", "qmaild", "-l", host.name, ip, str(SMTP_PORT), "qmail-smtpd"]
    return [("tcpserver", argv), ("qmail-start", ["./Maildir/", "splogger", "qmail"])]


class SimHost:
    """A qmail host of the model: its filesystem and the kernels it has booted (one per boot)."""

    def __init__(
        self,
        env: simpy.Environment,
        host: Host,
        *,
        net: Network,
        costs: Costs,
        resolve: Resolver,
        trace: Callable[[dict], None] | None,
        seed: int,
        epoch: float,
    ) -> None:
        self.env, self.spec, self.net, self.costs = env, host, net, costs
        self.name = host.name
        self.resolve, self.trace, self.seed, self.epoch = resolve, trace, seed, epoch
        self.ip = net.add_host(host.name)
        self.fs = MemFS()
        build_home(self.fs, host)
        self.kernels: list[SimKernel] = []
        self.logs: list[bytes] = []  # qmail-send's log of earlier boots (kept by "syslog")
        self.logbook = LogBook(host.name, epoch)  # the log, read as it is written
        self.log_read = 0  # how much of the current boot's log `logbook` has read
        self.notes: list[dict] = []  # a monolith's queue, delivery and sleep events, all boots
        self.retired = ProcessRows()  # ps rows of processes long gone
        self.disk_factor = 1.0
        self.up = False
        self.fetched = 0  # messages the users' mail readers took (see `Host.fetch`)
        self.boot()
        if host.fetch > 0:
            env.process(self._fetcher(host.fetch))

    @property
    def kernel(self) -> SimKernel:
        """The kernel of the current boot."""
        return self.kernels[-1]

    def boot(self) -> None:
        """Start a kernel on the current filesystem and run the boot script."""
        kernel = SimKernel(
            self.env,
            self.resolve,
            host=self.name,
            costs=self._costs(),
            trace=self._observe if self.spec.mta == "monolith" else self.trace,
            cores=self.spec.cores,
            disks=self.spec.disks,
            seed=self.seed + len(self.kernels),
            fs=self.fs,
            net=self.net,
            epoch=self.epoch,
        )
        kernel.accounts.update({u.lower(): user_uid(i) for i, u in enumerate(self.spec.users)})
        if self.kernels:
            kernel.next_pid = self.kernels[-1].next_pid  # pids stay unique across boots
        self.kernels.append(kernel)
        self.up = True
        env_vars = {"PATH": PATH, "QMAILHOME": ROOT}
        for prog, argv in boot_commands(self.spec, self.ip):
            kernel.spawn(prog, argv, env_vars, "root", ROOT)

    def _observe(self, event: dict) -> None:
        """A monolith's trace: keep what its ledger needs, pass everything on."""
        if event["kind"] in MONOLITH_NOTES:
            self.notes.append(event)
        if self.trace is not None:
            self.trace(event)

    def retire(self, before: float) -> None:
        """Move processes that exited before `before` from the kernels' tables to `retired`.

        A kernel keeps every process it ever ran; over a long run that is most of the
        memory. Nothing refers to a process that has exited and been reaped, so its row is
        all that needs to stay.
        """
        for boot, kernel in enumerate(self.kernels):
            kernel.reap(before, into=functools.partial(self.retired.append, boot))

    def _fetcher(self, every: float) -> Generator[simpy.Event, Any, None]:
        while True:
            yield self.env.timeout(every)
            if self.up:
                self.fetch_mail()

    def fetch_mail(self) -> int:
        """Each user's mail reader takes and deletes what is in Maildir/new and cur (as a POP3
        client that leaves nothing on the server); returns how many messages it took."""
        taken = 0
        for user in self.spec.users:
            for sub in ("new", "cur"):
                box = f"{ROOT}/home/{user.lower()}/Maildir/{sub}"
                try:
                    names = self.fs.readdir(box)
                except OSError:
                    continue  # no such Maildir (a .qmail sends the user's mail elsewhere)
                for name in names:
                    self.fs.unlink(f"{box}/{name}")
                taken += len(names)
        self.fetched += taken
        if taken and self.trace is not None:
            event = {"t": round(float(self.env.now), 9), "host": self.name, "pid": 1, "ppid": 0}
            why = f"the users' mail readers took {taken} messages from their Maildirs"
            self.trace({**event, "uid": "root", "prog": "model", "kind": "fetch",
                        "count": taken, "why": why})  # fmt: skip
        return taken

    def ps(self) -> list[dict]:
        """Every process of every boot, as `SimKernel.ps` rows with the boot's number."""
        rows = list(self.retired.rows())
        for boot, kernel in enumerate(self.kernels):
            rows += [{"boot": boot, **row} for row in kernel.ps()]
        return sorted(rows, key=lambda row: row["pid"])

    def accounts(self) -> Counter[str]:
        """How many processes ran under each account (the last one each ran as)."""
        counts: Counter[str] = Counter()
        counts.update(self.retired.count("user"))
        counts.update(row["user"] for kernel in self.kernels for row in kernel.ps())
        return counts

    def _costs(self) -> Costs:
        c, f = self.costs, self.disk_factor
        if f == 1.0:
            return c
        slow = {"fsync": c.fsync * f, "fsync_dir": c.fsync_dir * f}
        return c.with_overrides({**slow, "disk_bandwidth": c.disk_bandwidth / f})

    def slow_disk(self, factor: float) -> None:
        """Every fsync (and the data it flushes) takes `factor` times as long from now on."""
        self.disk_factor = factor
        self.kernel.costs = self._costs()

    def crash(self) -> None:
        """Power loss: every process dies; only what was fsynced is left on the disk."""
        self.up = False
        self.kernel.halt()
        self.read_log()
        self.logbook.end_file()  # a line the crash cut short does not run into the next boot's
        self.logs.append(self.send_log())
        self.log_read = 0  # the next boot's log is a new file
        self.fs = self.fs.crash()
        with contextlib.suppress(OSError):  # the log lives on elsewhere (it was syslog's)
            self.fs.unlink(posixpath.join(ROOT, SEND_LOG))

    def send_log(self) -> bytes:
        """qmail-send's log of the current boot, as splogger stored it."""
        try:
            return bytes(self.fs.lookup(posixpath.join(ROOT, SEND_LOG)).data)
        except OSError:
            return b""

    def all_logs(self) -> bytes:
        """qmail-send's log over every boot (what each boot kept: see `read_log`)."""
        return b"".join([*self.logs, self.send_log()])

    def read_log(self) -> None:
        """Hand what qmail-send logged since the last call to `logbook`; then, if the log
        is over `LOG_KEEP` bytes, drop all but the last half of that, as a rotation would
        (what is dropped has been read)."""
        try:
            node = self.fs.lookup(posixpath.join(ROOT, SEND_LOG))
        except OSError:
            return
        if len(node.data) > self.log_read:
            self.logbook.feed(bytes(node.data[self.log_read :]))
            self.log_read = len(node.data)
        if self.log_read > LOG_KEEP:
            cut = node.data.find(b"\n", self.log_read - LOG_KEEP // 2) + 1  # whole lines
            if cut:
                self.fs.drop_head(node, cut)
                self.log_read -= cut

    def delivered(self) -> int:
        """Deliveries that succeeded so far: qmail-send's log as read so far, or a monolith's
        `delivery` notes."""
        if self.spec.mta == "monolith":
            return sum(1 for e in self.notes if e["kind"] == "delivery" and e["outcome"] == "ok")
        return self.logbook.analyzer.counts["success"]

    def inject_env(self) -> dict[str, str]:
        """The environment a user's qmail-inject gets on this host."""
        return {"PATH": PATH, "QMAILHOME": ROOT}
