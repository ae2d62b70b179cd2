"""`sim.run`: run a scenario in the model from Python (notebooks, scripts, tests).

    import sim
    result = sim.run()                                  # the embedded default lesson
    result = sim.run("scenarios/x.toml", seed=7, until=3600, detail="fast",
                     costs={"fsync": 0.008}, trace="run.jsonl")
    result.summary["messages"]                          # the counts
    result.tables()["deliveries"]                       # a DataFrame with pandas, else rows

Overrides: `seed`, `until` (seconds of virtual time; `duration` is a synonym), `detail`
(teaching or fast), `costs` (a dict of cost-table entries), `trace` (a file to write the
trace to, as JSON lines), `keep_trace` (False: no `.trace` list, for long runs) and
`progress` (called with (now, end, tally) as the run advances, `tally` a dict
of messages `sent` and `delivered` so far). The module itself is callable, so
`sim.run(...)` works whether or not `sim.run` has been imported as a module.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sim.kernel.costs import DETAILS, Costs, finite
from sim.qmail.errors import BadInput
from sim.scenario import Scenario, load_scenario

OVERRIDES = ("seed", "until", "duration", "detail", "costs", "trace", "keep_trace", "progress")


@dataclass(slots=True)
class Result:
    """A finished run: `summary` (dict), `trace` (event dicts, header first), `tables()`."""

    scenario: Scenario
    summary: dict[str, Any]
    trace: list[dict[str, Any]]
    world: Any = field(repr=False)
    make_rows: Callable[[], dict[str, list[dict[str, Any]]]] = field(repr=False)
    made: dict[str, list[dict[str, Any]]] | None = field(repr=False, default=None)

    @property
    def rows(self) -> dict[str, list[dict[str, Any]]]:
        """The tables as lists of dicts, made on first use (a long run has many rows)."""
        if self.made is None:
            self.made = self.make_rows()
        return self.made

    def tables(self) -> dict[str, Any]:
        """messages, deliveries, processes: pandas DataFrames if pandas is installed, else
        lists of dicts (one per row)."""
        try:
            import pandas
        except ImportError:
            return {name: list(rows) for name, rows in self.rows.items()}
        return {name: pandas.DataFrame(rows) for name, rows in self.rows.items()}


def scenario_of(scenario: str | Path | Scenario | None) -> Scenario:
    """A Scenario from None (the embedded default), a path, or a Scenario."""
    if scenario is None or isinstance(scenario, str | Path):
        return load_scenario(scenario)
    if isinstance(scenario, Scenario):
        return scenario
    raise BadInput(f"sim.run: a scenario is None, a path or a Scenario, not {scenario!r}")


def run(scenario: str | Path | Scenario | None = None, **overrides: Any) -> Result:
    """Run `scenario` with `overrides` (see the module docstring); returns the Result."""
    from sim.kernel import trace as tr
    from sim.model.summary import result_of
    from sim.model.world import World

    _check(overrides)
    spec = scenario_of(scenario)
    until = overrides.get("until", overrides.get("duration"))
    seed, costs = overrides.get("seed"), overrides.get("costs")
    kept: list[dict[str, Any]] = []
    keep = overrides.get("keep_trace", True)
    out: IO[bytes] | None = None
    if overrides.get("trace"):
        try:
            out = open(overrides["trace"], "wb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise BadInput(
                f"cannot write the trace to {overrides['trace']}: {exc.strerror}"
            ) from None
    header = tr.header(spec.hosts[0].name, 0.0, "model")
    sink = _sink(kept if keep else None, out)
    try:
        if sink is not None:
            sink(header)
        world = World(
            spec,
            seed=seed,
            duration=until,
            detail=overrides.get("detail"),
            costs=costs,
            trace=sink,
        )
        world.run(overrides.get("progress"))
    finally:
        if out is not None:
            out.close()
    summary, make_rows = result_of(world)
    world.close()
    return Result(spec, summary, kept, world, make_rows)


def _check(overrides: Mapping[str, Any]) -> None:
    """BadInput naming the override that is wrong, before anything runs: a mistake in an
    override is not the scenario file's, and an infinite `until` would never end."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise BadInput(f"sim.run: unknown override {unknown[0]!r} (known: {', '.join(OVERRIDES)})")
    for name in ("until", "duration"):
        value = overrides.get(name)
        if value is not None and not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and finite(value)
            and value > 0
        ):
            raise BadInput(
                f"sim.run: {name} must be a number of seconds > 0 and finite, not {value!r}"
            )
    seed, detail = overrides.get("seed"), overrides.get("detail")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadInput(f"sim.run: seed must be an integer, not {seed!r}")
    if detail is not None and detail not in DETAILS:
        raise BadInput(f"sim.run: detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    costs = overrides.get("costs")
    if costs is not None and not isinstance(costs, Mapping):
        raise BadInput(f"sim.run: costs must be a dict of cost-table entries, not {costs!r}")
    try:
        Costs().with_overrides(costs or {})
    except ValueError as exc:
        raise BadInput(f"sim.run: {exc}") from None
    trace = overrides.get("trace")
    if trace and not isinstance(trace, str | os.PathLike):
        raise BadInput(f"sim.run: trace must be a file name, not {trace!r}")
    if not isinstance(overrides.get("keep_trace", True), bool):
        raise BadInput(
            f"sim.run: keep_trace must be True or False, not {overrides['keep_trace']!r}"
        )
    progress = overrides.get("progress")
    if progress is not None and not callable(progress):
        raise BadInput(
            f"sim.run: progress must be a function, called as progress(now, end, tally), "
            f"not {progress!r}"
        )


def _sink(kept: list[dict] | None, out: IO[bytes] | None) -> Callable[[dict], None] | None:
    """Where the trace goes: a list, a file, both, or nowhere (None: the kernels skip it)."""
    from sim.kernel.trace import encode

    if out is None:
        return kept.append if kept is not None else None

    def both(event: dict) -> None:
        out.write(encode(event))
        if kept is not None:
            kept.append(event)

    return both


class _CallableModule(types.ModuleType):
    """`sim.run(...)` calls `run` even once the submodule shadows the package's attribute."""

    def __call__(self, *args: Any, **kwargs: Any) -> Result:
        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
