"""qmail-qread's and qmail-qstat's words."""

from __future__ import annotations

from sim.qmail.qread import QueuedMessage, qread_lines, qread_report, qstat_lines

BIRTH = 812090813  # 26 Sep 1995 04:46:53 GMT


def test_qread_lists_message_then_each_recipient_with_done_marks() -> None:
    message = QueuedMessage(
        id=457,
        birth=BIRTH,
        size=1024,
        sender="bob@example.test",
        bouncing=True,
        recipients=[("local", True, "alice@example.test"), ("remote", False, "x@other.test")],
    )
    assert qread_lines(message) == [
        "26 Sep 1995 04:46:53 GMT  #457  1024  <bob@example.test>  bouncing",
        "  done\tlocal\talice@example.test",
        "\tremote\tx@other.test",
    ]


def test_report_is_in_queue_id_order_and_shows_next_retry() -> None:
    late = QueuedMessage(9, BIRTH, 1, "", False, [("remote", False, "x@y")], BIRTH + 400)
    early = QueuedMessage(3, None, 2, None, False, [])
    lines = qread_report([late, early])
    assert lines[0].startswith("??? (not preprocessed)  #3  2  <???>")
    assert lines[1] == "26 Sep 1995 04:46:53 GMT  #9  1  <> "
    assert lines[-1] == "\tnext retry 26 Sep 1995 04:53:33 GMT"


def test_qstat_words() -> None:
    assert qstat_lines(3, 1) == [
        "messages in queue: 3",
        "messages in queue but not yet preprocessed: 1",
    ]
