"""qmail-local's decisions: reports, arguments, header lines, loops, environment, the run."""

from __future__ import annotations

import errno

import pytest

from sim.qmail.errors import BadInput
from sim.qmail.local import (
    REPORTS,
    STICKY_WARNING,
    SUCCESS,
    HeaderLines,
    Invocation,
    Outcome,
    Refused,
    check_home,
    check_loop,
    delivered_to_line,
    error_str,
    forward_message,
    forward_outcome,
    forward_sender,
    from_line,
    header_lines,
    is_temporary_errno,
    needs_owner_check,
    parse_args,
    program_env,
    report,
    return_path_line,
    success_text,
)

T0 = 0  # Thu Jan 01 00:00:00 1970
T1 = 810621413  # Sat Sep 09 04:36:53 1995

# --- the report table, word for word ------------------------------------------------------

REFERENCE_REPORTS = [
    ("nomem", {}, 111, "Out of memory. (#4.3.0)"),
    ("rewind", {}, 111, "Unable to rewind message. (#4.3.0)"),
    ("child_crashed", {}, 111, "Aack, child crashed. (#4.3.0)"),
    ("fork", {"err": "out of memory"}, 111, "Unable to fork: out of memory. (#4.3.0)"),
    ("read", {"err": "input/output error"}, 111,
     "Unable to read message: input/output error. (#4.3.0)"),
    ("slow_lock", {}, 111, "File has been locked for 30 seconds straight. (#4.3.0)"),
    ("dotqmail_open", {"file": ".qmail-x", "err": "access denied"}, 111,
     "Unable to open .qmail-x: access denied. (#4.3.0)"),
    ("switch_home", {"home": "/home/fred", "err": "file does not exist"}, 111,
     "Unable to switch to /home/fred: file does not exist. (#4.3.0)"),
    ("stat_home", {"err": "access denied"}, 111,
     "Unable to stat home directory: access denied. (#4.3.0)"),
    ("home_writable", {}, 111, "Uh-oh: home directory is writable. (#4.7.0)"),
    ("home_sticky", {}, 111,
     "Home directory is sticky: user is editing his .qmail file. (#4.2.1)"),
    ("dotqmail_writable", {}, 111, "Uh-oh: .qmail file is writable. (#4.7.0)"),
    ("blank_first_line", {}, 111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)"),
    ("xbit_file", {}, 111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)"),
    ("xbit_prog", {}, 111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)"),
    ("mbox_open", {"file": "./Mailbox", "err": "access denied"}, 111,
     "Unable to open ./Mailbox: access denied. (#4.2.1)"),
    ("mbox_write", {"file": "./Mailbox", "err": "out of disk space"}, 111,
     "Unable to write ./Mailbox: out of disk space. (#4.3.0)"),
    ("maildir_chdir", {}, 111, "Unable to chdir to maildir. (#4.2.1)"),
    ("maildir_timeout", {}, 111, "Timeout on maildir delivery. (#4.3.0)"),
    ("maildir_read", {}, 111, "Unable to read message. (#4.3.0)"),
    ("maildir_temporary", {}, 111, "Temporary error on maildir delivery. (#4.3.0)"),
    ("run_sh", {"err": "file does not exist"}, 111,
     "Unable to run /bin/sh: file does not exist. (#4.3.0)"),
    ("forward_temporary", {"qq": "qq temporary problem (#4.3.0)"}, 111,
     "Unable to forward message: qq temporary problem (#4.3.0)."),
    ("forward_permanent", {"qq": "qq permanent problem (#5.3.0)"}, 100,
     "Unable to forward message: qq permanent problem (#5.3.0)."),
    ("no_mailbox", {}, 100, "Sorry, no mailbox here by that name. (#5.1.1)"),
    ("looping", {}, 100,
     "This message is looping: it already has my Delivered-To line. (#5.4.6)"),
    ("usage", {}, 100, "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext"
     " domain sender aliasempty"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "fields", "code", "text"), REFERENCE_REPORTS)
def test_every_report_is_qmails_text_with_a_newline(key, fields, code, text):
    assert report(key, **fields) == Outcome(code, text + "\n")
    assert report(key, **fields).output == (text + "\n").encode()


def test_the_table_holds_exactly_the_reference_reports():
    assert set(REPORTS) == {key for key, *_ in REFERENCE_REPORTS}
    assert STICKY_WARNING == "Warning: home directory is sticky."


def test_a_field_is_inserted_verbatim_even_with_braces():
    assert report("mbox_open", file="./{x}", err="e").text == "Unable to open ./{x}: e. (#4.2.1)\n"


def test_refused_is_bad_input_that_carries_the_outcome():
    refused = Refused(report("usage"))
    assert isinstance(refused, BadInput)
    assert refused.outcome.code == 100


@pytest.mark.parametrize(
    ("err", "words", "temporary"),
    [
        (errno.ENOENT, "file does not exist", False),
        (errno.EACCES, "access denied", False),
        (errno.EPERM, "permission denied", False),
        (errno.ENOSPC, "out of disk space", True),
        (errno.EDQUOT, "disk quota exceeded", True),
        (errno.EAGAIN, "temporary failure", True),
        (errno.EINTR, "interrupted system call", True),
        (errno.EISDIR, "is a directory", False),
        (errno.ENOTDIR, "not a directory", False),
        (errno.EEXIST, "file already exists", False),
        (None, "unknown error", False),
        (9999, "unknown error", False),
    ],
)
def test_errnos_in_qmails_words(err, words, temporary):
    assert error_str(err) == words
    assert is_temporary_errno(err) is temporary


# --- arguments ----------------------------------------------------------------------------

PIC_ARGS = ["fred", "/home/fred", "fred-sos", "-", "sos", "heaven.af.mil", "joe@heaven.af.mil"]


@pytest.mark.parametrize(
    ("argv", "doit"),
    [
        (["qmail-local", *PIC_ARGS, "./Mailbox"], True),
        (["qmail-local", "--", *PIC_ARGS, "./Mailbox"], True),
        (["qmail-local", "-n", *PIC_ARGS, "./Mailbox"], False),
        (["qmail-local", "-nN", *PIC_ARGS, "./Mailbox"], True),
        (["qmail-local", "-n", "--", *PIC_ARGS, "./Mailbox"], False),
    ],
)
def test_arguments_as_qmail_lspawn_passes_them(argv, doit):
    assert parse_args(argv) == Invocation(*PIC_ARGS, "./Mailbox", doit=doit)


@pytest.mark.parametrize(
    "argv",
    [
        ["qmail-local", *PIC_ARGS],
        ["qmail-local", *PIC_ARGS, "./Mailbox", "extra"],
        ["qmail-local", "-x", *PIC_ARGS, "./Mailbox"],
        ["qmail-local", "fred", "home/fred", *PIC_ARGS[2:], "./Mailbox"],
        ["qmail-local"],
    ],
)
def test_bad_arguments_are_a_permanent_usage_error(argv):
    with pytest.raises(Refused) as refused:
        parse_args(argv)
    assert refused.value.outcome.code == 100
    assert refused.value.outcome.text.startswith("qmail-local: usage: qmail-local [ -nN ] user")


# --- home directory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "doit", "text"),
    [
        (0o040755, True, None),
        (0o040775, True, None),  # group-writable is allowed (conf-patrn 002)
        (0o040757, True, "Uh-oh: home directory is writable. (#4.7.0)\n"),
        (0o041777, True, "Uh-oh: home directory is writable. (#4.7.0)\n"),
        (0o041755, True, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n"),
        (0o041755, False, None),
    ],
)
def test_home_directory_mode(mode, doit, text):
    result = check_home(mode, doit=doit)
    assert (result and result.text) == text
    assert result is None or result.code == 111


# --- header lines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "domain", "line"),
    [
        ("fred-sos", "heaven.af.mil", "Delivered-To: fred-sos@heaven.af.mil\n"),
        ("a\nb", "x\ny", "Delivered-To: a_b@x_y\n"),
        ("", "example.com", "Delivered-To: @example.com\n"),
    ],
)
def test_delivered_to_line(local, domain, line):
    assert delivered_to_line(local, domain) == line


@pytest.mark.parametrize(
    ("sender", "line"),
    [
        ("joe@heaven.af.mil", "Return-Path: <joe@heaven.af.mil>\n"),
        ("", "Return-Path: <>\n"),
        ("#@[]", "Return-Path: <#@[]>\n"),
        ("joe smith@x.org", 'Return-Path: <"joe smith"@x.org>\n'),
        ("a\nb@x.org", 'Return-Path: <"a_b"@x.org>\n'),
        ("no-at-sign", "Return-Path: <no-at-sign>\n"),
    ],
)
def test_return_path_line(sender, line):
    assert return_path_line(sender) == line


@pytest.mark.parametrize(
    ("sender", "t", "line"),
    [
        ("joe@heaven.af.mil", T0, "From joe@heaven.af.mil Thu Jan 01 00:00:00 1970\n"),
        ("", T0, "From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n"),
        ("a b\tc\nd@x", T1, "From a-b-c-d@x Sat Sep 09 04:36:53 1995\n"),
    ],
)
def test_from_line(sender, t, line):
    assert from_line(sender, t) == line


def test_header_lines_for_one_run():
    assert header_lines("fred", "heaven.af.mil", "joe@x.org", T0) == HeaderLines(
        "Delivered-To: fred@heaven.af.mil\n",
        "Return-Path: <joe@x.org>\n",
        "From joe@x.org Thu Jan 01 00:00:00 1970\n",
    )


DT = "Delivered-To: fred@heaven.af.mil\n"


@pytest.mark.parametrize(
    ("message", "looping"),
    [
        (b"Delivered-To: fred@heaven.af.mil\nSubject: x\n\nbody\n", True),
        (b"Received: x\nDelivered-To: fred@heaven.af.mil\n\nbody\n", True),
        (b"Subject: x\n\nDelivered-To: fred@heaven.af.mil\n", False),  # body is not looked at
        (b"Delivered-To: FRED@heaven.af.mil\n\n", False),  # exact match only
        (b"Delivered-To: fred@heaven.af.mil \n\n", False),
        (b"Delivered-To: fred@heaven.af.mil", False),  # partial last line
        (b"Delivered-To: fred@heaven.af.mil\r\n\r\n", False),
        (b"", False),
        (b"\nDelivered-To: fred@heaven.af.mil\n", False),
        (b"X: y\n" * 50 + DT.encode(), True),
    ],
)
def test_loop_detection_looks_only_at_the_header(message, looping):
    result = check_loop(message, DT)
    assert result == (report("looping") if looping else None)


# --- environment and forward sender -------------------------------------------------------


def test_program_environment_for_an_extension_address():
    inv = Invocation("fred", "/home/fred", "fred-sos-a-b-c", "-", "sos-a-b-c", "mx.heaven.af.mil",
                     "joe@x.org", "./Mailbox")  # fmt: skip
    lines = header_lines(inv.local, inv.domain, inv.sender, T0)
    assert program_env(inv, lines, "joe@x.org", "a-b-c") == {
        "HOST": "mx.heaven.af.mil",
        "HOST2": "mx.heaven.af",
        "HOST3": "mx.heaven",
        "HOST4": "mx",
        "HOME": "/home/fred",
        "USER": "fred",
        "LOCAL": "fred-sos-a-b-c",
        "RECIPIENT": "fred-sos-a-b-c@mx.heaven.af.mil",
        "SENDER": "joe@x.org",
        "NEWSENDER": "joe@x.org",
        "EXT": "sos-a-b-c",
        "EXT2": "a-b-c",
        "EXT3": "b-c",
        "EXT4": "c",
        "DEFAULT": "a-b-c",
        "DTLINE": "Delivered-To: fred-sos-a-b-c@mx.heaven.af.mil\n",
        "RPLINE": "Return-Path: <joe@x.org>\n",
        "UFLINE": "From joe@x.org Thu Jan 01 00:00:00 1970\n",
    }


@pytest.mark.parametrize(
    ("ext", "domain", "exts", "hosts"),
    [
        ("", "localhost", ["", "", ""], ["localhost"] * 3),
        ("a", "x.org", ["", "", ""], ["x", "x", "x"]),
        ("a-b", "a.b.c.d.e", ["b", "", ""], ["a.b.c.d", "a.b.c", "a.b"]),
        ("a--b", "a.b", ["-b", "b", ""], ["a", "a", "a"]),
    ],
)
def test_ext_and_host_parts(ext, domain, exts, hosts):
    inv = Invocation("u", "/h", "u-" + ext, "-", ext, domain, "", "./Mailbox")
    env = program_env(inv, header_lines(inv.local, domain, "", T0), "", None)
    assert [env["EXT2"], env["EXT3"], env["EXT4"]] == exts
    assert [env["HOST2"], env["HOST3"], env["HOST4"]] == hosts
    assert "DEFAULT" not in env


@pytest.mark.parametrize(
    ("sender", "owner", "owner_default", "newsender"),
    [
        ("joe@x.org", False, False, "joe@x.org"),
        ("joe@x.org", True, False, "list-owner@lists.example"),
        ("joe@x.org", True, True, "list-owner-@lists.example-@[]"),
        ("joe@x.org", False, True, "joe@x.org"),  # -owner-default alone does nothing
        ("", True, True, ""),
        ("#@[]", True, True, "#@[]"),
    ],
)
def test_forward_sender_owner_rule(sender, owner, owner_default, newsender):
    assert forward_sender(sender, "list", "lists.example", owner, owner_default) == newsender
    assert needs_owner_check(sender) is (sender not in ("", "#@[]"))


def test_a_forward_carries_only_the_delivered_to_line():
    assert forward_message(DT, b"Subject: x\n\nhi\n") == DT.encode() + b"Subject: x\n\nhi\n"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("", SUCCESS),
        ("Dqq permanent problem (#5.3.0)",
         Outcome(100, "Unable to forward message: qq permanent problem (#5.3.0).\n")),
        ("Zqq temporary problem (#4.3.0)",
         Outcome(111, "Unable to forward message: qq temporary problem (#4.3.0).\n")),
    ],
)  # fmt: skip
def test_forward_result(status, expected):
    assert forward_outcome(status) == expected


@pytest.mark.parametrize(
    ("counts", "qp", "text"),
    [((1, 0, 0), 0, "did 1+0+0\n"), ((0, 2, 1), 4242, "did 0+2+1\nqp 4242\n")],
)
def test_success_text(counts, qp, text):
    assert success_text(*counts, qp=qp) == text
