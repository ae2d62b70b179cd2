"""Crash safety of the live mini-MTA: SIGKILLs under load, restarts, drain, accounting.

`sim.crashtest` drives two real MTAs on loopback (A delivers to alice and bob, and to carol
at B through smtproutes), eight SMTP clients, and seeded kills of qmail-smtpd, qmail-queue,
qmail-local, qmail-remote, qmail-send and A's whole process group. The promises checked:
every message acknowledged with 250 is delivered at least once; every file that ever appears
in Maildir/new is a whole message; the queues end empty, apart from what killed qmail-queues
left (never an acknowledged one), which qmail's 36-hour rule then removes. Duplicates are
allowed and counted. The figures are printed (pytest -s). `pytest -m soak` runs a longer one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.crashtest import KILLABLE, Plan, messages_for, run_crash_test


def check(plan: Plan, tmp_path: Path) -> None:
    report = run_crash_test(tmp_path, plan)
    messages = messages_for(plan)
    print(f"\nlive crash test (seed {plan.seed}): {report.summary(messages)}")
    assert report.lost(messages) == []
    assert report.partial == [] and report.strangers == []
    assert report.left == []
    assert len(report.acknowledged) == plan.messages  # each one got through in the end
    assert sum(report.kills.values()) >= len(plan.kills) - 2, report.missed
    assert report.kills["group"] == plan.kills.count("group") and report.restarts >= 1
    assert (
        sum(report.copies.values())
        == sum(len(m.mailboxes()) for m in messages) + report.duplicates()
    )


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    check(Plan(messages=500, kills=(*KILLABLE, "qmail-queue", "qmail-local"), seed=1), tmp_path)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [2, 3])
def test_soak_many_kills_under_a_longer_load(tmp_path: Path, seed: int) -> None:
    kills = KILLABLE * 5
    check(Plan(messages=3000, clients=12, kills=kills, seed=seed, drain_timeout=300), tmp_path)
