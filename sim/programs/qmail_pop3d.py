"""qmail-pop3d: serve one user's Maildir over POP3 (qmail-pop3d(8)), as that user.

`qmail-pop3d Maildir`, exec'd by checkpassword in the user's home with the client on fds 0
and 1. It removes stale tmp/ files, lists new/ and cur/ with each file's size and mtime,
and lets `sim.qmail.pop3d.Pop3d` answer; RETR/TOP read the message file, QUIT unlinks the
deleted messages and moves the rest from new/ to cur/, as qmail-pop3d does.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.kernel import effects as fx
from sim.kernel.io import Call, read_all, write_all
from sim.programs.pop3io import converse
from sim.qmail.pop3d import (
    MaildirEntry,
    NeedMessage,
    Pop3d,
    Quit,
    RenameMessage,
    pop3d_error,
    stale_tmp_files,
)


def main(argv: list[str], env: Mapping[str, str]) -> fx.Program:
    """Serve the Maildir named by argv[1]; exit 0."""
    try:
        yield fx.Chdir(argv[1] if len(argv) > 1 else "Maildir")
    except OSError:
        yield from write_all(1, pop3d_error("nomaildir"))
        return 0
    now = int((yield fx.Time()))
    try:
        yield from sweep_tmp(now)
        entries = yield from listing()
    except OSError:
        yield from write_all(1, pop3d_error("scan"))
        return 0
    pop3d = Pop3d(entries, now)
    yield from write_all(1, pop3d.greeting())

    def act(output: NeedMessage | Quit) -> Call:
        if isinstance(output, NeedMessage):
            yield from write_all(1, pop3d.message((yield from read_message(output.path))))
        else:
            failed = yield from apply_quit(output)
            yield from write_all(1, pop3d.quit_reply(failed))

    return (yield from converse(pop3d, act))


def sweep_tmp(now: int) -> Call:
    """Unlink tmp/ files not read for 36 hours, as qmail-pop3d does first."""
    found = []
    for name in (yield fx.Readdir("tmp")):
        try:
            found.append((name, int((yield fx.Stat(f"tmp/{name}")).atime)))
        except OSError:
            continue
    for op in stale_tmp_files(found, now):
        try:
            yield fx.Unlink(op.path)
        except OSError:
            continue


def listing() -> Call:
    """new/ then cur/, each file with its size and mtime."""
    entries = []
    for subdir in ("new", "cur"):
        for name in (yield fx.Readdir(subdir)):
            try:
                st = yield fx.Stat(f"{subdir}/{name}")
            except OSError:
                continue
            entries.append(MaildirEntry(name, subdir, st.size, int(st.mtime)))
    return entries


def read_message(path: str) -> Call:
    """The message's bytes, or None if it cannot be opened."""
    try:
        fd = yield fx.Open(path)
    except OSError:
        return None
    try:
        return (yield from read_all(fd))
    finally:
        yield fx.Close(fd)


def apply_quit(quit: Quit) -> Call:
    """Perform QUIT's unlinks and renames in order; the number of failed unlinks."""
    failed = 0
    for op in quit.operations:
        try:
            if isinstance(op, RenameMessage):
                yield fx.Rename(op.source, op.target)
            else:
                yield fx.Unlink(op.path)
        except OSError:
            failed += 0 if isinstance(op, RenameMessage) else 1
    return failed
