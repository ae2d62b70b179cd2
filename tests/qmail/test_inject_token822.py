"""RFC 822 tokens as qmail-inject cuts, walks and writes them back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.inject_token822 import (
    ATOM,
    COMMENT,
    LITERAL,
    QUOTE,
    Token,
    TokenError,
    Tokens,
    rewrite_address_list,
    tokenize,
    unparse,
    unquote,
)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        (
            "fred@heaven.af.mil",
            [
                Token(ATOM, "fred"),
                Token("@"),
                Token(ATOM, "heaven"),
                Token("."),
                Token(ATOM, "af"),
                Token("."),
                Token(ATOM, "mil"),
            ],
        ),
        (
            '"Smith, Joe" <j>',
            [Token(QUOTE, "Smith, Joe"), Token("<"), Token(ATOM, "j"), Token(">")],
        ),
        ("(a (nested) \\) c)", [Token(COMMENT, "a nested ) c")]),
        ("[1.2.3.4]", [Token(LITERAL, "1.2.3.4")]),
        ('"a\\"b"', [Token(QUOTE, 'a"b')]),
        ("a\\,b", [Token(ATOM, "a,b")]),
        ("a)b", [Token(QUOTE, "a)b")]),  # odd atom becomes a quoted word
        ("caf\xe9", [Token(QUOTE, "caf\xe9")]),
        (" \t\r\n;:", [Token(";"), Token(":")]),
        ("a\\", [Token(ATOM, "a")]),
    ],
)
def test_tokenize(text: str, tokens: Tokens) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize("text", ['"open', "(open", "[open", ")", "]", '"a\\'])
def test_unbalanced_text_is_a_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        tokenize(text)


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("To:fred,joe", "To: fred, joe\n"),
        ("To :  Fred   Smith<fred @ x . y>", "To: Fred Smith <fred@x.y>\n"),
        ("To: friends: a, b;", "To: friends: a, b;\n"),
        ("To: undisclosed-recipients:;", "To: undisclosed-recipients: ;\n"),
        ('To: "a[b" (c\\(d) [e]', 'To: "a\\[b" (c\\(d) [e]\n'),
        ("To: a)b", 'To: "a\\)b"\n'),
    ],
)
def test_unparse_uses_qmails_spacing(text: str, written: str) -> None:
    assert unparse(tokenize(text)) == written


def _field(*addresses: str) -> str:
    return "To: " + ", ".join(addresses)


def test_field_of_78_columns_stays_on_one_line() -> None:
    text = _field("a" * 61 + "@x.yz", "b@x.yz")
    assert len(text) == 78
    assert unparse(tokenize(text)) == text + "\n"


def test_field_of_79_columns_folds_after_the_comma() -> None:
    text = _field("a" * 62 + "@x.yz", "b@x.yz")
    assert unparse(tokenize(text)) == "To: " + "a" * 62 + "@x.yz,\n  b@x.yz\n"


def test_long_list_folds_greedily() -> None:
    boxes = [f"user{n:02d}@example.com" for n in range(8)]
    assert unparse(tokenize(_field(*boxes))) == (
        "To: user00@example.com, user01@example.com, user02@example.com,\n"
        "  user03@example.com, user04@example.com, user05@example.com,\n"
        "  user06@example.com, user07@example.com\n"
    )


def test_a_single_long_address_is_never_folded() -> None:
    text = _field("a" * 120 + "@x.yz")
    assert unparse(tokenize(text)) == text + "\n"


def test_unquote_gives_the_envelope_form() -> None:
    assert unquote(tokenize('"joe smith" (c) @ [1.2.3.4]')) == "joe smith@[1.2.3.4]"


def _collect(field: str) -> tuple[str, list[str]]:
    seen: list[str] = []

    def rewrite(address: Tokens) -> Tokens:
        seen.append(unquote(address))
        return [*address, Token("."), Token(ATOM, "X")]

    return unparse(rewrite_address_list(tokenize(field), rewrite)), seen


@pytest.mark.parametrize(
    ("field", "written", "addresses"),
    [
        ("To: a, b", "To: a.X, b.X\n", ["b", "a"]),  # right to left
        ("To: a b", "To: a.X, b.X\n", ["b", "a"]),  # two words, two addresses
        ("To: Fred Smith <f@h>", "To: Fred Smith <f@h.X>\n", ["f@h"]),
        ("To: (Fred) f@h", "To: f@h.X (Fred)\n", ["f@h"]),  # comment moves after
        ("To: g: a, b;, c", "To: g: a.X, b.X;, c.X\n", ["c", "b", "a"]),
        ("To: g:;", "To: g: ;\n", []),
        ("To: <>", "To: <.X>\n", [""]),  # the callback sees even an empty address
        ("To:", "To:\n", []),
    ],
)
def test_address_list_walk(field: str, written: str, addresses: list[str]) -> None:
    assert _collect(field) == (written, addresses)


@pytest.mark.parametrize("field", ["To: a: b", "To: g: a; h: b;;", "To: f@h>"])
def test_address_list_errors(field: str) -> None:
    with pytest.raises(TokenError):
        _collect(field)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_token_layer_never_raises_anything_but_bad_input(text: str) -> None:
    try:
        written = unparse(rewrite_address_list(tokenize("To: " + text), list))
    except BadInput:
        return
    assert written.endswith("\n")
    assert unparse(tokenize(written)) == written  # qmail's output is a fixed point
