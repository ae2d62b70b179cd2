"""Which .qmail file applies, what its lines mean, and how qmail-local runs them (dot-qmail(5)).

Theory of operation (qmail-local(8)). For `local@domain` qmail-lspawn hands
qmail-local a `dash` ("" for the bare user, else `-`) and an extension `ext`. qmail-local
probes, in `candidate_files` order, `.qmail<dash><safeext>` and then the `default` files,
longest prefix first; the first regular file wins (`judge_file`), an open error either means
"absent" or fails temporarily (`open_failure`). No file at all is permanent for an extension
address and means "as if `.qmail` were empty" for the bare user (`no_file_outcome`). An empty
file means the default delivery (`load_dotqmail`). `parse_dotqmail` turns the text into
instructions, and `LocalDelivery` runs them as qmail-local does: maildir, mbox and program
lines in file order, every forward collected and sent last as one injection; a program's
exit 99 skips the following lines; a file or program line in forward-only mode (x bit or
`+list`) fails temporarily; the first failure ends the run.

safeext is ext with A-Z lowercased and every `.` made `:`, so `..` never appears in a name.
qmail 1.03 leaves `/` alone, so `fred-x/y` probes `.qmail-x/y`, a file inside a directory
`.qmail-x` of the home. We never form such a name: a candidate containing `/` or NUL, or
longer than NAME_MAX (255) bytes, is treated as absent and not listed. That equals qmail's
result whenever no `.qmail-…` directory exists (the open fails with ENOENT/ENOTDIR, or
ENAMETOOLONG, all of which mean "absent"), and no name can leave the home directory.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Sequence
from dataclasses import dataclass

from sim.qmail.constants import CONF_PATRN
from sim.qmail.local import (
    STOP,
    SUCCESS,
    Outcome,
    Refused,
    error_str,
    is_temporary_errno,
    report,
    success_text,
)
from sim.qmail.text import b2s, s2b

NAME_MAX = 255  # longest file name the kernel accepts; longer ones fail with ENAMETOOLONG
_SAFE = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ.", "abcdefghijklmnopqrstuvwxyz:")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One .qmail file to probe; if it is used, DEFAULT is `default_part` (None: no DEFAULT)."""

    name: str
    default_part: str | None


@dataclass(frozen=True, slots=True)
class Found:
    """The .qmail file that applies; `forward_only` is its user-execute bit."""

    candidate: Candidate
    forward_only: bool


def safe_ext(ext: str) -> str:
    """ext with A-Z lowercased and `.` replaced by `:` (only ASCII letters, as case_lowerb)."""
    return ext.translate(_SAFE)


def _usable(name: str) -> bool:
    return "/" not in name and "\0" not in name and len(name) <= NAME_MAX


def candidate_files(dash: str, ext: str) -> list[Candidate]:
    """The .qmail files qmail-local tries, in order (names that could not be opened are left out).

    `.qmail<dash><safeext>`, then `.qmail<dash><prefix>default` for every cut at the end or
    just after a `-` of safeext, longest first. For dash "" the last probe is `.qmaildefault`.
    """
    safe = safe_ext(ext)
    exact_default = ext[len(ext) - 7 :] if safe.endswith("default") else None
    found = [Candidate(f".qmail{dash}{safe}", exact_default)]
    for cut in range(len(safe), -1, -1):
        if cut == 0 or safe[cut - 1] == "-":
            found.append(Candidate(f".qmail{dash}{safe[:cut]}default", ext[cut:]))
    return [c for c in found if _usable(c.name)]


def owner_files(dash: str, ext: str) -> tuple[str | None, str | None]:
    """`.qmail<dash><safeext>-owner` and `…-owner-default` (None: an unusable name, so absent)."""
    owner = f".qmail{dash}{safe_ext(ext)}-owner"
    owner_default = f"{owner}-default"
    return (
        owner if _usable(owner) else None,
        owner_default if _usable(owner_default) else None,
    )


def no_file_outcome(dash: str) -> Outcome | None:
    """No candidate exists: permanent for an extension address, None (use `.qmail` = empty) else."""
    return report("no_mailbox") if dash else None


def open_failure(name: str, errno: int | None) -> Outcome | None:
    """qmeexists: a temporary, EPERM or EACCES open error fails temporarily; others mean absent."""
    if is_temporary_errno(errno) or errno in (_errno.EPERM, _errno.EACCES):
        return report("dotqmail_open", file=name, err=error_str(errno))
    return None


def stat_failure(name: str, errno: int | None) -> Outcome | None:
    """qmeox (the -owner files): only a temporary stat error fails; any other means absent."""
    if is_temporary_errno(errno):
        return report("dotqmail_open", file=name, err=error_str(errno))
    return None


def judge_file(candidate: Candidate, mode: int) -> Found | Outcome | None:
    """An opened candidate's st_mode: a regular file is found (refused if world-writable)."""
    if mode & 0o170000 != 0o100000:
        return None
    if mode & CONF_PATRN:
        return report("dotqmail_writable")
    return Found(candidate, bool(mode & 0o100))


KINDS = frozenset({"comment", "blank", "program", "maildir", "mbox", "forward", "forwardonly"})


@dataclass(frozen=True, slots=True)
class Instruction:
    """One .qmail line. `arg`: the path (maildir, mbox), the command after `|`, the address.

    Kinds: comment (`#`, and `+…` other than `+list`, which qmail ignores), blank, program,
    maildir, mbox, forward, forwardonly (`+list`).
    """

    kind: str
    arg: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown .qmail instruction kind {self.kind!r}")


def _instruction(line: bytes) -> Instruction:
    """Classify one line, trailing spaces and tabs already removed."""
    if not line or line[0] == 0:
        return Instruction("blank")
    text = b2s(line.split(b"\0", 1)[0])  # qmail uses the line as a C string
    first = text[0]
    if first == "#":
        return Instruction("comment", text)
    if first in "./":
        return Instruction("maildir" if line.endswith(b"/") else "mbox", text)
    if first == "|":
        return Instruction("program", text[1:])
    if first == "+":
        return Instruction("forwardonly" if text == "+list" else "comment", text)
    return Instruction("forward", text[1:] if first == "&" else text)


def parse_dotqmail(text: bytes) -> list[Instruction]:
    """The instructions of a .qmail text, one per line; Refused if the first line is blank.

    A missing final newline is supplied, so b"" is one blank line (qmail-local reads an empty
    file as the default delivery before parsing: see `load_dotqmail`).
    """
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = [_instruction(raw.rstrip(b" \t")) for raw in text.split(b"\n")[:-1]]
    if lines[0].kind == "blank":
        raise Refused(report("blank_first_line"))
    return lines


@dataclass(frozen=True, slots=True)
class DotQmail:
    """What qmail-local will run: the instructions and whether forward-only mode starts set."""

    instructions: tuple[Instruction, ...]
    forward_only: bool


def load_dotqmail(text: bytes | None, defaultdelivery: str, executable: bool = False) -> DotQmail:
    """The instructions for a file's text (None: no file, bare user); empty means defaultdelivery.

    `executable` is the file's x bit; it does not apply to the default delivery.
    """
    if not text:
        return DotQmail(tuple(parse_dotqmail(s2b(defaultdelivery))), False)
    return DotQmail(tuple(parse_dotqmail(text)), executable)


# A `|program`'s exit code -> the step's Outcome; any code not listed is temporary.
PROGRAM_EXITS: dict[int, Outcome] = {
    0: SUCCESS,
    99: STOP,
    **dict.fromkeys((100, 64, 65, 70, 76, 77, 78, 112), Outcome(100)),
    111: Outcome(111),
}


def program_outcome(exit_code: int | None) -> Outcome:
    """mailprogram: what a program's exit code means (None: it crashed, temporary)."""
    if exit_code is None:
        return report("child_crashed")
    return PROGRAM_EXITS.get(exit_code, Outcome(111))


@dataclass(frozen=True, slots=True)
class Deliver:
    """Deliver once: `kind` is maildir or mbox (target: the line) or program (the command)."""

    kind: str
    target: str


@dataclass(frozen=True, slots=True)
class Forward:
    """Inject the message once, with NEWSENDER as sender, to every collected forward address."""

    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The run is over: write `outcome.output` and exit with `outcome.code`."""

    outcome: Outcome


Step = Deliver | Forward | Finished
_XBIT = {"maildir": "xbit_file", "mbox": "xbit_file", "program": "xbit_prog"}


class LocalDelivery:
    """qmail-local's main loop, sans I/O: ask `next_step()`, perform it, `feed()` its Outcome.

    For a program feed `program_outcome(exit code)`; for a forward feed
    `local.forward_outcome(status)` and the injection's `qp`. `Finished` repeats once reached.
    """

    def __init__(self, instructions: Sequence[Instruction], forward_only: bool = False) -> None:
        self._lines = list(instructions)
        self._next = 0
        self._forward_only = forward_only
        self._recipients: list[str] = []
        self._counts = [0, 0, 0]  # files, forwards, programs
        self._pending: Step | None = None
        self._forwarded = False
        self._qp = 0

    def next_step(self) -> Step:
        """The step to perform now (the same one again until it is fed)."""
        if self._pending is None:
            self._pending = self._advance()
        return self._pending

    def feed(self, result: Outcome, qp: int = 0) -> None:
        """Report how the pending Deliver or Forward went."""
        step = self._pending
        if not isinstance(step, Deliver | Forward):
            raise RuntimeError(f"nothing to feed: pending step is {step!r}")
        if isinstance(step, Forward):
            self._qp = qp
        if result.code != 0:
            self._pending = Finished(result)
            return
        if result.stop:
            self._next = len(self._lines)
        self._pending = None

    def _advance(self) -> Step:
        while self._next < len(self._lines):
            line = self._lines[self._next]
            self._next += 1
            if line.kind == "forwardonly":
                self._forward_only = True
            elif line.kind == "forward":
                self._counts[1] += 1
                self._recipients.append(line.arg)
            elif line.kind in _XBIT:
                self._counts[2 if line.kind == "program" else 0] += 1
                if self._forward_only:
                    return Finished(report(_XBIT[line.kind]))
                return Deliver(line.kind, line.arg)
        if self._recipients and not self._forwarded:
            self._forwarded = True
            return Forward(tuple(self._recipients))
        return Finished(Outcome(0, success_text(*self._counts, qp=self._qp)))


def plan_deliveries(instructions: Sequence[Instruction], forward_only: bool = False) -> list[Step]:
    """The steps qmail-local performs when every one succeeds, ending with `Finished`."""
    run, steps = LocalDelivery(instructions, forward_only), []
    while not isinstance(step := run.next_step(), Finished):
        steps.append(step)
        run.feed(SUCCESS)
    return [*steps, step]


def dry_run(instructions: Sequence[Instruction], forward_only: bool = False) -> Outcome:
    """`qmail-local -n`: one line per instruction (`maildir …`, `forward …`), then `did …`."""
    said, counts = [], [0, 0, 0]
    for line in instructions:
        if line.kind == "forwardonly":
            forward_only = True
        elif line.kind in ("forward", *_XBIT):
            counts[{"forward": 1, "program": 2}.get(line.kind, 0)] += 1
            if forward_only and line.kind in _XBIT:
                failure = report(_XBIT[line.kind])
                return Outcome(failure.code, "".join(said) + failure.text)
            said.append(f"{line.kind} {line.arg}\n")
    return Outcome(0, "".join(said) + success_text(*counts))
