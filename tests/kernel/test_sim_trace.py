"""The kernels' trace: fields looked up once per effect type, events written as JSON lines."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.kernel import effects as fx
from sim.kernel import trace


def test_call_fields_looks_up_an_effects_fields_once_per_type(monkeypatch: pytest.MonkeyPatch):
    looked_up: list[type] = []
    real = dataclasses.fields

    def counting(obj):
        looked_up.append(obj if isinstance(obj, type) else type(obj))
        return real(obj)

    monkeypatch.setattr(trace.dataclasses, "fields", counting)
    for n in range(100):
        fields = trace.call_fields(fx.Write(1, b"x" * n), n)
        assert (fields["kind"], fields["fd"], fields["n"]) == ("write", 1, n)
    for _ in range(100):
        assert trace.call_fields(fx.Stat("/f"))["path"] == "/f"
    assert looked_up.count(fx.Write) <= 1 and looked_up.count(fx.Stat) <= 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_an_event_is_written_as_json_dumps_would_write_it(event: dict) -> None:
    line = trace.encode(event)
    expected = json.dumps(event, ensure_ascii=True, separators=(",", ":"))
    if len(expected) <= trace.MAX_LINE:
        assert line == expected.encode("ascii") + b"\n"
    assert line.endswith(b"\n") and b"\n" not in line[:-1]


def test_a_value_json_cannot_write_is_a_type_error_not_a_crash_of_the_encoder() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        trace.encode({"kind": "x", "bad": object()})
