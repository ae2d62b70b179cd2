"""The spawners' shared loop (qmail's spawn.c), used by qmail-lspawn and qmail-rspawn.

Theory of operation. A spawner sits between qmail-send and the delivery agents. It changes
to `queue/mess`, runs its `initialize` hook, and writes one byte, its slot limit. Then it
waits (Select) on two kinds of descriptor: fd 0, where qmail-send's commands arrive
(`sim.qmail.spawn.CommandParser`), and one pipe per running delivery. For each command it
checks the slot and the message id (`check_command`), opens the message, checks that it is a
regular file owned by qmailq, and forks a child with fd 0 = the message and fd 1 = fd 2 = a
pipe back. The child runs the spawner's `agent` hook (qmail-lspawn: find the user, exec
qmail-local; qmail-rspawn: exec qmail-remote). The spawner collects what the child writes,
and when the pipe reaches end of file it reaps the child and writes one result for that slot
on fd 1 (`report` hook, `encode_result`). Deliveries run in parallel and their results go
back in whatever order they finish. When fd 0 reaches end of file and no delivery is left,
the spawner exits 0: qmail-send has gone.

The hooks are the only difference between the two spawners, as in qmail (spawn.c plus
qmail-lspawn.c / qmail-rspawn.c). The spawner itself decides nothing about mail.

Documented difference: the live MTA cannot chown, so a message owned by whoever owns
`queue/mess` passes the owner check as well as one owned by qmailq.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sim.kernel import effects as fx
from sim.kernel.io import Call
from sim.programs.common import close_quietly, home
from sim.qmail.constants import QMAIL_UIDS
from sim.qmail.spawn import (
    CommandParser,
    SpawnCommand,
    SpawnResult,
    check_command,
    encode_result,
    handshake,
    refusal,
    truncate_output,
)

READ_SIZE = 4096
QUEUE_UID = QMAIL_UIDS["qmailq"]  # messages belong to qmailq (or, live, to the queue's owner)
EXIT_NO_HOME = 110  # spawn.c: chdir to the qmail home failed
EXIT_NO_QUEUE = 111  # spawn.c: chdir to queue/mess failed

Agent = Callable[[Any, SpawnCommand, Mapping[str, str]], fx.Program]
"""The child's code once fd 0, 1 and 2 are in place: (context, command, env) -> exit status."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """What one spawner adds to spawn.c: its name, set-up, agent and report."""

    name: str
    initialize: Callable[[list[str], Mapping[str, str]], Call]  # -> context, or int to exit
    agent: Agent
    report: Callable[[int, int | None, bytes], SpawnResult]
    truncreport: int = 0  # qmail-lspawn cuts its agent's output at 3000 bytes, rspawn never


@dataclass(slots=True)
class Delivery:
    """One slot in use: the child, the read end of its pipe, what it has written so far."""

    command: SpawnCommand
    pid: int
    fd: int
    output: bytearray = field(default_factory=bytearray)


def message_id(messid: str) -> int | None:
    """The queue id in `split/id`, for the trace's `msg` field."""
    tail = messid.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


def serve(argv: list[str], env: Mapping[str, str], hooks: Hooks) -> fx.Program:
    """spawn.c's main(): handshake, then commands in and results out until qmail-send leaves."""
    try:
        yield fx.Chdir(home(env))
    except OSError:
        return EXIT_NO_HOME
    try:
        yield fx.Chdir("queue/mess")
        queue_owner = (yield fx.Stat(".")).uid
    except OSError:
        return EXIT_NO_QUEUE
    context = yield from hooks.initialize(argv, env)
    if isinstance(context, int):
        return context
    state = _Spawner(hooks, context, env, queue_owner)
    try:
        yield fx.Write(1, handshake())
        return (yield from state.loop())
    except OSError:
        return 111  # qmail-send is gone (EPIPE on fd 1) or fd 0 failed


class _Spawner:
    """The loop's state: parser for fd 0, deliveries by slot."""

    def __init__(self, hooks: Hooks, context: Any, env: Mapping[str, str], owner: int) -> None:
        self.hooks = hooks
        self.context = context
        self.env = env
        self.owner = owner
        self.parser = CommandParser()
        self.slots: dict[int, Delivery] = {}
        self.reading = True

    def loop(self) -> Call:
        while self.reading or self.slots:
            fds = ((0,) if self.reading else ()) + tuple(d.fd for d in self.slots.values())
            readable, _, _ = yield fx.Select(fds)
            for fd in readable:
                if fd == 0:
                    yield from self.read_commands()
                else:
                    yield from self.read_child(fd)
        return 0

    def read_commands(self) -> Call:
        data = yield fx.Read(0, READ_SIZE)
        if not data:
            self.reading = False
            return
        for command in self.parser.feed(data):
            yield from self.start(command)

    def start(self, command: SpawnCommand) -> Call:
        """Check a command and fork its delivery, or answer at once with a refusal."""
        failed = check_command(command, self.slots)
        if failed is None:
            failed = yield from self.fork(command)
        if failed is not None:
            yield fx.Note(
                "spawn-refused",
                {"delivery": command.delnum, "to": command.recipient, "report": failed.report},
                f"{self.hooks.name} refuses the command before any agent runs",
                msg=message_id(command.messid),
            )
            yield fx.Write(1, encode_result(failed))

    def fork(self, command: SpawnCommand) -> Call:
        """Open the message, make the pipe, fork the agent; a refusal if any of it fails."""
        try:
            mess = yield fx.Open(command.messid)
        except OSError:
            return refusal(command.delnum, "open")
        try:
            return (yield from self._fork_with(command, mess))
        finally:
            yield from close_quietly(mess)

    def _fork_with(self, command: SpawnCommand, mess: int) -> Call:
        try:
            st = yield fx.Stat(fd=mess)
        except OSError:
            return refusal(command.delnum, "fstat")
        if not st.is_file:
            return refusal(command.delnum, "wrong_type")
        if st.uid not in (QUEUE_UID, self.owner):
            return refusal(command.delnum, "wrong_owner")
        try:
            r, w = yield fx.Pipe()
        except OSError:
            return refusal(command.delnum, "pipe")
        others = tuple(d.fd for d in self.slots.values())
        child = _child(self.hooks, self.context, command, self.env, mess, r, w, others)
        try:
            pid = yield fx.Fork(child, self.hooks.name)
        except OSError:
            yield fx.Close(r)
            yield fx.Close(w)
            return refusal(command.delnum, "fork")
        yield fx.Close(w)
        self.slots[command.delnum] = Delivery(command, pid, r)
        yield fx.Note(
            "spawn",
            {"delivery": command.delnum, "child": pid, "to": command.recipient},
            f"{self.hooks.name}: delivery {command.delnum} of {command.messid} "
            f"from <{command.sender}> to <{command.recipient}>",
            msg=message_id(command.messid),
        )
        return None

    def read_child(self, fd: int) -> Call:
        delivery = next(d for d in self.slots.values() if d.fd == fd)
        try:
            data = yield fx.Read(fd, READ_SIZE)
        except OSError:
            data = b""
        if data:
            delivery.output += data
            delivery.output[:] = truncate_output(bytes(delivery.output), self.hooks.truncreport)
            return
        yield fx.Close(fd)
        _, status = yield fx.Wait(delivery.pid)
        del self.slots[delivery.command.delnum]
        exit_code = None if status < 0 else status
        result = self.hooks.report(delivery.command.delnum, exit_code, bytes(delivery.output))
        yield fx.Note(
            "spawn-result",
            {"delivery": result.delnum, "status": result.status, "exit": status},
            f"{self.hooks.name}: agent exit {status} -> {result.status}",
            msg=message_id(delivery.command.messid),
        )
        yield fx.Write(1, encode_result(result))


def _child(
    hooks: Hooks,
    context: Any,
    command: SpawnCommand,
    env: Mapping[str, str],
    mess: int,
    r: int,
    w: int,
    others: tuple[int, ...],
) -> Callable[[], fx.Program]:
    """The forked child: message on fd 0, the pipe on fd 1 and fd 2, then the agent."""

    def child() -> fx.Program:
        for fd in (r, *others):
            yield fx.Close(fd)
        yield fx.Dup2(mess, 0)
        yield fx.Dup2(w, 1)
        yield fx.Dup2(1, 2)
        for fd in (mess, w):
            if fd > 2:
                yield fx.Close(fd)
        return (yield from hooks.agent(context, command, env))

    return child
