"""A message's life in the queue, as ordered lists of filesystem operations.

Theory of operation. qmail's crash safety is an order of create, write, fsync, link and unlink
that can be written down (INTERNALS, qmail-queue.c, qmail-send.c). Each function here returns
that order for one step, as `sim.qmail.queue` operations; the programs hand them to a kernel
one by one, and on a failure do what the operation's `fail` says. Nothing here touches a file.

* qmail-queue (euid qmailq, umask 033, cwd the queue): create `pid/<pid>.<time>.<seq>`
  (`pid_create`); its inode number is the queue id, so the rest (`ops_after_inode`) only
  follows once the kernel has answered: link to `mess/`, unlink the pid name (S2), write and
  fsync the message, create and fill `intd/` (S3), fsync it, link it as `todo/` (S4), pull the
  trigger. A write error (53) or read error (54) first truncates and unlinks what it made
  (`cleanup_ops`); every other failure exits at once and leaves the files to the 36-hour rule.
  With `fsync_dirs=True` (the project's default) it also fsyncs the directories it linked into
  before succeeding, which qmail 1.03 left to a synchronous filesystem.
* qmail-send (euid qmails, umask 077): preprocessing a `todo/` entry (S4 -> S5), marking a
  recipient done, finishing a channel, and eliminating the message (`messdone`, S5 -> S2 -> S1);
  files it may not unlink it asks qmail-clean to remove (`CleanRequest`). With `fsync_dirs`
  preprocessing also fsyncs the directories of the info and channel files before it asks for
  the todo entry's removal: otherwise the next qmail-queue's fsync of `todo/` can make that
  removal durable while the new names are not, and a power loss then loses a queued message
  (tests/crash/test_power_loss.py finds exactly that cut).

`QMAILSIM_FSYNC_DIRS=0` in a program's environment (`fsync_dirs_from`) asks for qmail 1.03's
behaviour, no directory fsyncs at all, so the crash tests can show what they are for.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sim.qmail.clean import encode_clean_command
from sim.qmail.constants import SLEEP_SYSFAIL
from sim.qmail.envelope import encode_channel_file, encode_info, queue_file_head
from sim.qmail.queue import (
    CHANNELS,
    IGNORE,
    LOCK_TRIGGER,
    Append,
    CleanRequest,
    Copy,
    Create,
    Fsync,
    FsyncDir,
    InjectBounce,
    Link,
    Log,
    OnFail,
    OpenFifoWrite,
    QueueOp,
    Read,
    Stat,
    Truncate,
    Unlink,
    Write,
    exits,
    pid_path,
    queue_path,
    split_dir,
    warns,
)

QUEUE_MODE = 0o644  # qmail-queue's files: open_excl's 0644 under umask 033
SEND_MODE = 0o600  # qmail-send's files: 0644 or 0600 under umask 077
MESSAGE = "message"  # what qmail-queue copies from fd 0, after its Received line
ENVELOPE = "envelope"  # what it copies from fd 1, checked by `sim.qmail.envelope`

INJECT_TROUBLE = "warning: trouble injecting bounce message, will try later"
FSYNC_DIRS_ENV = "QMAILSIM_FSYNC_DIRS"

# qmail-queue's exit codes for its filesystem steps (qmail-queue(8)).
EXIT_PID, EXIT_MESS, EXIT_INTD, EXIT_TODO, EXIT_WRITE, EXIT_READ = 63, 64, 65, 66, 53, 54


def fsync_dirs_from(env: Mapping[str, str]) -> bool:
    """True (the project's way) unless QMAILSIM_FSYNC_DIRS is 0 (qmail 1.03's way)."""
    return env.get(FSYNC_DIRS_ENV, "1").strip() != "0"


def without_dir_fsyncs(ops: Sequence[QueueOp]) -> list[QueueOp]:
    """The same operations as qmail 1.03 performs them: no directory fsyncs."""
    return [op for op in ops if not isinstance(op, FsyncDir)]


def _write_error() -> OnFail:
    """A write error after the pid name is gone: exit 53, cleaning up first."""
    return exits(EXIT_WRITE, cleanup=True)


def envelope_fail(exit_code: int) -> OnFail:
    """qmail-queue's reaction to a bad envelope: only a read error (54) cleans up first."""
    return exits(exit_code, cleanup=exit_code in (EXIT_WRITE, EXIT_READ))


def pid_create(pid: int, start_time: int, seq: int) -> Create:
    """Step 2: create `pid/<pid>.<time>.<seq>`; try seq 1..9 (PID_SEQS), all taken -> exit 63."""
    return Create(pid_path(pid, start_time, seq), QUEUE_MODE, fail=exits(EXIT_PID))


def ops_after_inode(
    queue_id: int, pid_file: str, *, uid: int, pid: int, received: bytes, fsync_dirs: bool = True
) -> list[QueueOp]:
    """Steps 3-7 of qmail-queue, once fstat of the pid file has given the queue id.

    `received` is qmail-queue's own Received line (`sim.qmail.received.queue_received`).
    """
    mess, intd, todo = (queue_path(k, queue_id) for k in ("mess", "intd", "todo"))
    ops: list[QueueOp] = [
        Link(pid_file, mess, fail=exits(EXIT_MESS)),
        Unlink(pid_file, fail=exits(EXIT_PID)),
    ]
    if fsync_dirs:
        ops.append(FsyncDir(split_dir("mess", queue_id), fail=_write_error()))
    ops += [
        Write(mess, received, fail=_write_error()),
        Copy(0, mess, MESSAGE, fail=_write_error(), read_fail=exits(EXIT_READ, cleanup=True)),
        Fsync(mess, fail=_write_error()),
        Create(intd, QUEUE_MODE, fail=exits(EXIT_INTD)),
        Write(intd, queue_file_head(uid, pid), fail=_write_error()),
        Copy(1, intd, ENVELOPE, fail=_write_error(), read_fail=exits(EXIT_READ, cleanup=True)),
        Fsync(intd, fail=_write_error()),
    ]
    if fsync_dirs:
        ops.append(FsyncDir("intd", fail=_write_error()))
    ops.append(Link(intd, todo, fail=exits(EXIT_TODO)))
    if fsync_dirs:  # todo/<id> exists now: cleaning up would empty it, so no cleanup
        ops.append(FsyncDir("todo", fail=exits(EXIT_TODO)))
    ops.append(OpenFifoWrite(LOCK_TRIGGER, b"\0", fail=IGNORE))
    return ops


def cleanup_ops(queue_id: int, done: Collection[QueueOp]) -> list[QueueOp]:
    """qmail-queue's cleanup before exit 53/54, given the operations that had succeeded.

    The intd file is truncated and unlinked if it was created, then the mess file if the pid
    name was already unlinked; a failed unlink stops the cleanup there.
    """
    made_mess = any(isinstance(op, Unlink) and op.path.startswith("pid/") for op in done)
    intd = queue_path("intd", queue_id)
    made_intd = any(isinstance(op, Create) and op.path == intd for op in done)
    ops: list[QueueOp] = []
    for made, path in ((made_intd, intd), (made_mess, queue_path("mess", queue_id))):
        if made:
            ops += [Truncate(path), Unlink(path)]
    return ops


def todo_open_ops(queue_id: int) -> list[QueueOp]:
    """Preprocessing step 1: read `todo/<id>`, stat `mess/` (for the byte count in the log)."""
    todo, mess = queue_path("todo", queue_id), queue_path("mess", queue_id)
    return [
        Read(todo, fail=warns(f"warning: unable to open {todo}")),
        Stat(mess, exists=True, fail=warns(f"warning: unable to stat {mess}")),
    ]


def preprocess_ops(
    queue_id: int, sender: str, routed: Sequence[tuple[str, str]], *, fsync_dirs: bool = True
) -> list[QueueOp]:
    """Preprocessing steps 2-6 for a read todo entry, S4 -> S5.

    `routed` is the rewritten recipients in envelope order as (channel, address). Channel
    records are buffered by qmail-send, so each channel file gets one Write when flushed.
    The program logs `info msg ...` after the info Write. With `fsync_dirs` the directories
    holding the new names are fsynced before qmail-clean removes the todo entry.
    """
    info = queue_path("info", queue_id)
    chan = {c: queue_path(c, queue_id) for c in CHANNELS}
    ops: list[QueueOp] = [
        Unlink(p, missing_ok=True, fail=warns(f"warning: unable to unlink {p}"))
        for p in (chan["local"], chan["remote"], info)
    ]
    ops += [
        Create(info, SEND_MODE, fail=warns(f"warning: unable to create {info}")),
        Log(f"new msg {queue_id}"),
        Write(info, encode_info(sender), fail=warns(f"warning: trouble writing to {info}")),
    ]
    used = list(dict.fromkeys(c for c, _ in routed))
    ops += [
        Create(chan[c], SEND_MODE, fail=warns(f"warning: unable to create {chan[c]}")) for c in used
    ]
    ops.append(Fsync(info, fail=warns(f"warning: trouble fsyncing {info}")))
    for c in CHANNELS:
        if c in used:
            data = encode_channel_file(a for ch, a in routed if ch == c)
            ops += [
                Write(chan[c], data, fail=warns(f"warning: trouble writing to {chan[c]}")),
                Fsync(chan[c], fail=warns(f"warning: trouble fsyncing {chan[c]}")),
            ]
    if fsync_dirs:
        for kind in ("info", *(c for c in CHANNELS if c in used)):
            path = split_dir(kind, queue_id)
            ops.append(FsyncDir(path, fail=warns(f"warning: trouble fsyncing {path}")))
    todo = queue_path("todo", queue_id)
    ops.append(
        CleanRequest(
            encode_clean_command("todo", queue_id),
            fail=warns(f"warning: qmail-clean unable to clean up {todo}"),
        )
    )
    return ops


def queues_after_preprocess(routed: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """Step 7: the priority queues the new message joins: its channels, or `done` if none."""
    used = tuple(c for c in CHANNELS if any(ch == c for ch, _ in routed))
    return used or ("done",)


def mark_done_ops(queue_id: int, channel: str, offset: int) -> list[QueueOp]:
    """After a K result: overwrite the record's `T` with `D`, unsynced (atomic one-byte write)."""
    path = queue_path(channel, queue_id)
    warning = f"warning: trouble marking {path}; message will be delivered twice!"
    return [Write(path, b"D", offset=offset, fail=warns(warning))]


def failure_ops(queue_id: int, channel: str, offset: int, paragraph: bytes) -> list[QueueOp]:
    """After a D result: append the bounce paragraph to `bounce/<id>` first, then mark done.

    The paragraph is `sim.qmail.bounce.bounce_paragraph`'s; qmail-send retries a failed
    append every 10 seconds, forever.
    """
    alert = "alert: unable to append to bounce message; HELP! sleeping..."
    bounce = queue_path("bounce", queue_id)
    append = Append(bounce, paragraph, SEND_MODE, fail=warns(alert, retry_after=10))
    return [append, *mark_done_ops(queue_id, channel, offset)]


def channel_done_ops(queue_id: int, channel: str) -> list[QueueOp]:
    """A channel with every recipient done: unlink its file, then look for the other one.

    If the other channel's file is gone too, the message joins the `done` queue.
    """
    path = queue_path(channel, queue_id)
    warning = f"warning: unable to unlink {path}; will try again later"
    ops: list[QueueOp] = [Unlink(path, fail=warns(warning, retry_after=SLEEP_SYSFAIL))]
    ops += [Stat(queue_path(c, queue_id), exists=False) for c in CHANNELS if c != channel]
    return ops


def messdone_ops(queue_id: int) -> list[QueueOp]:
    """Eliminating a message: checks, the bounce, `end msg`, unlink info (S2), foop (S1).

    A failure after the checks puts the message back in the `done` queue 123 s later.
    """
    info, bounce = queue_path("info", queue_id), queue_path("bounce", queue_id)
    later = SLEEP_SYSFAIL
    ops: list[QueueOp] = [Stat(queue_path(c, queue_id), exists=False) for c in CHANNELS]
    ops += [
        Stat(queue_path("todo", queue_id), exists=False),
        Stat(info, exists=True),
        InjectBounce(
            queue_id, fail=warns("warning: trouble injecting bounce message, will try later", later)
        ),
        Unlink(bounce, missing_ok=True, fail=warns(f"warning: unable to unlink {bounce}", later)),
        Log(f"end msg {queue_id}"),
        Unlink(info, fail=warns(f"warning: unable to unlink {info}; will try again later", later)),
        CleanRequest(
            encode_clean_command("foop", queue_id),
            fail=warns(f"warning: qmail-clean unable to clean up foop/{queue_id}"),
        ),
    ]
    return ops


def ossified_ops(queue_id: int) -> list[QueueOp]:
    """The cleanup scan's step for an ossified `mess/` file: foop it if no todo and no info.

    Such a message was left by a qmail-queue that died (S2 or S3); this takes it to S1.
    """
    return [
        Stat(queue_path("todo", queue_id), exists=False),
        Stat(queue_path("info", queue_id), exists=False),
        CleanRequest(
            encode_clean_command("foop", queue_id),
            fail=warns(f"warning: qmail-clean unable to clean up foop/{queue_id}"),
        ),
    ]
