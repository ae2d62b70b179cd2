"""What keeps a long run small: mail readers that fetch, and process rows kept in columns."""

from __future__ import annotations

import pytest

import sim
from sim.model.proctable import ProcessRows
from sim.qmail.errors import BadInput
from sim.run_cli import format_summary
from sim.scenario import parse_scenario

DAY = """\
[scenario]
name = "fetching"
duration = 40
seed = 3

[[host]]
name = "mail.example.test"
users = ["Alice", "bob"]
{fetch}

[host.control]
locals = ["example.test"]
rcpthosts = ["example.test"]

[[workload]]
kind = "poisson"
rate = 2
stop = 25
from = "carol@other.test"
to = ["alice@example.test", "bob@example.test"]
"""


def maildir(result: sim.run.Result, user: str) -> list[str]:
    fs = result.world.hosts["mail.example.test"].fs
    base = f"/var/qmail/home/{user}/Maildir"
    return fs.readdir(f"{base}/new") + fs.readdir(f"{base}/cur")


def test_without_fetch_every_delivered_message_stays_in_the_maildirs() -> None:
    result = sim.run(parse_scenario(DAY.format(fetch=""), "day"))
    delivered = result.summary["messages"]["delivered"]
    assert delivered > 20
    assert len(maildir(result, "alice")) == len(maildir(result, "bob")) == delivered
    assert result.summary["hosts"]["mail.example.test"]["fetched"] == 0


def test_fetch_empties_the_maildirs_on_its_period_and_counts_what_it_took() -> None:
    result = sim.run(parse_scenario(DAY.format(fetch="fetch = 10"), "day"))
    delivered = result.summary["messages"]["delivered"]
    fetches = [e for e in result.trace if e.get("kind") == "fetch"]
    assert [e["t"] for e in fetches] == [10, 20, 30]  # the last arrivals came before 25
    assert all(e["prog"] == "model" and e["count"] > 0 for e in fetches)
    taken = sum(e["count"] for e in fetches)
    assert taken == result.summary["hosts"]["mail.example.test"]["fetched"] == 2 * delivered
    assert maildir(result, "alice") == maildir(result, "bob") == []
    text = "\n".join(format_summary(result.summary))
    assert f"; {taken} fetched by the users" in text


def test_fetch_must_be_a_number_of_seconds() -> None:
    with pytest.raises(BadInput, match=r"host\[0\]\.fetch: must be a number >= 0"):
        parse_scenario(DAY.format(fetch="fetch = -1"), "day.toml")
    with pytest.raises(BadInput, match=r"host\[0\]\.fetch"):
        parse_scenario(DAY.format(fetch='fetch = "often"'), "day.toml")


def test_process_rows_come_back_as_they_went_in() -> None:
    rows = ProcessRows()
    given = [
        (0, (100, 1, "root", 0, "qmail-start", "exited", 0.0, 1.5, 0)),
        (1, (2**31 - 1, 100, "qmaild", 1001, "qmail-smtpd", "exited", 2.25, 3.0, -9)),
        (1, (102, 100, "alias", 7790, "qmail-local", "zombie", 3.0, None, None)),
    ]
    for boot, values in given:
        rows.append(boot, values)
    keys = ("pid", "ppid", "user", "uid", "prog", "state", "start", "end", "status")
    assert list(rows.rows()) == [{"boot": b, **dict(zip(keys, v, strict=True))} for b, v in given]
    assert len(rows) == 3 and rows.count("user") == {"root": 1, "qmaild": 1, "alias": 1}
    assert rows.count("state") == {"exited": 2, "zombie": 1}


def test_a_long_run_keeps_every_process_row() -> None:
    """Retired rows plus live ones are every process that ran, per account."""
    result = sim.run(parse_scenario(DAY.format(fetch="fetch = 10"), "day"), until=200)
    host = result.world.hosts["mail.example.test"]
    assert len(host.retired) > 100  # most processes were retired into columns
    rows = host.ps()
    assert len({row["pid"] for row in rows}) == len(rows)
    assert sum(host.accounts().values()) == len(rows)
    users = {row["user"] for row in rows}
    assert {"qmaild", "qmailq", "qmails", "qmailr", "qmaill", "alice", "bob"} <= users


def test_a_second_qmail_send_finds_the_mutex_locked_and_leaves() -> None:
    """qmail-send locks lock/sendmutex: a second one on the same queue says so, exits 111."""
    from sim.model.host import PATH, ROOT
    from sim.model.world import World

    world = World(parse_scenario(DAY.format(fetch=""), "day"), duration=40)
    host = world.hosts["mail.example.test"]
    world.env.run(until=5)
    env = {"PATH": PATH, "QMAILHOME": ROOT}
    second = host.kernel.spawn(
        "qmail-start", ["./Maildir/", "splogger", "qmail"], env, "root", ROOT
    )
    world.run()
    sends = [p for p in host.kernel.procs.values() if p.prog == "qmail-send"]
    assert [p.status for p in sends] == [None, 111]  # the first runs on, the second left
    assert sends[1].ppid == second or sends[1].pid == second
    log = host.send_log().decode()
    assert log.count("alert: cannot start: qmail-send is already running") == 1
    accepted = sum(o.accepted for o in world.clients.outcomes)
    assert accepted > 20 and log.count(" end msg ") == accepted  # the first delivered them all


def test_a_run_can_go_on_after_its_summary() -> None:
    """A summary part way keeps what it said (its tables too) while the run and its log go
    on; the summary at the end counts everything."""
    from sim.model.summary import result_of
    from sim.model.world import World

    world = World(parse_scenario(DAY.format(fetch=""), "day"), duration=40)
    world.duration = 10
    world.run()
    first, first_tables = result_of(world)
    early = first_tables()
    held = world.hosts["mail.example.test"].all_logs()  # a copy: the file may go on growing
    world.duration = 40
    world.run()
    assert world.hosts["mail.example.test"].all_logs().startswith(held)
    second, second_tables = result_of(world)
    later = first_tables()  # the run went on; the first summary's records did not
    assert (later["messages"], later["deliveries"]) == (early["messages"], early["deliveries"])
    assert len(second_tables()["deliveries"]) > len(early["deliveries"]) > 0
    assert 0 < first["messages"]["injected"] < second["messages"]["injected"]
    assert second["messages"]["queued"] == 0


def test_process_rows_take_many_names_and_refuse_a_bad_row_whole() -> None:
    rows = ProcessRows()
    for n in range(300):  # more names than a byte can number
        rows.append(0, (n, 1, f"user{n}", n, f"prog{n}", "exited", 0.0, 1.0, 0))
    rows.append(0, (300, 1, "root", 0, "qmail-send", "zombie", 0.0, 2.0, 0))
    with pytest.raises(ValueError):
        rows.append(0, (301, 1, "root", 0, "x", "exited", "noon", 2.0, 0))
    assert len(rows) == 301 and {len(c) for c in rows.table.columns.values()} == {301}
    last = list(rows.rows())[-1]
    assert (last["pid"], last["user"], last["state"]) == (300, "root", "zombie")


def test_a_long_log_is_read_as_written_and_rotated_and_still_counted_whole(monkeypatch) -> None:
    """The ledger reads qmail-send's log as it grows; past LOG_KEEP the host keeps only the
    last lines, and the summary and tables are those of the whole log."""
    from sim.model import host as host_module

    scenario = parse_scenario(DAY.format(fetch="fetch = 10"), "day")
    whole = sim.run(scenario, until=60, keep_trace=False)
    monkeypatch.setattr(host_module, "LOG_KEEP", 4096)
    rotated = sim.run(scenario, until=60, keep_trace=False)
    full = whole.world.hosts["mail.example.test"].send_log()
    kept = rotated.world.hosts["mail.example.test"].send_log()
    assert len(full) > 4 * 4096 and 0 < len(kept) <= 4096
    assert full.endswith(kept) and full[-len(kept) - 1 :].startswith(b"\n")  # whole lines
    assert whole.summary["messages"]["injected"] > 40
    del whole.summary["run"], rotated.summary["run"]  # wall-clock figures
    assert rotated.summary == whole.summary
    assert rotated.tables() == whole.tables()
