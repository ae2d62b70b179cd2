"""Control files: qmail's reading rules and defaults (reference §10)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.address import in_badmailfrom, rcpthosts_match, rcpthosts_verdict
from sim.qmail.control import (
    CONTROL_FILES,
    Control,
    SmtpRoute,
    incoming_limit,
    load_control,
)
from sim.qmail.errors import BadInput, ControlFileError

ME = {"me": "heaven.af.mil\n"}


def test_every_file_of_the_reference_table_is_known() -> None:
    expected = {
        "me",
        "badmailfrom",
        "bouncefrom",
        "bouncehost",
        "concurrencylocal",
        "concurrencyremote",
        "databytes",
        "defaultdomain",
        "defaulthost",
        "doublebouncehost",
        "doublebounceto",
        "envnoathost",
        "helohost",
        "idhost",
        "localiphost",
        "locals",
        "morercpthosts",
        "percenthack",
        "plusdomain",
        "qmqpservers",
        "queuelifetime",
        "rcpthosts",
        "smtpgreeting",
        "smtproutes",
        "timeoutconnect",
        "timeoutremote",
        "timeoutsmtpd",
        "virtualdomains",
    }
    assert set(CONTROL_FILES) == expected


@pytest.mark.parametrize(
    ("name", "with_me", "without_me"),
    [
        ("bouncefrom", "MAILER-DAEMON", "MAILER-DAEMON"),
        ("bouncehost", "heaven.af.mil", "bouncehost"),
        ("doublebounceto", "postmaster", "postmaster"),
        ("doublebouncehost", "heaven.af.mil", "doublebouncehost"),
        ("envnoathost", "heaven.af.mil", "envnoathost"),
        ("defaultdomain", "heaven.af.mil", "defaultdomain"),
        ("defaulthost", "heaven.af.mil", "defaulthost"),
        ("plusdomain", "heaven.af.mil", "plusdomain"),
        ("idhost", "heaven.af.mil", "idhost"),
        ("helohost", "heaven.af.mil", None),
        ("smtpgreeting", "heaven.af.mil", None),
        ("localiphost", "heaven.af.mil", None),
        ("concurrencylocal", 10, 10),
        ("concurrencyremote", 20, 20),
        ("queuelifetime", 604800, 604800),
        ("databytes", 0, 0),
        ("timeoutsmtpd", 1200, 1200),
        ("timeoutremote", 1200, 1200),
        ("timeoutconnect", 60, 60),
    ],
)
def test_absent_file_takes_qmails_default(name: str, with_me: object, without_me: object) -> None:
    assert getattr(load_control(ME), name) == with_me
    assert getattr(load_control({}), name) == without_me


def test_control_without_me_still_builds_for_the_program_to_judge() -> None:
    control = load_control({})
    assert control.me is None
    assert control.locals is None
    assert control == Control()


def test_locals_defaults_to_me() -> None:
    assert load_control(ME).locals == ("heaven.af.mil",)


def test_present_but_empty_single_value_file_is_empty_as_in_qmail() -> None:
    assert load_control({**ME, "defaulthost": ""}).defaulthost == ""


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("heaven.af.mil\n", "heaven.af.mil"),
        ("heaven.af.mil \t \n", "heaven.af.mil"),
        ("heaven.af.mil\nsecond.line\n", "heaven.af.mil"),
        ("heaven.af.mil", "heaven.af.mil"),
        ("  lead.kept\n", "  lead.kept"),
        ("cr.kept\r\n", "cr.kept\r"),
        (b"caf\xe9.example\n", "caf\xe9.example"),
    ],
)
def test_single_value_is_first_line_with_trailing_blanks_stripped(
    text: str | bytes, value: str
) -> None:
    assert load_control({"me": text}).me == value


def test_me_is_the_default_of_the_me_derived_files_even_when_others_given() -> None:
    control = load_control({**ME, "defaulthost": "x.example\n"})
    assert (control.defaulthost, control.defaultdomain) == ("x.example", "heaven.af.mil")


@pytest.mark.parametrize(
    ("text", "value"),
    [("5\n", 5), ("30 \n", 30), ("15seconds\n", 15), ("0\n", 0), ("007", 7)],
)
def test_integer_file_takes_leading_digits(text: str, value: int) -> None:
    assert load_control({"timeoutconnect": text}).timeoutconnect == value


@pytest.mark.parametrize("text", ["ten\n", "", " 10\n", "-5\n"])
def test_integer_file_without_leading_digit_names_file_and_line(text: str) -> None:
    with pytest.raises(ControlFileError) as caught:
        load_control({"concurrencylocal": text})
    assert str(caught.value) == f"control/concurrencylocal line 1: not a number: {text.rstrip()!r}"


def test_malformed_concurrency_message_is_word_for_word() -> None:
    with pytest.raises(
        ControlFileError, match=r"^control/concurrencylocal line 1: not a number: 'ten'$"
    ):
        load_control({"concurrencylocal": "ten\n"})


@pytest.mark.parametrize("name", ["concurrencylocal", "concurrencyremote"])
def test_concurrency_above_conf_spawn_is_capped_at_120(name: str) -> None:
    assert getattr(load_control({name: "500\n"}), name) == 120


def test_queuelifetime_is_not_capped() -> None:
    assert load_control({"queuelifetime": "1209600\n"}).queuelifetime == 1209600


def test_list_skips_blank_and_comment_lines_and_strips_trailing_blanks() -> None:
    text = "# local domains\nheaven.af.mil\n\n   \nHELL.af.mil \t\n#x\nlast"
    assert load_control({"locals": text}).locals == ("heaven.af.mil", "HELL.af.mil", "last")


def test_absent_rcpthosts_differs_from_empty_rcpthosts() -> None:
    absent, empty = load_control(ME), load_control({**ME, "rcpthosts": ""})
    assert (absent.rcpthosts, absent.rcpthosts_present) == (None, False)
    assert (empty.rcpthosts, empty.rcpthosts_present) == ((), True)


def test_morercpthosts_is_read_as_a_list() -> None:
    control = load_control({"morercpthosts": "a.example\n#c\nb.example\n"})
    assert control.morercpthosts == ("a.example", "b.example")


def test_virtualdomains_lowercases_keys_later_wins_and_skips_lines_without_colon() -> None:
    text = (
        "Tommy.GOV:fred\n"
        "nowhere.mil:joe-foo\n"
        "no colon here\n"
        ".fax:uucp-fax\n"
        ":alias-catchall\n"
        "tommy.gov:Fred2\n"
        "user@Virt.example:Joe\n"
    )
    table = load_control({"virtualdomains": text}).virtualdomains
    assert dict(table) == {
        "tommy.gov": "Fred2",
        "nowhere.mil": "joe-foo",
        ".fax": "uucp-fax",
        "": "alias-catchall",
        "user@virt.example": "Joe",
    }
    assert list(table) == ["tommy.gov", "nowhere.mil", ".fax", "", "user@virt.example"]


def test_empty_prepend_is_kept_as_an_exception() -> None:
    assert load_control({"virtualdomains": "except.example:\n"}).virtualdomains == {
        "except.example": ""
    }


@pytest.mark.parametrize(
    ("line", "key", "route"),
    [
        (":bigbang.af.mil", "", SmtpRoute("bigbang.af.mil", 25)),
        ("inside.af.mil:firewall.af.mil:26", "inside.af.mil", SmtpRoute("firewall.af.mil", 26)),
        (".af.mil:", ".af.mil", SmtpRoute("", 25)),
        ("Mixed.Example:Relay.Example", "mixed.example", SmtpRoute("Relay.Example", 25)),
    ],
)
def test_smtproutes_lines(line: str, key: str, route: SmtpRoute) -> None:
    assert dict(load_control({"smtproutes": line + "\n"}).smtproutes) == {key: route}


def test_smtproutes_later_duplicate_wins() -> None:
    routes = load_control({"smtproutes": "a.example:one\nA.example:two:2525\n"}).smtproutes
    assert dict(routes) == {"a.example": SmtpRoute("two", 2525)}


@pytest.mark.parametrize("port", ["x", "", "0", "65536", "25a", "²"])
def test_smtproutes_bad_port_names_file_and_line(port: str) -> None:
    text = f"# routes\n\ngood.example:relay\nbad.example:relay:{port}\n"
    with pytest.raises(ControlFileError) as caught:
        load_control({"smtproutes": text})
    assert str(caught.value) == f"control/smtproutes line 4: bad port: {port!r}"
    assert (caught.value.name, caught.value.line) == ("control/smtproutes", 4)


def test_control_maps_are_read_only() -> None:
    control = load_control({"virtualdomains": "a:b\n"})
    with pytest.raises(TypeError):
        control.virtualdomains["c"] = "d"  # type: ignore[index]


@pytest.mark.parametrize(
    ("domain", "accepted"),
    [
        ("heaven.af.mil", True),
        ("HEAVEN.AF.MIL", True),
        ("sub.heaven.af.mil", False),  # needs a `.heaven.af.mil` line
        ("a.b.hell.af.mil", True),
        ("hell.af.mil", False),  # `.hell.af.mil` covers subdomains only
        ("irs.gov", False),
        ("xheaven.af.mil", False),
        ("", False),
    ],
)
def test_rcpthosts_lines_match_domain_or_dot_suffix(domain: str, accepted: bool) -> None:
    assert (rcpthosts_match(domain, ["Heaven.af.mil", ".hell.af.mil"]) is not None) is accepted


@pytest.mark.parametrize(
    ("recipient", "rcpthosts", "accepted"),
    [
        ("bill@irs.gov", None, True),  # no rcpthosts: open relay
        ("bill@irs.gov", "", False),
        ("bill@irs.gov", "heaven.af.mil\n", False),
        ("joe@heaven.af.mil", "heaven.af.mil\n", True),
        ("joe", "heaven.af.mil\n", True),  # no @: passes
        ("", "heaven.af.mil\n", True),  # RCPT TO:<>
        ("a@b@more.example", "more.example\n", True),  # domain after the last @
        ("x@more.example", "heaven.af.mil\n", True),  # via morercpthosts
    ],
)
def test_rcpthosts_read_from_control(recipient: str, rcpthosts: str | None, accepted: bool) -> None:
    texts = {"morercpthosts": "more.example\n"}
    if rcpthosts is not None:
        texts["rcpthosts"] = rcpthosts
    control = load_control(texts)
    verdict, _ = rcpthosts_verdict(recipient, control.rcpthosts, control.morercpthosts)
    assert verdict is accepted


@pytest.mark.parametrize(
    ("sender", "listed"),
    [
        ("spammer@bad.example", True),
        ("SPAMMER@Bad.Example", True),
        ("anyone@whole.example", True),
        ("anyone@sub.whole.example", False),
        ("other@bad.example", False),
        ("", False),
        ("whole.example", False),
    ],
)
def test_badmailfrom_read_from_control(sender: str, listed: bool) -> None:
    lines = load_control({"badmailfrom": "spammer@bad.example\n@Whole.example\n"}).badmailfrom
    assert in_badmailfrom(sender, lines) is listed


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(CONTROL_FILES),
        st.one_of(st.text(max_size=40), st.binary(max_size=40)),
        max_size=6,
    )
)
def test_load_control_never_raises_anything_but_bad_input(texts: dict[str, str | bytes]) -> None:
    with contextlib.suppress(BadInput):
        load_control(texts)


def test_case_folding_is_ascii_only_as_in_constmap() -> None:
    table = load_control({"virtualdomains": "\xc0.EXAMPLE:x\n"}).virtualdomains
    assert dict(table) == {"\xc0.example": "x"}


@pytest.mark.parametrize(
    ("text", "limit"),
    [(None, 40), ("", 40), ("12\n", 12), (" 7 \nx", 7), ("0\n", 40), ("ten\n", 40), ("-3", 40)],
)
def test_incoming_limit_is_the_run_scripts_reading(text: str | None, limit: int) -> None:
    assert incoming_limit(text) == limit
