"""Queue names, the install layout, and INTERNALS' message states S1-S5."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.qmail.errors import BadInput
from sim.qmail.queue import (
    KINDS,
    QUEUE_LAYOUT,
    BadQueueName,
    is_ossified,
    message_state,
    parse_queue_id,
    parse_queue_path,
    pid_path,
    queue_path,
    split_dir,
    split_of,
)

# ---- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("mess", "mess/15/26902"),
        ("intd", "intd/26902"),
        ("todo", "todo/26902"),
        ("info", "info/15/26902"),
        ("local", "local/15/26902"),
        ("remote", "remote/15/26902"),
        ("bounce", "bounce/26902"),
    ],
)
def test_message_file_paths_split_by_id_mod_23(kind, path):
    assert queue_path(kind, 26902) == path
    assert parse_queue_path(path) == (kind, 26902)


def test_split_is_id_mod_23():
    assert split_of(457) == 457 % 23 == 20
    assert split_dir("mess", 457) == "mess/20"
    assert split_dir("todo", 457) == "todo"


def test_pid_file_name_is_pid_time_seq():
    assert pid_path(4567, 1000000000, 1) == "pid/4567.1000000000.1"


@pytest.mark.parametrize("name", ["", "0", "012", "-5", "+5", "12a", " 12", "١٢"])
def test_names_qmail_would_not_make_are_not_queue_ids(name):
    with pytest.raises(BadQueueName):
        parse_queue_id(name)


@pytest.mark.parametrize("path", ["mess/14/26902", "mess/26902", "todo/15/26902", "pid/1", "x/1"])
def test_paths_that_are_not_message_files_are_refused(path):
    with pytest.raises(BadInput):
        parse_queue_path(path)


@given(st.integers(1, 2**64))
def test_queue_path_round_trips_for_every_kind(queue_id):
    for kind in KINDS:
        assert parse_queue_path(queue_path(kind, queue_id)) == (kind, queue_id)


@pytest.mark.parametrize(("age", "stale"), [(0, False), (129599, False), (129600, True)])
def test_ossified_means_36_hours_unread(age, stale):
    assert is_ossified(atime=1000, now=1000 + age) is stale


# ---- the layout (hier.c) ---------------------------------------------------------------------

LAYOUT = {e.path: (e.kind, e.owner, e.group, oct(e.mode)) for e in QUEUE_LAYOUT}


@pytest.mark.parametrize(
    ("path", "kind", "owner", "mode"),
    [
        ("queue", "dir", "qmailq", 0o750),
        ("queue/pid", "dir", "qmailq", 0o700),
        ("queue/intd", "dir", "qmailq", 0o700),
        ("queue/todo", "dir", "qmailq", 0o750),
        ("queue/mess", "dir", "qmailq", 0o750),
        ("queue/mess/0", "dir", "qmailq", 0o750),
        ("queue/mess/22", "dir", "qmailq", 0o750),
        ("queue/info/7", "dir", "qmails", 0o700),
        ("queue/local/7", "dir", "qmails", 0o700),
        ("queue/remote/22", "dir", "qmails", 0o700),
        ("queue/bounce", "dir", "qmails", 0o700),
        ("queue/lock", "dir", "qmailq", 0o750),
        ("queue/lock/tcpto", "file", "qmailr", 0o644),
        ("queue/lock/sendmutex", "file", "qmails", 0o600),
        ("queue/lock/trigger", "fifo", "qmails", 0o622),
    ],
)
def test_layout_owner_and_mode_as_hier_c(path, kind, owner, mode):
    assert LAYOUT[path] == (kind, owner, "qmail", oct(mode))


def test_layout_has_23_subdirectories_for_split_kinds_only():
    for top in ("mess", "info", "local", "remote"):
        assert sum(p.startswith(f"queue/{top}/") for p in LAYOUT) == 23
    for flat in ("pid", "intd", "todo", "bounce"):
        assert not any(p.startswith(f"queue/{flat}/") for p in LAYOUT)
    assert "queue/mess/23" not in LAYOUT


def test_layout_lists_parents_first_and_tcpto_as_1024_zero_bytes():
    seen: set[str] = set()
    for entry in QUEUE_LAYOUT:
        parent = entry.path.rpartition("/")[0]
        assert parent in seen or entry.path == "queue"
        seen.add(entry.path)
    assert {e.path: e.size for e in QUEUE_LAYOUT}["queue/lock/tcpto"] == 1024


# ---- INTERNALS' states -----------------------------------------------------------------------

# INTERNALS, word for word in its +/-/? notation.
INTERNALS = {
    "S1": "-mess -intd -todo -info -local -remote -bounce",
    "S2": "+mess -intd -todo -info -local -remote -bounce",
    "S3": "+mess +intd -todo -info -local -remote -bounce",
    "S4": "+mess ?intd +todo ?info ?local ?remote -bounce",
    "S5": "+mess -intd -todo +info ?local ?remote ?bounce",
}


def internals_state(existing: frozenset[str]) -> str | None:
    """The state read off the INTERNALS rows directly (independent of the code's table)."""
    for name, row in INTERNALS.items():
        marks = {word[1:]: word[0] for word in row.split()}
        if all((k in existing) == (m == "+") for k, m in marks.items() if m != "?"):
            return name
    return None


@given(st.frozensets(st.sampled_from(KINDS)))
def test_message_state_agrees_with_internals(existing):
    assert message_state(existing) == internals_state(existing)


@pytest.mark.parametrize(
    ("existing", "state"),
    [
        (set(), "S1"),
        ({"mess"}, "S2"),
        ({"mess", "intd"}, "S3"),
        ({"mess", "intd", "todo"}, "S4"),
        ({"mess", "todo", "info", "local"}, "S4"),
        ({"mess", "info"}, "S5"),
        ({"mess", "info", "local", "remote", "bounce"}, "S5"),
        ({"mess", "todo", "bounce"}, None),
        ({"intd"}, None),
        ({"mess", "intd", "info"}, None),
        ({"todo"}, None),
    ],
)
def test_message_state_examples(existing, state):
    assert message_state(existing) == state


def test_exactly_27_of_128_file_sets_are_possible():
    sets = [frozenset(c) for n in range(8) for c in combinations(KINDS, n)]
    possible = [s for s in sets if message_state(s) is not None]
    assert len(sets) == 128
    assert len(possible) == 1 + 1 + 1 + 16 + 8  # S4 has four `?`, S5 three
