"""The trace: one JSON-lines event vocabulary for the live MTA and the model.

Schema (version `SCHEMA`), one JSON object per line:

| field  | meaning                                                                    |
| ------ | -------------------------------------------------------------------------- |
| `v`    | schema version (only on the first line, the header event `kind: "trace"`) |
| `t`    | seconds: wall clock (live) or virtual time (model)                         |
| `host` | the qmail host (its `control/me`)                                          |
| `pid`, `ppid` | process ids                                                         |
| `uid`  | the account qmail would run this as: `qmaild`, `qmailq`, `root`, a user    |
| `prog` | the program: `qmail-smtpd`, `qmail-queue`, …                               |
| `kind` | a system call (`fork`, `exec`, `exit`, `pipe`, `read`, `write`, `open`,    |
|        | `fsync`, `link`, `rename`, `unlink`, `connect`, `accept`, …) or a protocol |
|        | step a program noted (`smtp`, `queue`, `deliver`, `bounce`, `defer`, …)    |
| `msg`  | the queue id where there is one                                            |
| `why`  | what qmail decided and why, where it decided something                     |
| `err`  | the errno name when a call failed (`ENOENT`, …)                            |

plus the call's own fields (`fd`, `path`, `n`, `data`, `child`, `status`, …). Byte strings are
shown as text with `\\xNN` escapes and cut to `PREVIEW` bytes, so one event stays one short
line: the live MTA's processes write events to one pipe, and a line under PIPE_BUF is written
atomically even when many processes write at once.
"""

from __future__ import annotations

import dataclasses
import errno as errno_mod
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sim.kernel import effects as fx

SCHEMA = 1
PREVIEW = 160
MAX_LINE = 3800  # below PIPE_BUF (4096): one write, one line, never interleaved

# Calls too frequent or too dull to show a learner.
QUIET: frozenset[type[fx.Effect]] = frozenset({fx.Time, fx.Getpid, fx.Select, fx.Seek})

# Calls traced even in SimKernel's "fast" detail: process life, protocol steps, calls that wait,
# and the calls that make, name or remove files (and the chdirs their relative paths lean on):
# a reader of the trace folds a message's INTERNALS state from its queue files.
ALWAYS: frozenset[type[fx.Effect]] = frozenset(
    {
        fx.Note, fx.Fork, fx.Exec, fx.Exit, fx.Wait, fx.Sleep, fx.Select, fx.Kill,
        fx.Read, fx.Write, fx.Fsync, fx.FsyncDir, fx.Listen, fx.Accept, fx.Connect,
        fx.Open, fx.Link, fx.Rename, fx.Unlink, fx.Chdir,
    }
)  # fmt: skip


def preview(data: bytes, limit: int = PREVIEW) -> str:
    """Bytes as readable text: printable ASCII as is, the rest as escapes; cut at `limit`."""
    cut = data[:limit]
    text = cut.decode("latin-1").encode("unicode_escape").decode("ascii")
    return text + ("…" if len(data) > limit else "")


@functools.cache
def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a dataclass type, looked up once per type (tracing is hot)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _plain(value: Any) -> Any:
    """A JSON-friendly form of an effect field or a call's result."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value  # the most common, so looked at first
    if isinstance(value, bytes):
        return preview(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in field_names(type(value))}
    return repr(value)


# Event fields every event has; a call's argument of the same name is renamed.
RESERVED = ("t", "host", "pid", "ppid", "uid", "prog")
NOTE_RESERVED = frozenset({*RESERVED, "kind", "why", "msg"})  # a Note's own
_RENAME = {"prog": "program", "pid": "target", "uid": "to_uid", "user": "to_user"}


def _field_name(name: str) -> str:
    return _RENAME.get(name, name + "_") if name in RESERVED or name in _RENAME else name


@functools.cache
def _layout(cls: type[fx.Effect]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """An effect type's event kind and (field, event key) pairs; environments are left out
    (they are long; the exec's argv says what matters)."""
    keys = tuple((name, _field_name(name)) for name in field_names(cls) if name != "env")
    return cls.__name__.lower(), keys


def call_fields(effect: fx.Effect, result: Any = None, error: OSError | None = None) -> dict:
    """The event fields of one system call: its kind, arguments, and result or errno."""
    kind, keys = _layout(type(effect))
    fields: dict[str, Any] = {"kind": kind}
    if isinstance(effect, fx.Note):
        fields["kind"] = effect.kind
        fields.update(
            {k + "_" if k in NOTE_RESERVED else k: _plain(v) for k, v in effect.fields.items()}
        )
        if effect.why:
            fields["why"] = effect.why
        if effect.msg is not None:
            fields["msg"] = effect.msg
        return fields
    for name, key in keys:
        value = getattr(effect, name)
        if value is None:
            if name == "timeout":
                fields[key] = None
        elif isinstance(value, bytes):
            fields["n"] = len(value)
            fields["data"] = preview(value)
        elif not callable(value):
            fields[key] = _plain(value)
    if error is not None:
        fields["err"] = errno_mod.errorcode.get(error.errno or 0, type(error).__name__)
    elif isinstance(effect, fx.Read) and isinstance(result, bytes):
        fields["n"] = len(result)
        fields["data"] = preview(result)
    elif result is not None and not isinstance(effect, (fx.Write, fx.Stat)):
        fields["result"] = _plain(result)
    return fields


_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_C_ENCODE = getattr(json.encoder, "c_make_encoder", None)


def _make_encode() -> Callable[[Any], str]:
    """One encoder for every event. `JSONEncoder.encode` builds its C encoder anew on every
    call, a third of the time of a short event; CPython's C encoder, made once with the
    same options, writes the same text. Elsewhere, the encoder itself."""
    if _C_ENCODE is None:
        return _ENCODER.encode
    chunks = _C_ENCODE(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )  # fmt: skip

    def encode(event: Any) -> str:
        return "".join(chunks(event, 0))

    return encode


_ENCODE = _make_encode()


def encode(event: Mapping[str, Any]) -> bytes:
    """One event as one JSON line, short enough for an atomic pipe write."""
    line = _ENCODE(event)
    if len(line) > MAX_LINE:
        slim = {k: v for k, v in event.items() if not isinstance(v, (str, list, dict))}
        slim.update({k: event[k] for k in ("kind", "prog", "uid", "host") if k in event})
        slim["cut"] = True
        line = _ENCODE(slim)
    return line.encode("ascii") + b"\n"


def header(host: str, t: float, source: str) -> dict[str, Any]:
    """The first event of every trace: the schema version and where it came from."""
    return {"v": SCHEMA, "t": t, "host": host, "kind": "trace", "source": source}


def read_events(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """Parse trace lines, skipping blank ones; a malformed line raises ValueError naming it."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"trace line {number}: not JSON: {exc.msg}") from None


def errno_name(code: int) -> str:
    """ENOENT for 2: how the trace names a failed call's errno."""
    return errno_mod.errorcode.get(code, str(code))
