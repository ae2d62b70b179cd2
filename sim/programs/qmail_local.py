"""qmail-local: deliver one message to one local address, as its user (qmail-local.c).

`qmail-local [-nN] -- user homedir local dash ext domain sender defaultdelivery`, run by a
qmail-lspawn child after it became the user; the message is on fd 0 (seekable), fd 1 and
fd 2 are one pipe back to qmail-lspawn. In qmail's order: switch to the home and check its
mode; build the Delivered-To, Return-Path and From_ lines; refuse a message that already
carries our Delivered-To line (a loop); find the .qmail file (`sim.qmail.dotqmail`); pick
the forwarding sender (NEWSENDER, from the `-owner` files); then run the instructions with
`LocalDelivery`, performing each step with `sim.programs.local_effects`. The first failure
ends the run. The exit code is the whole verdict (0, 100 permanent, 111 temporary) and the
text written on the pipe becomes qmail-lspawn's report.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all
from sim.programs import local_effects as deliver
from sim.programs.common import home, read_file
from sim.qmail import dotqmail as dq
from sim.qmail.lifecycle import fsync_dirs_from
from sim.qmail.local import (
    HeaderLines,
    Invocation,
    Outcome,
    Refused,
    check_home,
    check_loop,
    error_str,
    forward_sender,
    header_lines,
    needs_owner_check,
    parse_args,
    program_env,
    report,
)
from sim.qmail.maildir import Unique


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Deliver; write qmail-local's report; exit 0, 100 or 111."""
    try:
        inv = parse_args(argv)
        outcome = yield from local(inv, env)
    except Refused as refused:
        outcome = refused.outcome
    if outcome.output:
        yield fx.Write(1 if outcome.code == 0 else 2, outcome.output)
    return outcome.code


def local(inv: Invocation, env: Mapping[str, str]) -> Call:
    """Everything from the home check to the last instruction; returns the Outcome."""
    hostname = yield from _hostname(env)
    try:
        yield fx.Chdir(inv.homedir)
    except OSError as exc:
        return report("switch_home", home=inv.homedir, err=error_str(exc.errno))
    try:
        mode = (yield fx.Stat(".")).mode
    except OSError as exc:
        return report("stat_home", err=error_str(exc.errno))
    if refused := check_home(mode, doit=inv.doit):
        return refused
    now = yield fx.Time()
    lines = header_lines(inv.local, inv.domain, inv.sender, now)
    try:
        message = yield from read_all(0)
    except OSError as exc:
        return report("read", err=error_str(exc.errno))
    if looping := check_loop(message, lines.dtline):
        yield fx.Note("deliver", {"dtline": lines.dtline}, "our Delivered-To line is there")
        return looping
    found = yield from find_dotqmail(inv)
    if isinstance(found, Outcome):
        return found
    newsender = yield from new_sender(inv)
    if isinstance(newsender, Outcome):
        return newsender
    plan, default = found
    if not inv.doit:
        return dq.dry_run(plan.instructions, plan.forward_only)
    progenv = {k: v for k, v in env.items() if k != "DEFAULT"}
    progenv.update(program_env(inv, lines, newsender, default))
    return (yield from run(plan, inv, lines, message, newsender, progenv, hostname))


def _hostname(env: Mapping[str, str]) -> Call:
    """The host part of Maildir names: control/me (gethostname is not an effect)."""
    try:
        data = yield from read_file(f"{home(env)}/control/me")
    except OSError:
        data = None
    return (data or b"localhost").decode("latin-1").split("\n", 1)[0].strip() or "localhost"


def find_dotqmail(inv: Invocation) -> Call:
    """qmesearch: (DotQmail, DEFAULT or None) for the first .qmail that exists, or an Outcome."""
    tried: list[str] = []
    for candidate in dq.candidate_files(inv.dash, inv.ext):
        try:
            fd = yield fx.Open(candidate.name)
        except OSError as exc:
            if failed := dq.open_failure(candidate.name, exc.errno):
                return failed
            tried.append(candidate.name)
            continue
        try:
            judged = dq.judge_file(candidate, (yield fx.Stat(fd=fd)).mode)
            text = (yield from read_all(fd)) if isinstance(judged, dq.Found) else b""
        finally:
            yield fx.Close(fd)
        if isinstance(judged, Outcome):
            return judged
        if judged is None:
            tried.append(candidate.name)
            continue
        plan = dq.load_dotqmail(text, inv.defaultdelivery, judged.forward_only)
        why = f"{candidate.name} applies" + (f" (no {', '.join(tried)})" if tried else "")
        if candidate.default_part is not None:
            why += f"; DEFAULT={candidate.default_part!r}"
        if not text:
            why += f"; it is empty, so the default delivery {inv.defaultdelivery!r}"
        yield fx.Note("dotqmail", {"file": candidate.name, "x_bit": judged.forward_only}, why)
        return plan, candidate.default_part
    if refused := dq.no_file_outcome(inv.dash):
        yield fx.Note("dotqmail", {"tried": tried}, "no .qmail file for an extension address")
        return refused
    why = f"no {', '.join(tried)}: as if .qmail were empty, so {inv.defaultdelivery!r}"
    yield fx.Note("dotqmail", {"tried": tried}, why)
    return dq.load_dotqmail(None, inv.defaultdelivery), None


def new_sender(inv: Invocation) -> Call:
    """NEWSENDER: the sender, or `local-owner@domain` (VERP form) if the -owner files exist."""
    if not needs_owner_check(inv.sender):
        return inv.sender
    exists = []
    for name in dq.owner_files(inv.dash, inv.ext):
        if name is None:
            exists.append(False)
            continue
        try:
            yield fx.Stat(name)
            exists.append(True)
        except OSError as exc:
            if failed := dq.stat_failure(name, exc.errno):
                return failed
            exists.append(False)
    return forward_sender(inv.sender, inv.local, inv.domain, exists[0], exists[1])


def run(
    plan: dq.DotQmail,
    inv: Invocation,
    lines: HeaderLines,
    message: bytes,
    newsender: str,
    progenv: dict[str, str],
    hostname: str,
) -> Call:
    """The instructions, one step at a time; returns the final Outcome."""
    delivery = dq.LocalDelivery(plan.instructions, plan.forward_only)
    deliveries = 0
    while not isinstance(step := delivery.next_step(), dq.Finished):
        if isinstance(step, dq.Forward):
            outcome, qp = yield from deliver.forward(
                step.recipients, newsender, lines.dtline, message, progenv
            )
            delivery.feed(outcome, qp)
        elif step.kind == "program":
            delivery.feed((yield from deliver.run_program(step.target, progenv)))
        elif step.kind == "mbox":
            delivery.feed((yield from deliver.deliver_mbox(step.target, lines, message)))
        else:
            seq, deliveries = deliveries, deliveries + 1

            def unique(pid: int, now: float, seq: int = seq) -> Unique:
                return Unique(int(now), int(now % 1 * 1e6), pid, seq, hostname)

            sync = fsync_dirs_from(progenv)
            maildir = deliver.deliver_maildir(step.target, lines, message, unique, fsync_dirs=sync)
            delivery.feed((yield from maildir))
    yield fx.Note(
        "deliver",
        {"to": f"{inv.local}@{inv.domain}", "code": step.outcome.code},
        step.outcome.text.strip() or f"exit {step.outcome.code}",
    )
    return step.outcome
