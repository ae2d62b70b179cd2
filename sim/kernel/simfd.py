"""Open file descriptions: what a SimKernel descriptor refers to, as in POSIX.

A description is shared by `Dup2` and `Fork` (its `refs` count the descriptors) and released
at its last close: a pipe's last writer gives its reader end of file, a socket sends its FIN,
a listener stops listening. Each kind says whether a read or a write would not block
(`can_read`, `can_write`) and what to wait on for that to change (`sources`), which is all
`Select` needs.
"""

from __future__ import annotations

from sim.kernel.memfs import Inode
from sim.kernel.simchan import Channel, Endpoint, Listener
from sim.kernel.simwait import Waitable


class OpenFile:
    """An open file description: shared by dup2 and fork, released at its last close."""

    __slots__ = ("lock", "nonblock", "refs")
    reads = writes = False

    def __init__(self) -> None:
        self.refs = 0
        self.nonblock = False
        self.lock: object = None  # what its flock locks (see `lock_key`), while it holds one

    def lock_key(self) -> object:
        """What an flock through it locks: the file (inode, pipe, socket), not the descriptor."""
        for name in ("inode", "channel", "endpoint", "listener"):
            key = getattr(self, name, None)
            if key is not None:
                return key
        return self

    def release(self) -> None:
        """The last descriptor referring to it was closed."""

    def can_read(self) -> bool:
        return True

    def can_write(self) -> bool:
        return True

    def sources(self) -> tuple[Waitable, ...]:
        """What to wait on for a change in readiness."""
        return ()


class FileOpen(OpenFile):
    """A regular file, with its offset and access mode."""

    __slots__ = ("append", "inode", "offset", "reads", "writes")

    def __init__(self, inode: Inode, reads: bool, writes: bool, append: bool) -> None:
        super().__init__()
        self.inode, self.reads, self.writes, self.append = inode, reads, writes, append
        self.offset = 0


class DirOpen(OpenFile):
    """A directory opened for reading (to fsync it)."""

    __slots__ = ("inode",)

    def __init__(self, inode: Inode) -> None:
        super().__init__()
        self.inode = inode


class PipeEnd(OpenFile):
    """One or both ends of a pipe or FIFO; `seen` is the writer count at open (for HUP)."""

    __slots__ = ("channel", "reads", "seen", "writes")

    def __init__(self, channel: Channel, reads: bool, writes: bool, seen: int = 0) -> None:
        super().__init__()
        self.channel, self.reads, self.writes, self.seen = channel, reads, writes, seen

    def release(self) -> None:
        if self.reads:
            self.channel.close_reader()
        if self.writes:
            self.channel.close_writer()

    def can_read(self) -> bool:
        # Linux reports a hangup only once a writer has come and gone since this open.
        ch = self.channel
        return self.reads and (bool(ch.buf) or (ch.writers == 0 and ch.w_opens != self.seen))

    def can_write(self) -> bool:
        return self.writes and self.channel.writable()

    def sources(self) -> tuple[Waitable, ...]:
        return (self.channel,)


class SockOpen(OpenFile):
    """A connected TCP socket."""

    __slots__ = ("endpoint",)
    reads = writes = True

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.endpoint = endpoint

    def release(self) -> None:
        self.endpoint.close()

    def can_read(self) -> bool:
        return self.endpoint.rx.readable()

    def can_write(self) -> bool:
        return self.endpoint.tx.writable()

    def sources(self) -> tuple[Waitable, ...]:
        return (self.endpoint.rx, self.endpoint.tx)


class ListenOpen(OpenFile):
    """A listening socket."""

    __slots__ = ("listener",)

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self.listener = listener

    def release(self) -> None:
        self.listener.close()

    def can_read(self) -> bool:
        return bool(self.listener.queue)

    def can_write(self) -> bool:
        return False

    def sources(self) -> tuple[Waitable, ...]:
        return (self.listener,)


class Console(OpenFile):
    """A spawned program's terminal: reads take the given input (then end of file), writes
    are kept in a buffer. fd 0 is read-write as a tty is (qmail-send logs to fd 0)."""

    __slots__ = ("input", "output", "reads", "writes")

    def __init__(self, input: bytearray | None, output: bytearray) -> None:
        super().__init__()
        self.input, self.output = input, output
        self.reads, self.writes = input is not None, True
