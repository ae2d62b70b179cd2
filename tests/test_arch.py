"""The architecture graph: qmail's programs, accounts, queue modes and channels, and traces."""

from __future__ import annotations

import pytest

from sim import arch, archtrace
from sim.arch import build_graph
from sim.archtrace import check_trace, check_uids, edge_for_event, resource_for_path
from sim.kernel import effects as fx
from sim.kernel import trace
from sim.qmail.constants import QMAIL_GIDS, QMAIL_UIDS
from sim.qmail.queue import QUEUE_LAYOUT

QMAIL_103 = ("tcpserver", "qmail-smtpd", "qmail-queue", "qmail-inject", "sendmail", "qmail-start",
             "qmail-send", "qmail-clean", "qmail-lspawn", "qmail-getpw", "qmail-local",
             "qmail-rspawn", "qmail-remote", "splogger", "qmail-popup", "checkpassword",
             "qmail-pop3d")  # fmt: skip


@pytest.fixture(scope="module")
def graph():
    return build_graph()


def edges(graph, src, dst, kind):
    return [d for u, v, d in graph.edges(data=True) if (u, v, d["kind"]) == (src, dst, kind)]


@pytest.mark.parametrize("program", QMAIL_103)
def test_every_qmail_program_is_a_node_with_its_facts(graph, program):
    node = graph.nodes[program]
    assert node["kind"] == "program" and node["program"] == program
    assert node["lifetime"] in ("long-running", "per connection", "per message", "per delivery")
    assert node["stage"] in arch.STAGES and node["started_by"] and node["description"]


@pytest.mark.parametrize(
    ("program", "user", "group"),
    [
        ("qmail-smtpd", "qmaild", "nofiles"),
        ("qmail-queue", "qmailq", "the caller's"),
        ("qmail-send", "qmails", "qmail"),
        ("qmail-clean", "qmailq", "qmail"),
        ("qmail-lspawn", "root", "qmail"),
        ("qmail-start", "root", "qmail"),
        ("qmail-rspawn", "qmailr", "qmail"),
        ("qmail-remote", "qmailr", "qmail"),
        ("qmail-getpw", "qmailp", "nofiles"),
        ("splogger", "qmaill", "nofiles"),
        ("qmail-local", "user", "user"),
        ("qmail-pop3d", "user", "user"),
        ("checkpassword", "root", "root"),
    ],
)
def test_accounts_and_groups_are_install_ids(graph, program, user, group):
    node = graph.nodes[program]
    assert (node["user"], node["group"]) == (user, group)
    assert node["uid"] == QMAIL_UIDS.get(user)
    assert node["gid"] == {**QMAIL_GIDS, "root": 0}.get(group)


def test_qmail_queue_is_the_only_setuid_program_and_the_registry_says_so(graph):
    setuid = {n: d["setuid_to"] for n, d in graph.nodes(data=True) if d.get("setuid")}
    assert setuid == {"qmail-queue": "qmailq"}
    assert graph.nodes["qmail-queue"]["binary_mode"] == 0o4711
    assert arch.REGISTRY["qmail-queue"][1] == "qmailq"  # where the fact comes from


@pytest.mark.parametrize(
    "entry", [e for e in QUEUE_LAYOUT if e.path.count("/") == 1 or "lock/" in e.path], ids=str
)
def test_queue_resources_carry_queue_layout_owner_and_mode(graph, entry):
    if entry.path == "queue/lock":
        assert entry.path not in graph  # only traversed, as the parent of lock files
        return
    node = graph.nodes[entry.path]
    assert (node["owner"], node["group"], node["mode"]) == (entry.owner, entry.group, entry.mode)
    assert node["parents"][0] == ("queue", "qmailq", "qmail", 0o750)


def test_split_subdirectories_are_folded_into_their_directory(graph):
    assert "queue/mess/0" not in graph and "queue/mess" in graph


def test_every_node_has_a_kind_so_no_edge_names_a_node_by_mistake():
    for variant in arch.VARIANTS:
        g = build_graph(variant)
        assert {d.get("kind") for _, d in g.nodes(data=True)} == {"program", "resource"}
        assert {d["kind"] for _, _, d in g.edges(data=True)} <= set(arch.EDGE_KINDS)


@pytest.mark.parametrize(
    ("src", "dst", "src_fd", "dst_fd"),
    [
        ("qmail-send", "qmail-lspawn", 1, 0),
        ("qmail-lspawn", "qmail-send", 1, 2),
        ("qmail-send", "qmail-rspawn", 3, 0),
        ("qmail-rspawn", "qmail-send", 1, 4),
        ("qmail-send", "qmail-clean", 5, 0),
        ("qmail-clean", "qmail-send", 1, 6),
        ("qmail-send", "splogger", 0, 0),
    ],
)
def test_qmail_send_pipes_have_qmail_starts_descriptors(graph, src, dst, src_fd, dst_fd):
    (pipe,) = edges(graph, src, dst, "pipe")
    assert (pipe["src_fd"], pipe["dst_fd"]) == (src_fd, dst_fd)
    assert pipe["flows"]


@pytest.mark.parametrize("injector", ["qmail-smtpd", "qmail-inject", "qmail-send", "qmail-local"])
def test_injectors_feed_qmail_queue_message_on_fd0_envelope_on_fd1(graph, injector):
    pipes = {d["dst_fd"]: d["flows"] for d in edges(graph, injector, "qmail-queue", "pipe")}
    assert pipes[0] == "the message" and pipes[1].startswith("the envelope")
    assert edges(graph, injector, "qmail-queue", "fork-exec")


@pytest.mark.parametrize(
    ("src", "dst", "kind"),
    [
        ("qmail-queue", "queue/mess", "link"),
        ("qmail-queue", "queue/todo", "link"),
        ("qmail-queue", "queue/lock/trigger", "write"),
        ("queue/lock/trigger", "qmail-send", "read"),
        ("qmail-clean", "queue/todo", "unlink"),
        ("qmail-local", "maildir", "link"),
        ("qmail-remote", "network", "net"),
        ("smtp-socket", "qmail-smtpd", "net"),
    ],
)
def test_the_big_picture_edges_exist(graph, src, dst, kind):
    assert edges(graph, src, dst, kind)


def test_setuid_transitions_are_named_on_the_fork_exec_edges(graph):
    (to_queue,) = edges(graph, "qmail-smtpd", "qmail-queue", "fork-exec")
    assert to_queue["detail"] == "fork, exec; the setuid bit makes it qmailq"
    (to_local,) = edges(graph, "qmail-lspawn", "qmail-local", "fork-exec")
    assert to_local["detail"] == "fork, setuid user, exec"
    (to_send,) = edges(graph, "qmail-start", "qmail-send", "fork-exec")
    assert to_send["detail"] == "setuid qmails, exec"  # no fork: qmail-start becomes it


def test_monolith_has_one_root_daemon_and_the_same_resources(graph):
    mono = build_graph("monolith")
    resources = {n for n, d in mono.nodes(data=True) if d["kind"] == "resource"}
    assert resources == {n for n, d in graph.nodes(data=True) if d["kind"] == "resource"}
    assert mono.nodes["mta"]["user"] == "root"
    assert edges(mono, "mta", "maildir", "write") and edges(mono, "smtp-socket", "mta", "net")
    assert edges(mono, "mta", "forward-program", "fork-exec")[0]["detail"].startswith(
        "fork as root"
    )


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="monolith"):
        build_graph("postfix")


def test_cross_check_with_qmail_start_wiring(graph):
    from sim.programs import qmail_start as start

    for name, user, *_ in start.CHILDREN:
        assert graph.nodes[name]["user"] == user
    send_fds = {
        d["src_fd"] for _, _, d in graph.out_edges("qmail-send", data=True) if d["kind"] == "pipe"
    }
    send_fds |= {
        d["dst_fd"] for _, _, d in graph.in_edges("qmail-send", data=True) if d["kind"] == "pipe"
    }
    assert {fd for fd, _, _ in start.SEND_FDS} <= send_fds


# ---- traces ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "node"),
    [
        ("/var/qmail/queue/mess/15/457", "queue/mess"),
        ("mess/15/457", "queue/mess"),  # relative to the queue, as qmail-queue opens it
        ("todo/457", "queue/todo"),
        ("lock/trigger", "queue/lock/trigger"),
        ("/var/qmail/queue/lock/tcpto", "queue/lock/tcpto"),
        ("/var/qmail/control/me", "control"),
        ("/home/alice/Maildir/tmp/1.2.host", "maildir"),
        ("/home/alice/.qmail-list", "dotqmail"),
        ("/home/alice", "home"),
        ("/var/qmail/alias/.qmail-postmaster", "alias"),
        ("/var/qmail/users/cdb", "users"),
        ("/etc/passwd", "passwd"),
        ("etc/tcp.smtp", "tcprules"),
        ("/srv/elsewhere", None),
    ],
)
def test_resource_for_path(path, node):
    assert resource_for_path(path) == node


def event(pid, ppid, uid, prog, effect, result=None, error=None):
    """An event exactly as RealKernel writes it: call_fields, encode, and read back."""
    fields = {"t": 0.0, "host": "example.test", "pid": pid, "ppid": ppid, "uid": uid, "prog": prog}
    fields.update(trace.call_fields(effect, result, error))
    return next(trace.read_events([trace.encode(fields)]))


@pytest.mark.parametrize(
    ("effect", "result", "edge"),
    [
        (fx.Exec("qmail-queue"), None, ("qmail-smtpd", "qmail-queue", "fork-exec")),
        (fx.Open("control/me"), 3, ("control", "qmail-smtpd", "read")),
        (fx.Open("pid/9.1.1", "w", create=True), 3, ("qmail-smtpd", "queue/pid", "write")),
        (fx.Link("intd/457", "todo/457"), None, ("qmail-smtpd", "queue/todo", "link")),
        (fx.Unlink("mess/20/457"), None, ("qmail-smtpd", "queue/mess", "unlink")),
        (fx.Connect("192.0.2.1", 25), 4, ("qmail-smtpd", "network", "net")),
        (fx.Open("/srv/x"), 3, ("path:/srv/x", "qmail-smtpd", "read")),
        (fx.Note("smtp-reply", {"reply": b"250 ok\r\n"}), None, None),
        (fx.Write(1, b"250 ok\r\n"), 8, None),  # a descriptor: only the trace's history knows
        (fx.FsyncDir("todo"), None, None),  # flushes a link already seen
        (fx.Stat(fd=3), None, None),
    ],
)
def test_edge_for_event(effect, result, edge):
    assert edge_for_event(event(7, 1, "qmaild", "qmail-smtpd", effect, result)) == edge


def test_a_failed_call_exercises_no_edge():
    failed = event(7, 1, "qmaild", "qmail-smtpd", fx.Open("queue/mess/1/2", "w"), None,
                   PermissionError(13, "denied"))  # fmt: skip
    assert failed["err"] == "EACCES" and edge_for_event(failed) is None


def smtp_session() -> list[dict]:
    """One SMTP message through tcpserver, qmail-smtpd and qmail-queue, as a live trace shows.

    The forked children's first events come before their parent's fork event, as they do
    when many processes write to one collector pipe.
    """
    tcp, smtpd, queue = 10, 11, 12
    return [
        trace.header("example.test", 0.0, "live"),
        event(tcp, 1, "root", "tcpserver", fx.Listen("127.0.0.1", 0), (3, 2525)),
        event(tcp, 1, "root", "tcpserver", fx.Setuid("qmaild")),
        event(tcp, 1, "qmaild", "tcpserver", fx.Accept(3), (4, ("127.0.0.1", 40000))),
        event(smtpd, tcp, "qmaild", "tcpserver", fx.Close(3)),
        event(smtpd, tcp, "qmaild", "tcpserver", fx.Dup2(4, 0), 0),
        event(smtpd, tcp, "qmaild", "tcpserver", fx.Dup2(4, 1), 1),
        event(tcp, 1, "qmaild", "tcpserver", fx.Fork(lambda: None, "qmail-smtpd"), smtpd),
        event(tcp, 1, "qmaild", "tcpserver", fx.Close(4)),
        event(smtpd, tcp, "qmaild", "tcpserver", fx.Close(4)),
        event(smtpd, tcp, "qmaild", "tcpserver", fx.Exec("qmail-smtpd")),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Chdir("/var/qmail")),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Open("control/rcpthosts"), 5),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Write(1, b"220 example.test ESMTP\r\n")),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Read(0), b"DATA\r\n"),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Pipe(), (6, 7)),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Pipe(), (8, 9)),
        event(queue, smtpd, "qmaild", "qmail-smtpd", fx.Dup2(6, 0), 0),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Fork(lambda: None, "qmail-queue"), queue),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Close(6)),
        event(queue, smtpd, "qmaild", "qmail-smtpd", fx.Dup2(8, 1), 1),
        event(queue, smtpd, "qmaild", "qmail-smtpd", fx.Exec("qmail-queue")),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Write(7, b"Subject: hi\n\nhello\n")),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Write(9, b"Fa@b\0Tc@d\0\0")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Chdir("queue")),  # relative: /var/...
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Open("pid/12.0.1", "w", create=True), 10),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Link("pid/12.0.1", "mess/20/457")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Unlink("pid/12.0.1")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Read(0), b"Subject: hi\n\nhello\n"),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Write(10, b"Subject: hi\n\nhello\n")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Fsync(10)),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Open("intd/457", "w", create=True), 11),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Read(1), b"Fa@b\0Tc@d\0\0"),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Link("intd/457", "todo/457")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.FsyncDir("todo")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Open("lock/trigger", "w"), 12),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Write(12, b"\0")),
        event(queue, smtpd, "qmailq", "qmail-queue", fx.Exit(0)),
        event(smtpd, tcp, "qmaild", "qmail-smtpd", fx.Write(1, b"250 ok 1 qp 12\r\n")),
    ]  # fmt: skip


def test_a_clean_smtp_session_uses_only_edges_of_the_graph(graph):
    assert check_trace(graph, smtp_session()) == []
    assert check_uids(graph, smtp_session()) == []


def test_descriptors_are_followed_across_fork_dup2_and_exec():
    seen = archtrace.interactions(smtp_session())
    assert ("qmail-smtpd", "qmail-queue", "pipe") in seen  # fds 7, 9 -> the child's 0 and 1
    assert ("smtp-socket", "qmail-smtpd", "net") in seen  # the accepted socket on fd 0/1
    assert ("smtp-socket", "tcpserver", "net") in seen
    assert ("qmail-queue", "queue/mess", "write") in seen  # fd 10: the file opened in pid/
    assert ("qmail-queue", "queue/todo", "link") in seen  # paths resolved against the cwd
    assert not [edge for edge in seen if edge[0].startswith("path:")]


def test_interactions_missing_from_the_graph_are_reported(graph):
    smtpd = ("qmaild", "qmail-smtpd")
    rogue = [
        event(11, 10, *smtpd, fx.Chdir("/var/qmail/queue")),
        event(11, 10, *smtpd, fx.Open("mess/20/457", "w"), 13),
        event(11, 10, *smtpd, fx.Exec("qmail-local")),
    ]
    assert check_trace(graph, smtp_session() + rogue) == [
        "qmail-smtpd -[write]-> queue/mess",
        "qmail-smtpd -[fork-exec]-> qmail-local",
    ]


def test_programs_running_under_the_wrong_account_are_reported(graph):
    events = [
        event(20, 1, "alice", "qmail-local", fx.Open("Maildir/tmp/x", "w", create=True), 3),
        event(21, 1, "alias", "qmail-local", fx.Open(".qmail-postmaster"), 3),
        event(22, 1, "root", "qmail-clean", fx.Unlink("todo/457")),
        event(23, 1, "qmails", "qmail-local", fx.Open("Maildir/tmp/y", "w", create=True), 3),
    ]
    assert check_uids(graph, events) == [
        "qmail-clean ran as root; the graph says ['qmailq']",
        "qmail-local ran as qmails; the graph says ['qmailq', 'user']",
    ]
