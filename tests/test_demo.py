"""`qmailsim demo`, headless: the model lesson's summary, and the live walk-through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.demo import demo


def test_model_demo_prints_the_lesson_and_keeps_its_trace(tmp_path: Path, capsys) -> None:
    assert demo(tmp_path, live=False, tui=False) == 0
    out = capsys.readouterr().out
    assert "messages    injected 10 = delivered 9 + bounced 1 + still queued 0" in out
    assert "1 deferred" in out
    trace = (tmp_path / "default-trace.jsonl").read_text().splitlines()
    assert '"kind":"trace"' in trace[0].replace(" ", "")
    assert len(trace) > 1000
    kept = f"The trace is kept: open it with `qmailsim tui {tmp_path / 'default-trace.jsonl'}`."
    assert kept in out and "demo --keep DIR" not in out


def test_model_demo_without_keep_says_how_to_keep_the_trace(capsys) -> None:
    assert demo(None, live=False, tui=False) == 0
    assert "`qmailsim demo --keep DIR` and open it" in capsys.readouterr().out


def test_live_demo_delivers_one_message_and_tells_its_story(tmp_path: Path, capsys) -> None:
    assert demo(tmp_path / "q", live=True, tui=False) == 0
    out = capsys.readouterr().out
    assert "forks qmail-queue" in out and "replies 250 ok" in out
    assert "5. delivered: home/alice/Maildir/new/" in out
    assert f"kept in {tmp_path / 'q'}: qmailsim tui {tmp_path / 'q'}" in out
    (delivered,) = (tmp_path / "q" / "home" / "alice" / "Maildir" / "new").iterdir()
    assert delivered.read_bytes().startswith(b"Return-Path: <bob@example.test>\n")


pytestmark = pytest.mark.timeout(120)


def test_keeping_the_demo_in_a_file_is_one_line_of_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    result = subprocess.run(
        [sys.executable, "-m", "sim.cli", "demo", "--keep", str(tmp_path / "file"), "--no-tui"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 100 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"qmailsim: fatal: cannot keep the demo in {tmp_path / 'file'}: "
        "it exists and is not a directory\n"
    )
