"""Maildir delivery as operations, unique names, and the reader's view of a maildir."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.local import Outcome, header_lines
from sim.qmail.maildir import (
    Alarm,
    Chdir,
    Close,
    CreateExclusive,
    Entry,
    Fsync,
    FsyncDir,
    Link,
    Sleep,
    Stat,
    Unique,
    Unlink,
    WriteAll,
    cur_name,
    drive,
    is_stale_tmp,
    maildir_child,
    maildir_message,
    maildir_ops,
    maildir_outcome,
    ordered_flags,
    parse_entry,
    sanitize_hostname,
)

U = Unique(t=1000000000, usec=123456, pid=4242, seq=7, hostname="mail.example")
NAME = "1000000000.M123456P4242Q7.mail.example"


class FakeMaildir:
    """A maildir in memory; `fail` maps an operation type to the errno it fails with."""

    def __init__(self, fail: dict[type, int] | None = None, existing: set[str] = frozenset()):
        self.fail = dict(fail or {})
        self.files: dict[str, bytes] = {path: b"" for path in existing}
        self.timeout_at: type | None = None

    def __call__(self, op):
        if type(op) is self.timeout_at:
            raise TimeoutError
        if type(op) in self.fail:
            raise OSError(self.fail[type(op)], "injected")
        if isinstance(op, Stat | Unlink) and op.path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file")
        if isinstance(op, CreateExclusive):
            if op.path in self.files:
                raise FileExistsError(errno.EEXIST, "exists")
            self.files[op.path] = b""
        elif isinstance(op, WriteAll):
            self.files[op.path] += op.data
        elif isinstance(op, Link):
            self.files[op.dst] = self.files[op.src]
        elif isinstance(op, Unlink):
            del self.files[op.path]
        return None


def run(fs: FakeMaildir, data: bytes = b"hi\n", unique: Unique = U):
    return drive(maildir_child("./Maildir/", data, unique), fs)


def test_a_delivery_writes_tmp_fsyncs_links_to_new_and_unlinks_tmp():
    tmp, new = f"tmp/{NAME}", f"new/{NAME}"
    assert maildir_ops("./Maildir/", b"hi\n", U, fsync_dirs=False) == [
        Chdir("./Maildir/"),
        Stat(tmp),
        Alarm(86400),
        CreateExclusive(tmp, 0o600),
        WriteAll(tmp, b"hi\n"),
        Fsync(tmp),
        Close(tmp),
        Link(tmp, new),
        Unlink(tmp),
    ]
    fs = FakeMaildir()
    assert run(fs)[1] == 0
    assert fs.files == {new: b"hi\n"}


def test_the_project_fsyncs_new_after_the_link_and_before_the_tmp_unlink():
    tmp, new = f"tmp/{NAME}", f"new/{NAME}"
    ops = maildir_ops("./Maildir/", b"hi\n", U)
    assert ops[-3:] == [Link(tmp, new), FsyncDir("new"), Unlink(tmp)]
    assert [op for op in ops if op != FsyncDir("new")] == maildir_ops(
        "./Maildir/", b"hi\n", U, fsync_dirs=False
    )


def test_the_file_holds_return_path_delivered_to_and_the_message():
    lines = header_lines("fred", "heaven.af.mil", "joe@x.org", 0)
    assert maildir_message(lines, b"Subject: x\n\nFrom me\n") == (
        b"Return-Path: <joe@x.org>\nDelivered-To: fred@heaven.af.mil\nSubject: x\n\nFrom me\n"
    )


def test_an_existing_name_waits_two_seconds_and_tries_a_later_name():
    fs = FakeMaildir(existing={f"tmp/{NAME}"})
    ops, code = run(fs)
    later = "1000000002.M123456P4242Q7.mail.example"
    assert ops[:4] == [Chdir("./Maildir/"), Stat(f"tmp/{NAME}"), Sleep(2), Stat(f"tmp/{later}")]
    assert code == 0
    assert f"new/{later}" in fs.files


def test_three_taken_names_give_up_temporarily():
    taken = {f"tmp/{U.name(k)}" for k in range(3)}
    ops, code = run(FakeMaildir(existing=taken))
    assert [type(op) for op in ops] == [Chdir, Stat, Sleep, Stat, Sleep, Stat]
    assert code == 1


def test_a_stat_error_other_than_enoent_also_retries():
    ops, code = run(FakeMaildir(fail={Stat: errno.EACCES}))
    assert [type(op) for op in ops] == [Chdir, Stat, Sleep, Stat, Sleep, Stat]
    assert code == 1


@pytest.mark.parametrize(("err", "code"), [(errno.ENOENT, 2), (errno.ENOTDIR, 2), (errno.EIO, 1)])
def test_chdir_failure_is_exit_2_unless_temporary(err, code):
    assert run(FakeMaildir(fail={Chdir: err}))[1] == code


def test_a_failed_create_exits_1_and_leaves_nothing():
    fs = FakeMaildir(fail={CreateExclusive: errno.EEXIST})
    ops, code = run(fs)
    assert code == 1
    assert not any(isinstance(op, Unlink) for op in ops)
    assert fs.files == {}


@pytest.mark.parametrize("failing", [WriteAll, Fsync, Close, Link])
def test_a_failure_after_the_create_unlinks_the_tmp_file(failing):
    fs = FakeMaildir(fail={failing: errno.ENOSPC})
    ops, code = run(fs)
    assert code == 1
    assert ops[-1] == Unlink(f"tmp/{NAME}")
    assert fs.files == {}


def test_an_unlink_failure_is_ignored():
    fs = FakeMaildir(fail={Unlink: errno.EIO})
    assert run(fs)[1] == 0


@pytest.mark.parametrize("stuck", [CreateExclusive, WriteAll, Fsync, Link])
def test_the_alarm_unlinks_the_tmp_file_and_exits_3(stuck):
    fs = FakeMaildir()
    fs.timeout_at = stuck
    ops, code = run(fs)
    assert code == 3
    assert ops[-1] == Unlink(f"tmp/{NAME}")
    assert not any(path.startswith("new/") for path in fs.files)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, Outcome(0)),
        (1, Outcome(111, "Temporary error on maildir delivery. (#4.3.0)\n")),
        (2, Outcome(111, "Unable to chdir to maildir. (#4.2.1)\n")),
        (3, Outcome(111, "Timeout on maildir delivery. (#4.3.0)\n")),
        (4, Outcome(111, "Unable to read message. (#4.3.0)\n")),
        (111, Outcome(111, "Temporary error on maildir delivery. (#4.3.0)\n")),
        (None, Outcome(111, "Aack, child crashed. (#4.3.0)\n")),
    ],
)
def test_child_exit_codes(code, expected):
    assert maildir_outcome(code) == expected


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "safe"),
    [("mail.example", "mail.example"), ("a/b:c", "a\\057b\\072c"), ("::", "\\072\\072")],
)
def test_hostname_is_sanitised_for_the_maildir_spec(host, safe):
    assert sanitize_hostname(host) == safe


def test_the_name_is_the_modern_unique_form():
    assert U.name() == NAME
    assert Unique(5, 0, 1, 0, "h:x").name(2) == "9.M0P1Q0.h\\072x"


@settings(max_examples=50, deadline=None)
@given(
    t=st.integers(0, 2**31),
    usecs=st.lists(st.integers(0, 999_999), min_size=1, max_size=300),
    pid=st.integers(1, 2**22),
    host=st.text(max_size=20),
)
def test_names_from_one_process_are_unique_within_one_second(t, usecs, pid, host):
    names = [Unique(t, usec, pid, seq, host).name() for seq, usec in enumerate(usecs)]
    assert len(set(names)) == len(names)
    assert all("/" not in n and ":" not in n and not n.startswith(".") for n in names)


# --- reader side --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subdir", "filename", "unique", "flags"),
    [
        ("new", NAME, NAME, ""),
        ("cur", f"{NAME}:2,", NAME, ""),
        ("cur", f"{NAME}:2,SRF", NAME, "FRS"),
        ("cur", f"{NAME}:2,TDPS", NAME, "DPST"),
        ("cur", f"{NAME}:1,xyz", NAME, ""),
        ("cur", "abc", "abc", ""),
    ],
)
def test_entries_and_their_flags(subdir, filename, unique, flags):
    entry = parse_entry(subdir, filename)
    assert entry == Entry(subdir, filename)
    assert (entry.unique, entry.flags, entry.path) == (unique, flags, f"{subdir}/{filename}")


@pytest.mark.parametrize("filename", [".", "..", ".hidden", ".qmail-lock"])
def test_names_starting_with_a_dot_are_skipped(filename):
    assert parse_entry("new", filename) is None


@pytest.mark.parametrize(("subdir", "filename"), [("tmp", "x"), ("new", ""), ("cur", "a/b")])
def test_bad_entries_are_bad_input(subdir, filename):
    with pytest.raises(BadInput):
        parse_entry(subdir, filename)


def test_readers_move_new_to_cur_with_an_info():
    assert cur_name(Entry("new", NAME)) == f"cur/{NAME}:2,"
    assert cur_name(Entry("cur", f"{NAME}:2,S"), "SR") == f"cur/{NAME}:2,RS"
    assert ordered_flags("SSRFT") == "FRST"


@pytest.mark.parametrize(
    ("age", "stale"), [(0, False), (129600, False), (129601, True), (10**6, True)]
)
def test_tmp_files_older_than_36_hours_are_stale(age, stale):
    assert is_stale_tmp(atime=1000, now=1000 + age) is stale
