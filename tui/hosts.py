"""Telling a trace's hosts apart: a short label per host, shown only when there are several.

A trace of one host (the default lesson, a live MTA) looks as it always did. With two hosts
each pid and queue id is used on both, so every process, message and log line carries its
host's label: `alpha` for alpha.test, or the whole name where first labels clash.
"""

from __future__ import annotations

from collections.abc import Iterable


def host_labels(hosts: Iterable[str]) -> dict[str, str]:
    """host -> label when there are several hosts; empty when there is one (or none)."""
    names = list(dict.fromkeys(hosts))
    if len(names) < 2:
        return {}
    firsts = [name.split(".", 1)[0] or name for name in names]
    return {
        name: first if firsts.count(first) == 1 else name
        for name, first in zip(names, firsts, strict=True)
    }


def label_of(labels: dict[str, str], host: str) -> str:
    """The label a row shows for `host` (`?` for an event that named no host)."""
    return labels.get(host, host) or "?"
