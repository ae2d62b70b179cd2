r"""What qmail's `config-fast FQDN` writes into control/defaultdomain and control/plusdomain.

config-fast derives both from the host's name with sed, not from DNS:

    defaultdomain: sed 's/^\([^\.]*\)\.\([^\.]*\)\./\2\./'
    plusdomain:    sed 's/^.*\.\([^\.]*\)\.\([^\.]*\)$/\1.\2/'

The first drops the first label of a name with three or more labels; the second keeps the
last two labels of such a name. A name of one or two labels goes through unchanged:
`example.test` gives `example.test` twice, `mail.example.test` gives `example.test` twice,
`a.b.c.d` gives `b.c.d` and `c.d`. In a POSIX bracket expression a backslash is literal, so
`[^\.]` stops at a backslash as well as at a dot: a label holding a backslash never matches.
The name is one line (config-fast echoes it; sed works line by line).
"""

from __future__ import annotations

NOT_IN_LABEL = "\\"  # besides the dot, `[^\.]` excludes the backslash


def _plain(label: str) -> bool:
    r"""True if sed's `[^\.]*` matches the whole label."""
    return NOT_IN_LABEL not in label


def drop_first_label(fqdn: str) -> str:
    """config-fast's first sed: `a.b.c` -> `b.c`; fewer than two dots: unchanged."""
    labels = fqdn.split(".")
    if len(labels) < 3 or not (_plain(labels[0]) and _plain(labels[1])):
        return fqdn
    return fqdn[len(labels[0]) + 1 :]


def last_two_labels(fqdn: str) -> str:
    """config-fast's second sed: `a.b.c.d` -> `c.d`; fewer than two dots: unchanged."""
    labels = fqdn.split(".")
    if len(labels) < 3 or not (_plain(labels[-2]) and _plain(labels[-1])):
        return fqdn
    return f"{labels[-2]}.{labels[-1]}"


def default_domain(fqdn: str) -> str:
    """control/defaultdomain as config-fast writes it (without the newline)."""
    return drop_first_label(fqdn)


def plus_domain(fqdn: str) -> str:
    """control/plusdomain as config-fast writes it (without the newline)."""
    return last_two_labels(fqdn)
