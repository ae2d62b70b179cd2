"""MemFS keeps names, links and inode numbers as a real filesystem, and loses what a crash would."""

from __future__ import annotations

import contextlib
import errno
import posixpath

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sim.kernel.memfs import FIRST_INO, MemFS, Special


def queue() -> MemFS:
    fs = MemFS()
    fs.populate({"/queue/mess/0": Special.DIR, "/queue/todo": Special.DIR})
    return fs


def write_file(fs: MemFS, path: str, data: bytes, sync: bool = False) -> int:
    node = fs.create(path, 0o644, 0)
    fs.write(node, 0, data)
    if sync:
        fs.fsync(node)
    return node.ino


# -- names and inodes ---------------------------------------------------------------------


def test_inode_numbers_increase_and_a_hard_link_shares_one():
    fs = queue()
    first = write_file(fs, "/queue/mess/0/a", b"one")
    second = write_file(fs, "/queue/mess/0/b", b"two")
    assert second == first + 1 >= FIRST_INO + 1
    fs.link("/queue/mess/0/a", "/queue/todo/a")
    assert fs.lookup("/queue/todo/a").ino == first
    assert fs.lookup("/queue/mess/0/a").stat().nlink == 2
    fs.unlink("/queue/mess/0/a")
    assert fs.lookup("/queue/todo/a").stat().nlink == 1
    assert write_file(fs, "/queue/mess/0/a", b"") == second + 1  # never reused


def test_directory_link_counts_follow_subdirectories():
    fs = MemFS()
    fs.mkdir("/q")
    fs.mkdir("/q/a")
    fs.mkdir("/q/b")
    assert fs.lookup("/q").stat().nlink == 4
    fs.rename("/q/b", "/q/a/b")
    assert (fs.lookup("/q").stat().nlink, fs.lookup("/q/a").stat().nlink) == (3, 3)


@pytest.mark.parametrize(
    ("operation", "code"),
    [
        (lambda fs: fs.lookup("/queue/nope"), errno.ENOENT),
        (lambda fs: fs.lookup("/queue/f/x"), errno.ENOTDIR),
        (lambda fs: fs.mkdir("/queue/todo"), errno.EEXIST),
        (lambda fs: fs.mkdir("/nope/d"), errno.ENOENT),
        (lambda fs: fs.link("/queue/todo", "/queue/t2"), errno.EPERM),
        (lambda fs: fs.link("/queue/f", "/queue/f"), errno.EEXIST),
        (lambda fs: fs.unlink("/queue/todo"), errno.EISDIR),
        (lambda fs: fs.rename("/queue/f", "/queue/todo"), errno.EISDIR),
        (lambda fs: fs.rename("/queue/todo", "/queue/f"), errno.ENOTDIR),
        (lambda fs: fs.rename("/queue", "/queue/todo/q"), errno.EINVAL),
        (lambda fs: fs.rename("/queue/todo", "/queue/mess"), errno.ENOTEMPTY),
        (lambda fs: fs.readdir("/queue/f"), errno.ENOTDIR),
    ],
)
def test_errors_carry_the_errno_linux_gives(operation, code):
    fs = queue()
    write_file(fs, "/queue/f", b"")
    with pytest.raises(OSError) as caught:
        operation(fs)
    assert caught.value.errno == code


def test_paths_are_normalised_against_the_working_directory():
    assert MemFS.abspath("../todo/./1", "/var/qmail/queue/mess") == "/var/qmail/queue/todo/1"
    assert MemFS.abspath("/a//b/") == "/a/b"
    with pytest.raises(FileNotFoundError):
        MemFS.abspath("", "/")


SEGMENT = st.sampled_from(["", ".", "..", "a", "b.c", ".qmail", "new", "..x"])


@given(st.lists(SEGMENT, max_size=5), st.lists(SEGMENT.filter(lambda s: s), max_size=4))
def test_the_quick_path_of_abspath_agrees_with_posix_normalisation(parts, cwd_parts):
    """abspath skips normpath for plain paths; it must give what normpath gives."""
    path = "/".join(parts)
    cwd = posixpath.normpath("/" + "/".join(cwd_parts))
    cwd = "/" + cwd.lstrip("/")
    if path:
        expected = "/" + posixpath.normpath(posixpath.join(cwd, path)).lstrip("/")
        assert MemFS.abspath(path, cwd) == expected


def test_write_past_the_end_leaves_a_hole_of_zeros_and_capacity_gives_enospc():
    fs = MemFS(capacity=10)
    node = fs.create("/f", 0o644, 0)
    fs.write(node, 3, b"ab")
    assert fs.read(node, 0, 100) == b"\0\0\0ab"
    with pytest.raises(OSError) as caught:
        fs.write(node, 5, b"x" * 6)
    assert caught.value.errno == errno.ENOSPC


def test_dropping_a_files_head_keeps_its_inode_its_tail_and_its_synced_tail():
    fs = queue()
    ino = write_file(fs, "/queue/log", b"line 1\nline 2\n", sync=True)
    node = fs.lookup("/queue/log")
    fs.write(node, len(node.data), b"line 3\n")  # an appending writer, not yet synced
    used = fs.used
    fs.drop_head(node, 7)
    assert (node.ino, bytes(node.data), fs.used) == (ino, b"line 2\nline 3\n", used - 7)
    fs.write(node, len(node.data), b"line 4\n")
    assert fs.lookup("/queue/log").data == b"line 2\nline 3\nline 4\n"
    fs.fsync(fs.lookup("/queue"))
    assert fs.crash().lookup("/queue/log").data == b"line 2\n"  # the synced part, less its head


def test_populate_and_dump_round_trip():
    files = {
        "/var/qmail/control/me": b"mx.example\n",
        "/var/qmail/queue/lock/trigger": Special.FIFO,
        "/var/qmail/queue/todo": Special.DIR,
    }
    fs = MemFS()
    fs.populate(files)
    assert fs.dump() == {"/var/qmail/control/me": b"mx.example\n"}
    assert fs.dump("/var/qmail/queue", special=True) == {
        "/var/qmail/queue/lock": Special.DIR,
        "/var/qmail/queue/lock/trigger": Special.FIFO,
        "/var/qmail/queue/todo": Special.DIR,
    }
    assert fs.crash().dump(special=True) == fs.dump(special=True)  # populated means on disk


# -- crashes --------------------------------------------------------------------------------


def test_a_new_file_never_fsynced_is_lost_in_a_crash():
    fs = queue()
    write_file(fs, "/queue/mess/0/7", b"message")
    assert fs.crash().dump() == {}


@pytest.mark.parametrize(("fsync_todo", "survives"), [(False, False), (True, True)])
def test_the_todo_link_made_last_is_lost_unless_something_fsyncs_after_it(fsync_todo, survives):
    """qmail-queue's last step: its intd file is fsynced, then linked into todo/."""
    fs = queue()
    write_file(fs, "/queue/mess/0/7", b"envelope", sync=True)  # its own fd's fsync
    fs.link("/queue/mess/0/7", "/queue/todo/7")
    if fsync_todo:
        fs.fsync(fs.lookup("/queue/todo"))
    after = fs.crash().dump()
    assert after["/queue/mess/0/7"] == b"envelope"  # the file's fsync committed its name
    assert ("/queue/todo/7" in after) is survives


def test_a_file_fsync_commits_every_earlier_name_change_as_ext4s_journal_does():
    fs = queue()
    write_file(fs, "/queue/todo/6", b"other", sync=True)
    fs.link("/queue/todo/6", "/queue/mess/0/6")
    fs.unlink("/queue/todo/6")
    write_file(fs, "/queue/mess/0/7", b"m", sync=True)  # commits the link and the unlink
    assert fs.crash().dump() == {"/queue/mess/0/6": b"other", "/queue/mess/0/7": b"m"}


def test_a_crash_never_keeps_a_later_unlink_without_the_earlier_ones():
    """qmail-send unlinks local/ and info/, then qmail-clean mess/; then mess/ is fsynced."""
    fs = MemFS()
    names = ["/queue/local/1/254", "/queue/info/1/254", "/queue/mess/1/254"]
    fs.populate(dict.fromkeys(names, b"x"))
    for name in names:
        fs.unlink(name)
    assert fs.crash().dump() == dict.fromkeys(names, b"x")  # nothing committed yet
    fs.fsync(fs.lookup("/queue/mess/1"))
    assert fs.crash().dump() == {}


def test_after_fsync_of_the_directory_the_file_survives_with_its_synced_data():
    fs = queue()
    ino = write_file(fs, "/queue/mess/0/7", b"message", sync=True)
    fs.fsync(fs.lookup("/queue/mess/0"))
    fs.write(fs.lookup("/queue/mess/0/7"), 7, b" and more, never synced")
    after = fs.crash()
    assert after.dump()["/queue/mess/0/7"] == b"message"
    assert after.lookup("/queue/mess/0/7").ino == ino  # the queue id survives too


def test_fsynced_data_is_shared_with_the_disk_until_the_next_write():
    fs = queue()
    write_file(fs, "/queue/mess/0/7", b"message", sync=True)
    node = fs.lookup("/queue/mess/0/7")
    assert node.durable_data is node.data == b"message"  # one copy in memory, not two
    fs.write(node, 7, b"!")
    assert (node.data, node.durable_data) == (b"message!", b"message")
    fs.fsync(fs.lookup("/queue/mess/0"))
    assert fs.crash().lookup("/queue/mess/0/7").data == b"message"


def test_a_synced_name_of_a_never_synced_file_comes_back_empty():
    fs = queue()
    write_file(fs, "/queue/todo/7", b"envelope")
    fs.fsync(fs.lookup("/queue/todo"))
    assert fs.crash().dump()["/queue/todo/7"] == b""


def test_unlink_not_synced_comes_back_and_synced_does_not():
    fs = queue()
    write_file(fs, "/queue/todo/7", b"e", sync=True)
    todo = fs.lookup("/queue/todo")
    fs.fsync(todo)
    fs.unlink("/queue/todo/7")
    assert fs.crash().dump() == {"/queue/todo/7": b"e"}
    fs.fsync(todo)
    assert fs.crash().dump() == {}


def test_hard_links_that_survive_keep_one_inode_and_their_count():
    fs = queue()
    write_file(fs, "/queue/mess/0/7", b"m", sync=True)
    fs.link("/queue/mess/0/7", "/queue/todo/7")
    for directory in ("/queue/mess/0", "/queue/todo"):
        fs.fsync(fs.lookup(directory))
    after = fs.crash()
    assert after.lookup("/queue/todo/7") is after.lookup("/queue/mess/0/7")
    assert after.lookup("/queue/todo/7").nlink == 2


# -- properties against a dict model ------------------------------------------------------

NAMES = [f"/d{d}/{n}" for d in (1, 2) for n in "abc"]
DIRS = ["/d1", "/d2"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(NAMES), st.binary(max_size=4)),
        st.tuples(st.just("append"), st.sampled_from(NAMES), st.binary(min_size=1, max_size=4)),
        st.tuples(st.just("link"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
        st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
        st.tuples(st.just("unlink"), st.sampled_from(NAMES)),
        st.tuples(st.just("fsync"), st.sampled_from(NAMES)),
        st.tuples(st.just("fsyncdir"), st.sampled_from(DIRS)),
    ),
    max_size=30,
)


class Model:
    """What the filesystem should hold: names to inode numbers, inode numbers to bytes,
    the names as the last fsync of anything committed them, and each file's synced data."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.data: dict[int, bytes] = {}
        self.synced_names: dict[str, int] = {}
        self.synced_data: dict[int, bytes] = {}
        self.next_ino = FIRST_INO

    def apply(self, op: tuple) -> int | None:
        """Perform `op`; returns the errno it should fail with, or None."""
        kind, path = op[0], op[1]
        if kind == "create":
            if path in self.names:
                return errno.EEXIST
            self.names[path], self.data[self.next_ino] = self.next_ino, op[2]
            self.next_ino += 1
        elif kind in ("append", "fsync", "unlink") and path not in self.names:
            return errno.ENOENT
        elif kind == "append":
            self.data[self.names[path]] += op[2]
        elif kind == "fsync":
            self.synced_data[self.names[path]] = self.data[self.names[path]]
            self.synced_names = dict(self.names)
        elif kind == "unlink":
            del self.names[path]
        elif kind == "fsyncdir":
            self.synced_names = dict(self.names)
        elif kind in ("link", "rename"):
            dst = op[2]
            if path not in self.names:
                return errno.ENOENT
            if kind == "link" and dst in self.names:
                return errno.EEXIST
            if kind == "rename" and self.names.get(dst) == self.names[path]:
                return None
            self.names[dst] = self.names[path]
            if kind == "rename":
                del self.names[path]
        return None

    def live(self) -> dict[str, bytes]:
        return {n: self.data[i] for n, i in sorted(self.names.items())}

    def after_crash(self) -> dict[str, bytes]:
        return {n: self.synced_data.get(i, b"") for n, i in sorted(self.synced_names.items())}


def perform(fs: MemFS, op: tuple) -> int | None:
    kind, path = op[0], op[1]
    try:
        if kind == "create":
            node = fs.create(path, 0o644, 0)
            fs.write(node, 0, op[2])
        elif kind == "append":
            node = fs.lookup(path)
            fs.write(node, len(node.data), op[2])
        elif kind == "link":
            fs.link(path, op[2])
        elif kind == "rename":
            fs.rename(path, op[2])
        elif kind == "unlink":
            fs.unlink(path)
        else:
            fs.fsync(fs.lookup(path))
    except OSError as exc:
        return exc.errno
    return None


@settings(max_examples=150, deadline=None)
@given(operations)
def test_names_links_and_crashes_match_a_dict_model(ops):
    fs, model = MemFS(), Model()
    fs.populate({d: Special.DIR for d in DIRS})
    model.next_ino = fs.next_ino
    for op in ops:
        assert perform(fs, op) == model.apply(op), op
    assert fs.dump() == model.live()
    for name, ino in model.names.items():
        node = fs.lookup(name)
        assert node.ino == ino
        assert node.nlink == list(model.names.values()).count(ino)
    assert fs.crash().dump() == model.after_crash()


NAMES = ["/a", "/b", "/a/c", "/b/c", "/a/c/d", "/b/c/d", "/a/f", "/b/f"]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["mkdir", "create", "rename", "unlink"]), *[st.sampled_from(NAMES)] * 2
    ),
    max_size=25,
)


def _walked(fs: MemFS, path: str) -> int | str:
    """What a walk from the root finds: an inode number or the errno's name."""
    try:
        return fs._walk(path, path).ino
    except OSError as exc:
        return errno.errorcode[exc.errno]


def _looked_up(fs: MemFS, path: str) -> int | str:
    try:
        return fs.lookup(path).ino
    except OSError as exc:
        return errno.errorcode[exc.errno]


@given(OPS)
@example([("mkdir", "/a", ""), ("mkdir", "/a/c", ""), ("mkdir", "/b", ""), ("rename", "/a", "/b")])
@example([("mkdir", "/a", ""), ("mkdir", "/a/c", ""), ("rename", "/a", "/b"), ("mkdir", "/a", "")])
def test_remembered_directories_always_agree_with_a_walk_from_the_root(ops):
    """lookup remembers directories by path; renames and removals must not fool it."""
    fs = MemFS()
    for op, one, two in ops:
        with contextlib.suppress(OSError):
            if op == "mkdir":
                fs.mkdir(one)
            elif op == "create":
                fs.create(one, 0o644, 0)
            elif op == "rename":
                fs.rename(one, two)
            else:
                fs.unlink(one)
        for path in NAMES:
            assert _looked_up(fs, path) == _walked(fs, path), (op, one, two, path)
