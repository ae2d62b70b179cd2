"""sim/qmail decides without a clock, a socket, a process or a simulation: checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sim.qmail

FORBIDDEN = {
    "os",
    "time",
    "socket",
    "subprocess",
    "threading",
    "multiprocessing",
    "asyncio",
    "select",
    "signal",
    "random",
    "simpy",
}
MODULES = sorted(Path(sim.qmail.__file__).parent.glob("*.py"))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_there_are_modules_to_check():
    assert len(MODULES) >= 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_no_clock_socket_process_or_simpy(path):
    assert imported_roots(path) & FORBIDDEN == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_nothing_of_ours_but_sim_qmail(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sim"):
            assert node.module.startswith("sim.qmail"), node.module
