"""SimKernel's descriptor calls: pipes, files and FIFOs, sockets.

Each handler takes the calling process and its effect and returns the call's result, or
raises the `OSError` Linux would; one that can wait is a generator of SimPy events. Data
calls charge by kind (file, pipe or socket I/O, per KiB); fsyncs hold a disk; blocking
reads, writes, accepts and FIFO opens wait holding nothing. `DescriptorCalls` is mixed into
`SimKernel` and uses its filesystem, network, cost table and charging (`_charge`, `_settle`,
`_block`, `_disk`).
"""

from __future__ import annotations

import contextlib
import errno
import stat as S

from sim.kernel import effects as fx
from sim.kernel.memfs import Inode, fs_error
from sim.kernel.simchan import Channel
from sim.kernel.simfd import (
    Console,
    DirOpen,
    FileOpen,
    ListenOpen,
    OpenFile,
    PipeEnd,
    SockOpen,
)
from sim.kernel.simproc import Proc, Sim

MAX_FDS = 1024


class DescriptorCalls:
    """The handlers of the descriptor, file and socket calls, mixed into SimKernel."""

    def _fd(self, p: Proc, fd: int) -> OpenFile:
        try:
            return p.fds[fd]
        except KeyError:
            raise fs_error(errno.EBADF, str(fd)) from None

    def _install(self, p: Proc, obj: OpenFile, fd: int | None = None) -> int:
        """Put `obj` at `fd`, or at the lowest free descriptor as open(2) does."""
        if fd is None:
            fd = next(i for i in range(MAX_FDS + 1) if i not in p.fds)
            if fd == MAX_FDS:
                raise fs_error(errno.EMFILE, "open")
        obj.refs += 1
        p.fds[fd] = obj
        return fd

    def _release(self, obj: OpenFile) -> None:
        obj.refs -= 1
        if obj.refs == 0:
            obj.release()
            if obj.lock is not None:  # its flock goes with its last descriptor
                del self.locks[obj.lock]
                obj.lock = None

    def _path(self, p: Proc, path: str) -> str:
        return self.fs.abspath(path, p.cwd)

    # -- handlers: descriptors ----------------------------------------------------------

    def _pipe(self, p: Proc, e: fx.Pipe) -> tuple[int, int]:
        channel = Channel(self.env, self.costs.pipe_capacity)
        r = self._install(p, PipeEnd(channel, True, False))
        return r, self._install(p, PipeEnd(channel, False, True))

    def _dup2(self, p: Proc, e: fx.Dup2) -> int:
        obj = self._fd(p, e.old)
        if not 0 <= e.new < MAX_FDS:
            raise fs_error(errno.EBADF, str(e.new))
        if e.new != e.old:
            if e.new in p.fds:
                self._release(p.fds.pop(e.new))
            self._install(p, obj, e.new)
        return e.new

    def _close(self, p: Proc, e: fx.Close) -> None:
        self._fd(p, e.fd)
        self._release(p.fds.pop(e.fd))

    def _per_kib(self, n: int, cost: float) -> float:
        return n / 1024 * cost

    def _read(self, p: Proc, e: fx.Read) -> Sim:
        c, obj = self.costs, self._fd(p, e.fd)
        if isinstance(obj, DirOpen):
            raise fs_error(errno.EISDIR, str(e.fd))
        if isinstance(obj, ListenOpen):
            raise fs_error(errno.ENOTCONN, str(e.fd))
        if not obj.reads:
            raise fs_error(errno.EBADF, str(e.fd))
        if isinstance(obj, FileOpen):
            data = self.fs.read(obj.inode, obj.offset, e.size)
            obj.offset += len(data)
            if (
                hold := self._charge(p, c.file_io + self._per_kib(len(data), c.file_io_per_kib))
            ) is not None:
                yield hold
            return data
        if isinstance(obj, Console):
            data = bytes(obj.input[: e.size])  # type: ignore[index]
            del obj.input[: e.size]  # type: ignore[union-attr]
            if (hold := self._charge(p, c.pipe_io)) is not None:
                yield hold
            return data
        channel = obj.endpoint.rx if isinstance(obj, SockOpen) else obj.channel  # type: ignore[attr-defined]
        if (
            hold := self._charge(p, c.sock_io if isinstance(obj, SockOpen) else c.pipe_io)
        ) is not None:
            yield hold
        if e.timeout is not None:
            yield from self._block(p, obj.can_read, obj.sources(), e.timeout)
        if obj.nonblock and not channel.readable():
            raise fs_error(errno.EAGAIN, str(e.fd))
        if not channel.readable():
            yield from self._block(p, channel.readable, (channel,))
        data = channel.take(e.size)
        if (hold := self._charge(p, self._per_kib(len(data), c.pipe_io_per_kib))) is not None:
            yield hold
        return data

    def _write(self, p: Proc, e: fx.Write) -> Sim:
        c, obj, size = self.costs, self._fd(p, e.fd), len(e.data)
        if not obj.writes:
            raise fs_error(errno.EBADF, str(e.fd))
        if isinstance(obj, FileOpen):
            if (
                hold := self._charge(p, c.file_io + self._per_kib(size, c.file_io_per_kib))
            ) is not None:
                yield hold
            offset = len(obj.inode.data) if obj.append else obj.offset
            obj.offset = offset + self.fs.write(obj.inode, offset, e.data)
            return size
        if isinstance(obj, Console):
            if (hold := self._charge(p, c.pipe_io)) is not None:
                yield hold
            obj.output += e.data
            return size
        sock = isinstance(obj, SockOpen)
        channel = obj.endpoint.tx if sock else obj.channel  # type: ignore[attr-defined]
        base = c.sock_io if sock else c.pipe_io
        if (hold := self._charge(p, base + self._per_kib(size, c.pipe_io_per_kib))) is not None:
            yield hold
        view = memoryview(e.data)
        while view:
            if obj.nonblock:
                if not channel.writable():
                    raise fs_error(errno.EAGAIN, str(e.fd))
            elif not channel.writable():
                yield from self._block(p, channel.writable, (channel,), e.timeout)
            view = view[channel.put(view) :]
        return size

    def _select(self, p: Proc, e: fx.Select) -> Sim:
        reads = [(fd, self._fd(p, fd)) for fd in e.read]
        writes = [(fd, self._fd(p, fd)) for fd in e.write]

        def scan() -> tuple[list[int], list[int]]:
            readable = [fd for fd, o in reads if o.can_read()]
            return readable, [fd for fd, o in writes if o.can_write()]

        if p.pending:
            ready: tuple[list[int], list[int]] = ([], [])
        else:
            sources = [s for _, o in reads + writes for s in o.sources()]
            sources.append(p.signals)  # type: ignore[arg-type]
            woken = lambda: bool(p.pending or any(scan()))  # noqa: E731
            with contextlib.suppress(TimeoutError):
                yield from self._block(p, woken, sources, e.timeout)
            ready = scan()
        caught, p.pending = p.pending, []
        return ready[0], ready[1], caught

    # -- handlers: files ----------------------------------------------------------------

    def _open(self, p: Proc, e: fx.Open) -> Sim:
        path = self._path(p, e.path)
        reads, writes = e.mode in ("r", "rw") or e.mode not in ("w", "a"), e.mode != "r"
        try:
            node = self.fs.lookup(path)
        except FileNotFoundError:
            if not (e.create or e.exclusive):
                raise
            node = self.fs.create(path, e.perm, p.uid)
        else:
            if e.exclusive:
                raise fs_error(errno.EEXIST, path) from None
        if node.is_dir:
            if writes:
                raise fs_error(errno.EISDIR, path)
            return self._install(p, DirOpen(node))
        if node.kind == "fifo":
            return (yield from self._open_fifo(p, node, reads, writes, e.nonblock))
        if e.mode == "w":
            self.fs.truncate(node, 0)
        return self._install(p, FileOpen(node, reads, writes, e.mode == "a"))

    def _open_fifo(self, p: Proc, node: Inode, reads: bool, writes: bool, nonblock: bool) -> Sim:
        """FIFO opens as Linux: a nonblocking writer without a reader fails ENXIO; blocking
        opens wait for the other side; O_RDWR never waits."""
        channel = self.fifos.get(node.ino)
        if channel is None:
            channel = Channel(self.env, self.costs.pipe_capacity, readers=0, writers=0)
            self.fifos[node.ino] = channel
        if writes and not reads and nonblock and channel.readers == 0:
            raise fs_error(errno.ENXIO, f"fifo {node.ino}")
        end = PipeEnd(channel, reads, writes, channel.w_opens)
        end.nonblock = nonblock
        fd = self._install(p, end)  # installed first: a kill while waiting closes it
        if reads:
            channel.open_reader()
        if writes:
            channel.open_writer()
        if not nonblock and reads and not writes:
            yield from self._block(p, lambda: channel.w_opens != end.seen, (channel,))
        if not nonblock and writes and not reads:
            yield from self._block(p, lambda: channel.readers > 0, (channel,))
        return fd

    def _fsync(self, p: Proc, e: fx.Fsync) -> Sim:
        obj = self._fd(p, e.fd)
        if isinstance(obj, FileOpen):
            flush = obj.inode.dirty / self.costs.disk_bandwidth
            yield from self._disk(p, self.costs.fsync + flush)
        elif isinstance(obj, DirOpen):
            yield from self._disk(p, self.costs.fsync_dir)
        else:
            raise fs_error(errno.EINVAL, str(e.fd))
        self.fs.fsync(obj.inode)

    def _fsyncdir(self, p: Proc, e: fx.FsyncDir) -> Sim:
        node = self.fs.lookup(self._path(p, e.path))
        if not node.is_dir:
            raise fs_error(errno.ENOTDIR, e.path)
        yield from self._disk(p, self.costs.fsync_dir)
        self.fs.fsync(node)

    def _link(self, p: Proc, e: fx.Link) -> None:
        self.fs.link(self._path(p, e.src), self._path(p, e.dst))

    def _rename(self, p: Proc, e: fx.Rename) -> None:
        self.fs.rename(self._path(p, e.src), self._path(p, e.dst))

    def _unlink(self, p: Proc, e: fx.Unlink) -> None:
        self.fs.unlink(self._path(p, e.path))

    def _truncate(self, p: Proc, e: fx.Truncate) -> None:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, FileOpen) or not obj.writes:
            raise fs_error(errno.EINVAL, str(e.fd))
        self.fs.truncate(obj.inode, e.length)

    def _lock(self, p: Proc, e: fx.Lock) -> None:
        """flock(LOCK_EX|LOCK_NB): held by an open file until its last descriptor closes."""
        obj = self._fd(p, e.fd)
        key = obj.lock_key()
        holder = self.locks.get(key)
        if holder is not None and holder is not obj:
            raise fs_error(errno.EWOULDBLOCK, str(e.fd))
        self.locks[key] = obj
        obj.lock = key

    def _seek(self, p: Proc, e: fx.Seek) -> int:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, FileOpen | DirOpen):
            raise fs_error(errno.ESPIPE, str(e.fd))
        if e.offset < 0:
            raise fs_error(errno.EINVAL, str(e.fd))
        if isinstance(obj, FileOpen):
            obj.offset = e.offset
        return e.offset

    def _stat(self, p: Proc, e: fx.Stat) -> fx.StatResult:
        if e.fd is None:
            return self.fs.lookup(self._path(p, e.path)).stat()
        obj = self._fd(p, e.fd)
        if isinstance(obj, FileOpen | DirOpen):
            return obj.inode.stat()
        kind = {PipeEnd: S.S_IFIFO | 0o600, Console: S.S_IFCHR | 0o620}.get(
            type(obj), S.S_IFSOCK | 0o777
        )
        now = self.time()
        is_fifo = isinstance(obj, PipeEnd)
        return fx.StatResult(0, 0, kind, p.uid, now, now, 1, False, False, is_fifo)

    def _utime(self, p: Proc, e: fx.Utime) -> None:
        self.fs.utime(self._path(p, e.path), e.mtime)

    def _readdir(self, p: Proc, e: fx.Readdir) -> Sim:
        names = self.fs.readdir(self._path(p, e.path))
        if (hold := self._charge(p, len(names) * self.costs.readdir_per_entry)) is not None:
            yield hold
        return names

    def _mkdir(self, p: Proc, e: fx.Mkdir) -> None:
        self.fs.mkdir(self._path(p, e.path), e.perm, p.uid)

    def _mkfifo(self, p: Proc, e: fx.Mkfifo) -> None:
        self.fs.mkfifo(self._path(p, e.path), e.perm, p.uid)

    def _chdir(self, p: Proc, e: fx.Chdir) -> None:
        path = self._path(p, e.path)
        if not self.fs.lookup(path).is_dir:
            raise fs_error(errno.ENOTDIR, path)
        p.cwd = path

    # -- handlers: network --------------------------------------------------------------

    def _listen(self, p: Proc, e: fx.Listen) -> tuple[int, int]:
        listener = self.net.bind(self.host, e.host, e.port, e.backlog)
        return self._install(p, ListenOpen(listener)), listener.port

    def _accept(self, p: Proc, e: fx.Accept) -> Sim:
        obj = self._fd(p, e.fd)
        if not isinstance(obj, ListenOpen):
            raise fs_error(errno.EINVAL if isinstance(obj, SockOpen) else errno.ENOTSOCK, str(e.fd))
        listener = obj.listener
        yield from self._block(p, lambda: bool(listener.queue), (listener,))
        endpoint = listener.queue.popleft()
        listener.notify()
        return self._install(p, SockOpen(endpoint)), endpoint.remote

    def _connect(self, p: Proc, e: fx.Connect) -> Sim:
        yield from self._settle(p)
        p.state = "blocked"
        try:
            endpoint = yield from self.net.handshake(self.host, e.host, e.port, e.timeout)
        finally:
            p.state = "running"
        return self._install(p, SockOpen(endpoint))

    def _sockname(self, p: Proc, e: fx.Sockname) -> tuple[tuple[str, int], tuple[str, int]]:
        obj = self._fd(p, e.fd)
        if isinstance(obj, ListenOpen):
            raise fs_error(errno.ENOTCONN, str(e.fd))
        if not isinstance(obj, SockOpen):
            raise fs_error(errno.ENOTSOCK, str(e.fd))
        return obj.endpoint.local, obj.endpoint.remote

    def _note(self, p: Proc, e: fx.Note) -> None:
        return None
