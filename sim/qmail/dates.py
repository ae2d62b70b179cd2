"""Dates in the forms qmail writes them; the caller supplies the time (no clock here)."""

from __future__ import annotations

from datetime import UTC, datetime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(int(t), UTC)


def qmail_date(t: float) -> str:
    """`26 Sep 1995 04:46:53 -0000`: Received lines, bounces, qmail-inject's Date (date822fmt).

    GMT, day not zero-padded, seconds truncated, zone written `-0000` as qmail does.
    """
    d = _utc(t)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year} {d:%H:%M:%S} -0000"


def mbox_date(t: float) -> str:
    """`Tue Sep 05 04:46:53 1995`: an mbox From_ line's date (myctime: day zero-padded, GMT)."""
    d = _utc(t)
    return f"{_DAYS[d.weekday()]} {_MONTHS[d.month - 1]} {d.day:02d} {d:%H:%M:%S} {d.year}"


def qread_date(t: float) -> str:
    """`26 Sep 1995 04:46:53 GMT`: the date qmail-qread prints for a message."""
    d = _utc(t)
    return f"{d.day} {_MONTHS[d.month - 1]} {d.year} {d:%H:%M:%S} GMT"
