"""qmail-queue: put one message into the queue, crash-safely, and pull the trigger.

The message arrives on fd 0 and the envelope on fd 1 (qmail-queue(8)). The program is setuid
qmailq: whoever runs it can add mail to the queue and nothing else. The steps and their order
are `sim.qmail.lifecycle`'s; this module only runs them and turns a failure into qmail-queue's
exit code, which is its whole answer (it prints nothing). QMAILSIM_FSYNC_DIRS=0 in the
environment leaves out the directory fsyncs, as qmail 1.03 did (`lifecycle.fsync_dirs_from`).
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, Reader
from sim.programs.common import home
from sim.programs.queueops import Files, ReadFailed, perform
from sim.qmail import lifecycle as lc
from sim.qmail import queue as q
from sim.qmail.constants import QMAIL_UIDS
from sim.qmail.envelope import BadEnvelope, EnvelopeReader, encode_queue_envelope
from sim.qmail.received import queue_received

ACCOUNTS = {uid: name for name, uid in QMAIL_UIDS.items()}


def read_envelope(fd: int) -> Call:
    """Read fd 1 as qmail-queue does, stopping at the final NUL; BadEnvelope on a fault."""
    reader, source = EnvelopeReader(), Reader(fd)
    while True:
        data = yield from source.read_some()
        if not data:
            envelope = reader.eof()
            break
        envelope = reader.feed(data)
        if envelope is not None:
            break
    return encode_queue_envelope(envelope.sender, envelope.recipients), envelope


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Queue the message; exit 0, or one of qmail-queue's codes."""
    yield fx.Chdir(f"{home(env)}/{q.QUEUE_DIR}")
    pid = yield fx.Getpid()
    _, uid = yield fx.Getuid()
    now = yield fx.Time()
    files, done = Files(), []
    pid_file = ""
    for seq in q.PID_SEQS:
        op = lc.pid_create(pid, int(now), seq)
        try:
            yield from perform(op, files)
        except FileExistsError:
            continue
        except OSError:
            return lc.EXIT_PID
        pid_file = op.path
        break
    if not pid_file:
        return lc.EXIT_PID
    stat = yield fx.Stat(fd=files.fd(pid_file))
    queue_id = stat.ino
    files.open[q.queue_path("mess", queue_id)] = files.open.pop(pid_file)
    envelope_note: dict = {}

    def envelope_filter(fd: int) -> Call:
        data, envelope = yield from read_envelope(fd)
        envelope_note.update(sender=envelope.sender, recipients=list(envelope.recipients))
        return data

    ops = lc.ops_after_inode(
        queue_id,
        pid_file,
        uid=uid,
        pid=pid,
        received=queue_received(pid, uid, now, ACCOUNTS),
        fsync_dirs=lc.fsync_dirs_from(env),
    )
    for op in ops:
        if isinstance(op, q.Create) and op.path.startswith("intd/"):
            yield fx.Note("queue", {"state": "S2", "id": queue_id}, "mess/ holds the message")
        try:
            yield from perform(op, files, {lc.ENVELOPE: envelope_filter})
        except BadEnvelope as exc:
            yield fx.Note("queue", {"exit": exc.exit_code}, str(exc), msg=queue_id)
            return (yield from _fail(lc.envelope_fail(exc.exit_code), queue_id, done, files))
        except ReadFailed:
            return (yield from _fail(op.read_fail, queue_id, done, files))  # type: ignore[union-attr]
        except OSError:
            if op.fail.ignore:
                continue
            return (yield from _fail(op.fail, queue_id, done, files))
        done.append(op)
        if isinstance(op, q.Link) and op.dst.startswith("todo/"):
            yield fx.Note(
                "queue",
                {"state": "S4", "id": queue_id, **envelope_note},
                "todo/ entry linked: the message is queued",
                msg=queue_id,
            )
    yield from files.close_all()
    return 0


def _fail(fail: q.OnFail, queue_id: int, done: list, files: Files) -> Call:
    """Clean up as qmail-queue does for 53 and 54 (only), then exit with the code."""
    if fail.cleanup:
        for op in lc.cleanup_ops(queue_id, done):
            try:
                yield from perform(op, files)
            except OSError:
                break
    yield from files.close_all()
    return fail.exit_code if fail.exit_code is not None else 81
