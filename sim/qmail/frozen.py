"""Frozen, slotted dataclasses built at the cost of plain ones.

A frozen dataclass's generated `__init__` goes through `object.__setattr__` for every field;
the values the programs make by the hundred per message (system calls, queue and Maildir
operations) are built twice as fast through their slots' descriptors, and stay frozen.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_UNSET = object()


def quick_init(cls: type) -> type:
    """Give a frozen, slotted dataclass an `__init__` that fills its slots through their
    descriptors. The generated one goes through `object.__setattr__` for every field, which
    makes building an effect, the commonest object of a run, cost twice as much; assigning
    to a field afterwards still raises FrozenInstanceError."""
    refuse = _why_not(cls)
    if refuse:
        raise TypeError(f"quick_init: {cls.__name__} {refuse}: keep its own __init__")
    scope: dict[str, Any] = {"_UNSET": _UNSET, "__name__": cls.__module__}
    params, body = [], []
    for f in dataclasses.fields(cls):
        scope[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            scope[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_UNSET")
            value = f"_factory_{f.name}() if {f.name} is _UNSET else {f.name}"
        else:
            params.append(f.name)
        body.append(f"_set_{f.name}(self, {value})")
    source = f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls


def _why_not(cls: type) -> str:
    """Why `quick_init` cannot build `cls` as its dataclass would ("" if it can)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        return "is not a frozen, slotted dataclass"
    if hasattr(cls, "__post_init__"):
        return "validates in __post_init__"
    init = cls.__dict__.get("__init__")
    if init is None or init.__code__.co_filename != "<string>":  # dataclasses' are made so
        return "has an __init__ of its own"
    if any(f.kw_only or not f.init for f in dataclasses.fields(cls)):
        return "has keyword-only or init=False fields"
    return ""


def quick_init_all(*classes: type) -> None:
    """`quick_init` each of `classes`."""
    for cls in classes:
        quick_init(cls)
