"""Small sub-generators over the effects, like qmail's substdio and getln: `yield from` them."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from sim.kernel.effects import Effect, Read, Write

Call = Generator[Effect, Any, Any]


def write_all(fd: int, data: bytes) -> Call:
    """Write `data` to `fd` (kernels write all of it or raise)."""
    if data:
        yield Write(fd, data)


def read_all(fd: int, timeout: float | None = None) -> Call:
    """Read `fd` to end of file; returns the bytes."""
    chunks = []
    while chunk := (yield Read(fd, 65536, timeout)):
        chunks.append(chunk)
    return b"".join(chunks)


class Reader:
    """A buffered reader on one descriptor, for NUL- or LF-terminated records.

    Keeps what was read past a delimiter for the next call, as qmail's getln does.
    """

    def __init__(self, fd: int, size: int = 65536, timeout: float | None = None) -> None:
        self.fd = fd
        self.size = size
        self.timeout = timeout
        self.buffer = b""
        self.eof = False

    def fill(self) -> Call:
        """Read once more; returns the new bytes (b"" at end of file)."""
        chunk = yield Read(self.fd, self.size, self.timeout)
        if not chunk:
            self.eof = True
        self.buffer += chunk
        return chunk

    def read_until(self, delimiter: bytes, limit: int | None = None) -> Call:
        """Returns the next record including `delimiter`, or what is left (maybe b"") at EOF."""
        start = 0
        while (at := self.buffer.find(delimiter, start)) < 0:
            if self.eof or (limit is not None and len(self.buffer) > limit):
                record, self.buffer = self.buffer, b""
                return record
            start = max(0, len(self.buffer) - len(delimiter) + 1)
            yield from self.fill()
        end = at + len(delimiter)
        record, self.buffer = self.buffer[:end], self.buffer[end:]
        return record

    def read_exact(self, n: int) -> Call:
        """Returns exactly `n` bytes, or fewer at EOF."""
        while len(self.buffer) < n and not self.eof:
            yield from self.fill()
        record, self.buffer = self.buffer[:n], self.buffer[n:]
        return record

    def read_some(self) -> Call:
        """Returns what is buffered, or one read's worth (b"" at EOF)."""
        if not self.buffer and not self.eof:
            yield from self.fill()
        record, self.buffer = self.buffer, b""
        return record
