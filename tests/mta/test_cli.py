"""`qmailsim mta …` as a user types it: the README's session, and clear errors for mistakes."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mta.conftest import WAIT, wait_for

QMAILSIM = [sys.executable, "-m", "sim.cli"]


def qmailsim(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run the command line; every run has a timeout."""
    result = subprocess.run(
        [*QMAILSIM, *args], input=stdin, capture_output=True, timeout=WAIT * 2, check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def test_readme_session_init_start_send_qstat_stop(tmp_path: Path) -> None:
    home = tmp_path / "q"
    init = qmailsim("mta", "init", str(home), "--me", "example.test", "--user", "alice")
    assert init.returncode == 0, init.stderr
    assert "control/rcpthosts: example.test" in init.stdout
    start = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
    try:
        assert start.returncode == 0, start.stderr
        port = int(re.search(r"SMTP on 127\.0\.0\.1:(\d+)", start.stdout).group(1))
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.sendmail("bob@example.test", ["alice@example.test"], b"Subject: one\r\n\r\nx\r\n")
        inject = qmailsim(
            "mta", "inject", str(home), "-f", "bob@example.test", "alice@example.test",
            stdin=b"Subject: two\n\nbody\n",
        )  # fmt: skip
        assert inject.returncode == 0, inject.stderr
        status = qmailsim("mta", "status", str(home))
        assert re.search(r"\d+\s+tcpserver\s+qmaild", status.stdout), status.stdout
        new = home / "home" / "alice" / "Maildir" / "new"
        wait_for(lambda: len(list(new.iterdir())) == 2, "both messages in alice's Maildir")
        subjects = sorted(p.read_bytes().split(b"Subject: ")[1][:3] for p in new.iterdir())
        assert subjects == [b"one", b"two"]
        qstat = qmailsim("mta", "qstat", str(home))
        assert qstat.stdout.splitlines() == [
            "messages in queue: 0",
            "messages in queue but not yet preprocessed: 0",
        ]
    finally:
        stop = qmailsim("mta", "stop", str(home))
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert qmailsim("mta", "status", str(home)).returncode == 1


def test_inject_fills_in_the_envelope_and_header(tmp_path: Path) -> None:
    home = tmp_path / "q"
    qmailsim("mta", "init", str(home), "--me", "example.test")
    sent = qmailsim(
        "mta", "sendmail", str(home), "-t", "-f", "bob@example.test",
        stdin=b"To: alice@example.test\nBcc: secret@example.test\nSubject: s\n\nbody\n",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    (todo,) = (home / "queue" / "todo").iterdir()
    envelope = todo.read_bytes().split(b"\0")
    assert envelope[2:5] == [b"Fbob@example.test", b"Talice@example.test", b"Tsecret@example.test"]
    (mess,) = [p for p in (home / "queue" / "mess").rglob("*") if p.is_file()]
    text = mess.read_bytes()
    assert b"Bcc:" not in text and b"\nMessage-ID: <" in text and b"\nDate: " in text


def test_mistakes_get_one_fatal_line_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "stuff").write_text("mine")
    refused = qmailsim("mta", "init", str(tmp_path), "--me", "example.test")
    assert refused.returncode == 100
    assert refused.stderr == (
        f"qmailsim: fatal: {tmp_path} is not empty and not a qmail home; refusing to touch it\n"
    )
    not_home = qmailsim("mta", "qstat", str(tmp_path))
    assert not_home.returncode == 100 and "is not a qmail home" in not_home.stderr
    home = tmp_path / "q"
    qmailsim("mta", "init", str(home), "--me", "example.test")
    (home / "control" / "rcpthosts").unlink()
    open_relay = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
    assert open_relay.returncode == 100 and "--open-relay" in open_relay.stderr
    outside = qmailsim("mta", "start", str(home), "--smtp", "10.0.0.1:25")
    assert outside.returncode == 2 and "only IPv4 loopback addresses" in outside.stderr
    bad_name = qmailsim("mta", "init", str(tmp_path / "r"), "--me", "bad domain")
    assert bad_name.returncode == 100 and "bad domain" in bad_name.stderr
    for result in (refused, not_home, open_relay, outside, bad_name):
        assert "Traceback" not in result.stderr


def test_start_monolith_runs_the_comparison_mta(tmp_path: Path) -> None:
    home = tmp_path / "q"
    qmailsim("mta", "init", str(home), "--me", "example.test", "--user", "alice")
    start = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0", "--monolith")
    try:
        assert start.returncode == 0, start.stderr
        status = qmailsim("mta", "status", str(home))
        assert re.search(r"\d+\s+mta-monolith\s+root", status.stdout), status.stdout
    finally:
        qmailsim("mta", "stop", str(home))


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    read, write = os.pipe()
    os.close(read)  # `| head` that has already read all it wanted
    try:
        result = subprocess.run(
            [*QMAILSIM, "mta", "status", str(home)],
            stdout=write, stderr=subprocess.PIPE, timeout=WAIT * 2, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert result.stderr.decode() == ""
    assert result.returncode == 141  # as a shell reports a death by SIGPIPE


@pytest.mark.parametrize("taken", ["--smtp", "--pop3"])
def test_a_start_that_cannot_listen_leaves_nothing_running(tmp_path: Path, taken: str) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            ports = {"--smtp": "127.0.0.1:0", "--pop3": "127.0.0.1:0", taken: f"127.0.0.1:{port}"}
            start = qmailsim("mta", "start", str(home), *(x for kv in ports.items() for x in kv))
        assert start.returncode == 100
        assert "the MTA did not start listening" in start.stderr
        assert "Traceback" not in start.stderr
        status = qmailsim("mta", "status", str(home))
        assert f"not running in {home}" in status.stdout
        assert not (home / "run" / "smtp").exists() and not (home / "run" / "pop3").exists()
        again = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")  # nothing in the way
        assert again.returncode == 0, again.stderr
    finally:
        qmailsim("mta", "stop", str(home))  # whatever is left, even when the test fails


def _started(home: Path) -> int:
    """Start the MTA in `home` by the command line; returns its SMTP port."""
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    start = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
    assert start.returncode == 0, start.stderr
    return int(re.search(r"SMTP on 127\.0\.0\.1:(\d+)", start.stdout).group(1))


def _mta_pids(home: Path) -> list[int]:
    """Every live process of the MTA in `home`, by the pid file's session, supervisor or not."""
    from sim.mta import daemon

    paths = daemon.Paths(home.resolve())
    try:
        sid = int(paths.pidfile.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return []
    return daemon.session_pids(sid)


def test_the_mta_dies_with_its_supervisor_and_stop_ends_the_rest(tmp_path: Path) -> None:
    home = tmp_path / "q"
    port = _started(home)
    try:
        supervisor = int((home / "run" / "mta.pid").read_text().split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as held:
            held.recv(100)  # a qmail-smtpd in a session: it outlives its tcpserver
            os.kill(supervisor, signal.SIGKILL)
            # every long-running program goes with it; the qmail-smtpd in a session stays
            (smtpd,) = wait_for(lambda: [*_mta_pids(home)][:2] if len(_mta_pids(home)) == 1
                                else None, "the programs to go")  # fmt: skip
            status = qmailsim("mta", "status", str(home))
            assert "its supervisor died" in status.stdout and f"{smtpd:>8}" in status.stdout
            refused = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
            assert refused.returncode == 100 and "what is left of an MTA" in refused.stderr
            stop = qmailsim("mta", "stop", str(home))
            assert stop.stdout.strip().endswith(
                "ended what was left of it (its supervisor had died)"
            )
            assert _mta_pids(home) == []
        assert "not running" in qmailsim("mta", "status", str(home)).stdout
        assert qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0").returncode == 0
    finally:
        qmailsim("mta", "stop", str(home))
    assert _mta_pids(home) == []


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_hangup_stops_the_supervisor_cleanly(tmp_path: Path, signum: int) -> None:
    home = tmp_path / "q"
    _started(home)
    try:
        supervisor = int((home / "run" / "mta.pid").read_text().split()[0])
        os.kill(supervisor, signum)
        wait_for(lambda: not (home / "run" / "mta.pid").exists(), "the supervisor to clean up")
        wait_for(lambda: _mta_pids(home) == [] or None, "every program to stop")
    finally:
        qmailsim("mta", "stop", str(home))


def test_foreground_runs_until_the_terminal_goes_then_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    fg = subprocess.Popen(
        [*QMAILSIM, "mta", "start", str(home), "--smtp", "127.0.0.1:0", "--foreground"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "MTA running" in fg.stdout.readline()
        port = int((home / "run" / "smtp").read_text().split(":")[1])
        assert "in the foreground" in fg.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as smtp:
            smtp.noop()
        sid = int((home / "run" / "mta.pid").read_text().split()[1])
        fg.send_signal(signal.SIGHUP)  # the terminal closed
        out, err = fg.communicate(timeout=WAIT * 2)
        assert fg.returncode == 0, err
        assert out.strip().endswith("qmailsim: stopped")
        from sim.mta import daemon

        assert daemon.session_pids(sid) == []
    finally:
        if fg.poll() is None:
            fg.kill()
            fg.wait(timeout=WAIT)
        qmailsim("mta", "stop", str(home))


def test_a_failed_start_quotes_only_its_own_complaints(tmp_path: Path) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    (home / "log").mkdir(exist_ok=True)
    (home / "log" / "mta.log").write_text("tcpserver: fatal: an old complaint\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        start = qmailsim("mta", "start", str(home), "--smtp", f"127.0.0.1:{busy.getsockname()[1]}")
    qmailsim("mta", "stop", str(home))
    assert start.returncode == 100 and "did not start listening" in start.stderr
    assert "an old complaint" not in start.stderr and "tcpserver" in start.stderr


def test_init_takes_every_user_however_they_are_given(tmp_path: Path) -> None:
    home = tmp_path / "q"
    init = qmailsim("mta", "init", str(home), "--me", "a.test", "--user", "bob", "--user", "carol",
                    "dave")  # fmt: skip
    assert init.returncode == 0, init.stderr
    assigned = (home / "users" / "assign").read_text()
    assert all(f"={name}:" in assigned for name in ("bob", "carol", "dave")), assigned


def test_init_in_a_path_through_a_file_is_one_line_of_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    init = qmailsim("mta", "init", str(tmp_path / "file" / "q"), "--me", "a.test")
    assert init.returncode == 100 and "Traceback" not in init.stderr
    assert init.stderr.startswith("qmailsim: fatal: cannot lay out a qmail home in ")
    assert init.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--smtp", "[::1]:0"], 2, "only IPv4 loopback addresses"),
        (["--smtp", "10.0.0.1:25"], 2, "only IPv4 loopback addresses"),
        (["--smtp", "127.0.0.1:70000"], 2, "no such port: 70000"),
        (["--smtp", "127.0.0.1:2999", "--pop3", "127.0.0.1:2999"], 100, "cannot both listen"),
    ],
)
def test_start_refuses_addresses_it_cannot_serve(
    tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "a.test").returncode == 0
    start = qmailsim("mta", "start", str(home), *args)
    assert (start.returncode, "Traceback" in start.stderr) == (status, False)
    assert message in start.stderr
    assert not (home / "run" / "mta.pid").exists()


def test_a_stop_that_takes_a_while_says_what_it_waits_for(tmp_path: Path, monkeypatch) -> None:
    from sim.mta import daemon
    from sim.mta.home import init_home

    home = tmp_path / "q"
    list(init_home(home, "example.test", users=["alice"]))
    daemon.start(home, ("127.0.0.1", 0), {})
    heard: list[str] = []
    monkeypatch.setattr(daemon, "STOP_NOTICE", -1.0)  # "a while" is now: the supervisor
    assert daemon.stop(home, notice=heard.append)  # takes milliseconds to stop its programs
    assert heard == ["waiting for the deliveries in progress (at most 20 s)"]
    assert not daemon.stop(home, notice=heard.append) and len(heard) == 1


def test_leftovers_are_only_what_can_still_be_the_mtas(tmp_path: Path) -> None:
    from sim.mta import daemon

    home = tmp_path / "q"
    (home / "run").mkdir(parents=True)
    paths = daemon.Paths(home.resolve())
    gone = _dead_pid()
    # a session like the MTA's: its leader gone at once, a member working in the home
    orphan = subprocess.Popen(
        ["sh", "-c", "sleep 60 </dev/null >/dev/null 2>&1 & echo $!"],
        cwd=home, start_new_session=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    member = int(orphan.stdout.read().strip())
    orphan.wait(timeout=WAIT)
    sid = orphan.pid
    try:
        paths.pidfile.write_text(f"{gone} {sid} {daemon.boot_id()}\n")
        assert daemon.leftovers(paths) == [member]
        paths.pidfile.write_text(f"{gone} {sid} another-boot\n")
        assert daemon.leftovers(paths) == []  # a pid file from an earlier boot
        paths.pidfile.write_text(f"{gone} {os.getsid(0)} {daemon.boot_id()}\n")
        assert daemon.leftovers(paths) == []  # the caller's own session: never
        with subprocess.Popen(["sleep", "60"], cwd=home, start_new_session=True) as leader:
            paths.pidfile.write_text(f"{gone} {leader.pid} {daemon.boot_id()}\n")
            assert daemon.leftovers(paths) == []  # a live leader: a session reusing the id
            leader.kill()
    finally:
        os.kill(member, signal.SIGKILL)


def _dead_pid() -> int:
    """A pid that no process has now."""
    child = subprocess.Popen(["true"])
    child.wait(timeout=WAIT)
    return child.pid


def test_a_stale_pid_file_naming_another_process_is_not_the_mta(tmp_path: Path) -> None:
    from sim.mta import daemon

    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    (home / "run").mkdir(exist_ok=True)
    with subprocess.Popen(["sleep", "60"], start_new_session=True) as other:
        try:
            for stale in (f"{other.pid} {other.pid} another-boot 1",  # an earlier boot's
                          f"{other.pid} {other.pid} {daemon.boot_id()} 1"):  # fmt: skip
                (home / "run" / "mta.pid").write_text(stale + "\n")  # its pid, reused since
                assert "not running" in qmailsim("mta", "status", str(home)).stdout
                assert qmailsim("mta", "stop", str(home)).returncode == 1
                assert other.poll() is None  # never signalled
            start = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0")
            assert start.returncode == 0, start.stderr
            assert qmailsim("mta", "stop", str(home)).returncode == 0
            assert other.poll() is None
        finally:
            other.kill()
            qmailsim("mta", "stop", str(home))


@pytest.mark.parametrize("monolith", [False, True])
def test_a_stop_ends_idle_sessions_instead_of_waiting_on_them(tmp_path: Path, monolith) -> None:
    home = tmp_path / "q"
    assert qmailsim("mta", "init", str(home), "--me", "example.test").returncode == 0
    extra = ["--monolith"] if monolith else []
    start = qmailsim("mta", "start", str(home), "--smtp", "127.0.0.1:0", *extra)
    assert start.returncode == 0, start.stderr
    port = int(re.search(r"SMTP on 127\.0\.0\.1:(\d+)", start.stdout).group(1))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as idle:
            idle.recv(100)
            idle.sendall(b"HELO x\r\n")
            assert idle.recv(100).startswith(b"250 ")
            assert qmailsim("mta", "stop", str(home)).returncode == 0
            # the supervisor ended on its own (it removes its pid file): not killed by `stop`
            # after waiting for this session, or for the monolith's queue runner
            assert not (home / "run" / "mta.pid").exists()
            assert idle.recv(100) == b""  # the session was ended
    finally:
        qmailsim("mta", "stop", str(home))
