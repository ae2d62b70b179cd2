"""The help screen (`?`): the keys, the colours, and the words the panels use."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from sim.qmail.queue import STATE_MEANINGS

KEYS = (
    ("space", "play / pause the replay"),
    ("n  →", "step: to the next narrated event"),
    ("p  ←", "step back"),
    ("+  -", "faster / slower (steps per second)"),
    ("home  end", "to the start / to the end of what is read"),
    ("f", "follow the trace as it grows (tail -f), e.g. while an MTA runs"),
    ("/", "filter the event log by program, pid, message id or host (Esc clears)"),
    ("tab  shift+tab", "next / previous panel; arrows move in it, the inspector follows"),
    ("z", "zoom the current panel (again to unzoom)"),
    ("click", "a box of the picture: what that program is and does"),
    ("?", "this help"),
    ("q", "quit"),
)


def help_text() -> str:
    """The help as Rich markup."""
    keys = "\n".join(f"  [b]{k:<16}[/b]{what}" for k, what in KEYS)
    states = "\n".join(f"  [b]{s}[/b]  {m}" for s, m in STATE_MEANINGS.items())
    return (
        "[b u]qmailsim: how mail moves through qmail[/]\n\n"
        f"[b]keys[/b]\n{keys}\n\n"
        "[b]the picture[/b]\n"
        "  Each box is a qmail program, coloured by the account it runs as (legend under the\n"
        "  picture). A line lights up when the trace shows data or control passing on it:\n"
        "  fork/exec, a pipe read or write, a queue file created, linked or unlinked. The\n"
        "  ✉ id is the message the program is handling in this step.\n\n"
        f"[b]message states (qmail's INTERNALS)[/b]\n{states}\n\n"
        "Press Escape, q or ? to close."
    )


class HelpScreen(ModalScreen[None]):
    """Keys and vocabulary; any of escape, q, ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "close"),
        Binding("q", "dismiss", "close", show=False),
        Binding("question_mark", "dismiss", "close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(help_text())
