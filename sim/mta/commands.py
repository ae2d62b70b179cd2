"""`qmailsim mta ACTION`: init, start, stop, status, qstat, qread, inject, sendmail.

Each action is a thin layer over `sim.mta.home`, `sim.mta.daemon`, `sim.mta.runner` and the
queue readers here; user mistakes raise `BadInput` (printed by the CLI as one fatal line).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sim.mta import daemon
from sim.mta.home import init_home, is_qmail_home
from sim.mta.runner import program_env, run_program
from sim.qmail.envelope import EnvelopeError, parse_channel_file, parse_info
from sim.qmail.errors import BadInput
from sim.qmail.qread import QueuedMessage, qread_report, qstat_lines
from sim.qmail.queue import CHANNELS, is_queue_id, queue_path
from sim.qmail.retry import next_retry


def _home(path: Path) -> Path:
    if not is_qmail_home(path):
        raise BadInput(
            f"{path} is not a qmail home; create one with: qmailsim mta init {path} --me DOMAIN"
        )
    return path.resolve()


def dispatch(args: argparse.Namespace) -> int:
    """Run one `mta` action; returns the exit status."""
    return ACTIONS[args.mta](args)


def do_init(args: argparse.Namespace) -> int:
    try:
        for line in init_home(args.home, args.me, args.locals, args.rcpthosts, args.user):
            print(line)
    except OSError as exc:  # a path through a file, no permission, a full disk
        where = exc.filename or args.home
        raise BadInput(
            f"cannot lay out a qmail home in {args.home}: {where}: {exc.strerror}"
        ) from None
    print(f"qmail home ready: {args.home.resolve()}")
    return 0


def do_start(args: argparse.Namespace) -> int:
    home = _home(args.home)
    if not (home / "control" / "rcpthosts").exists() and not args.open_relay:
        raise BadInput(
            f"{home}/control/rcpthosts is missing: this MTA would relay for anyone. "
            "Create it, or pass --open-relay if that is what you want."
        )
    if args.pop3 is not None and args.pop3[1] and args.pop3 == args.smtp:
        raise BadInput(f"--smtp and --pop3 cannot both listen on {args.smtp[0]}:{args.smtp[1]}")
    pid, port = daemon.start(
        home,
        args.smtp,
        dict(args.smtp_env),
        exec_mode=args.exec_mode,
        programs=("mta-monolith",) if args.monolith else ("tcpserver", "qmail-start"),
        pop3=args.pop3,
    )
    print(f"qmailsim: MTA running (pid {pid}); SMTP on {args.smtp[0]}:{port}; logs in {home}/log")
    if args.pop3:
        pop3 = (home / "run" / "pop3").read_text().strip()
        print(f"qmailsim: POP3 on {pop3}; passwords in {home}/etc/pop3passwd")
    if args.foreground:
        print("qmailsim: in the foreground: Ctrl-C (or closing the terminal) stops it", flush=True)
        daemon.wait_stopped(home, _say)
        print("qmailsim: stopped")
    return 0


def _say(text: str) -> None:
    """A line of news from a command that is still working."""
    print(f"qmailsim: {text}", flush=True)


def do_stop(args: argparse.Namespace) -> int:
    home = _home(args.home)
    paths = daemon.Paths(home)
    orphaned = daemon.running_pid(paths) is None and bool(daemon.leftovers(paths))
    if not daemon.stop(home, notice=_say):
        print(f"qmailsim: not running in {home}")
        return 1
    print("qmailsim: ended what was left of it (its supervisor had died)" if orphaned
          else "qmailsim: stopped")  # fmt: skip
    return 0


def _count(directory: Path) -> int:
    if not directory.exists():
        return 0
    if any(p.is_dir() for p in directory.iterdir()):
        return sum(_count(p) for p in directory.iterdir() if p.is_dir())
    return sum(1 for p in directory.iterdir() if is_queue_id(p.name))


def do_qstat(args: argparse.Namespace) -> int:
    home = _home(args.home)
    queue = home / "queue"
    for line in qstat_lines(_count(queue / "mess"), _count(queue / "todo")):
        print(line)
    return 0


def queued_messages(home: Path) -> list[QueuedMessage]:
    """Read the queue as qmail-qread does (a message vanishing mid-read is skipped)."""
    queue = home / "queue"
    found = []
    for split in sorted((queue / "mess").iterdir(), key=lambda p: int(p.name)):
        for mess in split.iterdir():
            if not is_queue_id(mess.name):
                continue
            message = _read_message(queue, int(mess.name))
            if message is not None:
                found.append(message)
    return found


def _read_message(queue: Path, queue_id: int) -> QueuedMessage | None:
    try:
        size = (queue / queue_path("mess", queue_id)).stat().st_size
        info = queue / queue_path("info", queue_id)
        birth = sender = None
        if info.exists():
            birth, sender = info.stat().st_mtime, parse_info(info.read_bytes())
        recipients = []
        for channel in CHANNELS:
            path = queue / queue_path(channel, queue_id)
            if path.exists():
                for record in parse_channel_file(path.read_bytes()):
                    recipients.append((channel, record.done, record.address))
        bouncing = (queue / queue_path("bounce", queue_id)).exists()
    except (OSError, EnvelopeError):
        return None
    retry = None
    if birth is not None and any(not done for _, done, _ in recipients):
        channel = next(c for c, done, _ in recipients if not done)
        retry = next_retry(birth, _now(), channel)
    return QueuedMessage(queue_id, birth, size, sender, bouncing, recipients, retry)


def _now() -> float:
    return time.time()


def do_qread(args: argparse.Namespace) -> int:
    for line in qread_report(queued_messages(_home(args.home))):
        print(line)
    return 0


def _processes(home: Path) -> list[tuple[int, str, str]]:
    """(pid, program, account) of every live process of the MTA, from /proc and the trace."""
    paths = daemon.Paths(home)
    pid = daemon.running_pid(paths)
    if pid is None:
        live = set(daemon.leftovers(paths))  # its supervisor died: what is left
        seen: dict[int, tuple[str, str]] = {}
    else:
        live = set(daemon.session_pids(daemon.session_of(paths, pid)))
        seen = {pid: ("supervisor", "(you)")}
    if not live:
        return []
    trace = daemon.Paths(home).trace
    if trace.exists():
        for line in trace.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("pid") in live:
                seen[event["pid"]] = (event.get("prog", "?"), str(event.get("uid", "?")))
    return [(p, *seen.get(p, ("collector", "(you)"))) for p in sorted(live)]


def do_status(args: argparse.Namespace) -> int:
    home = _home(args.home)
    processes = _processes(home)
    if not processes:
        print(f"qmailsim: not running in {home}")
    else:
        if daemon.running_pid(daemon.Paths(home)) is None:
            print(f"qmailsim: its supervisor died; end what is left with: qmailsim mta stop {home}")
        print(f"{'PID':>8}  {'PROGRAM':<14} ACCOUNT (as qmail would run it)")
        for pid, prog, uid in processes:
            print(f"{pid:>8}  {prog:<14} {uid}")
    queue = home / "queue"
    for line in qstat_lines(_count(queue / "mess"), _count(queue / "todo")):
        print(line)
    return 0 if processes else 1


def do_inject(args: argparse.Namespace) -> int:
    home = _home(args.home)
    return run_program(home, "qmail-inject", list(args.args), env=program_env(home))


def do_sendmail(args: argparse.Namespace) -> int:
    home = _home(args.home)
    return run_program(home, "sendmail", list(args.args), env=program_env(home))


ACTIONS = {
    "init": do_init,
    "start": do_start,
    "stop": do_stop,
    "status": do_status,
    "qstat": do_qstat,
    "qread": do_qread,
    "inject": do_inject,
    "sendmail": do_sendmail,
}
