"""What the architecture picture shows at this point of the trace: a pure function of state.

An edge is *hot* in the step that used it and *warm* for `WARM` steps after, so the eye can
follow a message hop by hop; a box is *active* when its program acted in this step, and
carries the id of the message it is handling (`✉2214550`) as the token that moves along.
"""

from __future__ import annotations

from functools import cache

import networkx as nx

from sim.arch import build_graph
from tui.picture import PLACES, QUEUE, QUEUE_LINES, ArchView, links, picture_node
from tui.state import TraceState

WARM = 3  # steps an edge keeps glowing after its use
RESOURCES = ("maildir", "network")  # boxes that are not programs: lit by the edges to them


@cache
def graph() -> nx.MultiDiGraph:
    """qmail's architecture (built once: it never changes while the UI runs)."""
    return build_graph()


@cache
def pairs() -> list[tuple[str, str]]:
    """The lines of the picture, from the architecture's edges."""
    return links((u, v) for u, v in graph().edges())


def heat_of(used: int, now: int) -> str:
    """`hot` if used in step `now`, `warm` for a few steps after, else plain `edge`."""
    if used >= now:
        return "hot"
    return "warm" if used >= now - WARM else "edge"


def arch_view(state: TraceState) -> ArchView:
    """The picture's dynamic part: accounts, lit lines, tokens, queue counts."""
    g, now, drawn = graph(), state.step, set(pairs())
    accounts = {p.node: str(g.nodes[p.node].get("user", "")) for p in PLACES if p.node in g}
    for prog, (_, uid, _) in state.programs.items():
        if prog in accounts:
            accounts[prog] = uid
    if "qmail-local" in state.programs:
        accounts["maildir"] = accounts["qmail-local"]  # the user qmail-local delivers as
    accounts["network"] = ""
    seen = {prog for prog in state.programs if prog in accounts}
    active = {prog for prog, (step, _, _) in state.programs.items() if step >= now}
    tokens = {prog: msg for prog, (step, _, msg) in state.programs.items()
              if step >= now and msg is not None and prog in accounts}  # fmt: skip
    heat: dict[tuple[str, str], tuple[str, bool]] = {}
    queue_heat: dict[str, str] = {}
    ports: dict[tuple[str, str], str] = {}
    rank = {"edge": 0, "warm": 1, "hot": 2}
    for (src, dst, _), (used, msg) in state.edges.items():
        level = heat_of(used, now)
        (a, a_line), (b, b_line) = picture_node(src), picture_node(dst)
        for node in (a, b):
            if node in RESOURCES:
                seen.add(node)
                if level == "hot":
                    active.add(node)
                    if msg is not None and node == b:
                        tokens[node] = msg
        line = a_line or b_line
        if line and rank[level] > rank[queue_heat.get(line, "edge")]:
            queue_heat[line] = level
        pair, forward = ((a, b), True) if (a, b) in drawn else ((b, a), False)
        if pair in drawn and rank[level] > rank[heat.get(pair, ("edge", True))[0]]:
            heat[pair] = (level, forward)
        if pair in drawn and line and level == "hot":
            ports[pair] = line
    counts = {line: 0 for line in QUEUE_LINES}
    for file in state.files.values():
        counts[file.dir] = counts.get(file.dir, 0) + 1
    owners = {line: str(g.nodes[f"{QUEUE}/{line}"]["owner"]) for line in QUEUE_LINES}
    return ArchView(
        accounts=accounts, seen=frozenset(seen), active=frozenset(active), heat=heat,
        tokens=tokens, queue_counts=counts, queue_heat=queue_heat, owners=owners, ports=ports,
    )  # fmt: skip
