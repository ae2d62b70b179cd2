"""queueops performs the life cycle's operations; a write at an offset never truncates."""

from __future__ import annotations

import os
from pathlib import Path

from sim.kernel.real import RealKernel
from sim.programs.queueops import Files, perform
from sim.programs.registry import register, resolve
from sim.qmail import queue as q


def mark_second(argv, env):
    """Overwrite byte 5 of argv[1] (the second record's tag), as qmail-send marks it done."""
    files = Files()
    yield from perform(q.Write(argv[1], b"D", offset=5), files)
    yield from files.close_all()
    return 0


register("t-mark", "tests.programs.test_queueops:mark_second")


def test_a_write_at_an_offset_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "local"
    path.write_bytes(b"Ta@x\0Tb@y\0Tc@z\0")
    pid = os.fork()
    if pid == 0:
        status = RealKernel(resolve, host="t").run("t-mark", [str(path)], {}, user=None)
        os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == b"Ta@x\0Db@y\0Tc@z\0"
