"""control/defaultdomain and control/plusdomain as qmail's config-fast derives them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.qmail.configfast import default_domain, plus_domain

# config-fast's two sed expressions (one for each file), translated directly: in a POSIX
# bracket expression the backslash is literal, so `[^\.]` is `[^\\.]` here.
SED_FIRST = (re.compile(r"^([^\\.]*)\.([^\\.]*)\."), r"\2.")
SED_PLUS = (re.compile(r"^.*\.([^\\.]*)\.([^\\.]*)$"), r"\1.\2")


def sed(line: str, expression: tuple[re.Pattern[str], str]) -> str:
    """`sed 's/RE/REPL/'` on one line: the first match only."""
    pattern, replacement = expression
    return pattern.sub(replacement, line, count=1)


@pytest.mark.parametrize(
    ("fqdn", "defaultdomain", "plusdomain"),
    [
        ("example.test", "example.test", "example.test"),
        ("mail.example.test", "example.test", "example.test"),
        ("a.b.c.d", "b.c.d", "c.d"),
        ("a.b.example.test", "b.example.test", "example.test"),
        ("localhost", "localhost", "localhost"),
        ("x.a\\b.c", "x.a\\b.c", "x.a\\b.c"),  # a backslash stops `[^\.]*`
        ("a.b.c\\d", "b.c\\d", "a.b.c\\d"),
    ],
)
def test_config_fast_derives_both_from_the_host_name(
    fqdn: str, defaultdomain: str, plusdomain: str
) -> None:
    assert (default_domain(fqdn), plus_domain(fqdn)) == (defaultdomain, plusdomain)


@given(st.text(alphabet=st.sampled_from("ab.\\-x"), max_size=12) | st.text(max_size=20))
def test_same_as_the_seds(fqdn: str) -> None:
    line = fqdn.replace("\n", "")  # config-fast echoes one line
    assert default_domain(line) == sed(line, SED_FIRST)
    assert plus_domain(line) == sed(line, SED_PLUS)
