"""The kernels' trace fields: looked up once per effect type, however many calls there are."""

from __future__ import annotations

import dataclasses

import pytest

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
