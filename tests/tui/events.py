"""A hand-written trace: what qmail-send, qmail-clean, qmail-lspawn and qmail-local do with
message 457 after qmail-queue stored it, in the event schema of `sim.kernel.trace`.

Paths are relative to the queue (`mess/20/457`: 457 % 23 = 20), as qmail's programs use them.
`two_host_story` queues message 457 on two hosts at once, with the same pids on each.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

HOST = "example.test"
ALPHA, BETA = "alpha.test", "beta.test"
QUEUE = "/var/qmail/queue"
MSG = 457
SMTPD = ("qmaild", "qmail-smtpd")


class Story:
    """Events appended one by one, a millisecond apart, all on `host`."""

    def __init__(self, host: str = HOST) -> None:
        self.t = 1000.0
        self.host = host
        self.events: list[dict[str, Any]] = [
            {"v": 1, "t": self.t, "host": host, "kind": "trace", "source": "test"}
        ]

    def __call__(self, pid: int, ppid: int, uid: str, prog: str, kind: str, **fields: Any) -> None:
        self.t += 0.001
        event = {"t": round(self.t, 6), "host": self.host, "pid": pid, "ppid": ppid, "uid": uid}
        self.events.append({**event, "prog": prog, "kind": kind, **fields})


def queue_story(
    s: Story, client: tuple[str, str] = SMTPD, sender: str = "bob@example.test"
) -> None:
    """qmail-queue (pid 30, forked by `client` 29: qmail-smtpd) stores message 457: S2, S3, S4."""
    s(29, 28, *client, "pipe", result=[3, 5])
    s(29, 28, *client, "fork", label="qmail-queue", result=30)
    s(30, 29, *client, "dup2", old=3, new=0, result=0)
    s(30, 29, *client, "close", fd=5)
    s(29, 28, *client, "close", fd=3)
    s(29, 28, *client, "write", fd=5, n=6, data="hello\\n")
    s(29, 28, *client, "close", fd=5)
    s(30, 29, *client, "exec", program="qmail-queue", argv=[])
    q = ("qmailq", "qmail-queue")
    s(30, 29, *q, "chdir", path=QUEUE)
    s(30, 29, *q, "open", path="pid/30.1000.1", mode="w", create=True, result=3)
    s(30, 29, *q, "link", src="pid/30.1000.1", dst=f"mess/20/{MSG}")
    s(30, 29, *q, "unlink", path="pid/30.1000.1")
    s(30, 29, *q, "queue", state="S2", id=MSG, why="mess/ holds the message")
    s(30, 29, *q, "read", fd=0, n=6, data="hello\\n")
    s(30, 29, *q, "write", fd=3, n=6, data="hello\\n")
    s(30, 29, *q, "open", path=f"intd/{MSG}", mode="w", create=True, result=5)
    s(30, 29, *q, "link", src=f"intd/{MSG}", dst=f"todo/{MSG}")
    s(30, 29, *q, "queue", state="S4", id=MSG, sender=sender,
      recipients=["alice@example.test"], why="todo/ entry linked: the message is queued",
      msg=MSG)  # fmt: skip
    s(29, 28, *client, "wait", target=30, result=[30, 0])
    if client == SMTPD:
        s(29, 28, *SMTPD, "smtp-reply", reply="250 ok 1000 qp 30\\r\\n",
          why="queued by qmail-queue pid 30")  # fmt: skip


def send_story(s: Story) -> None:
    """qmail-send (20) preprocesses 457 (S5), qmail-lspawn (22) delivers it, the end (S1)."""
    send, clean, lspawn = (
        ("qmails", "qmail-send"),
        ("qmailq", "qmail-clean"),
        ("root", "qmail-lspawn"),
    )
    s(20, 1, "root", "qmail-start", "pipe", result=[5, 6])
    s(20, 1, "root", "qmail-start", "fork", label="qmail-clean", result=21)
    s(21, 20, "root", "qmail-start", "dup2", old=5, new=0, result=0)
    s(21, 20, "qmailq", "qmail-start", "setuid", to_user="qmailq")
    s(21, 20, "qmailq", "qmail-start", "exec", program="qmail-clean", argv=[])
    s(20, 1, "root", "qmail-start", "close", fd=5)
    s(20, 1, "qmails", "qmail-start", "exec", program="qmail-send", argv=[])
    s(20, 1, *send, "chdir", path=QUEUE)
    s(21, 20, *clean, "chdir", path=QUEUE)
    s(22, 20, *lspawn, "chdir", path=QUEUE + "/mess")
    s(20, 1, *send, "open", path=f"todo/{MSG}", mode="r", result=7)
    s(20, 1, *send, "route", recipient="alice@example.test", channel="local",
      why="example.test is in locals", msg=MSG)  # fmt: skip
    s(20, 1, *send, "open", path=f"info/20/{MSG}", mode="w", create=True, result=8)
    s(20, 1, *send, "open", path=f"local/20/{MSG}", mode="w", create=True, result=9)
    s(20, 1, *send, "write", fd=6, n=9, data=f"todo/{MSG}\\x00")
    s(21, 20, *clean, "read", fd=0, n=9, data=f"todo/{MSG}\\x00")
    s(21, 20, *clean, "unlink", path=f"intd/{MSG}")
    s(21, 20, *clean, "unlink", path=f"todo/{MSG}")
    s(20, 1, *send, "deliver", delivery=1, channel="local", recipient="alice@example.test",
      why="a local slot is free (delnum 0)", msg=MSG)  # fmt: skip
    s(22, 20, *lspawn, "open", path=f"20/{MSG}", mode="r", result=6)  # qmail-local's fd 0
    s(22, 20, *lspawn, "fork", label="qmail-lspawn", result=40)
    s(40, 22, "alice", "qmail-lspawn", "setuid", to_user="alice")
    s(40, 22, "alice", "qmail-lspawn", "exec", program="qmail-local", argv=["alice"])
    local = ("alice", "qmail-local")
    s(40, 22, *local, "open", path="/home/alice/Maildir/tmp/1000.40", mode="w", create=True,
      result=4)  # fmt: skip
    s(40, 22, *local, "link", src="/home/alice/Maildir/tmp/1000.40",
      dst="/home/alice/Maildir/new/1000.40")  # fmt: skip
    s(40, 22, *local, "unlink", path="/home/alice/Maildir/tmp/1000.40")
    s(40, 22, *local, "exit", status=0)
    s(22, 20, *lspawn, "wait", target=-1, result=[40, 0])
    s(22, 20, *lspawn, "fork", label="qmail-lspawn", result=41)
    s(22, 20, *lspawn, "wait", target=-1, result=[41, -9])
    s(20, 1, *send, "delivered", delivery=1, channel="local", recipient="alice@example.test",
      text="did 1+0+0/", why="", msg=MSG)  # fmt: skip
    s(20, 1, *send, "unlink", path=f"local/20/{MSG}")
    s(20, 1, *send, "unlink", path=f"info/20/{MSG}")
    s(21, 20, *clean, "unlink", path=f"mess/20/{MSG}")


def delivery_story() -> list[dict[str, Any]]:
    """The whole life of message 457 after SMTP: queued, preprocessed, delivered, gone."""
    s = Story()
    queue_story(s)
    send_story(s)
    return s.events


def two_host_story() -> list[dict[str, Any]]:
    """Message 457 queued on alpha by qmail-smtpd (29) for bob and on beta by qmail-inject
    (29) for carol, each through its own qmail-queue (30); the two hosts' events interleave,
    as the model writes them."""
    alpha, beta = Story(ALPHA), Story(BETA)
    queue_story(alpha)
    queue_story(beta, client=("carol", "qmail-inject"), sender="carol@beta.test")
    merged = alpha.events[:1]
    for pair in zip_longest(alpha.events[1:], beta.events[1:]):
        merged += [event for event in pair if event is not None]
    return merged
