"""qmail-inject: address rewriting, header rewriting and the envelope (reference §2.2, §13.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.control import load_control
from sim.qmail.errors import BadInput
from sim.qmail.inject import InjectOptions, inject, parse_inject_argv, queue_failure
from sim.qmail.inject_address import inject_config, rewrite_address
from sim.qmail.inject_header import split_message
from sim.qmail.inject_token822 import InjectError

CONTROL = load_control(
    {
        "me": "heaven.af.mil\n",
        "defaultdomain": "af.mil\n",
        "plusdomain": "af.mil\n",
    }
)
ENV = {"USER": "joe"}
CONFIG = inject_config(CONTROL, ENV)
T = 811485600  # 19 Sep 1995 04:40:00 GMT
DATE = b"Date: 19 Sep 1995 04:40:00 -0000\n"
MSGID = b"Message-ID: <19950919044000.4242.qmail@heaven.af.mil>\n"


def run(message: bytes, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return inject(message, ["qmail-inject", *args], ENV if env is None else env, CONTROL, T, 4242)


@pytest.mark.parametrize(
    ("address", "rewritten"),
    [
        ("fred", "fred@heaven.af.mil"),  # no @: @defaulthost
        ("fred@heaven", "fred@heaven.af.mil"),  # no dot: .defaultdomain
        ("fred@heaven+", "fred@heaven.af.mil"),  # trailing +: .plusdomain
        ("fred@heaven.af.mil.", "fred@heaven.af.mil"),  # trailing dot dropped
        ("fred@", "fred@heaven.af.mil"),  # trailing @ dropped
        ("fred@[1.2.3.4]", "fred@[1.2.3.4]"),
        ("fred@[]", "fred@[]"),
        ("", ""),
        # an argument is quoted before it is cut into tokens, so a route stays a local part
        ("@route1,@route2:fred@irs.gov", "@route1,@route2:fred@irs.gov"),
        ("@route", "@route.af.mil"),
        ("fred+", "fred+@heaven.af.mil"),  # only a host's + counts
        ("joe smith@irs.gov", "joe smith@irs.gov"),
        ("Fred@IRS.GOV", "Fred@IRS.GOV"),  # no case change
        ("a@b@c", "a@b@c.af.mil"),
    ],
)
def test_rewrite_address(address: str, rewritten: str) -> None:
    assert rewrite_address(address, CONFIG) == rewritten


def test_defaulthost_without_dot_gets_defaultdomain_too() -> None:
    config = inject_config(load_control({}), {})
    assert rewrite_address("fred", config) == "fred@defaulthost.defaultdomain"


@pytest.mark.parametrize(
    ("env", "address", "rewritten"),
    [
        ({"QMAILDEFAULTHOST": "x.example"}, "fred", "fred@x.example"),
        ({"QMAILDEFAULTDOMAIN": "example"}, "fred@box", "fred@box.example"),
        ({"QMAILPLUSDOMAIN": "plus.example"}, "fred@box+", "fred@box.plus.example"),
    ],
)
def test_environment_overrides_control_files(
    env: dict[str, str], address: str, rewritten: str
) -> None:
    assert rewrite_address(address, inject_config(CONTROL, env)) == rewritten


def test_unparsable_argument_address_is_exit_100() -> None:
    with pytest.raises(InjectError) as caught:
        run(b"", "fred@(x")
    assert str(caught.value) == "qmail-inject: fatal: unable to parse address: fred@(x"
    assert caught.value.exit_code == 100


def test_pic_fill_in_the_complete_envelope_and_header() -> None:
    """PIC.local2local: `To: fred` from joe becomes a complete message and envelope."""
    result = run(b"To: fred\nSubject: hi\n\nhello\n")
    assert result.message == (
        DATE + MSGID + b"From: joe@heaven.af.mil\nTo: fred@heaven.af.mil\nSubject: hi\n\nhello\n"
    )
    assert (result.sender, result.recipients, result.queue) == (
        "joe@heaven.af.mil",
        ("fred@heaven.af.mil",),
        True,
    )


def test_dash_n_prints_with_a_return_path_instead_of_queueing() -> None:
    result = run(b"To: fred\n\nhi\n", "-n")
    assert result.queue is False
    assert result.printed.startswith(b"Return-Path: <joe@heaven.af.mil>\n" + DATE)


def test_existing_fields_are_not_added_again() -> None:
    head = b"Date: yesterday\nMessage-ID: <x@y>\nFrom: boss\nCc: fred\n\n"
    assert run(head).message == (
        b"Date: yesterday\nMessage-ID: <x@y>\nFrom: boss@heaven.af.mil\nCc: fred@heaven.af.mil\n\n"
    )


def test_no_to_and_no_cc_adds_recipient_list_not_shown() -> None:
    result = run(b"Subject: s\n\nb\n", "fred")
    assert b"Cc: recipient list not shown: ;\n" in result.message
    assert result.recipients == ("fred@heaven.af.mil",)


@pytest.mark.parametrize("name", [b"Bcc", b"Return-Path", b"Content-Length", b"BCC"])
def test_deleted_fields(name: bytes) -> None:
    assert name + b":" not in run(name + b": x\nTo: y\n\n").message


def test_bcc_recipients_are_kept_but_the_field_is_not() -> None:
    result = run(b"To: a\nBcc: secret\n\n")
    assert b"secret" not in result.message
    assert result.recipients == ("a@heaven.af.mil", "secret@heaven.af.mil")


@pytest.mark.parametrize(
    ("args", "recipients"),
    [
        ((), ("b@heaven.af.mil", "a@heaven.af.mil", "c@heaven.af.mil", "d@heaven.af.mil")),
        (("x",), ("x@heaven.af.mil",)),  # -A: arguments if any
        (("-a", "x"), ("x@heaven.af.mil",)),
        (("-a",), ()),
        (("-h", "x"), ("b@heaven.af.mil", "a@heaven.af.mil", "c@heaven.af.mil", "d@heaven.af.mil")),
        (
            ("-H", "x", "y"),
            (
                "x@heaven.af.mil",
                "y@heaven.af.mil",
                "b@heaven.af.mil",
                "a@heaven.af.mil",
                "c@heaven.af.mil",
                "d@heaven.af.mil",
            ),
        ),
        (("-ha", "x"), ("x@heaven.af.mil",)),  # the last letter wins
    ],
)
def test_recipient_selection(args: tuple[str, ...], recipients: tuple[str, ...]) -> None:
    message = b"To: a, b\nCc: c\nApparently-To: d\nResent-Sender-Not: e\n\n"
    assert run(message, *args).recipients == recipients


def test_resent_message_takes_resent_recipients_and_resent_fields() -> None:
    message = b"From: orig\nTo: first\nResent-To: second\nResent-Bcc: third\n\nbody\n"
    result = run(message)
    assert result.recipients == ("second@heaven.af.mil", "third@heaven.af.mil")
    assert result.message == (
        b"Resent-" + DATE + b"Resent-" + MSGID + b"Resent-From: joe@heaven.af.mil\n"
        b"From: orig@heaven.af.mil\nTo: first@heaven.af.mil\n"
        b"Resent-To: second@heaven.af.mil\n\nbody\n"
    )


def test_resent_message_without_resent_to_or_cc() -> None:
    result = run(b"To: a\nResent-From: me\n\n")
    assert b"Resent-Cc: recipient list not shown: ;\n" in result.message
    assert result.recipients == ()


@pytest.mark.parametrize(
    ("message", "args", "env", "sender"),
    [
        (b"To: a\n\n", ("-f", "boss"), ENV, "boss@heaven.af.mil"),
        (b"To: a\n\n", ("-fboss@irs.gov",), ENV, "boss@irs.gov"),
        (b"To: a\n\n", ("-f", ""), ENV, ""),
        (b"Return-Path: <rp>\nTo: a\n\n", (), ENV, "rp@heaven.af.mil"),
        (b"Return-Path: <>\nTo: a\n\n", (), ENV, ""),
        (b"Return-Path: a, b\nReturn-Path: c\n\n", (), ENV, "b@heaven.af.mil"),  # right to left
        (b"Return-Path: <rp>\n\n", ("-f", "boss"), ENV, "boss@heaven.af.mil"),
        (b"Return-Path: <rp>\n\n", (), {**ENV, "QMAILINJECT": "s"}, "joe@heaven.af.mil"),
        (b"\n", (), {}, "anonymous@heaven.af.mil"),
        (b"\n", (), {"LOGNAME": "l", "USER": "u"}, "u@heaven.af.mil"),
        (b"\n", (), {"MAILUSER": "m", "USER": "u"}, "m@heaven.af.mil"),
        (b"\n", (), {"QMAILUSER": "q", "MAILUSER": "m"}, "q@heaven.af.mil"),
        (b"\n", (), {"USER": "u", "QMAILHOST": "h.example"}, "u@h.example"),
        (b"\n", (), {"USER": "u", "MAILHOST": "box"}, "u@box.af.mil"),
        (b"\n", (), {"USER": "u", "QMAILSUSER": "s", "QMAILSHOST": "s.example"}, "s@s.example"),
        (b"\n", (), {"USER": "u", "QMAILINJECT": "r"}, "u-@heaven.af.mil-@[]"),
        (b"\n", (), {"USER": "u", "QMAILINJECT": "m"}, "u-811485600.4242@heaven.af.mil"),
        (b"Return-Path: x\n\n", (), {"USER": "u", "QMAILINJECT": "r"}, "x@heaven.af.mil-@[]"),
        (b"\n", (), {"USER": "joe smith"}, "joe smith@heaven.af.mil"),
        (b"\n", (), {"USER": "u", "QMAILSHOST": "x:;"}, ""),  # an empty group: no sender
    ],
)
def test_envelope_sender(
    message: bytes, args: tuple[str, ...], env: dict[str, str], sender: str
) -> None:
    assert run(message, *args, env=env).sender == sender


@pytest.mark.parametrize(
    ("env", "from_field"),
    [
        ({"USER": "joe"}, b"From: joe@heaven.af.mil\n"),
        ({"USER": "joe", "NAME": "Joe Doe"}, b'From: "Joe Doe" <joe@heaven.af.mil>\n'),
        ({"USER": "joe", "NAME": "n", "MAILNAME": "m"}, b'From: "m" <joe@heaven.af.mil>\n'),
        ({"USER": "joe", "MAILNAME": "m", "QMAILNAME": "q"}, b'From: "q" <joe@heaven.af.mil>\n'),
        ({"USER": "joe", "NAME": 'J "x" D'}, b'From: "J \\"x\\" D" <joe@heaven.af.mil>\n'),
        (
            {"USER": "joe", "NAME": "Joe Doe", "QMAILINJECT": "c"},
            b"From: joe@heaven.af.mil (Joe Doe)\n",
        ),
        ({"USER": "joe", "QMAILHOST": "irs"}, b"From: joe@irs.af.mil\n"),
        ({"USER": "joe smith"}, b'From: "joe smith"@heaven.af.mil\n'),
    ],
)
def test_default_from(env: dict[str, str], from_field: bytes) -> None:
    assert run(b"To: a\n\n", env=env).message.split(b"\n", 2)[2].startswith(from_field)


@pytest.mark.parametrize(
    ("flags", "message", "kept"),
    [
        ("f", b"From: someone\n\n", b"From: joe@heaven.af.mil\n"),
        ("i", b"Message-ID: <old@x>\n\n", MSGID),
    ],
)
def test_qmailinject_flags_replace_from_and_message_id(
    flags: str, message: bytes, kept: bytes
) -> None:
    result = run(message, env={**ENV, "QMAILINJECT": flags})
    assert kept in result.message
    assert b"someone" not in result.message and b"old@x" not in result.message


@pytest.mark.parametrize(
    ("field", "written"),
    [
        (b"To: Fred Smith <fred>\n", b"To: Fred Smith <fred@heaven.af.mil>\n"),
        (b'To: "Smith, Joe" <joe@x>\n', b'To: "Smith, Joe" <joe@x.af.mil>\n'),
        (b"To: bob (Bob B)\n", b"To: bob@heaven.af.mil (Bob B)\n"),
        (b"To: undisclosed-recipients: ;\n", b"To: undisclosed-recipients: ;\n"),
        (b"To: team: a,\n  b;\n", b"To: team: a@heaven.af.mil, b@heaven.af.mil;\n"),
        (b"To:a,b\n", b"To: a@heaven.af.mil, b@heaven.af.mil\n"),
        (b"Reply-To: r\n", b"Reply-To: r@heaven.af.mil\n"),
        (b"Sender: s\n", b"Sender: s@heaven.af.mil\n"),
        (b"Errors-To: e\n", b"Errors-To: e@heaven.af.mil\n"),
        (b"Return-Receipt-To: e\n", b"Return-Receipt-To: e@heaven.af.mil\n"),
        (b"Resent-Reply-To: e\n", b"Resent-Reply-To: e@heaven.af.mil\n"),
        (b"Subject: fred, joe\n", b"Subject: fred, joe\n"),  # not an address field
        (b"X-To: fred\n", b"X-To: fred\n"),
        (b"Subject : kept\n", b"Subject : kept\n"),
        (b"To: <@r:fred@irs.gov>\n", b"To: <fred@irs.gov>\n"),
        (b"To: <fred\n", b"To: <fred@heaven.af.mil\n"),  # a lone `<` is part of the address
    ],
)
def test_address_fields_are_rewritten(field: bytes, written: bytes) -> None:
    assert written in run(field + b"Date: d\nMessage-ID: m\nFrom: f@x.y\n\n").message


def test_long_recipient_list_is_folded_at_80_columns() -> None:
    names = ", ".join(f"user{n}" for n in range(8)).encode()
    assert run(b"To: " + names + b"\n\n").message.split(b"From: ")[1].split(b"\n\n")[0] == (
        b"joe@heaven.af.mil\n"
        b"To: user0@heaven.af.mil, user1@heaven.af.mil, user2@heaven.af.mil,\n"
        b"  user3@heaven.af.mil, user4@heaven.af.mil, user5@heaven.af.mil,\n"
        b"  user6@heaven.af.mil, user7@heaven.af.mil"
    )


@pytest.mark.parametrize("field", [b"Cc: (x\n", b"To: a: b\n", b"To: fred>\n", b'To: "x\n'])
def test_unparsable_address_field_is_exit_100(field: bytes) -> None:
    with pytest.raises(InjectError) as caught:
        run(field + b"\n")
    assert str(caught.value) == (
        "qmail-inject: fatal: unable to parse this line:\n" + field.decode("latin-1")
    )
    assert caught.value.exit_code == 100


@pytest.mark.parametrize(
    ("message", "fields", "body"),
    [
        (b"A: 1\nB: 2\n\nbody", (b"A: 1\n", b"B: 2\n"), b"\nbody\n"),  # last LF added
        (b"A: 1\n folded\n\tmore\n\nx\n", (b"A: 1\n folded\n\tmore\n",), b"\nx\n"),
        (b"A: 1\nnot a field\nrest\n", (b"A: 1\n",), b"\nnot a field\nrest\n"),  # \n inserted
        (b"From joe Tue\nA: 1\n\n", (b"MBOX-Line: From joe Tue\n", b"A: 1\n"), b"\n"),
        (b"A: 1\r\n\r\nx\r\n", (b"A: 1\r\n",), b"\n\r\nx\r\n"),  # CR is not a line end
        (b"A: 1\nB: 2", (b"A: 1\n", b"B: 2\n"), b""),  # no body at all
        (b" lead: x\n\n", (), b"\n lead: x\n\n"),
        (b": empty name\n", (), b"\n: empty name\n"),
        (b"", (), b""),
        (b"\nbody only\n", (), b"\nbody only\n"),
    ],
)
def test_split_message_as_headerbody_does(
    message: bytes, fields: tuple[bytes, ...], body: bytes
) -> None:
    split = split_message(message)
    assert (split.fields, split.body) == (fields, body)


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        ([], InjectOptions()),
        (["-n", "a", "b"], InjectOptions("A", False, None, ("a", "b"))),
        (["-nN", "-H"], InjectOptions("H", True, None, ())),
        (["-fx", "-f", "y", "--", "-a"], InjectOptions("A", True, "y", ("-a",))),
        (["-", "a"], InjectOptions("A", True, None, ("-", "a"))),
        (["a", "-h"], InjectOptions("A", True, None, ("a", "-h"))),  # options end at a word
        (["--a", "b"], InjectOptions("A", True, None, ("b",))),  # djb getopt swallows --anything
    ],
)
def test_parse_inject_argv(argv: list[str], options: InjectOptions) -> None:
    assert parse_inject_argv(["qmail-inject", *argv]) == options


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x"], "qmail-inject: illegal option -- x"),
        (["-nx"], "qmail-inject: illegal option -- x"),
        (["-f"], "qmail-inject: option requires an argument -- f"),
    ],
)
def test_bad_option_is_exit_100(argv: list[str], message: str) -> None:
    with pytest.raises(InjectError) as caught:
        parse_inject_argv(["/var/qmail/bin/qmail-inject", *argv])
    assert (str(caught.value), caught.value.exit_code) == (message, 100)


# --- properties -------------------------------------------------------------------------

_ATOM = st.text(
    "abcdefghijklmnopqrstuvwxyzABC0123456789!#$%&'*+-/=?^_`{|}~", min_size=1, max_size=8
)
_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_FQ = st.builds(
    lambda local, labels: f"{local}@{'.'.join(labels)}",
    st.lists(_ATOM, min_size=1, max_size=3).map(".".join),
    st.lists(_LABEL, min_size=2, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(_FQ)
def test_rewriting_leaves_fully_qualified_addresses_alone(address: str) -> None:
    assert rewrite_address(address, CONFIG) == address


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        lambda local, host, tail: local + host + tail,
        st.one_of(_ATOM, st.just("joe smith"), st.just("")),
        st.one_of(
            st.just(""), st.just("@"), _LABEL.map("@".__add__), _FQ.map(lambda a: a[a.index("@") :])
        ),
        st.sampled_from(["", ".", "+", "@", "@[1.2.3.4]"]),
    )
)
def test_rewriting_is_idempotent(address: str) -> None:
    once = rewrite_address(address, CONFIG)
    assert rewrite_address(once, CONFIG) == once


_FIELD = st.builds(
    lambda name, value: name + b": " + value + b"\n",
    st.sampled_from([b"To", b"Cc", b"From", b"Subject", b"Bcc", b"Return-Path", b"X-Y"]),
    st.text("abc@.+ ,<>()", max_size=20).map(str.encode),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FIELD, max_size=5), st.binary(max_size=200))
def test_header_rewriting_never_loses_body_bytes(fields: list[bytes], body: bytes) -> None:
    try:
        result = run(b"".join(fields) + b"\n" + body)
    except InjectError:
        return
    expected = body + (b"\n" if body and not body.endswith(b"\n") else b"")
    assert result.message.endswith(b"\n\n" + expected)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.lists(st.text(max_size=6), max_size=3))
def test_inject_never_raises_anything_but_bad_input(message: bytes, argv: list[str]) -> None:
    try:
        result = run(message, *argv)
    except BadInput:
        return
    assert isinstance(result.message, bytes)


_ENV_NAMES = [
    "USER",
    "QMAILHOST",
    "QMAILSHOST",
    "QMAILSUSER",
    "NAME",
    "QMAILINJECT",
    "QMAILDEFAULTHOST",
    "QMAILDEFAULTDOMAIN",
    "QMAILPLUSDOMAIN",
    "QMAILIDHOST",
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_ENV_NAMES), st.text('ab.@:;,<>()"[]\\+ cmr', max_size=6)))
def test_any_environment_gives_bad_input_or_a_message(env: dict[str, str]) -> None:
    try:
        result = run(b"Subject: s\n\nbody\n", env=env)
    except BadInput:
        return
    assert result.message.endswith(b"\nSubject: s\n\nbody\n")


@pytest.mark.parametrize(
    ("status", "text", "code"),
    [
        (
            "Dqq permanent problem (#5.3.0)",
            "qmail-inject: fatal: qq permanent problem (#5.3.0)",
            100,
        ),
        (
            "Zqq write error or disk full (#4.3.0)",
            "qmail-inject: fatal: qq write error or disk full (#4.3.0)",
            111,
        ),
    ],
)
def test_queue_failure_is_reported_with_its_exit_code(status: str, text: str, code: int) -> None:
    error = queue_failure(status)
    assert (str(error), error.exit_code) == (text, code)
