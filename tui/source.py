"""Where the UI's events come from: a trace file read whole, or followed as it grows.

The UI reads the trace and nothing else (never a kernel's insides), so a replayed file and a
live MTA look the same. A mistake in the file (not JSON, not an event, another schema) is the
user's input, not our bug: it becomes a `BadInput` naming the file and line, never a traceback.
Following (`TraceTail`) keeps an unfinished last line for the next read: the collector writes
whole lines, but a read may land between two writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sim.kernel.trace import SCHEMA
from sim.qmail.errors import BadInput
from tui.fields import is_int

TRACE_IN_HOME = Path("log") / "trace.jsonl"
NAMED = 3  # trace files a hint names at most


def trace_path(given: Path) -> Path:
    """The trace file for a path that names one, or a qmail home holding `log/trace.jsonl`."""
    path = given / TRACE_IN_HOME if given.is_dir() else given
    if given.is_dir() and not path.exists():
        raise BadInput(no_trace_in(given))
    if not path.exists():
        raise BadInput(f"no such trace file: {path}")
    if not path.is_file():
        raise BadInput(f"not a trace file: {path}")
    return path


def no_trace_in(directory: Path) -> str:
    """Why a directory is not a trace, and what to open instead: the JSON-lines files in it
    (`qmailsim demo --keep DIR` leaves DIR/default-trace.jsonl), else how to make a home."""
    found = sorted(
        directory.glob("*.jsonl"), key=lambda p: (not p.name.endswith("-trace.jsonl"), p)
    )
    if found:
        more = f" (and {len(found) - NAMED} more)" if len(found) > NAMED else ""
        names = ", ".join(p.name for p in found[:NAMED])
        return (
            f"{directory} has no {TRACE_IN_HOME} but holds {names}{more}: qmailsim tui {found[0]}"
        )
    return (
        f"{directory} has no {TRACE_IN_HOME}: give a trace file or a qmail home "
        "(qmailsim demo --live --keep DIR makes a home; qmailsim run --trace FILE a trace)"
    )


def parse_line(line: str, where: str) -> dict[str, Any] | None:
    """One trace line as an event (None if blank); anything else is BadInput naming `where`."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{where}: not JSON ({exc.msg}); is this a qmailsim trace?") from None
    if not isinstance(event, dict) or not isinstance(event.get("kind"), str):
        raise BadInput(f"{where}: not a trace event (an object with a kind)")
    if event["kind"] == "trace" and event.get("v") != SCHEMA:
        raise BadInput(f"{where}: trace schema v{event.get('v')}; this qmailsim reads v{SCHEMA}")
    if event["kind"] != "trace" and not is_int(event.get("pid")):
        if "pid" in event:
            raise BadInput(
                f"{where}: event {event['kind']!r} has pid {event['pid']!r}, not a number"
            )
        raise BadInput(f"{where}: event {event['kind']!r} has no pid")
    return event


def load_trace(path: Path) -> tuple[list[dict[str, Any]], TraceTail]:
    """Every event of a trace file so far, and a tail that goes on where the load stopped."""
    tail = TraceTail(path)
    return tail.read_new(strict=True)[0], tail


class TraceTail:
    """Reads what a growing trace file gained since the last read (`tail -f`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.line = 0
        self._partial = b""

    def read_new(self, strict: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
        """New whole events, and one message per malformed line (skipped: a live trace goes on).

        `strict` (the first load) raises BadInput instead, and also takes a last line with no
        newline if it is a whole event (a file finished by hand rather than by the collector).
        """
        try:
            with self.path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < self.offset:
                    return [], [f"{self.path} shrank (a new trace?): open it again to see it"]
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError as exc:
            if strict:
                raise BadInput(f"cannot read {self.path}: {exc.strerror}") from None
            return [], [f"cannot read {self.path}: {exc.strerror}"]
        self.offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        events, problems = [], []
        for raw in lines:
            self.line += 1
            try:
                event = parse_line(
                    _text(raw, self.path, self.line), f"{self.path} line {self.line}"
                )
            except BadInput as exc:
                if strict:
                    raise
                problems.append(str(exc))
                continue
            if event is not None:
                events.append(event)
        if strict and self._partial:
            try:
                last = parse_line(self._partial.decode("utf-8"), "")
            except (BadInput, UnicodeDecodeError):
                last = None  # being written: the next read completes it
            if last is not None:
                events.append(last)
                self.line += 1
                self._partial = b""
        return events, problems


def _text(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path} line {line}: not text; is this a qmailsim trace?") from None
