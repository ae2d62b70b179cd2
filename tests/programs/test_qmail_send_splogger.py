"""splogger, qmail-send's logger: stamps, folding, the unprintable, and the log file."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.kernel.real import RealKernel
from sim.programs.registry import resolve
from sim.programs.splogger import Folder, stamp
from sim.qmail.constants import SPLOGGER_FOLD

T = 1700000000.25
S = b"1700000000.250000"


def test_stamp_is_seconds_dot_six_digit_microseconds():
    assert stamp(T) == S
    assert stamp(1700000000.0000004) == b"1700000000.000000"
    assert stamp(5.9999999) == b"5.999999"


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"new msg 457\n", [S + b" new msg 457\n"]),
        (b"a\tb\x00c\xffd\n", [S + b" a?b?c?d\n"]),  # outside 32..126 becomes ?
        (b"\n\nend msg 457\n", [S + b" end msg 457\n"]),  # empty lines are dropped
        (b"no newline yet", []),
    ],
)
def test_lines_are_stamped_and_made_printable(data, lines):
    assert Folder().feed(data, T) == lines


def test_a_line_is_completed_across_reads():
    folder = Folder()
    assert folder.feed(b"status: local ", T) == []
    assert folder.feed(b"0/10 remote 0/20\nnew", T + 1) == [
        b"1700000001.250000 status: local 0/10 remote 0/20\n"  # stamped when the line ends
    ]


def test_long_lines_fold_every_799_bytes_with_a_plus_and_the_same_stamp():
    out = Folder().feed(b"x" * 1700 + b"\n", T)
    assert out == [
        S + b" " + b"x" * 799 + b"\n",
        S + b"+" + b"x" * 799 + b"\n",
        S + b"+" + b"x" * 102 + b"\n",
    ]


def one_byte_at_a_time(chunks: list[bytes], now: float) -> list[bytes]:
    """splogger.c's loop, literally: the reference for the chunked `Folder.feed`."""
    out, buffer, line_stamp = [], bytearray(), b""

    def flush():
        nonlocal line_stamp
        if buffer:
            if line_stamp:
                out.append(line_stamp + b"+" + bytes(buffer) + b"\n")
            else:
                line_stamp = stamp(now)
                out.append(line_stamp + b" " + bytes(buffer) + b"\n")
            buffer.clear()

    for chunk in chunks:
        for ch in chunk:
            ch = ch if 32 <= ch <= 126 or ch == 10 else 63
            if ch == 10:
                flush()
                line_stamp = b""
                continue
            if len(buffer) == SPLOGGER_FOLD - 1:
                flush()
            buffer.append(ch)
    return out


@given(st.lists(st.binary(max_size=2000) | st.sampled_from([b"\n", b"x" * 799, b"y" * 798])))
def test_feeding_chunks_is_feeding_bytes_one_at_a_time(chunks):
    folder = Folder()
    got = [line for chunk in chunks for line in folder.feed(chunk, T)]
    assert got == one_byte_at_a_time(chunks, T)


def test_splogger_appends_stamped_lines_to_the_log_file_and_exits_at_eof(tmp_path: Path):
    r, w = os.pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        status = 111
        try:
            os.dup2(r, 0)
            os.close(r)
            os.close(w)
            kernel = RealKernel(resolve, host="test.example")
            status = kernel.run("splogger", ["qmail"], {"QMAILHOME": str(tmp_path)}, "qmaill")
        finally:
            os._exit(status)
    os.close(r)
    os.write(w, b"status: local 0/10 remote 0/20\nalert: help\npartial")
    os.close(w)
    deadline = time.monotonic() + 10
    while not (reaped := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    if not reaped[0]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("splogger did not exit at end of input")
    assert os.waitstatus_to_exitcode(reaped[1]) == 0
    lines = (tmp_path / "log" / "qmail-send.log").read_bytes().splitlines()
    assert [line.split(b" ", 1)[1] for line in lines] == [
        b"status: local 0/10 remote 0/20",
        b"alert: help",
    ]
