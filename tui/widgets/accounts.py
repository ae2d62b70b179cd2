"""qmail's accounts as CSS component classes, so every panel colours an account alike."""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget

from sim.qmail.constants import QMAIL_UIDS

ACCOUNTS = (*QMAIL_UIDS, "user")
ACCOUNT_CLASSES = frozenset(f"acct--{name}" for name in ACCOUNTS)


def account_class(account: str) -> str:
    """The component class of an account: a mail user (alice, …) is `user`."""
    return f"acct--{account if account in QMAIL_UIDS else 'user'}"


def account_style(widget: Widget, account: str) -> Style:
    """The account's colour as the app's CSS sets it."""
    return widget.get_component_rich_style(account_class(account), partial=True)
