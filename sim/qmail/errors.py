"""Exceptions for bad input, kept apart from our own bugs.

`BadInput` and its subclasses mean the *peer or the user* gave us something qmail would
refuse; callers turn them into qmail's wording and never into a traceback. Any other
exception is a bug in qmailsim.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input qmail would refuse: the message is meant for the user, as is."""


class ControlFileError(BadInput):
    """A control file (or users/assign, tcprules) that cannot be understood.

    The message names the file and the line, e.g. ``control/concurrencylocal line 1: ...``.
    """

    def __init__(self, name: str, line: int | None, problem: str) -> None:
        self.name = name
        self.line = line
        self.problem = problem
        where = f"{name} line {line}" if line is not None else name
        super().__init__(f"{where}: {problem}")


class EnvelopeError(BadInput):
    """An envelope (qmail-queue fd 1, or a todo/intd file) that breaks qmail-queue(8)'s format."""


class ProtocolError(BadInput):
    """A peer broke one of qmail's internal pipe protocols (spawn, clean, checkpassword)."""
