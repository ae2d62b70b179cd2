"""One readable line per trace event that matters to a learner (the demo and the event log).

Most effects are plumbing (a close, a dup2); a learner wants the forks and execs, who changed
identity, the protocol lines, the queue's file operations and the decisions with their `why`.
`narrate` picks those and words them; everything else returns None. A trace may be written by
hand, so a field of an unexpected type is shown as it is, never a reason to fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

FILE_KINDS = {"link", "unlink", "rename", "fsync", "fsyncdir", "mkfifo"}
QUEUE_DIRS = ("pid/", "mess/", "intd/", "todo/", "info/", "local/", "remote/", "bounce/")


def _words(value: Any) -> str:
    """An argv as the shell shows it; anything else that is not a list, as it is."""
    if isinstance(value, list):
        return " ".join(str(word) for word in value)
    return "" if value is None else str(value)


def _who(event: dict) -> str:
    return f"{event.get('prog', '?')}[{event.get('pid', '?')}] ({event.get('uid', '?')})"


def _queue_path(event: dict) -> bool:
    if event.get("prog") == "qmail-local":  # it works inside the Maildir: tmp/, new/
        return True
    for key in ("path", "src", "dst"):
        value = event.get(key)
        if isinstance(value, str) and (value.startswith(QUEUE_DIRS) or "Maildir/" in value):
            return True
    return False


def narrate(event: dict) -> str | None:
    """A short sentence for this event, or None if it is plumbing."""
    kind = event.get("kind")
    if not isinstance(kind, str):
        return None
    who = _who(event)
    why = f"  -- {event['why']}" if event.get("why") else ""
    if kind == "fork":
        return f"{who} forks {event.get('label') or 'a child'} -> pid {event.get('result')}"
    if kind == "exec":
        error = f" FAILED ({event['err']})" if event.get("err") else ""
        return f"{who} execs {event.get('program')} {_words(event.get('argv'))}{error}"
    if kind == "setuid":
        return f"{who} becomes {event.get('to_user')}"
    if kind == "smtp-reply":
        reply = str(event.get("reply", "")).replace("\\r\\n", " | ").rstrip(" |")
        return f"{who} replies {reply}{why}"
    if kind == "open" and _queue_path(event) and event.get("create"):
        return f"{who} creates {event.get('path')}"
    if kind == "open" and event.get("path") == "lock/trigger":
        if event.get("mode") == "r":
            return f"{who} opens lock/trigger to hear of new mail"
        if event.get("prog") == "qmail-send":
            return f"{who} holds lock/trigger open for writing too, so select never sees EOF"
        result = "no qmail-send listening" if event.get("err") else "qmail-send woken"
        return f"{who} pulls the trigger ({result})"
    if kind == "lock":
        if event.get("err"):
            return f"{who} finds fd {event.get('fd')} locked by another process ({event['err']})"
        if event.get("prog") == "qmail-send":
            return f"{who} locks lock/sendmutex: one qmail-send per queue"
        return f"{who} locks fd {event.get('fd')} (flock)"
    if kind == "fetch":
        return f"{who} fetch: {event.get('count')} messages{why}"
    if kind in FILE_KINDS and (_queue_path(event) or kind == "fsyncdir"):
        target = event.get("dst") or event.get("path") or f"fd {event.get('fd')}"
        source = f"{event['src']} -> " if event.get("src") else ""
        error = f" ({event['err']})" if event.get("err") else ""
        return f"{who} {kind} {source}{target}{error}"
    if kind == "fsync":
        return f"{who} fsync fd {event.get('fd')}"
    if kind in ("queue", "route", "delivery", "bounce", "inject", "retry", "local", "remote"):
        fields = {
            k: v
            for k, v in event.items()
            if k not in ("t", "host", "pid", "ppid", "uid", "prog", "kind", "why", "msg")
        }
        detail = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{who} {kind}: {detail}{why}"
    return None


def story(events: Iterable[dict]) -> Iterator[str]:
    """The narrated lines of a trace, in order."""
    for event in events:
        line = narrate(event)
        if line is not None:
            yield line
