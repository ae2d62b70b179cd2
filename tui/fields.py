"""An event's fields as the fold reads them: each of the type the trace schema gives it.

A trace is the user's input, and a hand-edited or foreign line may say `"reply": 5` or
`"pid": "6"`. The fold reads `typed(event)`: a name or path of another type becomes its
text, a number of another type (or a boolean) is left out, so a wrong field changes what one
event shows, never whether the UI runs. The event log and the inspector keep the raw event.
"""

from __future__ import annotations

from typing import Any

TEXT = ("host", "prog", "uid", "kind", "path", "src", "dst", "program", "label", "state",
        "sender", "mode", "to_user")  # fmt: skip
NUMBERS = ("pid", "ppid", "fd", "old", "new", "status", "msg", "id")
TEXT_LISTS = ("argv", "recipients")
# The exact types each field may have (JSON gives no subclasses; a bool is no number).
TYPES: dict[str, tuple[type, ...]] = {
    **{key: (str,) for key in TEXT},
    **{key: (int,) for key in NUMBERS},
    "ppid": (int, type(None)),
    "t": (int, float),
    **{key: (list,) for key in TEXT_LISTS},
}


def is_int(value: Any) -> bool:
    """An integer, and not a boolean (JSON's true is no pid)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An integer or a float, and not a boolean: what a time can be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed(event: dict[str, Any]) -> dict[str, Any]:
    """The event with every field the fold reads of its schema type (see the module doc)."""
    for key, value in event.items():  # the check every event passes: kept quick
        types = TYPES.get(key)
        if types is not None and (type(value) not in types or not _fits(key, value)):
            break
    else:
        return event  # nearly always: no copy
    out: dict[str, Any] = {}
    for key, value in event.items():
        if value is None or _fits(key, value):
            if value is not None:
                out[key] = value
        elif key in TEXT:
            out[key] = str(value)
        elif key in TEXT_LISTS and isinstance(value, list):
            out[key] = [str(v) for v in value]
    return out


def _fits(key: str, value: Any) -> bool:
    if key in TEXT:
        return isinstance(value, str)
    if key in NUMBERS:
        return is_int(value) or (key == "ppid" and value is None)
    if key == "t":
        return is_number(value)
    if key in TEXT_LISTS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return True
