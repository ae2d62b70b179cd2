"""The queue life cycle as ordered operations, in the exact order of qmail-queue and qmail-send."""

from __future__ import annotations

import pytest

from sim.qmail.clean import clean_ops, parse_clean_command
from sim.qmail.constants import SLEEP_SYSFAIL
from sim.qmail.lifecycle import (
    channel_done_ops,
    cleanup_ops,
    envelope_fail,
    failure_ops,
    mark_done_ops,
    messdone_ops,
    ops_after_inode,
    ossified_ops,
    pid_create,
    preprocess_ops,
    queues_after_preprocess,
    todo_open_ops,
)
from sim.qmail.queue import (
    IGNORE,
    PID_SEQS,
    Append,
    CleanRequest,
    Copy,
    Create,
    Fsync,
    FsyncDir,
    InjectBounce,
    Link,
    Log,
    OpenFifoWrite,
    Read,
    Stat,
    Truncate,
    Unlink,
    Write,
    exits,
    message_state,
    parse_queue_path,
    warns,
)

ID = 26902  # split 15, the reference's example
PID_FILE = "pid/4567.1000000000.1"
RECEIVED = b"Received: (qmail 4567 invoked by uid 100); 9 Sep 2001 01:46:40 -0000\n"
W53 = exits(53, cleanup=True)


def queue_ops(fsync_dirs: bool) -> list:
    return ops_after_inode(
        ID, PID_FILE, uid=100, pid=4567, received=RECEIVED, fsync_dirs=fsync_dirs
    )


def test_pid_file_is_created_exclusively_0644_else_exit_63():
    assert [pid_create(4567, 1000000000, s).path for s in PID_SEQS][::8] == [
        "pid/4567.1000000000.1",
        "pid/4567.1000000000.9",
    ]
    assert pid_create(4567, 1000000000, 1) == Create(PID_FILE, 0o644, fail=exits(63))


def test_qmail_queue_steps_in_qmail_1_03_order():
    assert queue_ops(fsync_dirs=False) == [
        Link(PID_FILE, "mess/15/26902", fail=exits(64)),  # step 3 -> S2
        Unlink(PID_FILE, fail=exits(63)),
        Write("mess/15/26902", RECEIVED, fail=W53),  # step 4
        Copy(0, "mess/15/26902", "message", fail=W53, read_fail=exits(54, cleanup=True)),
        Fsync("mess/15/26902", fail=W53),
        Create("intd/26902", 0o644, fail=exits(65)),  # step 5 -> S3
        Write("intd/26902", b"u100\0p4567\0", fail=W53),
        Copy(1, "intd/26902", "envelope", fail=W53, read_fail=exits(54, cleanup=True)),
        Fsync("intd/26902", fail=W53),
        Link("intd/26902", "todo/26902", fail=exits(66)),  # step 6 -> S4
        OpenFifoWrite("lock/trigger", b"\0", fail=IGNORE),  # step 7
    ]


def test_fsync_dirs_adds_three_directory_fsyncs_and_nothing_else():
    with_dirs = queue_ops(fsync_dirs=True)
    added = [op for op in with_dirs if isinstance(op, FsyncDir)]
    assert added == [
        FsyncDir("mess/15", fail=W53),
        FsyncDir("intd", fail=W53),
        FsyncDir("todo", fail=exits(66)),  # todo exists: no cleanup
    ]
    assert [op for op in with_dirs if not isinstance(op, FsyncDir)] == queue_ops(False)


def test_each_directory_is_fsynced_after_its_link_and_before_success():
    ops = queue_ops(fsync_dirs=True)
    where = {op: i for i, op in enumerate(ops)}
    assert where[Link(PID_FILE, "mess/15/26902", fail=exits(64))] < where[added(ops, "mess/15")]
    assert where[Fsync("intd/26902", fail=W53)] < where[added(ops, "intd")]
    assert where[added(ops, "todo")] == len(ops) - 2  # just before the trigger


def added(ops: list, path: str) -> FsyncDir:
    return next(op for op in ops if isinstance(op, FsyncDir) and op.path == path)


@pytest.mark.parametrize(("code", "cleanup"), [(11, False), (91, False), (54, True)])
def test_only_a_truncated_envelope_cleans_up(code, cleanup):
    assert envelope_fail(code) == exits(code, cleanup=cleanup)


@pytest.mark.parametrize(
    ("done_upto", "expected"),
    [
        (1, []),  # only the link: the pid name is still there, nothing to clean
        (2, [Truncate("mess/15/26902"), Unlink("mess/15/26902")]),
        (
            6,
            [
                Truncate("intd/26902"),
                Unlink("intd/26902"),
                Truncate("mess/15/26902"),
                Unlink("mess/15/26902"),
            ],
        ),
    ],
)
def test_cleanup_removes_intd_then_mess_if_made(done_upto, expected):
    assert cleanup_ops(ID, queue_ops(False)[:done_upto]) == expected


def test_preprocessing_steps_in_qmail_send_order():
    routed = [("remote", "x@b"), ("local", "joe@a"), ("remote", "y@c")]
    assert todo_open_ops(ID) == [
        Read("todo/26902", fail=warns("warning: unable to open todo/26902")),
        Stat("mess/15/26902", exists=True, fail=warns("warning: unable to stat mess/15/26902")),
    ]
    assert preprocess_ops(ID, "joe@a", routed, fsync_dirs=False) == [
        Unlink("local/15/26902", True, warns("warning: unable to unlink local/15/26902")),
        Unlink("remote/15/26902", True, warns("warning: unable to unlink remote/15/26902")),
        Unlink("info/15/26902", True, warns("warning: unable to unlink info/15/26902")),
        Create("info/15/26902", 0o600, fail=warns("warning: unable to create info/15/26902")),
        Log("new msg 26902"),
        Write(
            "info/15/26902", b"Fjoe@a\0", fail=warns("warning: trouble writing to info/15/26902")
        ),
        Create("remote/15/26902", 0o600, fail=warns("warning: unable to create remote/15/26902")),
        Create("local/15/26902", 0o600, fail=warns("warning: unable to create local/15/26902")),
        Fsync("info/15/26902", fail=warns("warning: trouble fsyncing info/15/26902")),
        Write(
            "local/15/26902", b"Tjoe@a\0", fail=warns("warning: trouble writing to local/15/26902")
        ),
        Fsync("local/15/26902", fail=warns("warning: trouble fsyncing local/15/26902")),
        Write(
            "remote/15/26902",
            b"Tx@b\0Ty@c\0",
            fail=warns("warning: trouble writing to remote/15/26902"),
        ),
        Fsync("remote/15/26902", fail=warns("warning: trouble fsyncing remote/15/26902")),
        CleanRequest(
            b"todo/26902\0", fail=warns("warning: qmail-clean unable to clean up todo/26902")
        ),
    ]
    assert queues_after_preprocess(routed) == ("local", "remote")


def test_preprocessing_fsyncs_the_new_names_directories_before_the_todo_goes():
    routed = [("remote", "x@b"), ("local", "joe@a")]
    ops = preprocess_ops(ID, "joe@a", routed)
    assert [op for op in ops if isinstance(op, FsyncDir)] == [
        FsyncDir(d, fail=warns(f"warning: trouble fsyncing {d}"))
        for d in ("info/15", "local/15", "remote/15")
    ]
    assert [op for op in ops if not isinstance(op, FsyncDir)] == preprocess_ops(
        ID, "joe@a", routed, fsync_dirs=False
    )
    kinds = [type(op).__name__ for op in ops]
    assert kinds[-4:] == ["FsyncDir", "FsyncDir", "FsyncDir", "CleanRequest"]
    local_only = preprocess_ops(ID, "joe@a", [("local", "joe@a")])
    assert [op.path for op in local_only if isinstance(op, FsyncDir)] == ["info/15", "local/15"]


def test_a_message_without_recipients_goes_straight_to_done():
    ops = preprocess_ops(ID, "", [])
    assert not any(isinstance(op, Create) and "local" in op.path for op in ops)
    assert queues_after_preprocess([]) == ("done",)


def test_success_marks_the_record_with_one_unsynced_byte():
    warning = "warning: trouble marking remote/15/26902; message will be delivered twice!"
    assert mark_done_ops(ID, "remote", 17) == [
        Write("remote/15/26902", b"D", offset=17, fail=warns(warning))
    ]


def test_failure_appends_to_bounce_before_marking():
    ops = failure_ops(ID, "local", 0, b"<joe@a>:\nSorry.\n\n")
    alert = "alert: unable to append to bounce message; HELP! sleeping..."
    assert ops[0] == Append(
        "bounce/26902", b"<joe@a>:\nSorry.\n\n", 0o600, fail=warns(alert, retry_after=10)
    )
    assert ops[1:] == mark_done_ops(ID, "local", 0)
    assert not any(isinstance(op, Fsync) for op in ops)


def test_finished_channel_unlinks_its_file_then_looks_at_the_other():
    assert channel_done_ops(ID, "local") == [
        Unlink(
            "local/15/26902",
            fail=warns(
                "warning: unable to unlink local/15/26902; will try again later", SLEEP_SYSFAIL
            ),
        ),
        Stat("remote/15/26902", exists=False),
    ]


def test_message_elimination_in_qmail_send_order():
    ops = messdone_ops(ID)
    assert ops[:4] == [
        Stat("local/15/26902", exists=False),
        Stat("remote/15/26902", exists=False),
        Stat("todo/26902", exists=False),
        Stat("info/15/26902", exists=True),
    ]
    assert [type(op).__name__ for op in ops[4:]] == [
        "InjectBounce",
        "Unlink",
        "Log",
        "Unlink",
        "CleanRequest",
    ]
    assert ops[4] == InjectBounce(
        ID, fail=warns("warning: trouble injecting bounce message, will try later", 123)
    )
    assert (ops[5].path, ops[5].missing_ok) == ("bounce/26902", True)
    assert ops[6] == Log("end msg 26902")
    assert ops[7].path == "info/15/26902"
    assert ops[8].command == b"foop/26902\0"
    assert all(op.fail.retry_after == 123 for op in ops[4:8] if not isinstance(op, Log))


def test_ossified_message_is_removed_only_without_todo_and_info():
    assert ossified_ops(ID) == [
        Stat("todo/26902", exists=False),
        Stat("info/15/26902", exists=False),
        CleanRequest(
            b"foop/26902\0", fail=warns("warning: qmail-clean unable to clean up foop/26902")
        ),
    ]


# ---- crash safety: every cut of the life cycle leaves a state of INTERNALS ----------------------


def apply(files: set[str], op: object) -> None:
    """The name-level effect of an operation (what a crash can leave behind)."""
    if isinstance(op, Create | Append):
        files.add(op.path)
    elif isinstance(op, Link):
        files.add(op.dst)
    elif isinstance(op, Unlink):
        files.discard(op.path)
    elif isinstance(op, CleanRequest):
        command = parse_clean_command(op.command)
        for unlink in clean_ops(command):
            files.discard(unlink.path)


def state(files: set[str]) -> str | None:
    kinds = {parse_queue_path(p)[0] for p in files if not p.startswith(("pid/", "lock/"))}
    return message_state(kinds)


def whole_life() -> list:
    routed = [("local", "joe@a"), ("remote", "x@b")]
    return [
        pid_create(4567, 1000000000, 1),
        *queue_ops(fsync_dirs=True),
        *todo_open_ops(ID),
        *preprocess_ops(ID, "joe@a", routed),
        *mark_done_ops(ID, "local", 0),
        *channel_done_ops(ID, "local"),
        *failure_ops(ID, "remote", 0, b"<x@b>:\nno.\n\n"),
        *channel_done_ops(ID, "remote"),
        *messdone_ops(ID),
    ]


def test_every_cut_of_the_whole_life_is_a_state():
    files: set[str] = set()
    seen = []
    for op in whole_life():
        apply(files, op)
        assert state(files) is not None, (op, files)
        if not seen or seen[-1] != state(files):
            seen.append(state(files))
    assert seen == ["S1", "S2", "S3", "S4", "S5", "S2", "S1"]
    assert files == set()


QUEUE_LIFE = [pid_create(4567, 1000000000, 1), *queue_ops(fsync_dirs=True)]


@pytest.mark.parametrize("failing", range(len(QUEUE_LIFE)))
def test_qmail_queue_failing_at_any_step_leaves_a_state(failing):
    done, op = QUEUE_LIFE[:failing], QUEUE_LIFE[failing]
    files: set[str] = set()
    for step in [*done, *(cleanup_ops(ID, done) if op.fail.cleanup else [])]:
        apply(files, step)
        assert state(files) is not None
    if op.fail.cleanup:
        assert state(files) == "S1"
