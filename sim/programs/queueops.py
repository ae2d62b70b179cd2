"""Performs `sim.qmail.queue` operations with effects: the life cycle, written once, run twice.

`sim.qmail.lifecycle` says *what* qmail-queue and qmail-send do to the queue, in order, and
what each failure means; this module says *how*, in effects, so both kernels execute the same
sequence and the trace shows each step. Paths are relative to the queue directory (the
programs chdir there, as qmail's do). Files a step creates stay open in `Files` until the
program is done with them, because qmail writes and fsyncs through the descriptor it created.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all, write_all
from sim.qmail import queue as q


@dataclass(slots=True)
class Files:
    """The descriptors a program holds on queue files, by path."""

    open: dict[str, int] = field(default_factory=dict)

    def fd(self, path: str) -> int:
        """The descriptor for `path`; a step on a file not opened is a program bug."""
        return self.open[path]

    def close_all(self) -> Call:
        """Close every descriptor (errors ignored: the program is leaving anyway)."""
        for path in list(self.open):
            fd = self.open.pop(path)
            try:
                yield fx.Close(fd)
            except OSError:
                continue


class ReadFailed(Exception):
    """A `Copy` could not read its input descriptor (its `read_fail` applies)."""


Filter = Callable[[int], Call]
"""A program's own reader for a Copy: given the input fd, returns the bytes to store."""


def _open_for_write(path: str, files: Files, *, keep: bool = False) -> Call:
    """The file's descriptor; opened now if needed ("w" truncates, `keep` opens read-write)."""
    if path not in files.open:
        files.open[path] = yield fx.Open(path, "rw" if keep else "w")
    return files.open[path]


def perform(op: q.QueueOp, files: Files, filters: dict[str, Filter] | None = None) -> Call:
    """Perform one operation; returns its result (bytes for Read) or raises OSError/ReadFailed."""
    if isinstance(op, q.Create):
        fd = yield fx.Open(op.path, "w", create=True, exclusive=op.exclusive, perm=op.mode)
        files.open[op.path] = fd
        return fd
    if isinstance(op, q.Write):
        fd = yield from _open_for_write(op.path, files, keep=op.offset is not None)
        if op.offset is not None:
            yield fx.Seek(fd, op.offset)
        yield from write_all(fd, op.data)
        return None
    if isinstance(op, q.Append):
        fd = yield fx.Open(op.path, "a", create=True, perm=op.mode)
        try:
            yield from write_all(fd, op.data)
        finally:
            yield fx.Close(fd)
        return None
    if isinstance(op, q.Copy):
        reader = (filters or {}).get(op.what)
        try:
            data = (yield from reader(op.fd)) if reader else (yield from read_all(op.fd))
        except OSError as exc:
            raise ReadFailed(str(exc)) from exc
        yield from write_all(files.fd(op.path), data)
        return len(data)
    if isinstance(op, q.Read):
        fd = yield fx.Open(op.path)
        try:
            return (yield from read_all(fd))
        finally:
            yield fx.Close(fd)
    if isinstance(op, q.Stat):
        try:
            result = yield fx.Stat(op.path)
        except FileNotFoundError:
            if op.exists:
                raise
            return None
        if not op.exists:
            raise OSError(errno.EEXIST, f"{op.path} exists")
        return result
    if isinstance(op, q.Truncate):
        fd = yield from _open_for_write(op.path, files)
        yield fx.Truncate(fd, 0)
        return None
    if isinstance(op, q.Fsync):
        yield fx.Fsync(files.fd(op.path))
        return None
    if isinstance(op, q.FsyncDir):
        yield fx.FsyncDir(op.path)
        return None
    if isinstance(op, q.Link):
        yield fx.Link(op.src, op.dst)
        return None
    if isinstance(op, q.Unlink):
        try:
            yield fx.Unlink(op.path)
        except FileNotFoundError:
            if not op.missing_ok:
                raise
        return None
    if isinstance(op, q.OpenFifoWrite):
        fd = yield fx.Open(op.path, "w", nonblock=True)
        try:
            yield fx.Write(fd, op.data)
        finally:
            yield fx.Close(fd)
        return None
    raise TypeError(f"{type(op).__name__} is performed by its program, not here")
