"""tcpserver's access rules: the text tcprules(1) compiles, and the lookup tcpserver does.

Theory of operation: `tcp.smtp` holds one rule per line, `address:instructions` with no
extra spaces, `#` lines ignored, e.g. `127.:allow,RELAYCLIENT=""` or `:deny`. The address
ends at the first `:` that is followed by `allow` or `deny`. After the instruction come
`,VAR=<q>value<q>` settings where <q> is any character (usually `"`): the value runs to the
next <q>. tcprules has no way to write "unset VAR" (a `,VAR` without `=` is a parse error),
so every value is a str; the `None` in `Decision.env` only mirrors tcpserver's cdb format.
An address such as `10.0.0.1-7` (no `=` or `@`) stands for the range of its dashed part,
capped at 255, as tcprules expands it. Of two rules for the same address the first wins
(the first cdb record is the one tcpserver finds).

tcpserver tries, in order: `info@ip`, `info@=host`, `ip`, `=host`, the prefixes of `ip`
ending in `.` (longest first), `=.suffix` for each suffix of `host` starting at a `.`, `=`,
and the empty address. The host and info forms apply only when the caller passes
TCPREMOTEHOST / TCPREMOTEINFO. No match: allow, with no variables set.
Stricter than tcprules: an empty variable name is refused, and a line of blanks (which
makes tcprules 0.88 loop forever) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.qmail.errors import ControlFileError

RULES_FILE = "tcp.smtp"
INSTRUCTIONS = {"allow": True, "deny": False}
RANGE_TOP = 255


@dataclass(frozen=True, slots=True)
class Decision:
    """What tcpserver does with a connection: accept or drop it, and the env to set."""

    allow: bool
    env: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rules:
    """Compiled rules: each address (ranges expanded) to the first rule written for it."""

    table: dict[str, Decision]


class _BadLine(Exception):
    """Internal: this line cannot be parsed (turned into ControlFileError with its number)."""


def _split_address(line: str) -> tuple[str, str]:
    """Split at the first `:` followed by `allow` or `deny`."""
    colon = line.find(":")
    while colon >= 0:
        rest = line[colon + 1 :]
        if rest.startswith(("allow", "deny")):
            return line[:colon], rest
        colon = line.find(":", colon + 1)
    raise _BadLine


def _parse_env(text: str) -> dict[str, str | None]:
    """`,VAR=<q>value<q>` repeated, <q> being any one character."""
    env: dict[str, str | None] = {}
    while text:
        equals = text.find("=")
        if not text.startswith(",") or equals < 2 or equals + 1 >= len(text):
            raise _BadLine
        quote = text[equals + 1]
        end = text.find(quote, equals + 2)
        if end < 0:
            raise _BadLine
        env[text[1:equals]] = text[equals + 2 : end]
        text = text[end + 1 :]
    return env


def _parse_decision(text: str) -> Decision:
    """`allow...` or `deny...` into a Decision."""
    word = "allow" if text.startswith("allow") else "deny"
    return Decision(INSTRUCTIONS[word], _parse_env(text[len(word) :]))


def _number(text: str) -> int:
    """tcprules' getnum: digits only; an empty field counts as 0."""
    if text and not (text.isascii() and text.isdigit()):
        raise _BadLine
    return int(text or "0")


def expand_address(address: str) -> list[str]:
    """`1.2.3.10-20` -> the keys tcprules writes; other addresses stand for themselves."""
    dash = address.find("-")
    if "=" in address or "@" in address or dash < 0:
        return [address]
    left = address.rfind(".", 0, dash) + 1
    right = address.find(".", dash)
    right = len(address) if right < 0 else right
    bottom = _number(address[left:dash])
    top = min(_number(address[dash + 1 : right]), RANGE_TOP)
    return [f"{address[:left]}{n}{address[right:]}" for n in range(bottom, top + 1)]


def parse_tcprules(text: str, name: str = RULES_FILE) -> Rules:
    """Rules text -> Rules; a line tcprules cannot parse raises ControlFileError."""
    table: dict[str, Decision] = {}
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        if raw == "" or raw.startswith("#"):
            continue
        line = raw.rstrip(" \t")
        try:
            address, instructions = _split_address(line)
            decision = _parse_decision(instructions)
            keys = expand_address(address)
        except _BadLine:
            raise ControlFileError(name, number, f"unable to parse this line: {line!r}") from None
        for key in keys:
            table.setdefault(key, decision)
    return Rules(table)


def candidates(remote_ip: str, remote_host: str | None, remote_info: str | None) -> list[str]:
    """The addresses tcpserver looks up, most specific first."""
    keys: list[str] = []
    if remote_info is not None:
        keys.append(f"{remote_info}@{remote_ip}")
        if remote_host is not None:
            keys.append(f"{remote_info}@={remote_host}")
    keys.append(remote_ip)
    if remote_host is not None:
        keys.append(f"={remote_host}")
    keys += [remote_ip[:end] for end in range(len(remote_ip), 0, -1) if remote_ip[end - 1] == "."]
    if remote_host is not None:
        keys += [f"={remote_host[i:]}" for i, ch in enumerate(remote_host) if ch == "."]
        keys.append("=")
    keys.append("")
    return keys


def match_rules(
    rules: Rules,
    remote_ip: str,
    remote_host: str | None = None,
    remote_info: str | None = None,
) -> Decision:
    """The decision of the most specific rule for this client; no rule: allow, no env.

    The Decision returned is the caller's own: changing its env leaves the rules alone.
    """
    for key in candidates(remote_ip, remote_host, remote_info):
        if key in rules.table:
            found = rules.table[key]
            return Decision(found.allow, dict(found.env))
    return Decision(True)


match = match_rules  # the name of the task's API; tcpserver's program says match_rules
