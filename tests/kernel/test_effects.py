"""The effect vocabulary: one class per call, built fast and still frozen."""

from __future__ import annotations

import dataclasses

import pytest

from sim.kernel import effects as fx
from sim.qmail import maildir as md
from sim.qmail import queue as q


def test_every_call_is_listed_once_and_is_the_class_programs_use():
    names = [cls.__name__ for cls in fx.ALL_EFFECTS]
    assert len(names) == len(set(names)) == 37
    assert all(getattr(fx, cls.__name__) is cls for cls in fx.ALL_EFFECTS)


QUICK = [*fx.ALL_EFFECTS, fx.StatResult, *q.QueueOp.__args__, *md.Op.__args__]


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_quick_init_builds_what_the_dataclass_would(cls):
    fields = dataclasses.fields(cls)
    values = {f.name: f"value of {f.name}" for f in fields}
    made = cls(*values.values())
    assert {f.name: getattr(made, f.name) for f in fields} == values
    assert made == cls(**values) and hash(made) == hash(cls(**values))
    required = {f.name: values[f.name] for f in fields if _required(f)}
    defaults = cls(**required)
    for f in fields:
        if f.default is not dataclasses.MISSING:
            assert getattr(defaults, f.name) == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(defaults, f.name) == f.default_factory()
    if fields:  # (a field-less one trips over a dataclasses bug of slots with frozen)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, fields[0].name, None)
    with pytest.raises(TypeError):
        cls(*values.values(), "one too many")


def test_a_default_factory_gives_each_effect_its_own_value():
    one, two = fx.Note("a"), fx.Note("b")
    assert one.fields == two.fields == {} and one.fields is not two.fields


def test_quick_init_refuses_a_class_that_validates_itself():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            assert self.n > 0

    with pytest.raises(TypeError, match="__post_init__"):
        fx.quick_init(Checked)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        (dict(frozen=False, slots=True), "not a frozen, slotted"),
        (dict(frozen=True, slots=False), "not a frozen, slotted"),
        (dict(frozen=True, slots=True, kw_only=True), "keyword-only"),
    ],
)
def test_quick_init_refuses_what_it_would_build_wrongly(kind, why):
    @dataclasses.dataclass(**kind)
    class Odd:
        n: int

    with pytest.raises(TypeError, match=why):
        fx.quick_init(Odd)


def test_quick_init_keeps_an_init_of_the_classs_own():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Own:
        n: int

        def __init__(self, text: str) -> None:
            object.__setattr__(self, "n", int(text))

    with pytest.raises(TypeError, match="__init__ of its own"):
        fx.quick_init(Own)
    assert fx.Read.__init__.__module__ == "sim.kernel.effects"
