"""Scenario mistakes found by review: each is a ScenarioError naming file, line and key before
the run starts, never a traceback, a silent zero or a run that never ends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.cli import main
from sim.scenario import ScenarioError, load_scenario, parse_scenario

BASE = """\
[scenario]
name = "t"
duration = 60

[[host]]
name = "mail.example.test"
users = ["alice", "bob"]

[host.control]
locals = ["example.test"]
rcpthosts = ["example.test"]

[[remote]]
domains = ["other.test"]

[[workload]]
kind = "message"
at = 1
to = ["alice@example.test"]
"""
SECOND_HOST = '[[host]]\nname = "relay.example.test"\nusers = ["carol"]\n\n[[remote]]'
SECOND_REMOTE = '[[remote]]\ndomains = ["x.test", "other.test"]\n\n[[workload]]'


def edited(*edits: tuple[str, str]) -> str:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def refused(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    return str(caught.value)


def fault(lines: str) -> tuple[str, str]:
    return ("[[workload]]", f"[[fault]]\n{lines}\n\n[[workload]]")


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        # 1: what built a home twice, or a port 25 twice, is refused with its line
        (
            [('"alice", "bob"', '"alice", "alice"')],
            "bad.toml:7: host[0].users: 'alice' is given twice",
        ),
        (
            [('"alice", "bob"', '"Alice", "alice"')],
            "bad.toml:7: host[0].users: 'alice' is given twice ('Alice' is the same user)",
        ),
        (
            [('"alice", "bob"', '"alice", "alias"')],
            "bad.toml:7: host[0].users: 'alias' is qmail's account for the aliases",
        ),
        (
            [("[[workload]]", SECOND_REMOTE)],
            "bad.toml:17: remote[1].domains: mail for 'other.test' already goes to remote[0]",
        ),
        (
            [('domains = ["other.test"]', 'domains = ["example.test"]')],
            "bad.toml:14: remote[0].domains: mail for 'example.test' already goes to host[0]",
        ),
        (
            [('name = "mail.example.test"', 'name = "mx.other.test"')],
            "bad.toml:6: host[0].name: 'mx.other.test' is the name of remote[0]'s MTA",
        ),
        (
            [('name = "mail.example.test"', 'name = "outside"')],
            "bad.toml:6: host[0].name: 'outside' is where the workload's clients are",
        ),
        (
            [("locals =", '"me/x" = "a"\nlocals =')],
            "bad.toml:10: host[0].control.me/x: bad control file name 'me/x'",
        ),
        (
            [("[[remote]]", '[host.dotqmail]\nAlice-list = "&bob"\nalice-list = "&b"\n[[remote]]')],
            "bad.toml:15: host[0].dotqmail.alice-list: the same file as another key: 'alice-list'",
        ),
        (
            [("[[remote]]", '[host.dotqmail]\n"alice-Foo.bar" = "&bob"\n\n[[remote]]')],
            "bad.toml:14: host[0].dotqmail.alice-Foo.bar: qmail-local never reads "
            "'.qmail-Foo.bar': it lowers capitals and turns dots into colons, "
            "so write 'alice-foo:bar'",
        ),
        (
            [("[[remote]]", '[host.dotqmail]\n"alice-x/y" = "&bob"\n\n[[remote]]')],
            "bad.toml:14: host[0].dotqmail.alice-x/y: '.qmail-x/y' cannot be a file name",
        ),
        (
            [('"alice", "bob"', '"alice", "b€b"')],
            "bad.toml:7: host[0].users: bad user name 'b€b': qmail's files hold bytes",
        ),
        (
            [("locals =", 'me = "m€"\nlocals =')],
            "bad.toml:10: host[0].control.me: '€' is not a byte (latin-1)",
        ),
        (
            [('locals = ["example.test"]', 'locals = ["example.test", "a:b.test"]')],
            "bad.toml:10: host[0].control.locals: bad domain 'a:b.test': no spaces, colons,",
        ),
        # 4: errors that named no file, line or key
        (
            [fault('kind = "host-crash"\ntarget = "nosuch.test"')],
            "bad.toml:18: fault[0].target: no host 'nosuch.test' (hosts: mail.example.test)",
        ),
        (
            [fault('kind = "remote-down"\ntarget = "nosuch.test"')],
            "bad.toml:18: fault[0].target: no host or domain 'nosuch.test' in the scenario",
        ),
        (
            [fault('kind = "remote-down"\ntarget = "outside"')],
            "bad.toml:18: fault[0].target: 'outside' (the workload's clients) takes no "
            "connections",
        ),
        (
            [("[[remote]]", '[host.dotqmail]\ncarol-list = "&alice"\n\n[[remote]]')],
            "bad.toml:14: host[0].dotqmail.carol-list: 'carol' is neither a user of the host "
            "nor alias",
        ),
        (
            [('name = "mail.example.test"', 'name = ""')],
            "bad.toml:6: host[0].name: bad domain '': no spaces, colons, slashes or newlines",
        ),
        (
            [('"alice", "bob"', '""')],
            "bad.toml:7: host[0].users: bad user name '': no spaces, colons, slashes or newlines",
        ),
        (
            [("[[remote]]", "[costs]\nforkk = 1\n\n[[remote]]")],
            "bad.toml:14: costs.forkk: unknown key (did you mean 'fork'?) (known: syscall,",
        ),
        (
            [("[[remote]]", "[host.costs]\nforkk = 1\n\n[[remote]]")],
            "bad.toml:14: host[0].costs.forkk: unknown key (did you mean 'fork'?)",
        ),
        (
            [("[[remote]]", SECOND_HOST.replace("relay.", "mail."))],
            "bad.toml:14: host[1].name: host[0] has the name 'mail.example.test' too",
        ),
        (
            [("[[remote]]", SECOND_HOST.replace("relay.", "MAIL."))],
            "bad.toml:14: host[1].name: host[0] has the name 'MAIL.example.test' too",
        ),
        (
            [("[[remote]]", "[dotqmail]\nx = 1\n\n[[remote]]")],
            "bad.toml:13: dotqmail: unknown key (known:",
        ),
        # 5: nonsense that ran with exit 0
        ([("at = 1", "at = 1\ncount = -5")], "bad.toml:19: workload[0].count: must be an integer"),
        ([("at = 1", "at = 1\nsize = -100")], "bad.toml:19: workload[0].size: must be an integer"),
        (
            [('kind = "message"', 'kind = "poisson"\nstart = 30\nstop = 10')],
            "bad.toml:19: workload[0].stop: must not be before start (30)",
        ),
        (
            [('domains = ["other.test"]', 'domains = ["other.test"]\ndefer = 0.7\nreject = 0.6')],
            "bad.toml:16: remote[0].reject: defer + reject must not exceed 1 (accept is the "
            "rest), not 1.3",
        ),
        (
            [fault('kind = "kill"\ntarget = "qmail-sendd"')],
            "bad.toml:18: fault[0].target: no program 'qmail-sendd' runs on a qmail host "
            "(programs: tcpserver, qmail-smtpd,",
        ),
        (
            [fault('kind = "kill"\ntarget = "mail.example.test"')],
            'for a host, give target = "mail.example.test:program"',
        ),
        (
            [fault('kind = "kill"\ntarget = "nosuch.test:qmail-send"')],
            "bad.toml:18: fault[0].target: no host 'nosuch.test'",
        ),
        (
            [('users = ["alice", "bob"]', 'users = ["alice", "bob"]\nmta = "monolith"'),
             fault('kind = "kill"\ntarget = "qmail-send"')],
            "fault[0].target: no program 'qmail-send' runs on a monolith host "
            "(programs: mta-monolith)",
        ),
    ],
)  # fmt: skip
def test_mistakes_are_named_by_file_line_and_key(edits: list, message: str) -> None:
    assert message in refused(edited(*edits))


@pytest.mark.parametrize(
    "target", ["qmail-send", "mail.example.test:qmail-remote", "tcpserver", "sh"]
)
def test_a_kill_of_a_program_the_host_runs_is_accepted(target: str) -> None:
    spec = parse_scenario(edited(fault(f'kind = "kill"\ntarget = "{target}"')), "ok.toml")
    assert spec.faults[0].target == target


@pytest.mark.parametrize(
    "target", ["other.test", "mx.other.test", "example.test", "MAIL.example.test."]
)
def test_remote_down_takes_any_host_or_domain_of_the_scenario(target: str) -> None:
    spec = parse_scenario(edited(fault(f'kind = "remote-down"\ntarget = "{target}"')), "ok.toml")
    assert spec.faults[0].target == target


def test_remote_down_without_a_target_needs_a_remote() -> None:
    text = edited(('[[remote]]\ndomains = ["other.test"]\n', ""), fault('kind = "remote-down"'))
    assert "fault[0].target: no [[remote]] to take down" in refused(text)


def test_a_defer_and_reject_mix_leaves_accept_the_rest() -> None:
    text = edited(('domains = ["other.test"]', 'domains = ["other.test"]\ndefer = 0.25'))
    remote = parse_scenario(text, "ok.toml").remotes[0]
    assert (remote.accept, remote.defer, remote.reject) == (0.75, 0.25, 0.0)


def test_rcpthosts_may_cover_the_domains_under_one() -> None:
    text = edited(('rcpthosts = ["example.test"]', 'rcpthosts = ["example.test", ".example.test"]'))
    spec = parse_scenario(text, "ok.toml")
    assert spec.hosts[0].control["rcpthosts"] == "example.test\n.example.test\n"
    with pytest.raises(ScenarioError, match=re.escape("locals: bad domain '.example.test'")):
        parse_scenario(edited(('locals = ["example.test"]', 'locals = [".example.test"]')), "x")


def test_dotqmail_user_part_is_not_case_sensitive() -> None:
    text = edited(("[[remote]]", '[host.dotqmail]\nAlice-list = "&bob"\n\n[[remote]]'))
    assert dict(parse_scenario(text, "ok.toml").hosts[0].dotqmail) == {"alice-list": "&bob\n"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"ten"', "control/NAME line 1: not a number: 'ten'"),
        ("-5", "control/NAME line 1: not a number: '-5'"),
        ("1.5", "must be a whole number, not 1.5"),
        ("nan", "must be a finite number, not nan"),
    ],
)
@pytest.mark.parametrize(
    "name",
    ["concurrencylocal", "concurrencyremote", "queuelifetime", "databytes", "timeoutsmtpd",
     "timeoutremote", "timeoutconnect", "concurrencyincoming"],
)  # fmt: skip
def test_a_malformed_integer_control_file_names_file_line_and_key(
    name: str, value: str, problem: str
) -> None:
    text = edited(("locals =", f"{name} = {value}\nlocals ="))
    message = f"bad.toml:10: host[0].control.{name}: {problem.replace('NAME', name)}"
    assert refused(text) == message


def test_other_control_mistakes_qmail_would_refuse_to_read() -> None:
    incoming = edited(("locals =", "concurrencyincoming = 0\nlocals ="))
    assert refused(incoming).endswith("control/concurrencyincoming line 1: must be at least 1")
    routes = edited(("locals =", 'smtproutes = ["a.test:relay", "b.test:relay:99999"]\nlocals ='))
    assert refused(routes) == (
        "bad.toml:10: host[0].control.smtproutes: control/smtproutes line 2: bad port: '99999'"
    )
    fine = edited(("locals =", 'concurrencylocal = "10 (qmail reads the digits)"\nlocals ='))
    assert parse_scenario(fine, "ok.toml").hosts[0].control["concurrencylocal"].startswith("10")


def test_the_line_is_the_one_of_the_right_host_and_sub_table() -> None:
    two = edited(
        (
            "[[remote]]",
            SECOND_HOST.replace("[[remote]]", "[host.control]\nlocals = 5\n\n[[remote]]"),
        )
    )
    second = two.replace("locals = 5", 'concurrencylocal = "x"')
    lines = second.splitlines()
    line = lines.index('concurrencylocal = "x"') + 1
    assert line > lines.index('name = "relay.example.test"') + 1
    assert refused(second).startswith(f"bad.toml:{line}: host[1].control.concurrencylocal:")
    inline = edited(
        ("\n[host.control]\n", "\ncontrol = { databytes = 'ten' }\n"),
        ('locals = ["example.test"]\nrcpthosts = ["example.test"]\n', ""),
    )
    assert refused(inline).startswith("bad.toml:9: host[0].control.databytes:")


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_bytes(b'[scenario]\nname = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match=re.escape(f"{path}:2: not valid TOML: not UTF-8")):
        load_scenario(path)


def test_a_replayed_file_that_cannot_be_read_names_the_scenario_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    text = edited(
        ("[[workload]]", '[[workload]]\nkind = "trace"\nfile = "gone.jsonl"\n\n[[workload]]')
    )
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    expected = f"{path}:18: workload[0].file: cannot read gone.jsonl: No such file or directory"
    assert str(caught.value) == expected
    (tmp_path / "gone.jsonl").write_text("")
    assert load_scenario(path).workloads[0].file == "gone.jsonl"


@pytest.mark.parametrize(
    "edit",
    [
        ('"alice", "bob"', '"alice", "alice"'),
        ('domains = ["other.test"]', 'domains = ["o.test"]\n[[remote]]\ndomains = ["O.test"]'),
        ("locals =", '"x/y" = "1"\nlocals ='),
        ("locals =", 'concurrencylocal = "ten"\nlocals ='),
    ],
)  # fmt: skip
def test_the_command_line_says_fatal_with_the_line_and_no_traceback(
    edit: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(edited(edit))
    assert main(["run", str(path)]) == 100
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"qmailsim: fatal: {re.escape(str(path))}:\d+: (host|remote)\[\d\]\.\S+: .*\n", err
    )


def test_lines_are_counted_as_toml_counts_them() -> None:
    text = edited(('name = "t"', 'name = "t"\ndescription = "one\u2028line\x85still"'))
    assert refused(text.replace("at = 1", "at = -1")).startswith("bad.toml:19: workload[0].at:")
