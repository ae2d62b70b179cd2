"""Messages the panels post to the app ("attributes down, messages up")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class Inspect(Message):
    """Show this thing in the inspector: kind is message, process, file, event or node."""

    kind: str
    key: Any
