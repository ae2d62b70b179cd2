"""The sendmail front end: what it would exec for each invocation (reference §2.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.inject import SENDMAIL_USAGE, SMTPD_ENV, SendmailExec, sendmail_to_inject
from sim.qmail.inject_token822 import InjectError

ENV = {"USER": "joe"}
INJECT = "bin/qmail-inject"


@pytest.mark.parametrize(
    ("argv", "inject_argv"),
    [
        ([], (INJECT, "-a", "--")),
        (["fred"], (INJECT, "-a", "--", "fred")),
        (["-t"], (INJECT, "-H", "--")),
        (["-t", "fred"], (INJECT, "-H", "--", "fred")),
        (["-f", "boss@x.y", "fred"], (INJECT, "-a", "-f", "boss@x.y", "--", "fred")),
        (["-fboss", "fred"], (INJECT, "-a", "-f", "boss", "--", "fred")),
        (["-i", "-oi", "-oem", "fred"], (INJECT, "-a", "--", "fred")),
        (["-v", "-x", "-m", "-ee", "-pq", "-B8BITMIME", "fred"], (INJECT, "-a", "--", "fred")),
        (["-Efoo", "-J", "-bm", "fred"], (INJECT, "-a", "--", "fred")),
        (["-it", "--", "-weird"], (INJECT, "-H", "--", "-weird")),
        (["fred", "-t"], (INJECT, "-a", "--", "fred", "-t")),
    ],
)
def test_sendmail_execs_qmail_inject(argv: list[str], inject_argv: tuple[str, ...]) -> None:
    assert sendmail_to_inject(["sendmail", *argv], ENV) == SendmailExec(INJECT, inject_argv, ENV)


def test_full_name_goes_to_mailname() -> None:
    result = sendmail_to_inject(["sendmail", "-F", "Joe Doe", "fred"], ENV)
    assert result.env == {"USER": "joe", "MAILNAME": "Joe Doe"}


def test_sender_does_not_touch_qmailuser_in_1_03() -> None:
    result = sendmail_to_inject(["sendmail", "-f", "boss@x.y"], {"QMAILUSER": "joe"})
    assert result.env == {"QMAILUSER": "joe"}


@pytest.mark.parametrize("argv", [["sendmail", "-bp"], ["mailq"], ["/usr/bin/mailq", "-v"]])
def test_mailq_execs_qmail_qread(argv: list[str]) -> None:
    assert sendmail_to_inject(argv, ENV) == SendmailExec(
        "bin/qmail-qread", ("bin/qmail-qread",), ENV
    )


def test_bs_runs_qmail_smtpd_as_a_local_client() -> None:
    result = sendmail_to_inject(["sendmail", "-bs"], ENV)
    assert result == SendmailExec("bin/qmail-smtpd", ("bin/qmail-smtpd",), {**ENV, **SMTPD_ENV})
    assert result.env["RELAYCLIENT"] == "" and result.env["TCPREMOTEINFO"] == "sendmail-bs"


def test_bs_trusts_an_environment_that_already_has_proto() -> None:
    env = {"PROTO": "TCP", "TCPREMOTEIP": "10.0.0.1"}
    assert sendmail_to_inject(["sendmail", "-bs"], env).env == env


def test_bp_acts_at_once_so_later_options_do_not_matter() -> None:
    assert sendmail_to_inject(["sendmail", "-bp", "-Z"], ENV).path == "bin/qmail-qread"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["sendmail", "-Z"], "sendmail: illegal option -- Z\n"),
        (["sendmail", "-f"], "sendmail: option requires an argument -- f\n"),
        (["sendmail", "-bd"], ""),
        (["sendmail", "-b", ""], ""),
    ],
)
def test_usage_error_is_exit_100(argv: list[str], problem: str) -> None:
    with pytest.raises(InjectError) as caught:
        sendmail_to_inject(argv, ENV)
    assert (str(caught.value), caught.value.exit_code) == (problem + SENDMAIL_USAGE, 100)
    assert SENDMAIL_USAGE == (
        "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]"
    )


def test_newaliases_is_refused() -> None:
    with pytest.raises(InjectError) as caught:
        sendmail_to_inject(["newaliases"], ENV)
    assert str(caught.value) == "sendmail: fatal: please use fastforward/newaliases instead"
    assert caught.value.exit_code == 100


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=6))
def test_sendmail_never_raises_anything_but_bad_input(argv: list[str]) -> None:
    try:
        result = sendmail_to_inject(["sendmail", *argv], ENV)
    except BadInput:
        return
    assert result.argv[0] == result.path
