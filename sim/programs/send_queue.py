"""qmail-send's hands on the queue: it performs the life cycle's operations, asks qmail-clean,
logs, and queues bounces through qmail-queue.

The operations are `sim.qmail.lifecycle`'s (pure lists of `sim.qmail.queue` operations); a
failed one logs qmail-send's own warning and answers with its `OnFail`, which the main loop in
`sim.programs.qmail_send` acts on, as qmail-send.c does around each of its system calls.
"""

from __future__ import annotations

import contextlib

from sim.kernel import effects as fx
from sim.kernel.io import Call
from sim.programs.common import close_quietly, qmail_close, qmail_open, read_file
from sim.programs.queueops import Files, perform
from sim.programs.send_state import Send
from sim.qmail import lifecycle as lc
from sim.qmail import queue as q
from sim.qmail import sendlog
from sim.qmail.bounce import BounceKind, bounce_envelope, make_bounce
from sim.qmail.clean import parse_clean_reply
from sim.qmail.envelope import EnvelopeError, parse_info
from sim.qmail.text import s2b

FD_CLEAN_OUT, FD_CLEAN_IN = 5, 6  # requests to qmail-clean, its one-byte replies


def log(line: bytes) -> Call:
    """One line on fd 0; a lost logger is not a reason to stop delivering."""
    try:
        yield fx.Write(0, line)
    except OSError:
        return


def die(alert: str) -> Call:
    """`alert: cannot start: ...`, exit 111."""
    yield from log(sendlog.alert(alert))
    return 111


def trigger_set(st: Send) -> Call:
    """(Re)open lock/trigger: read end non-blocking, plus a write end so select waits."""
    for fd in st.trigger:
        yield from close_quietly(fd)
    st.trigger = ()
    try:
        st.trigger = ((yield fx.Open(q.LOCK_TRIGGER, "r", nonblock=True)),)
        st.trigger += ((yield fx.Open(q.LOCK_TRIGGER, "w", nonblock=True)),)
    except OSError:
        return


def run(st: Send, queue_ops: list[q.QueueOp]) -> Call:
    """Perform lifecycle operations in order; None, or the OnFail of the one that failed."""
    files = Files()
    failed = None
    for op in queue_ops:
        failed = yield from run_one(st, op, files)
        if failed is not None:
            break
    yield from files.close_all()
    return failed


def run_one(st: Send, op: q.QueueOp, files: Files) -> Call:
    """One operation; its warning is logged if it fails. Returns None or the op's OnFail."""
    if isinstance(op, q.Log):
        yield from log(s2b(op.line) + b"\n")
        return None
    if isinstance(op, q.CleanRequest):
        ok = yield from clean(st, op.command)
        if ok is None:
            return q.GIVE_UP  # qmail-clean is gone: alerted, and qmail-send is leaving
        warning = None if ok else s2b(op.fail.warning) + b"\n"
    elif isinstance(op, q.InjectBounce):
        warning = yield from inject_bounce(st, op.queue_id)
    else:
        while True:
            try:
                if isinstance(op, q.Write) and op.offset is not None:
                    yield from open_to_mark(op.path, files)
                yield from perform(op, files)
                return None
            except OSError:
                if op.fail.ignore:
                    return None
            warning = s2b(op.fail.warning) + b"\n" if op.fail.warning else b""
            if not isinstance(op, q.Append) or op.fail.retry_after is None:
                break
            yield from log(warning)  # bounce/<id>: qmail-send sleeps and tries again, forever
            yield fx.Sleep(op.fail.retry_after)
    if warning is None:
        return None
    yield from log(warning)
    return op.fail


def open_to_mark(path: str, files: Files) -> Call:
    """Open a channel file to overwrite one byte, as qmail's open_write: never truncating.

    (Opened with "w", which truncates, marking the first recipient would erase every other
    record, and a restarted qmail-send would find the file garbled.)
    """
    if path not in files.open:
        files.open[path] = yield fx.Open(path, "rw")


def clean(st: Send, command: bytes) -> Call:
    """Ask qmail-clean; True for `+`, False for another byte, None if it is gone."""
    try:
        yield fx.Write(FD_CLEAN_OUT, command)
        reply = yield fx.Read(FD_CLEAN_IN, 1)
    except OSError:
        reply = b""
    if not reply:
        st.sched.exitasap = True
        yield from log(sendlog.alert("lost_clean"))
        return None
    return parse_clean_reply(reply)


def read_todo(id: int) -> Call:
    """Preprocessing step 1: todo/<id>'s bytes and mess/'s size, or None (warning logged)."""
    results = []
    for op in lc.todo_open_ops(id):
        try:
            results.append((yield from perform(op, Files())))
        except OSError:
            yield from log(s2b(op.fail.warning) + b"\n")
            return None
    return results[0], results[1].size


def inject_bounce(st: Send, id: int) -> Call:
    """Queue bounce/<id> through qmail-queue (or discard a triple bounce); a warning or None."""
    try:
        paragraphs = yield from read_file(q.queue_path("bounce", id))
        if paragraphs is None:
            return None
        sender = parse_info((yield from read_file(q.queue_path("info", id))) or b"")
        mess = yield from read_file(q.queue_path("mess", id))
    except (OSError, EnvelopeError):
        return sendlog.warning("inject")
    envelope = bounce_envelope(sender, st.control)
    fields = {"bounce": envelope.kind.value, "to": envelope.recipient, "from": envelope.sender}
    if envelope.kind is BounceKind.TRIPLE:
        yield from log(sendlog.triple_bounce(id))
        yield fx.Note("bounce", fields, "a double bounce failed: discarded", msg=id)
        return None
    try:
        job = yield from qmail_open(st.env)
    except OSError:
        return sendlog.warning("qmail_queue")
    bounce = make_bounce(sender, paragraphs, mess or b"", st.now, st.control)
    with contextlib.suppress(OSError):  # qmail-queue died: qmail_close says so
        yield fx.Write(job.message_fd, bounce)
    text, _ = yield from qmail_close(job, envelope.sender, [envelope.recipient])
    if text:
        return sendlog.warning("inject")
    yield from log(sendlog.bounce_msg(id, job.pid))
    why = "every recipient is done: the collected failures go back in one bounce"
    yield fx.Note("bounce", {**fields, "qp": job.pid}, why, msg=id)
    return None
