"""The narrator keeps what a learner wants from a trace and words it."""

from __future__ import annotations

from sim.narrate import narrate, story

BASE = {"t": 1.0, "host": "example.test", "pid": 7, "ppid": 1, "uid": "qmailq"}


def event(**fields) -> dict:
    return {**BASE, "prog": "qmail-queue", **fields}


def test_forks_execs_and_queue_files_are_told() -> None:
    assert narrate(event(kind="fork", label="qmail-queue", result=8)) == (
        "qmail-queue[7] (qmailq) forks qmail-queue -> pid 8"
    )
    assert narrate(
        event(kind="exec", program="qmail-lspawn", argv=["./Maildir/"], err="ENOENT")
    ) == ("qmail-queue[7] (qmailq) execs qmail-lspawn ./Maildir/ FAILED (ENOENT)")
    assert narrate(event(kind="link", src="pid/7.1.1", dst="mess/3/26")) == (
        "qmail-queue[7] (qmailq) link pid/7.1.1 -> mess/3/26"
    )
    assert narrate(event(kind="open", path="lock/trigger", err="ENXIO")) == (
        "qmail-queue[7] (qmailq) pulls the trigger (no qmail-send listening)"
    )


def test_replies_keep_their_why_and_plumbing_is_dropped() -> None:
    reply = event(
        kind="smtp-reply", reply="250 ok\\r\\n", why="sender accepted", prog="qmail-smtpd"
    )
    assert narrate(reply) == "qmail-smtpd[7] (qmailq) replies 250 ok  -- sender accepted"
    assert narrate(event(kind="close", fd=3)) is None
    assert narrate(event(kind="open", path="control/me")) is None
    assert list(story([event(kind="dup2", old=3, new=0), reply])) == [narrate(reply)]


def test_locks_and_fetches_are_told() -> None:
    send = {**BASE, "uid": "qmails", "prog": "qmail-send"}
    assert narrate({**send, "kind": "lock", "fd": 7}) == (
        "qmail-send[7] (qmails) locks lock/sendmutex: one qmail-send per queue"
    )
    assert narrate({**send, "kind": "lock", "fd": 7, "err": "EAGAIN"}) == (
        "qmail-send[7] (qmails) finds fd 7 locked by another process (EAGAIN)"
    )
    fetch = {**BASE, "uid": "root", "prog": "model", "kind": "fetch", "count": 3, "why": "read"}
    assert narrate(fetch) == "model[7] (root) fetch: 3 messages  -- read"
