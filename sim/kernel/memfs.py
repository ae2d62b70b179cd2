"""MemFS: an in-memory filesystem that knows what would survive a power loss.

Theory of operation. A tree of inodes (files, directories, FIFOs) reached by absolute paths;
hard links share one inode, whose number (qmail's queue id) comes from one counter that only
increases, so numbers are deterministic and never repeat. Errors are `OSError`s with the
errno Linux gives, so the kernel passes them to programs unchanged.

Durability follows a metadata journal, as on ext4 (data=ordered) or FFS with synchronous
metadata: every change of a name (create, link, unlink, rename, mkdir, mkfifo) joins one
ordered journal; any fsync, of a directory or of a file, commits all of it, and a crash keeps
the committed changes (never a later one without an earlier one) and each file's data as of
its own last `fsync` (nothing if never synced). So qmail 1.03, which never fsyncs a
directory, can still lose the todo/ link qmail-queue makes last when nothing commits the
journal after it.

`crash()` returns the filesystem a reboot would find. Metadata (mode, owner, times) is kept
as it is at the crash. Permissions are stored and reported, never enforced; there are no
symlinks and no umask. A fsynced file's data is one `bytes` object shared with its durable
copy until the next write.
"""

from __future__ import annotations

import enum
import errno
import os
import posixpath
import stat as S
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from sim.kernel.effects import StatResult

ROOT_INO = 2  # as on ext4
FIRST_INO = 11  # ext4 reserves the numbers below
DIR_SIZE = 4096


class Special(enum.Enum):
    """What `populate` and `dump` use for a name that is not a regular file."""

    DIR = "dir"
    FIFO = "fifo"


def fs_error(code: int, path: str) -> OSError:
    """The OSError (a FileNotFoundError for ENOENT, …) a real call on `path` would raise."""
    return OSError(code, os.strerror(code), path)


@dataclass(eq=False, slots=True)
class Inode:
    """A file, directory or FIFO; `durable_*` hold what the last fsync put on disk."""

    ino: int
    kind: str  # "file", "dir" or "fifo"
    perm: int
    uid: int
    mtime: float
    atime: float
    nlink: int = 0
    data: bytes | bytearray = b""  # bytes once fsynced, shared with durable_data until written
    entries: dict[str, Inode] = field(default_factory=dict)
    durable_data: bytes | None = None
    durable_entries: dict[str, Inode] = field(default_factory=dict)  # as last committed
    dirty: int = 0  # bytes written since the last fsync: what the next one flushes

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"

    @property
    def mode(self) -> int:
        kind = {"file": S.S_IFREG, "dir": S.S_IFDIR, "fifo": S.S_IFIFO}[self.kind]
        return kind | self.perm

    def stat(self) -> StatResult:
        """What `Stat` returns for this inode."""
        size = DIR_SIZE if self.is_dir else len(self.data)
        return StatResult(
            ino=self.ino,
            size=size,
            mode=self.mode,
            uid=self.uid,
            mtime=self.mtime,
            atime=self.atime,
            nlink=self.nlink,
            is_dir=self.is_dir,
            is_file=self.kind == "file",
            is_fifo=self.kind == "fifo",
        )


class MemFS:
    """An in-memory filesystem with crash semantics; paths are absolute (see `abspath`)."""

    def __init__(
        self, clock: Callable[[], float] | None = None, capacity: int | None = None
    ) -> None:
        self.clock = clock or (lambda: 0.0)
        self.capacity = capacity  # bytes of file data before ENOSPC; None: unlimited
        self.used = 0
        self.next_ino = FIRST_INO
        self.root = Inode(ROOT_INO, "dir", 0o755, 0, 0.0, 0.0, nlink=2)
        # The journal since the last commit, compacted to the last change of each name (a
        # commit takes all of it, so only that one matters); None: the name was removed.
        self.journal: dict[tuple[Inode, str], Inode | None] = {}
        self.dirs: dict[str, Inode] = {}  # directories by path, as `lookup` found them

    # -- paths ---------------------------------------------------------------------------

    @staticmethod
    def abspath(path: str, cwd: str = "/") -> str:
        """`path` made absolute against `cwd` and normalised; ENOENT for an empty path."""
        if not path:
            raise fs_error(errno.ENOENT, path)
        if "//" not in path and "/." not in "/" + path and path[-1] != "/" and cwd[-1] != "/":
            return path if path[0] == "/" else cwd + "/" + path  # nothing to normalise
        full = posixpath.normpath(posixpath.join(cwd, path))
        return "/" + full.lstrip("/")

    def lookup(self, path: str) -> Inode:
        """The inode at absolute `path`; ENOENT or ENOTDIR.

        The directories on the way are remembered by path (`dirs`): the programs name the
        same few directories again and again. A directory that goes (`_remove`) forgets
        them all, so a remembered path is always what a walk from the root would find.
        """
        head, _, last = path.rpartition("/")
        directory = self.dirs.get(head)
        if directory is None:
            directory = self._walk(head, path)
            if directory.kind == "dir":
                self.dirs[head] = directory
        if not last:
            return directory
        if directory.kind != "dir":
            raise fs_error(errno.ENOTDIR, path)
        node = directory.entries.get(last)
        if node is None:
            raise fs_error(errno.ENOENT, path)
        return node

    def _walk(self, head: str, path: str) -> Inode:
        node = self.root
        for name in head.split("/"):
            if name:
                if node.kind != "dir":
                    raise fs_error(errno.ENOTDIR, path)
                child = node.entries.get(name)
                if child is None:
                    raise fs_error(errno.ENOENT, path)
                node = child
        return node

    def parent(self, path: str) -> tuple[Inode, str]:
        """(directory, last name) for a path that is to be created or removed."""
        head, name = posixpath.split(path)
        if not name:
            raise fs_error(errno.EEXIST, path)  # the root
        node = self.lookup(head)
        if not node.is_dir:
            raise fs_error(errno.ENOTDIR, path)
        return node, name

    # -- names ---------------------------------------------------------------------------

    def _new(self, kind: str, perm: int, uid: int) -> Inode:
        now = self.clock()
        node = Inode(self.next_ino, kind, perm, uid, now, now)
        self.next_ino += 1
        return node

    def _enter(self, directory: Inode, name: str, node: Inode) -> None:
        directory.entries[name] = node
        self.journal[directory, name] = node
        node.nlink += 1
        if node.is_dir:
            node.nlink += 1  # its own "."
            directory.nlink += 1  # its ".."
        directory.mtime = self.clock()

    def _remove(self, directory: Inode, name: str) -> Inode:
        node = directory.entries.pop(name)
        self.journal[directory, name] = None
        node.nlink -= 1
        if node.is_dir:
            node.nlink -= 1
            directory.nlink -= 1
            self.dirs.clear()  # it, or a directory under it, may be remembered
        if node.nlink == 0 and node.kind == "file":
            self.used -= len(node.data)
        directory.mtime = self.clock()
        return node

    def create(self, path: str, perm: int, uid: int, kind: str = "file") -> Inode:
        """Make a new file (or `kind`) at `path`; EEXIST if the name is taken."""
        directory, name = self.parent(path)
        if name in directory.entries:
            raise fs_error(errno.EEXIST, path)
        node = self._new(kind, perm, uid)
        self._enter(directory, name, node)
        return node

    def mkdir(self, path: str, perm: int = 0o700, uid: int = 0) -> Inode:
        """Make a directory; EEXIST, ENOENT for a missing parent."""
        return self.create(path, perm, uid, "dir")

    def mkfifo(self, path: str, perm: int = 0o622, uid: int = 0) -> Inode:
        """Make a named pipe (qmail's lock/trigger)."""
        return self.create(path, perm, uid, "fifo")

    def link(self, src: str, dst: str) -> None:
        """Hard-link `src` to `dst`; EEXIST, ENOENT, EPERM for a directory."""
        node = self.lookup(src)
        if node.is_dir:
            raise fs_error(errno.EPERM, src)
        directory, name = self.parent(dst)
        if name in directory.entries:
            raise fs_error(errno.EEXIST, dst)
        self._enter(directory, name, node)

    def unlink(self, path: str) -> None:
        """Remove a name; ENOENT, EISDIR for a directory."""
        directory, name = self.parent(path)
        node = directory.entries.get(name)
        if node is None:
            raise fs_error(errno.ENOENT, path)
        if node.is_dir:
            raise fs_error(errno.EISDIR, path)
        self._remove(directory, name)

    def rename(self, src: str, dst: str) -> None:
        """Atomically move `src` to `dst`, replacing a file there, as rename(2)."""
        sdir, sname = self.parent(src)
        node = sdir.entries.get(sname)
        if node is None:
            raise fs_error(errno.ENOENT, src)
        ddir, dname = self.parent(dst)
        old = ddir.entries.get(dname)
        if old is node:
            return  # two names of one inode: rename(2) does nothing
        if node.is_dir and (dst + "/").startswith(src.rstrip("/") + "/"):
            raise fs_error(errno.EINVAL, dst)
        if old is not None:
            if old.is_dir and not node.is_dir:
                raise fs_error(errno.EISDIR, dst)
            if node.is_dir and not old.is_dir:
                raise fs_error(errno.ENOTDIR, dst)
            if old.is_dir and old.entries:
                raise fs_error(errno.ENOTEMPTY, dst)
            self._remove(ddir, dname)
        self._remove(sdir, sname)
        self._enter(ddir, dname, node)

    def readdir(self, path: str) -> list[str]:
        """The sorted names in a directory; ENOENT, ENOTDIR."""
        node = self.lookup(path)
        if not node.is_dir:
            raise fs_error(errno.ENOTDIR, path)
        return sorted(node.entries)

    def utime(self, path: str, mtime: float) -> None:
        """Set access and modification time."""
        node = self.lookup(path)
        node.mtime = node.atime = mtime

    # -- data ----------------------------------------------------------------------------

    def read(self, node: Inode, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset` (b"" past the end)."""
        node.atime = self.clock()
        return bytes(node.data[offset : offset + size])

    def write(self, node: Inode, offset: int, data: bytes) -> int:
        """Write at `offset`, zero-filling a hole; ENOSPC past `capacity`."""
        end = offset + len(data)
        grow = max(0, end - len(node.data))
        if self.capacity is not None and self.used + grow > self.capacity:
            raise fs_error(errno.ENOSPC, f"inode {node.ino}")
        buf = self._writable(node)
        if offset > len(buf):
            buf.extend(bytes(offset - len(buf)))
        buf[offset:end] = data
        self.used += grow
        node.dirty += len(data)
        node.mtime = self.clock()
        return len(data)

    def truncate(self, node: Inode, length: int) -> None:
        """Cut (or zero-extend) a file to `length` bytes."""
        if length < 0:
            raise fs_error(errno.EINVAL, f"inode {node.ino}")
        buf = self._writable(node)
        old = len(buf)
        if length < old:
            del buf[length:]
        else:
            buf.extend(bytes(length - old))
        self.used += length - old
        node.dirty += abs(length - old)
        node.mtime = self.clock()

    def drop_head(self, node: Inode, length: int) -> None:
        """Remove a file's first `length` bytes, as a log rotation does: the file keeps its
        inode and name, and a writer in append mode goes on at its end. Its durable copy
        (if any) loses the same head."""
        length = max(0, min(length, len(node.data)))
        node.data = bytearray(node.data[length:])  # a new buffer: the old one is freed
        if node.durable_data:
            node.durable_data = node.durable_data[length:]
        node.dirty = min(node.dirty, len(node.data))
        self.used -= length

    @staticmethod
    def _writable(node: Inode) -> bytearray:
        """The file's data, copied first if it is still shared with what is on disk."""
        if not isinstance(node.data, bytearray):
            node.data = bytearray(node.data)
        return node.data

    # -- durability ----------------------------------------------------------------------

    def fsync(self, node: Inode) -> None:
        """Make a file's data survive a crash as it is now, and commit the journal: every
        change of a name so far, in any directory, survives too (ext4 with data=ordered)."""
        if node.kind == "file" and node.durable_data is not node.data:
            node.data = node.durable_data = bytes(node.data)  # one copy, shared until written
        node.dirty = 0
        self.commit()

    def commit(self) -> None:
        """Commit the journal: every name change made so far will survive a crash."""
        for (directory, name), node in self.journal.items():
            if node is None:
                directory.durable_entries.pop(name, None)
            else:
                directory.durable_entries[name] = node
        self.journal.clear()

    def crash(self) -> MemFS:
        """The filesystem after a power loss: only what was fsynced (see the module doc)."""
        fs = MemFS(self.clock, self.capacity)
        fs.next_ino = self.next_ino
        fs.root = self._survivor(self.root, {})
        fs.used = sum(len(n.data) for n in fs._inodes() if n.kind == "file")
        return fs

    def _survivor(self, node: Inode, done: dict[int, Inode]) -> Inode:
        """A copy of `node` as the disk holds it; `done` maps inode numbers already copied."""
        copy = Inode(node.ino, node.kind, node.perm, node.uid, node.mtime, node.atime)
        done[node.ino] = copy
        if node.kind == "file":
            copy.data = copy.durable_data = node.durable_data or b""
        if node.is_dir:
            copy.nlink = 2  # its entry in the parent (or the root's own ..) and its "."
            for name in sorted(node.durable_entries):
                child = node.durable_entries[name]
                survivor = done.get(child.ino) or self._survivor(child, done)
                copy.entries[name] = survivor
                if survivor.is_dir:
                    copy.nlink += 1
                else:
                    survivor.nlink += 1
            copy.durable_entries = dict(copy.entries)
        return copy

    def _inodes(self) -> Iterator[Inode]:
        seen: set[int] = set()
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.ino in seen:
                continue
            seen.add(node.ino)
            yield node
            stack.extend(node.entries.values())

    # -- scenarios and tests -------------------------------------------------------------

    def populate(
        self, files: Mapping[str, bytes | Special], *, uid: int = 0, perm: int = 0o644
    ) -> None:
        """Create files (bytes), directories and FIFOs (`Special`), parents as needed.

        Everything populated is durable, as if it had been on disk before the run.
        """
        for path in sorted(files):
            full = self.abspath(path)
            self._makedirs(posixpath.dirname(full), uid)
            value = files[path]
            if value is Special.DIR:
                self._makedirs(full, uid)
                continue
            node = self.create(full, perm, uid, "fifo" if value is Special.FIFO else "file")
            if isinstance(value, bytes):
                self.write(node, 0, value)
            self.fsync(node)
            self.fsync(self.parent(full)[0])

    def _makedirs(self, path: str, uid: int) -> None:
        node = self.root
        for name in [p for p in path.split("/") if p]:
            child = node.entries.get(name)
            if child is None:
                child = self._new("dir", 0o755, uid)
                self._enter(node, name, child)
                self.fsync(node)
                self.fsync(child)
            elif not child.is_dir:
                raise fs_error(errno.ENOTDIR, path)
            node = child

    def dump(self, path: str = "/", *, special: bool = False) -> dict[str, bytes | Special]:
        """{path: bytes} of every file under `path`; with `special`, dirs and FIFOs too."""
        out: dict[str, bytes | Special] = {}
        start = self.lookup(path)
        stack = [(path.rstrip("/") or "", start)]
        while stack:
            prefix, node = stack.pop()
            for name in sorted(node.entries, reverse=True):
                child, full = node.entries[name], f"{prefix}/{name}"
                if child.is_dir:
                    if special:
                        out[full] = Special.DIR
                    stack.append((full, child))
                elif child.kind == "fifo":
                    if special:
                        out[full] = Special.FIFO
                else:
                    out[full] = bytes(child.data)
        return dict(sorted(out.items()))
