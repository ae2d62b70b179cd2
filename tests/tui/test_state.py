"""tui.state: folding traces into processes, queue files, messages, log lines and edges."""

from __future__ import annotations

import pytest

from tests.tui.events import HOST, MSG, Story, delivery_story
from tui.state import TraceState, is_stop


def _by_prog(state: TraceState, prog: str):
    return next(p for p in state.processes.values() if p.prog == prog)


# -- a real trace from the live MTA -------------------------------------------------------


def test_live_qmail_queue_runs_as_qmailq_under_qmail_smtpd(live_trace):
    state = TraceState.fold(live_trace.events)
    queue, smtpd = _by_prog(state, "qmail-queue"), _by_prog(state, "qmail-smtpd")
    assert queue.uid == "qmailq"
    assert queue.ppid == smtpd.pid
    assert queue.state == "exit 0"  # qmail-smtpd's wait reaped it
    assert queue.programs == ["qmail-smtpd", "qmail-queue"]
    assert queue.accounts == ["qmaild", "qmailq"]  # the setuid bit of qmail-queue
    assert smtpd.uid == "qmaild"
    assert _by_prog(state, "tcpserver").accounts == ["root", "qmaild"]


def test_live_message_waits_in_todo_in_state_s4(live_trace):
    state = TraceState.fold(live_trace.events)
    [message] = state.messages.values()
    assert message.state == "S4"
    assert message.sender == "bob@example.test"
    assert message.recipients == ["alice@example.test"]
    assert sorted(f.dir for f in state.files_of(message.host, message.id)) == [
        "intd", "mess", "todo"
    ]  # fmt: skip
    assert (message.host, f"todo/{message.id}") in state.files
    assert [s for _, s, _ in message.history] == ["S2", "S3", "S4"]
    assert not state.files_of(message.host, None)  # the pid/ name is gone
    assert any(path.startswith("pid/") for _, path in state.gone)


def test_live_log_narrates_the_smtp_dialogue_and_the_queue(live_trace):
    state = TraceState.fold(live_trace.events)
    text = [line.text for line in state.log]
    assert any("replies 250 ok" in line and "qp" in line for line in text)
    assert any("link intd/" in line for line in text)
    assert state.step == len(state.log) == sum(1 for e in live_trace.events if is_stop(e))


def test_live_edges_follow_the_message_from_smtpd_to_todo(live_trace):
    state = TraceState.fold(live_trace.events)
    [(_, msg)] = state.messages
    assert ("tcpserver", "qmail-smtpd", "fork-exec") in state.edges
    assert ("qmail-smtpd", "qmail-queue", "fork-exec") in state.edges
    assert state.edges[("qmail-smtpd", "qmail-queue", "pipe")][1] == msg
    assert state.edges[("qmail-queue", "queue/todo", "link")][1] == msg
    assert state.edges[("qmail-queue", "queue/mess", "write")][1] == msg  # via the pid/ fd


# -- hand-written events ------------------------------------------------------------------


@pytest.fixture
def story() -> TraceState:
    return TraceState.fold(delivery_story())


def test_message_goes_s2_s3_s4_s5_s2_s1(story):
    message = story.messages[HOST, MSG]
    assert [s for _, s, _ in message.history] == ["S2", "S3", "S4", "S5", "S2", "S1"]
    assert message.state == "S1"
    assert not story.files


def test_note_gives_its_why_to_the_state_the_files_imply(story):
    history = story.messages[HOST, MSG].history
    assert history[0][1:] == ("S2", "mess/ holds the message")
    assert history[2][1:] == ("S4", "todo/ entry linked: the message is queued")


def test_forked_child_execs_and_changes_account(story):
    local = story.processes[HOST, 40]
    assert (local.ppid, local.prog, local.uid) == (22, "qmail-local", "alice")
    assert local.label == "qmail-lspawn"
    assert local.state == "exit 0"
    assert local.msg == MSG  # inherited from qmail-lspawn, which opened the message


@pytest.mark.parametrize(
    ("events", "state"),
    [
        ([("wait", {"result": [41, -9]})], "killed by signal 9"),
        ([("exit", {"status": 111})], "exit 111"),
        ([("crash", {"traceback": "..."})], "crashed"),
        ([], "running"),
    ],
)
def test_process_state_from_exit_wait_and_crash(events, state):
    s = Story()
    s(22, 1, "root", "qmail-lspawn", "fork", label="qmail-lspawn", result=41)
    for kind, fields in events:
        pid = 22 if kind == "wait" else 41
        s(pid, 1 if pid == 22 else 22, "root", "qmail-lspawn", kind, **fields)
    assert TraceState.fold(s.events).processes[HOST, 41].state == state


def test_child_seen_before_its_parents_fork_event():
    s = Story()
    s(21, 20, "qmailq", "qmail-start", "setuid", to_user="qmailq")
    s(20, 1, "root", "qmail-start", "fork", label="qmail-clean", result=21)
    state = TraceState.fold(s.events)
    assert state.processes[HOST, 21].label == "qmail-clean"
    assert state.processes[HOST, 21].uid == "qmailq"


def test_pipe_to_qmail_clean_and_its_unlinks_are_edges(story):
    assert ("qmail-send", "qmail-clean", "pipe") in story.edges
    assert ("qmail-clean", "queue/todo", "unlink") in story.edges
    assert ("qmail-lspawn", "qmail-local", "fork-exec") in story.edges
    assert story.edges[("qmail-local", "maildir", "link")][1] == MSG


def test_pipe_edge_appears_when_the_reader_reads_after_the_writer_closed():
    state = TraceState.fold(delivery_story())
    assert ("qmail-smtpd", "qmail-queue", "pipe") in state.edges


def test_failed_calls_change_nothing():
    s = Story()
    s(30, 29, "qmailq", "qmail-queue", "open", path="intd/457", create=True, err="EACCES")
    s(30, 29, "qmailq", "qmail-queue", "exec", program="qmail-send", err="ENOENT")
    state = TraceState.fold(s.events)
    assert not state.files
    assert state.processes[HOST, 30].prog == "qmail-queue"


def test_split_directory_is_not_a_message():
    s = Story()
    s(30, 29, "qmailq", "qmail-queue", "fsyncdir", path="mess/20")
    assert not TraceState.fold(s.events).messages


def test_wait_tells_qmail_smtpd_which_message_its_250_is_about(story):
    reply = next(line for line in story.log if "250 ok" in line.text)
    assert reply.msg == MSG


def test_edges_remember_the_step_they_were_used_in():
    state = TraceState()
    steps = []
    for event in delivery_story():
        state.apply(event)
        steps.append(state.step)
    used, _ = state.edges[("qmail-clean", "queue/mess", "unlink")]
    assert used == state.step  # the last event is narrated and ends the last step


def test_header_only_trace_is_empty():
    state = TraceState.fold(Story().events)
    assert (state.step, state.processes, state.t) == (0, {}, 0.0)
