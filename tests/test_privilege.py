"""What one compromised program reaches, derived from uids, groups and modes (issue 7)."""

from __future__ import annotations

import argparse
import sys

import pytest

from sim import graph_cli
from sim.arch import build_graph
from sim.privilege import access, analyze, find_program, format_table, permission, rwx
from sim.qmail.errors import BadInput

QUEUE_TEXT = ("queue/pid", "queue/mess", "queue/intd", "queue/todo")


@pytest.fixture(scope="module")
def graph():
    return build_graph()


@pytest.mark.parametrize(
    ("account", "groups", "owner", "group", "mode", "expected"),
    [
        ("root", (), "qmailq", "qmail", 0o700, ("root", 7)),
        ("qmailq", ("qmail",), "qmailq", "qmail", 0o750, ("owner", 7)),
        ("qmails", ("qmail",), "qmailq", "qmail", 0o750, ("group", 5)),
        ("qmaild", ("nofiles",), "qmailq", "qmail", 0o750, ("other", 0)),
        ("qmailr", ("qmail",), "qmails", "qmail", 0o622, ("group", 2)),
    ],
)
def test_permission_picks_the_class_then_its_bits(account, groups, owner, group, mode, expected):
    assert permission(account, groups, owner, group, mode) == expected


@pytest.mark.parametrize(("bits", "text"), [(7, "rwx"), (5, "r-x"), (2, "-w-"), (0, "---")])
def test_rwx(bits, text):
    assert rwx(bits) == text


def test_qmail_smtpd_writes_nothing_of_the_queue_except_through_qmail_queue(graph):
    c = analyze(graph, "qmail-smtpd")
    assert (c.account, c.groups, c.everything) == ("qmaild", ("nofiles",), False)
    assert not [r for r in c.can_write if r.startswith("queue/")]
    assert not [r for r in c.can_read if r.startswith("queue/")]
    assert {r for r, via in c.through.items() if via == "qmail-queue"} == {
        *QUEUE_TEXT,
        "queue/lock/trigger",
    }
    # the reasoning, as the table prints it: it cannot even enter queue/
    assert c.reasons["queue/mess"].startswith(
        "cannot enter queue/ qmailq:qmail 0750: qmaild is other, ---"
    )
    assert c.reasons["queue/mess"].endswith("only through qmail-queue (setuid qmailq)")
    assert "qmail-queue" in c.can_execute and "qmail-lspawn" not in c.can_execute  # 0700 root
    assert c.holds == {"smtp-socket": "read and write"}  # its own client, on fd 0 and 1
    assert c.affected_messages == ("add new messages through qmail-queue, as any local user can",)
    assert c.affected_users == ("none directly",)
    assert c.verdict == "writes no queue file; adds messages only through qmail-queue"


def test_qmail_smtpd_can_signal_its_own_account_and_the_qmail_queue_it_started(graph):
    c = analyze(graph, "qmail-smtpd")
    assert set(c.can_signal) == {"tcpserver", "qmail-smtpd", "qmail-queue"}


@pytest.mark.parametrize("program", ["qmail-lspawn", "qmail-start", "qmail-popup"])
def test_root_programs_reach_everything(graph, program):
    c = analyze(graph, program)
    resources = [n for n, d in graph.nodes(data=True) if d["kind"] == "resource"]
    assert c.everything and c.account == "root"
    assert list(c.can_read) == list(c.can_write) == resources
    assert c.affected_users == ("every user on the host",)
    assert set(c.reasons.values()) == {"root passes every permission check"}


def test_qmail_remote_as_qmailr_reads_the_queue_but_writes_only_tcpto_and_the_trigger(graph):
    c = analyze(graph, "qmail-remote")
    assert c.account == "qmailr"
    assert "queue/mess" in c.can_read  # group qmail: mess/ is 0750, its files 0644
    assert [r for r in c.can_write if r.startswith("queue/")] == [
        "queue/lock/tcpto",
        "queue/lock/trigger",  # the FIFO is 0622
    ]
    assert c.reasons["queue/info"] == "qmails:qmail 0700: qmailr is group, ---; files 0600: ---"
    assert "read every queued message" in c.affected_messages


def test_qmail_local_as_the_user_reaches_that_users_maildir_only(graph):
    c = analyze(graph, "qmail-local")
    assert c.account == "user"
    assert {"maildir", "dotqmail", "home"} <= set(c.can_write)
    assert not [r for r in c.can_write if r.startswith("queue/")]
    assert c.holds == {"queue/mess": "read"}  # fd 0, opened for it by qmail-lspawn
    assert "fd 0: the message, opened by qmail-lspawn" in c.reasons["queue/mess"]
    assert c.affected_users == ("user: its own Maildir and .qmail, no other user's",)


def test_qmail_send_must_ask_qmail_clean_to_remove_todo_and_mess(graph):
    c = analyze(graph, "qmail-send")
    assert {"queue/info", "queue/local", "queue/remote", "queue/bounce"} <= set(c.can_write)
    assert {"queue/todo", "queue/mess"} <= set(c.can_read)
    assert not set(QUEUE_TEXT) & set(c.can_write)  # 0750 for group qmail: r-x, no unlink


@pytest.mark.parametrize(
    "program",
    [n for n, d in build_graph().nodes(data=True) if d["kind"] == "program"],
)
def test_qmail_works_under_its_own_modes(graph, program):
    """Every file a program writes, links or unlinks, its account may; only descriptors it
    is handed (qmail-local's message on fd 0, the connections tcpserver hands over) go beyond."""
    c = analyze(graph, program)
    handed = {
        "qmail-local": {"queue/mess": "read"},
        "qmail-smtpd": {"smtp-socket": "read and write"},
        "tcpserver": {"smtp-socket": "read and write"},
        "qmail-pop3d": {"pop3-socket": "read and write"},
    }
    assert dict(c.holds) == handed.get(program, {})


def test_the_monolith_reaches_everything_and_says_so():
    mono = build_graph("monolith")
    c = analyze(mono, "mta")
    assert c.everything and "EVERYTHING" in format_table(c)
    assert analyze(mono, "sendmail").everything  # setuid root: any local user runs it


def test_compromise_tables_for_smtpd_and_lspawn_differ(graph):
    smtpd = format_table(analyze(graph, "qmail-smtpd"))
    lspawn = format_table(analyze(graph, "qmail-lspawn"))
    assert "attacker is qmaild" in smtpd and "via qmail-queue" in smtpd
    assert "cannot enter queue/" in smtpd
    assert "attacker is root" in lspawn and "EVERYTHING" in lspawn


def test_plain_table_without_rich(graph, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails: plain text
    text = format_table(analyze(graph, "qmail-smtpd"))
    assert "queue/mess" in text and "via qmail-queue" in text
    assert "can signal: tcpserver, qmail-smtpd, qmail-queue" in text


def test_unknown_program_is_bad_input_naming_the_known_ones(graph):
    with pytest.raises(BadInput, match=r"unknown program 'qmail-foo'; known: .*qmail-smtpd"):
        find_program(graph, "qmail-foo")


def test_access_of_a_socket_is_roots_alone(graph):
    assert access(graph.nodes["smtp-socket"], "qmaild", ("nofiles",)) == (
        False,
        False,
        "listening on port 25 takes root",
    )


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qmailsim graph")
    graph_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_compromise_prints_the_table(capsys):
    assert graph_cli.run(cli("--compromise", "qmail-smtpd")) == 0
    out = capsys.readouterr().out
    assert out.startswith("If qmail-smtpd is compromised, the attacker is qmaild")


def test_cli_compromise_of_the_monolith_says_everything(capsys):
    assert graph_cli.run(cli("--variant", "monolith", "--compromise", "mta")) == 0
    assert "EVERYTHING" in capsys.readouterr().out


def test_cli_unknown_program_is_one_clear_error():
    with pytest.raises(BadInput, match=r"unknown program 'sendmail\.cf'; known: checkpassword"):
        graph_cli.run(cli("--compromise", "sendmail.cf"))
