"""qmail-inject's address rewriting and the names it builds from its environment.

Theory of operation (qmail-inject(8), qmail-header(5)): every address qmail-inject
touches (arguments, `-f`, each address in To/Cc/Bcc/From/... fields) goes through one
rewrite on its tokens, in this order:

1. `<>` and `box@[]` are left alone; a leading route `@a,@b:` is dropped;
2. one trailing `.` is dropped, then one trailing `@`;
3. no `@` at all: `@defaulthost` is appended;
4. a last atom ending in `+`: the `+` becomes `.plusdomain`;
5. a host (after the last `@`) with no `.` and no [literal] gets `.defaultdomain`.

So `fred` becomes `fred@defaulthost` (plus `.defaultdomain` if defaulthost has no dot);
with defaultdomain `af.mil`, `fred@heaven` becomes `fred@heaven.af.mil`; `fred@heaven+`
becomes `fred@heaven.<plusdomain>`; an address already `box@host.domain` is unchanged.
The four hosts come from control files, each overridden by its environment variable; the
user and host of the default From and of the envelope sender come from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sim.qmail.control import Control
from sim.qmail.inject_token822 import (
    ATOM,
    COMMENT,
    LITERAL,
    QUOTE,
    InjectError,
    Token,
    TokenError,
    Tokens,
    rewrite_address_list,
    tokenize,
    unparse,
    unquote,
)
from sim.qmail.rfc822 import needs_quoting, quote_address

# control file -> the environment variable that overrides it
HOST_OVERRIDES = {
    "defaultdomain": "QMAILDEFAULTDOMAIN",
    "defaulthost": "QMAILDEFAULTHOST",
    "plusdomain": "QMAILPLUSDOMAIN",
    "idhost": "QMAILIDHOST",
}
USER_VARIABLES = ("QMAILUSER", "MAILUSER", "USER", "LOGNAME")
HOST_VARIABLES = ("QMAILHOST", "MAILHOST")
NAME_VARIABLES = ("QMAILNAME", "MAILNAME", "NAME")
ANONYMOUS = "anonymous"
QMAILINJECT_FLAGS = frozenset("csfirm")  # name-comment, delete Return-Path/From/Message-ID, VERP
VERP_MARK = "-@[]"  # qmail-inject's suffix on a per-recipient VERP sender


@dataclass(frozen=True, slots=True)
class InjectConfig:
    """What qmail-inject knows before reading the message: hosts, user, name, QMAILINJECT."""

    defaulthost: str
    defaultdomain: str
    plusdomain: str
    idhost: str
    mailuser: str
    mailhost: str | None
    mailruser: str
    mailrhost: str | None
    fullname: str | None
    flags: frozenset[str]
    host_tokens: tuple[Token, ...]  # `@defaulthost`
    domain_tokens: tuple[Token, ...]  # `.defaultdomain`
    plus_tokens: tuple[Token, ...]  # `.plusdomain`


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((env[name] for name in names if name in env), None)


def _tokens(text: str) -> tuple[Token, ...]:
    try:
        return tuple(tokenize(text))
    except TokenError:
        raise InjectError(f"qmail-inject: fatal: unable to parse this line:\n{text}") from None


def inject_config(control: Control, env: Mapping[str, str]) -> InjectConfig:
    """Resolve qmail-inject's names from the control files and the environment."""
    hosts = {name: env.get(var, getattr(control, name)) for name, var in HOST_OVERRIDES.items()}
    mailuser = _first(env, USER_VARIABLES) or ANONYMOUS
    mailhost = _first(env, HOST_VARIABLES)
    return InjectConfig(
        defaulthost=hosts["defaulthost"],
        defaultdomain=hosts["defaultdomain"],
        plusdomain=hosts["plusdomain"],
        idhost=hosts["idhost"],
        mailuser=mailuser,
        mailhost=mailhost,
        mailruser=env.get("QMAILSUSER", mailuser),
        mailrhost=env.get("QMAILSHOST", mailhost),
        fullname=_first(env, NAME_VARIABLES),
        flags=frozenset(env.get("QMAILINJECT", "")) & QMAILINJECT_FLAGS,
        host_tokens=_tokens("@" + hosts["defaulthost"]),
        domain_tokens=_tokens("." + hosts["defaultdomain"]),
        plus_tokens=_tokens("." + hosts["plusdomain"]),
    )


def _host_part(tokens: Tokens) -> Tokens:
    """The tokens after the last `@`."""
    ats = [i for i, token in enumerate(tokens) if token.kind == "@"]
    return tokens[ats[-1] + 1 :] if ats else tokens


def rewrite_tokens(address: Tokens, config: InjectConfig) -> Tokens:
    """qmail-inject's rewrite of one address (tokens in order); see the module docstring."""
    t = list(address)
    if not t or (len(t) >= 2 and t[-2].kind == "@" and t[-1] == Token(LITERAL, "")):
        return t
    if t[0].kind == "@":
        colons = [i for i, token in enumerate(t) if token.kind == ":"]
        t = t[colons[0] + 1 :] if colons else []
    for trailing in (".", "@"):
        if t and t[-1].kind == trailing:
            t.pop()
    if not t:
        return t
    if all(token.kind != "@" for token in t):
        t += config.host_tokens
    if t[-1].kind == ATOM and t[-1].text.endswith("+"):
        t[-1] = Token(ATOM, t[-1].text[:-1])
        t += config.plus_tokens
    host = _host_part(t)
    if all(token.kind not in (".", LITERAL) for token in host):
        t += config.domain_tokens
    return t


def quote2(address: str) -> str:
    """Quote the local part where RFC 822 needs it (qmail's quote2; "" stays "")."""
    return quote_address(address)


def rewrite_address(address: str, config: InjectConfig) -> str:
    """An envelope address as qmail-inject rewrites a recipient argument."""
    try:
        tokens = tokenize(quote2(address))
    except TokenError:
        raise InjectError(f"qmail-inject: fatal: unable to parse address: {address}") from None
    return unquote(rewrite_tokens(tokens, config))


def rewrite_sender_option(address: str, config: InjectConfig) -> str:
    """The envelope sender given with `-f`, rewritten like any address."""
    quoted = quote2(address)
    try:
        tokens = tokenize(quoted)
    except TokenError:
        raise InjectError(f"qmail-inject: fatal: unable to parse this line:\n{quoted}") from None
    return unquote(rewrite_tokens(tokens, config))


def _rewrite_field(text: str, config: InjectConfig) -> tuple[str, list[str]]:
    """Rewrite every address of a generated field; return it and its addresses (right first)."""
    found: list[str] = []

    def rewrite(address: Tokens) -> Tokens:
        rewritten = rewrite_tokens(address, config)
        found.append(unquote(rewritten))
        return rewritten

    try:
        return unparse(rewrite_address_list(tokenize(text), rewrite)), found
    except TokenError:
        raise InjectError(f"qmail-inject: fatal: unable to parse this line:\n{text}") from None


def default_from(config: InjectConfig) -> str:
    """The `From:` field added when the message has none: `"Full Name" <user@host>`."""
    name = config.fullname
    comment = "c" in config.flags
    user_kind = QUOTE if needs_quoting(config.mailuser) else ATOM
    tokens = [Token(ATOM, "From"), Token(":")]
    if name is not None and not comment:
        tokens += [Token(QUOTE, name), Token("<")]
    tokens.append(Token(user_kind, config.mailuser))
    if config.mailhost is not None:
        tokens += [Token("@"), Token(ATOM, config.mailhost)]
    if name is not None:
        tokens.append(Token(COMMENT, name) if comment else Token(">"))
    return _rewrite_field(unparse(tokens), config)[0]


def default_sender(config: InjectConfig, start: int, pid: int) -> str:
    """The envelope sender when neither `-f` nor Return-Path gave one: mailruser@mailrhost.

    QMAILINJECT `m` adds `-<start time>.<pid>` (per-message VERP), `r` adds `-` to the
    user and qmail-inject's `-@[]` mark to the result (per-recipient VERP).
    """
    user = config.mailruser
    if "m" in config.flags:
        user += f"-{start}.{pid}"
    if "r" in config.flags:
        user += "-"
    tokens = [Token(ATOM, "Return-Path"), Token(":"), Token(QUOTE, user)]
    if config.mailrhost is not None:
        tokens += [Token("@"), Token(ATOM, config.mailrhost)]
    _, found = _rewrite_field(unparse(tokens), config)
    if not found:  # a host like `x:;` turns the field into an empty group: qmail sends <>
        return ""
    return found[0] + (VERP_MARK if "r" in config.flags else "")
