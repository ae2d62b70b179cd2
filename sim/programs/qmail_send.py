"""qmail-send: the queue manager. Preprocesses todo/, schedules deliveries, bounces, cleans up.

Descriptors as qmail-start wires them (qmail-send(8)): fd 0 the log, 1/2 commands to and
results from qmail-lspawn, 3/4 the same for qmail-rspawn, 5/6 requests to and one-byte replies
from qmail-clean; cwd `queue/` under QMAILHOME. Each turn of the main loop selects on the result
pipes, the trigger FIFO and the pending command writes, then takes one step of each job (comm,
del, todo, pass, cleanup) as qmail-send.c does. The decisions are `sim.qmail.send`'s (the
scheduler), `sim.qmail.lifecycle`'s (queue operations, performed by `run`), `sim.qmail.retry`'s
and `sim.qmail.bounce`'s; this module performs them. TERM: finish the running deliveries, keep
the pending retry times as channel-file mtimes, exit 0. ALRM: every queued message due now.
HUP: reread locals and virtualdomains. QMAILSIM_TIMESCALE shortens the retry schedule
(`sim.programs.send_state.Clock`); QMAILSIM_FSYNC_DIRS=0 leaves out the directory fsyncs of
preprocessing, as qmail 1.03 (`sim.qmail.lifecycle.fsync_dirs_from`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call
from sim.programs.common import (
    home,
    read_controls,
    read_file,
)
from sim.programs.send_queue import die, log, read_todo, run, trigger_set
from sim.programs.send_state import Clock, Send, routing_of
from sim.qmail import lifecycle as lc
from sim.qmail import queue as q
from sim.qmail import sendlog
from sim.qmail.constants import (
    SLEEP_CLEANUP,
    SLEEP_FOREVER,
    SLEEP_FUZZ,
    SLEEP_SYSFAIL,
    SLEEP_TODO,
    SPLIT,
)
from sim.qmail.control import load_control
from sim.qmail.envelope import EnvelopeError, parse_channel_file, parse_info
from sim.qmail.errors import BadInput, ProtocolError
from sim.qmail.routing import RoutingConfig
from sim.qmail.send import Closed, Delivery, Finished, Scheduler, outcome_ops, preprocess_plan
from sim.qmail.spawn import ResultParser, spawn_limit

CONTROLS = ("me", "locals", "virtualdomains", "percenthack", "envnoathost", "bouncefrom",
            "bouncehost", "doublebounceto", "doublebouncehost", "concurrencylocal",
            "concurrencyremote", "queuelifetime")  # fmt: skip
FD_OUT = {"local": 1, "remote": 3}  # commands to the spawners
FD_IN = {"local": 2, "remote": 4}  # their results
RESULT_NOTE = {"K": "delivered", "Z": "defer", "D": "failure"}


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Start as qmail-send does; exit 111 with an alert, or 0 after TERM."""
    try:
        yield fx.Chdir(home(env))
    except OSError:
        return (yield from die("start_home"))
    try:
        control = load_control((yield from read_controls(CONTROLS)))
    except (OSError, BadInput):
        control = None
    if control is None or control.locals is None:
        return (yield from die("start_controls"))
    try:
        yield fx.Chdir(q.QUEUE_DIR)
    except OSError:
        return (yield from die("start_queue"))
    yield fx.CatchSignals(("TERM", "ALRM", "HUP"))
    try:
        mutex = yield fx.Open(q.LOCK_SENDMUTEX, "w")
    except OSError:
        return (yield from die("start_mutex"))
    try:  # held as long as this process lives: one qmail-send per queue
        yield fx.Lock(mutex)
    except OSError:
        return (yield from die("start_running"))
    caps = {"local": control.concurrencylocal, "remote": control.concurrencyremote}
    for channel, fd in FD_IN.items():
        try:
            caps[channel] = spawn_limit((yield fx.Read(fd, 1)), caps[channel])
        except (OSError, ProtocolError):
            return (yield from die("start_spawn"))
    st = Send(env, Clock.from_env(env), control, routing_of(control), Scheduler(caps))
    st.parsers = {c: ResultParser() for c in FD_IN}
    st.now = yield fx.Time()
    yield from pqstart(st)
    yield from log(sendlog.status(*st.sched.status()))
    st.next_todo = st.next_cleanup = st.now
    yield from trigger_set(st)
    while not (st.sched.exitasap and st.sched.can_exit()):
        yield from loop_once(st)
    yield from pqfinish(st)
    yield from log(sendlog.status_exiting())
    return 0


def loop_once(st: Send) -> Call:
    """One turn of qmail-send's main loop: signals, select, then one step of each job."""
    st.now = yield fx.Time()
    reads = [FD_IN[c] for c in FD_IN if st.sched.alive[c]]
    writes = [FD_OUT[c] for c in FD_OUT if st.sched.alive[c] and st.sched.commands[c]]
    wakeup = st.now + SLEEP_FOREVER
    due = st.sched.wakeup(st.now)
    if due is not None:
        wakeup = min(wakeup, due)
    if not st.sched.exitasap:
        if st.trigger:
            reads.append(st.trigger[0])
        wakeup = min(wakeup, st.now if st.todo is not None else st.next_todo)
    wakeup = min(wakeup, st.now if st.cleanup is not None else st.next_cleanup)
    timeout = 0.0 if wakeup <= st.now else wakeup - st.now + SLEEP_FUZZ * st.clock.scale
    readable, writable, signals = yield fx.Select(tuple(reads), tuple(writes), timeout)
    st.flags.update(signals)
    st.now = yield fx.Time()
    yield from act_on_signals(st)  # at once, so TERM is seen by the loop's test
    yield from comm_do(st, writable)
    yield from del_do(st, readable)
    yield from todo_do(st, readable)
    yield from pass_do(st)
    yield from cleanup_do(st)


def act_on_signals(st: Send) -> Call:
    """TERM: no new work; ALRM: every queued message due now; HUP: reread two controls."""
    if "TERM" in st.flags and not st.sched.exitasap:
        st.sched.exitasap = True
        yield fx.Note("signal", {"signal": "TERM"}, "finish running deliveries, then exit")
    if "ALRM" in st.flags:
        st.sched.run_now(st.now)
        yield fx.Note("signal", {"signal": "ALRM"}, "every queued message is due now")
    if "HUP" in st.flags:
        yield from reread(st)
    st.flags.clear()


def reread(st: Send) -> Call:
    """HUP: reread control/locals and control/virtualdomains (and nothing else)."""
    try:
        texts = yield from read_controls(
            ("me", "locals", "virtualdomains"), f"{home(st.env)}/control"
        )
        fresh = load_control(texts)
    except (OSError, BadInput):
        yield from log(sendlog.alert("reread_locals"))
        return
    if fresh.locals is None:
        yield from log(sendlog.alert("reread_locals"))
        return
    r = st.routing
    st.routing = RoutingConfig(r.envnoathost, fresh.locals, fresh.virtualdomains, r.percenthack)
    fields = {"locals": list(fresh.locals), "virtualdomains": dict(fresh.virtualdomains)}
    yield fx.Note("reread", fields, "HUP: reread locals and virtualdomains")


def comm_do(st: Send, writable: list[int]) -> Call:
    """Write each buffered spawner command whose pipe has room."""
    for channel, fd in FD_OUT.items():
        command = st.sched.commands[channel]
        if command and fd in writable and st.sched.alive[channel]:
            try:
                yield fx.Write(fd, command)
            except OSError:
                yield from spawn_died(st, channel)
                continue
            st.sched.command_written(channel)


def spawn_died(st: Send, channel: str) -> Call:
    st.sched.spawn_died(channel)
    yield from log(sendlog.alert("lost_spawn"))


def del_do(st: Send, readable: list[int]) -> Call:
    """Read spawner results and apply each one."""
    for channel, fd in FD_IN.items():
        if fd not in readable or not st.sched.alive[channel]:
            continue
        try:
            data = yield fx.Read(fd, 2048)
        except OSError:
            continue
        if not data:
            yield from spawn_died(st, channel)
            continue
        for result in st.parsers[channel].feed(data):
            finished = st.sched.finish(channel, result)
            if finished is None:
                yield from log(sendlog.warning("out_of_range"))
                continue
            yield from delivery_done(st, finished)


def delivery_done(st: Send, fin: Finished) -> Call:
    """Log the result, mark the recipient (and bounce a failure), settle the job."""
    d = fin.delivery
    yield from log(sendlog.delivery_report(d.delid, fin.status, fin.text))
    why = "queuelifetime passed: the deferral becomes a failure" if fin.dying_rewrite else ""
    fields = {"delivery": d.delid, "channel": d.channel, "recipient": d.recipient}
    kind = RESULT_NOTE.get(fin.status, "mangled")
    yield fx.Note(kind, {**fields, "text": fin.text}, why, msg=d.id)
    if fin.status == "D":
        why = f"permanent failure: a paragraph for bounce/{d.id}; the bounce waits for all"
        yield fx.Note("bounce", {"stage": "paragraph", **fields}, why, msg=d.id)
    yield from run(st, outcome_ops(fin, st.routing))
    if fin.closed:
        yield from job_closed(st, fin.closed)
    yield from log(sendlog.status(*st.sched.status()))


def job_closed(st: Send, closed: Closed) -> Call:
    """A job ended: requeued for its retry, or its channel file is finished."""
    if not closed.finished:
        fields = {"channel": closed.channel, "next": closed.retry, "in": closed.retry - st.now}
        why = "next_retry: birth + (isqrt(age) + chanskip)**2, on the scaled clock"
        yield fx.Note("retry", fields, why, msg=closed.id)
        return
    fail = yield from run(st, lc.channel_done_ops(closed.id, closed.channel))
    if fail is None:
        st.sched.add_done(closed.id, st.now)
    elif fail.retry_after is not None:
        st.sched.add(closed.channel, closed.id, st.now + fail.retry_after)


def todo_do(st: Send, readable: list[int]) -> Call:
    """Preprocess one todo/ entry: start a scan on the trigger or every SLEEP_TODO seconds."""
    if st.sched.exitasap:
        return
    if st.todo is None:
        pulled = bool(st.trigger) and st.trigger[0] in readable
        if not pulled and st.now < st.next_todo:
            return
        yield from trigger_set(st)
        st.next_todo = st.now + SLEEP_TODO
        try:
            names = yield fx.Readdir("todo")
        except OSError:
            yield from log(sendlog.alert("opendir", dir="todo"))
            return
        st.todo = sorted(int(n) for n in names if q.is_queue_id(n))
    if not st.todo:
        st.todo = None
        return
    yield from preprocess(st, st.todo.pop(0))


def preprocess(st: Send, id: int) -> Call:
    """S4 -> S5: info/, local/, remote/ from todo/<id>, then qmail-clean removes the todo."""
    got = yield from read_todo(id)
    if got is None:
        return
    todo, size = got
    try:
        plan = preprocess_plan(id, todo, size, st.routing)
    except EnvelopeError:
        yield from log(sendlog.warning("todo_record", fn=q.queue_path("todo", id)))
        return
    for recipient, route in plan.routes:
        fields = {"recipient": recipient, "channel": route.channel, "address": route.address}
        yield fx.Note("route", fields, route.why, msg=id)
    ops = plan.ops if lc.fsync_dirs_from(st.env) else lc.without_dir_fsyncs(plan.ops)
    if (yield from run(st, ops)) is not None:
        return  # todo/<id> stays for the next scan
    for queue in lc.queues_after_preprocess([(rt.channel, rt.address) for _, rt in plan.routes]):
        if queue == "done":
            st.sched.add_done(id, st.now)
        else:
            st.sched.add(queue, id, st.now)


def pass_do(st: Send) -> Call:
    """Open a due pass and start one delivery per channel; eliminate one done message."""
    for channel in q.CHANNELS:
        id = st.sched.due_pass(channel, st.now)
        if id is not None:
            yield from open_pass(st, channel, id)
        step = st.sched.step(channel)
        if isinstance(step, Delivery):
            yield from log(sendlog.starting_delivery(step.delid, step.id, channel, step.recipient))
            fields = {"delivery": step.delid, "channel": channel, "recipient": step.recipient}
            why = f"a {channel} slot is free (delnum {step.delnum})"
            yield fx.Note("deliver", fields, why, msg=step.id)
            yield from log(sendlog.status(*st.sched.status()))
        elif isinstance(step, Closed):
            yield from job_closed(st, step)
    id = st.sched.due_done(st.now)
    if id is not None:
        fail = yield from run(st, lc.messdone_ops(id))
        if fail is not None and fail.retry_after is not None:
            st.sched.add_done(id, st.now + fail.retry_after)


def open_pass(st: Send, channel: str, id: int) -> Call:
    """Read the channel file and the info file (sender, birth = mtime); begin the pass."""
    path, info = q.queue_path(channel, id), q.queue_path("info", id)
    try:
        data = yield from read_file(path)
        birth = (yield fx.Stat(info)).mtime
        sender = parse_info((yield from read_file(info)) or b"")
        if data is None:
            raise FileNotFoundError(path)
    except (OSError, EnvelopeError):
        yield from log(sendlog.warning("open_later", fn=path))
        st.sched.add(channel, id, st.now + SLEEP_SYSFAIL)
        return
    retry, dying = st.clock.job_times(birth, st.now, channel, st.control.queuelifetime)
    try:
        records = parse_channel_file(data)
    except EnvelopeError:
        yield from log(sendlog.warning("channel_record", fn=path))
        st.sched.add(channel, id, retry)
        return
    st.sched.open_pass(channel, id, sender, records, retry, dying)


def cleanup_do(st: Send) -> Call:
    """One step of the cleanup scan: a 36-hour-old mess/ file with no todo/ or info/ goes."""
    if st.cleanup is None:
        if st.now < st.next_cleanup:
            return
        st.cleanup = []
        for split in range(SPLIT):
            with contextlib.suppress(OSError):
                names = yield fx.Readdir(f"mess/{split}")
                st.cleanup += [int(n) for n in names if q.is_queue_id(n)]
    if not st.cleanup:
        st.cleanup, st.next_cleanup = None, st.now + SLEEP_CLEANUP
        return
    id = st.cleanup.pop(0)
    try:
        atime = (yield fx.Stat(q.queue_path("mess", id))).atime
    except OSError:
        return  # qmail-queue removed it, or qmail-clean did
    if q.is_ossified(atime, st.now):
        yield fx.Note("cleanup", {"atime": atime}, "mess/ unread for 36 hours: foop", msg=id)
        yield from run(st, lc.ossified_ops(id))


def pqstart(st: Send) -> Call:
    """Queue every preprocessed message at its channel files' mtimes (its pending retries)."""
    for split in range(SPLIT):
        try:
            names = yield fx.Readdir(f"info/{split}")
        except OSError:
            continue
        for name in names:
            if q.is_queue_id(name):
                yield from pqadd(st, int(name))


def pqadd(st: Send, id: int) -> Call:
    """One message at start-up: skipped if its todo/ is back (preprocessing crashed)."""
    mtimes: dict[str, float] = {}
    for kind in ("info", "todo", *q.CHANNELS):
        path = q.queue_path(kind, id)
        try:
            mtimes[kind] = (yield fx.Stat(path)).mtime
        except FileNotFoundError:
            continue
        except OSError:
            yield from log(sendlog.warning("stat_later", fn=path))
            return
    if "info" not in mtimes or "todo" in mtimes:
        return
    for channel in q.CHANNELS:
        if channel in mtimes:
            st.sched.add(channel, id, mtimes[channel])
    if not any(c in mtimes for c in q.CHANNELS):
        st.sched.add_done(id, st.now)


def pqfinish(st: Send) -> Call:
    """TERM: each queued job's retry time becomes its channel file's mtime (for the restart)."""
    for channel, id, when in st.sched.pending():
        path = q.queue_path(channel, id)
        try:
            yield fx.Utime(path, when)
        except OSError:
            yield from log(sendlog.warning("utime", fn=path))
