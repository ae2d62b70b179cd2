"""The cost table: defaults with sources, overrides by name, clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from sim.kernel.costs import DURATIONS, Costs


def test_overrides_replace_named_costs_and_keep_the_rest():
    costs = Costs().with_overrides({"fsync": 0.008, "detail": "fast"})
    assert (costs.fsync, costs.fast, costs.fork) == (0.008, True, Costs().fork)


def test_an_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown key 'fsnyc' \(did you mean 'fsync'\?\)"):
        Costs().with_overrides({"fsnyc": 0.008})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("fork", -1.0, "fork must be a number >= 0"),
        ("detail", "slow", "detail must be one of"),
        ("net_bandwidth", 0.0, "net_bandwidth must be > 0"),
        ("pipe_capacity", 0, "pipe_capacity and socket_buffer must be >= 1"),
    ],
)
def test_bad_values_are_refused(key: str, value: object, message: str):
    with pytest.raises(ValueError, match=message):
        Costs().with_overrides({key: value})


def test_free_costs_zero_every_duration_but_keep_rates_and_sizes():
    free = Costs.free()
    assert all(getattr(free, name) == 0 for name in DURATIONS)
    assert free.net_bandwidth == Costs().net_bandwidth and free.connect_timeout > 0
    assert {"fsync", "fork", "net_latency"} <= set(DURATIONS)


def test_costs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Costs().fork = 1.0  # type: ignore[misc]
