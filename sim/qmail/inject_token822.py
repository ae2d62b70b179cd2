"""RFC 822 tokens as qmail-inject reads and writes them (qmail-header(5); token822 in qmail).

Theory of operation: qmail-inject never parses addresses with a grammar. It cuts a header
field into tokens (atoms, "quoted strings", [literals], (comments) and the specials
`. , @ < > : ;`), walks the address list *from right to left* (RFC 822 lists are easy to
read that way), hands each address's tokens to a rewriting callback, and writes the
tokens back with its own spacing, folding the field after a comma when a line would pass
80 columns. So qmail's output spacing is a function of the tokens, not of the input, and
this module reproduces it:

* a space after `:` and `,`, before `<`, and between two words (atom, quote, literal,
  comment); none elsewhere (`fred@heaven.af.mil`, `<joe@x>`);
* inside words `" [ ] ( ) \\ CR LF` are written with a backslash before them;
* an atom holding a control, non-ASCII, `)`, `]` or `\\` character is written quoted;
* comments next to an address move after it (`(Fred) fred` -> `fred@host (Fred)`), two
  words in a row are two addresses (`To: fred joe`), and the callback sees the addresses
  right to left, so recipients come out of `To: a, b` as b then a, as in qmail.

Quirks kept on purpose: a stray `<` or an unclosed group is taken as part of the address,
while a route outside angle brackets (`@a:b@c`) or a `>` without `<` is a parse error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sim.qmail.errors import BadInput

ATOM, QUOTE, LITERAL, COMMENT = "atom", "quote", "literal", "comment"
WORDS = frozenset({ATOM, QUOTE, LITERAL, COMMENT})
SPECIALS = frozenset(".,@<>:;")
DELIMITED = {"(": (COMMENT, ")"), '"': (QUOTE, '"'), "[": (LITERAL, "]")}
OPENERS = {kind: opener for opener, (kind, _) in DELIMITED.items()}
CLOSERS = {kind: closer for kind, closer in DELIMITED.values()}
BLANKS = frozenset(" \t\r\n")
NOT_IN_ATOM = BLANKS | frozenset('(["<>;:@,.')
ESCAPED = frozenset('"[]()\\\r\n')
LINELEN = 80


class InjectError(BadInput):
    """qmail-inject or sendmail refuses: the message is its stderr text, with its exit code."""

    def __init__(self, message: str, exit_code: int = 100) -> None:
        self.exit_code = exit_code
        super().__init__(message)


class TokenError(BadInput):
    """The text cannot be cut into RFC 822 tokens (unbalanced quote, bracket, comment)."""


@dataclass(frozen=True, slots=True)
class Token:
    """One token: `kind` is a word kind (ATOM, QUOTE, ...) or the special character itself."""

    kind: str
    text: str = ""


Tokens = list[Token]
Rewrite = Callable[[Tokens], Tokens]


def _delimited(text: str, i: int, closer: str, nests: bool) -> tuple[str, int]:
    """An opener's content up to its closer: `\\` escapes; nested comments lose their parens."""
    out: list[str] = []
    level = 1
    while True:
        i += 1
        if i >= len(text):
            raise TokenError(f"unbalanced {closer!r} in {text!r}")
        ch = text[i]
        if ch == closer:
            level -= 1
            if not level:
                return "".join(out), i + 1
            continue
        if nests and ch == "(":
            level += 1
            continue
        if ch == "\\":
            i += 1
            if i >= len(text):
                raise TokenError(f"backslash at the end of {text!r}")
            ch = text[i]
        out.append(ch)


def _atom(text: str, i: int) -> tuple[Token, int]:
    """An atom runs to the next blank or special; a backslash takes the next character."""
    out: list[str] = []
    while True:
        if text[i] == "\\":
            i += 1
            if i >= len(text):
                break
        out.append(text[i])
        i += 1
        if i >= len(text) or text[i] in NOT_IN_ATOM:
            break
    word = "".join(out)
    odd = any(ord(ch) < 32 or ord(ch) > 126 or ch in ")]\\" for ch in word)
    return Token(QUOTE if odd else ATOM, word), i


def tokenize(text: str) -> Tokens:
    """Cut a header field (or an address) into tokens; a stray `)` or `]` is an error."""
    tokens: Tokens = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in BLANKS:
            i += 1
        elif ch in SPECIALS:
            tokens.append(Token(ch))
            i += 1
        elif ch in DELIMITED:
            kind, closer = DELIMITED[ch]
            word, i = _delimited(text, i, closer, nests=kind == COMMENT)
            tokens.append(Token(kind, word))
        elif ch in ")]":
            raise TokenError(f"unbalanced {ch!r} in {text!r}")
        else:
            token, i = _atom(text, i)
            if token.text:  # a lone backslash at the very end quotes nothing
                tokens.append(token)
    return tokens


def _needspace(last: str | None, kind: str) -> bool:
    if last is None:
        return False
    if last in ":," or kind == "<":
        return True
    return last in WORDS and kind in WORDS


def _word(token: Token) -> str:
    body = "".join("\\" + ch if ch in ESCAPED else ch for ch in token.text)
    if token.kind == ATOM:
        return body
    return OPENERS[token.kind] + body + CLOSERS[token.kind]


def _fold(out: str, line_start: int, pending: int | None, linelen: int) -> tuple[str, int, int]:
    """At a comma (or the end): keep the previous tentative break only if the line is full."""
    if pending is not None and (not linelen or len(out) - line_start <= linelen):
        out = out[:pending] + out[pending + 2 :]
    elif pending is not None:
        line_start = pending + 1
    return out + "\n ", line_start, len(out)


def unparse(tokens: Sequence[Token], linelen: int = LINELEN) -> str:
    """Tokens -> one header field ending in LF, folded after commas as qmail folds it."""
    out, line_start, pending = "", 0, None
    last: str | None = None
    for token in tokens:
        if _needspace(last, token.kind):
            out += " "
        last = token.kind
        out += _word(token) if token.kind in WORDS else token.kind
        if token.kind == ",":
            out, line_start, pending = _fold(out, line_start, pending, linelen)
    out, line_start, pending = _fold(out, line_start, pending, linelen)
    return out[:-1]


def unquote(tokens: Sequence[Token]) -> str:
    """The envelope form of an address: words unquoted, literals bracketed, comments gone."""
    parts = []
    for token in tokens:
        if token.kind == LITERAL:
            parts.append(f"[{token.text}]")
        elif token.kind in (ATOM, QUOTE):
            parts.append(token.text)
        elif token.kind != COMMENT:
            parts.append(token.kind)
    return "".join(parts)


class _ListWalk:
    """token822_addrlist's walk, right to left: one method per kind of token, in a table."""

    def __init__(self, tokens: Sequence[Token], rewrite: Rewrite) -> None:
        self.tokens, self.rewrite = tokens, rewrite
        self.i = len(tokens) - 1
        self.out: Tokens = []  # built right to left, reversed at the end
        self.address: Tokens = []  # the address being collected, right to left
        self.in_group = False
        self.word_ok = True

    def take(self, into: Tokens) -> None:
        into.append(self.tokens[self.i])
        self.i -= 1

    def kind(self) -> str | None:
        return self.tokens[self.i].kind if self.i >= 2 else None

    def flush(self, comma: bool = False, even_empty: bool = False) -> None:
        if self.address or even_empty:
            self.out.extend(reversed(self.rewrite(self.address[::-1])))
            self.address.clear()
            if comma and not even_empty:
                self.out.append(Token(","))

    def semicolon(self) -> None:
        self.flush(comma=True)
        if self.in_group:
            raise TokenError("group inside a group")
        self.in_group, self.word_ok = True, True
        self.take(self.out)

    def colon(self) -> None:
        """The end (seen first) of a group's name: the name goes out as it is."""
        self.flush()
        if not self.in_group:
            raise TokenError("`:` outside a group")
        self.in_group, self.word_ok = False, True
        while self.kind() not in (None, ","):
            self.take(self.out)
        if self.kind() == ",":
            self.take(self.out)

    def angle(self) -> None:
        """`phrase <address>`: the address is rewritten even when empty (`<>`)."""
        self.flush(comma=True)
        self.take(self.out)
        while self.kind() not in (None, "<"):
            self.take(self.address)
        self.flush(even_empty=True)
        if self.kind() is None:
            raise TokenError("`>` without `<`")
        self.take(self.out)
        while self.kind() in (COMMENT, ATOM, QUOTE, "@", "."):
            self.take(self.out)
        self.word_ok = False

    def word(self) -> None:
        """A second word in a row starts another address (`To: fred joe`)."""
        if not self.word_ok:
            self.flush(comma=True)
        self.word_ok = False
        self.take(self.address)

    def comma(self) -> None:
        self.flush()
        self.word_ok = True
        self.take(self.out)

    def comment(self) -> None:
        """A comment is a space to the address: it goes out, so it lands after the address."""
        self.take(self.out)

    def other(self) -> None:
        """`@`, `.` and a stray `<` belong to the address."""
        self.word_ok = True
        self.take(self.address)

    def run(self) -> Tokens:
        steps = {";": self.semicolon, ":": self.colon, ">": self.angle, ",": self.comma}
        steps |= {ATOM: self.word, QUOTE: self.word, LITERAL: self.word, COMMENT: self.comment}
        while (kind := self.kind()) is not None:
            steps.get(kind, self.other)()
        self.flush()
        self.out.extend(reversed(self.tokens[:2]))
        return self.out[::-1]


def rewrite_address_list(tokens: Sequence[Token], rewrite: Rewrite) -> Tokens:
    """Rewrite every address of a field (`tokens[:2]` are its name and colon), right to left.

    Raises TokenError where qmail's token822_addrlist fails: `:` outside a group, a group
    in a group, `>` without `<`.
    """
    return _ListWalk(tokens, rewrite).run()
