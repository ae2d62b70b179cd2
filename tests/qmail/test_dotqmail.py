"""Which .qmail file applies, how its lines parse, and what a program's exit code means."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.dotqmail import (
    NAME_MAX,
    Candidate,
    Deliver,
    Finished,
    Forward,
    Found,
    Instruction,
    LocalDelivery,
    dry_run,
    load_dotqmail,
    no_file_outcome,
    open_failure,
    owner_files,
    parse_dotqmail,
    plan_deliveries,
    program_outcome,
    safe_ext,
    stat_failure,
)
from sim.qmail.dotqmail import candidate_files as candidates
from sim.qmail.dotqmail import judge_file as judge
from sim.qmail.errors import BadInput
from sim.qmail.local import SUCCESS, Outcome, Refused, forward_outcome, report


def names(dash: str, ext: str) -> list[str]:
    return [c.name for c in candidates(dash, ext)]


# --- which file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dash", "ext", "expected"),
    [
        (
            "-",
            "a-b-c",
            [".qmail-a-b-c", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"],
        ),
        ("-", "a-b-", [".qmail-a-b-", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"]),
        ("-", "a-", [".qmail-a-", ".qmail-a-default", ".qmail-default"]),
        ("-", "a", [".qmail-a", ".qmail-default"]),
        ("-", "", [".qmail-", ".qmail-default"]),
        ("", "", [".qmail", ".qmaildefault"]),
        ("-", "sos", [".qmail-sos", ".qmail-default"]),
    ],
)
def test_candidates_are_probed_longest_default_first(dash, ext, expected):
    assert names(dash, ext) == expected


@pytest.mark.parametrize(
    ("dash", "ext", "expected"),
    [
        ("-", "a-b-c", [None, "c", "b-c", "a-b-c"]),
        ("-", "Joe.Smith-X", [None, "X", "Joe.Smith-X"]),
        ("-", "list-default", ["default", "default", "list-default"]),
        ("-", "Foo-DEFAULT", ["DEFAULT", "DEFAULT", "Foo-DEFAULT"]),
        ("", "", [None, ""]),
    ],
)
def test_default_is_the_part_of_ext_the_word_default_stands_for(dash, ext, expected):
    assert [c.default_part for c in candidates(dash, ext)] == expected


@pytest.mark.parametrize(
    ("ext", "safe"),
    [("Joe.Smith", "joe:smith"), ("..", "::"), ("ÀB", "Àb"), ("a-B.c", "a-b:c")],
)
def test_safeext_lowercases_ascii_and_turns_dots_into_colons(ext, safe):
    assert safe_ext(ext) == safe


def test_dots_in_ext_never_make_a_dot_dot_name():
    assert names("-", "../../etc/passwd-x") == [".qmail-default"]
    assert all(".." not in n for n in names("-", "..-..-.."))


@pytest.mark.parametrize(
    ("ext", "expected"),
    [
        ("x/y", [".qmail-default"]),  # qmail would probe .qmail-x/y inside a .qmail-x directory
        ("x/y-z", [".qmail-default"]),
        ("a-x/y", [".qmail-a-default", ".qmail-default"]),
        ("a\0b", [".qmail-default"]),  # cannot come from the queue; never probed
    ],
)
def test_a_name_with_a_slash_or_nul_counts_as_absent(ext, expected):
    assert names("-", ext) == expected


def test_a_ten_thousand_character_extension_probes_only_names_that_fit():
    ext = "x" * 10_000
    assert candidates("-", ext) == [Candidate(".qmail-default", ext)]
    dashed = "-".join(["ab"] * 5_000)
    found = names("-", dashed)
    assert found[-1] == ".qmail-default"
    assert all(len(n) <= NAME_MAX for n in found)


@settings(max_examples=200, deadline=None)
@given(dash=st.sampled_from(["", "-", "/", "-x"]) | st.text(max_size=5), ext=st.text())
def test_candidates_stay_in_the_home_directory(dash, ext):
    for c in candidates(dash, ext):
        assert c.name.startswith(".qmail")
        assert "/" not in c.name and "\0" not in c.name
        assert "." not in c.name[len(".qmail") + len(dash) :]
        assert len(c.name) <= NAME_MAX
        assert c.default_part is None or ext.endswith(c.default_part)


def test_owner_files_use_the_same_safe_extension():
    assert owner_files("-", "List.X") == (".qmail-list:x-owner", ".qmail-list:x-owner-default")
    assert owner_files("", "") == (".qmail-owner", ".qmail-owner-default")
    assert owner_files("-", "a/b") == (None, None)


def test_no_file_is_permanent_for_an_extension_and_the_default_for_the_user():
    assert no_file_outcome("-") == Outcome(100, "Sorry, no mailbox here by that name. (#5.1.1)\n")
    assert no_file_outcome("") is None


@pytest.mark.parametrize(
    ("err", "text"),
    [
        (errno.EACCES, "Unable to open .qmail-x: access denied. (#4.3.0)\n"),
        (errno.EPERM, "Unable to open .qmail-x: permission denied. (#4.3.0)\n"),
        (errno.EIO, "Unable to open .qmail-x: input/output error. (#4.3.0)\n"),
        (errno.ENOENT, None),
        (errno.ENOTDIR, None),
        (errno.ELOOP, None),
        (errno.ENAMETOOLONG, None),
    ],
)
def test_open_errors_either_fail_temporarily_or_mean_absent(err, text):
    result = open_failure(".qmail-x", err)
    assert (result and result.text) == text
    assert result is None or result.code == 111


@pytest.mark.parametrize(("err", "fails"), [(errno.EIO, True), (errno.EACCES, False)])
def test_owner_stat_fails_only_on_temporary_errors(err, fails):
    assert (stat_failure(".qmail-x-owner", err) is not None) == fails


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0o100644, "found"),
        (0o100600, "found"),
        (0o100664, "found"),  # group-writable is allowed since conf-patrn 002
        (0o100744, "forward-only"),
        (0o100646, "Uh-oh: .qmail file is writable. (#4.7.0)\n"),
        (0o040755, None),
        (0o020644, None),
    ],
)
def test_the_file_mode_decides(mode, expected):
    candidate = Candidate(".qmail-x", None)
    result = judge(candidate, mode)
    if expected == "found":
        assert result == Found(candidate, False)
    elif expected == "forward-only":
        assert result == Found(candidate, True)
    elif expected is None:
        assert result is None
    else:
        assert result == Outcome(111, expected)


# --- lines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "kind", "arg"),
    [
        (b"# a comment", "comment", "# a comment"),
        (b"|preline procmail", "program", "preline procmail"),
        (b"| exit 99", "program", " exit 99"),
        (b"./Maildir/", "maildir", "./Maildir/"),
        (b"/var/spool/mail/fred/", "maildir", "/var/spool/mail/fred/"),
        (b"./Mailbox", "mbox", "./Mailbox"),
        (b"/var/spool/mail/fred", "mbox", "/var/spool/mail/fred"),
        (b"&joe@example.com", "forward", "joe@example.com"),
        (b"joe@example.com", "forward", "joe@example.com"),
        (b"john", "forward", "john"),
        (b"+list", "forwardonly", "+list"),
        (b"+other", "comment", "+other"),
        (b"./Mailbox \t ", "mbox", "./Mailbox"),
        (b"./Maildir/\t", "maildir", "./Maildir/"),
        (b"./Mailbox\r", "mbox", "./Mailbox\r"),
        (b"./Mail\0box/", "maildir", "./Mail"),
        (b"caf\xe9@example.com", "forward", "café@example.com"),
    ],
)
def test_each_line_kind(line, kind, arg):
    assert parse_dotqmail(line + b"\n") == [Instruction(kind, arg)]


def test_a_file_is_one_instruction_per_line_in_order():
    text = b"./Mailbox\n\n# note\n  \n|exit 0\nfred"
    assert parse_dotqmail(text) == [
        Instruction("mbox", "./Mailbox"),
        Instruction("blank"),
        Instruction("comment", "# note"),
        Instruction("blank"),
        Instruction("program", "exit 0"),
        Instruction("forward", "fred"),
    ]


@pytest.mark.parametrize("text", [b"\n./Mailbox\n", b"  \n./Mailbox\n", b"\t\n", b"\0x\n", b""])
def test_a_blank_first_line_is_a_temporary_failure(text):
    with pytest.raises(Refused) as refused:
        parse_dotqmail(text)
    assert refused.value.outcome == Outcome(
        111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n"
    )
    assert str(refused.value) == "Uh-oh: first line of .qmail file is blank. (#4.2.1)"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parsing_arbitrary_bytes_never_raises_anything_but_bad_input(text):
    try:
        lines = parse_dotqmail(text)
    except BadInput:
        return
    assert lines and lines[0].kind != "blank"


def test_an_empty_file_means_the_default_delivery_and_ignores_the_x_bit():
    assert load_dotqmail(b"", "./Maildir/", executable=True) == load_dotqmail(None, "./Maildir/")
    loaded = load_dotqmail(b"", "./Mailbox\n|preline x", executable=True)
    assert loaded.instructions == (
        Instruction("mbox", "./Mailbox"),
        Instruction("program", "preline x"),
    )
    assert loaded.forward_only is False


def test_a_file_keeps_its_x_bit():
    loaded = load_dotqmail(b"joe\n", "./Mailbox", executable=True)
    assert loaded.instructions == (Instruction("forward", "joe"),)
    assert loaded.forward_only is True


def test_an_empty_default_delivery_is_a_blank_first_line():
    with pytest.raises(Refused):
        load_dotqmail(None, "")


def test_an_unknown_instruction_kind_is_a_bug():
    with pytest.raises(ValueError, match="unknown"):
        Instruction("file", "x")


# --- programs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, Outcome(0)),
        (99, Outcome(0, stop=True)),
        (100, Outcome(100)),
        *((c, Outcome(100)) for c in (64, 65, 70, 76, 77, 78, 112)),
        (111, Outcome(111)),
        (1, Outcome(111)),
        (2, Outcome(111)),
        (101, Outcome(111)),
        (255, Outcome(111)),
        (None, Outcome(111, "Aack, child crashed. (#4.3.0)\n")),
    ],
)
def test_program_exit_codes(code, expected):
    assert program_outcome(code) == expected


# --- the run ------------------------------------------------------------------------------


def plan(text: bytes, forward_only: bool = False) -> list:
    return plan_deliveries(parse_dotqmail(text), forward_only)


def test_forwards_are_collected_and_sent_last_in_one_injection():
    assert plan(b"joe@x.org\n./Maildir/\n&ann@y.org\n|prog\n./Mailbox\n") == [
        Deliver("maildir", "./Maildir/"),
        Deliver("program", "prog"),
        Deliver("mbox", "./Mailbox"),
        Forward(("joe@x.org", "ann@y.org")),
        Finished(Outcome(0, "did 2+2+1\n")),
    ]


def test_comments_blank_lines_and_other_plus_lines_do_nothing():
    assert plan(b"# hi\n\n+foo\n./Mailbox\n") == [
        Deliver("mbox", "./Mailbox"),
        Finished(Outcome(0, "did 1+0+0\n")),
    ]


@pytest.mark.parametrize(
    ("text", "forward_only", "steps", "failure"),
    [
        (b"./Mailbox\n", True, [], "file"),
        (b"./Maildir/\n", True, [], "file"),
        (b"|prog\n", True, [], "prog"),
        (b"joe\n|prog\n", True, [], "prog"),
        (b"./Mailbox\n+list\njoe\n|prog\n", False, [Deliver("mbox", "./Mailbox")], "prog"),
    ],
)
def test_forward_only_mode_fails_on_file_and_program_lines(text, forward_only, steps, failure):
    expected = f"Uh-oh: .qmail has {failure} delivery but has x bit set. (#4.7.0)\n"
    assert plan(text, forward_only) == [*steps, Finished(Outcome(111, expected))]


def test_forward_only_mode_still_forwards():
    assert plan(b"+list\njoe\nann\n") == [
        Forward(("joe", "ann")),
        Finished(Outcome(0, "did 0+2+0\n")),
    ]


def test_exit_99_skips_the_following_lines_but_keeps_earlier_forwards():
    run = LocalDelivery(parse_dotqmail(b"joe\n|filter\nann\n./Mailbox\n"))
    assert run.next_step() == Deliver("program", "filter")
    run.feed(program_outcome(99))
    assert run.next_step() == Forward(("joe",))
    run.feed(forward_outcome(""), qp=77)
    assert run.next_step() == Finished(Outcome(0, "did 0+1+1\nqp 77\n"))


def test_the_first_failure_ends_the_run_without_forwarding():
    run = LocalDelivery(parse_dotqmail(b"joe\n./Mailbox\n|prog\n"))
    assert run.next_step() == Deliver("mbox", "./Mailbox")
    failure = report("mbox_write", file="./Mailbox", err="out of disk space")
    run.feed(failure)
    assert run.next_step() == Finished(failure)
    assert run.next_step() == Finished(failure)


def test_a_program_exit_100_is_permanent_with_the_programs_own_text():
    run = LocalDelivery(parse_dotqmail(b"|bouncesaying go away\n./Mailbox\n"))
    run.next_step()
    run.feed(program_outcome(100))
    assert run.next_step() == Finished(Outcome(100, ""))


def test_a_failed_forward_is_the_runs_outcome():
    run = LocalDelivery(parse_dotqmail(b"joe\n"))
    assert run.next_step() == Forward(("joe",))
    run.feed(forward_outcome("Dqq permanent problem (#5.3.0)"))
    assert run.next_step().outcome.code == 100


def test_the_pending_step_repeats_until_fed_and_feeding_nothing_is_a_bug():
    run = LocalDelivery([Instruction("mbox", "./Mailbox")])
    assert run.next_step() is run.next_step()
    run.feed(SUCCESS)
    assert run.next_step() == Finished(Outcome(0, "did 1+0+0\n"))
    with pytest.raises(RuntimeError):
        run.feed(SUCCESS)


def test_dry_run_prints_each_instruction_then_the_counts():
    instructions = parse_dotqmail(b"./Maildir/\n&joe@x.org\n|preline procmail\n./Mailbox\n")
    assert dry_run(instructions) == Outcome(
        0,
        "maildir ./Maildir/\nforward joe@x.org\nprogram preline procmail\nmbox ./Mailbox\n"
        "did 2+1+1\n",
    )


def test_dry_run_still_refuses_files_in_forward_only_mode():
    assert dry_run(parse_dotqmail(b"joe\n./Mailbox\n"), forward_only=True) == Outcome(
        111, "forward joe\nUh-oh: .qmail has file delivery but has x bit set. (#4.7.0)\n"
    )
