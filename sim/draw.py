"""Draws the architecture graph as qmail's big picture, for a slide.

Theory of operation. Positions are a hand-made table, one column per step of a message's
way (injection, qmail-queue, the queue, qmail-send, the spawners, the delivery agents, the
mailbox, retrieval), so the picture is the same every time and never a spring-layout
hairball. Colour is the account a program runs as (resources: the account owning them);
shaded boxes around neighbouring programs of one account are the trust boundaries; the
queue directory, which only group qmail may enter, is a dashed box. Edges between the same
two nodes are drawn as one line per channel (fork/exec, pipe, network, file access), bent
apart when there are several. Only matplotlib's object API is used, so no backend is chosen
globally; the file's extension (png or svg) picks the format.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import networkx as nx
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

UID_COLORS = {
    "root": "#D55E00",
    "qmaild": "#E69F00",
    "qmailq": "#CC79A7",
    "qmails": "#0072B2",
    "qmailr": "#56B4E9",
    "qmailp": "#F0E442",
    "qmaill": "#999999",
    "alias": "#8C6D31",
    "user": "#009E73",
}  # fmt: skip  (Okabe-Ito: readable for colour-blind viewers)
NEUTRAL = "#BBBBBB"
# kind: (colour, line style, width)
EDGE_STYLES = {"pipe": ("#111111", "-", 2.2), "fork-exec": ("#666666", "-", 1.1),
               "net": ("#333333", (0, (6, 2)), 1.8), "write": ("#8A8A8A", "-", 1.0),
               "read": ("#8A8A8A", ":", 1.2), "link": ("#8A8A8A", "--", 1.0),
               "unlink": ("#A03030", "-.", 1.0)}  # fmt: skip
FILE_KINDS = ("write", "link", "unlink", "read")  # a file channel is drawn as its first kind

POSITIONS = {
    "qmail": {
        "smtp-socket": (-1.3, 5.0), "tcprules": (0.4, 6.6), "tcpserver": (0.4, 5.0),
        "qmail-smtpd": (2.2, 5.0), "sendmail": (0.4, 2.6), "qmail-inject": (2.2, 2.6),
        "control": (2.2, 7.9), "qmail-queue": (4.2, 5.0),
        "queue/info": (6.4, 7.4), "queue/local": (7.6, 7.4), "queue/remote": (8.8, 7.4),
        "queue/bounce": (10.0, 7.4), "queue/lock/sendmutex": (11.6, 7.4),
        "queue/lock/trigger": (7.6, 5.0), "qmail-send": (11.6, 5.0),
        "queue/pid": (6.0, 2.6), "queue/intd": (7.2, 2.6), "queue/todo": (8.4, 2.6),
        "queue/mess": (9.6, 2.6), "qmail-clean": (10.4, 0.9), "qmail-start": (12.4, 0.9),
        "splogger": (14.4, 0.9), "log": (16.2, 0.9),
        "qmail-lspawn": (14.6, 6.6), "users": (14.6, 8.2), "qmail-getpw": (16.8, 8.2),
        "passwd": (19.0, 8.2), "qmail-local": (17.0, 6.6), "alias": (16.2, 5.0),
        "dotqmail": (17.8, 5.0), "maildir": (19.0, 6.6), "home": (19.2, 5.0),
        "qmail-rspawn": (14.6, 3.4), "qmail-remote": (17.0, 3.4), "network": (19.0, 3.4),
        "queue/lock/tcpto": (15.8, 2.0),
        "qmail-pop3d": (21.2, 6.6), "checkpassword": (21.2, 5.2), "qmail-popup": (21.2, 3.8),
        "tcpserver-pop3": (21.2, 2.4), "pop3-socket": (23.0, 4.5),
    },
}  # fmt: skip
# The monolith: the same queue and control on the left, the rest in a fan around the daemon.
POSITIONS["monolith"] = {
    **{n: p for n, p in POSITIONS["qmail"].items() if n.startswith("queue/") or n == "control"},
    "smtp-socket": (12.2, 7.8), "mta": (12.2, 5.0), "sendmail": (7.9, 0.6),
    "users": (15.0, 8.6), "passwd": (16.5, 7.5), "maildir": (17.2, 6.2), "dotqmail": (17.4, 4.9),
    "alias": (17.2, 3.6), "network": (16.5, 2.3), "log": (15.0, 1.1),
    "forward-program": (20.0, 5.6),
}  # fmt: skip
# Edges left out of the picture, each with the footnote that says so; bends for a few lines.
HIDDEN = {
    ("qmail-send", "qmail-queue"): "qmail-send runs qmail-queue for bounces",
    ("qmail-local", "qmail-queue"): "qmail-local runs qmail-queue to forward",
    ("queue/mess", "qmail-local"): "qmail-local and qmail-remote read the message on fd 0, "
    "opened by their spawner",
    ("queue/mess", "qmail-remote"): "",
    ("home", "qmail-getpw"): "qmail-getpw stats the home directory of each candidate user",
    ("alias", "qmail-getpw"): "",
}
SUMMARIZED = ("control",)  # drawn without lines; its readers are named under it
OUTSIDE_QUEUE_BOX = ("queue/lock/tcpto",)  # drawn near its users, labelled with its path
BENDS = {("qmail-start", "qmail-lspawn"): -0.25}
SUBTITLE = (
    "Colour: the account a program runs as, or that owns a file.  Shaded boxes: trust "
    "boundaries, one uid each.  Arrows point the way data flows."
)
PROGRAM_SIZE, RESOURCE_SIZE = (1.6, 0.72), (1.08, 0.6)
FONT = {"title": 20, "subtitle": 10.5, "program": 12, "resource": 10, "sub": 7, "edge": 7.5,
        "region": 8.5, "note": 9, "legend": 9.5}  # fmt: skip
INCH_PER_UNIT = 0.95


def draw(graph: nx.MultiDiGraph, out_path: str | Path) -> Path:
    """Write the picture to `out_path` (.png or .svg) and return the path."""
    out = Path(out_path)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"cannot draw {out.name}: the picture is .png or .svg")
    positions = POSITIONS[graph.graph.get("variant", "qmail")]
    unplaced = [n for n in graph if graph.degree(n) and n not in positions]
    if unplaced:
        raise ValueError(f"no position in the picture for {', '.join(unplaced)}")
    shown = [n for n in graph if graph.degree(n)]
    xs, ys = zip(*(positions[n] for n in shown), strict=True)
    width, height = max(xs) - min(xs) + 2.0, max(ys) - min(ys) + 3.6
    fig = Figure(figsize=(width * INCH_PER_UNIT, height * INCH_PER_UNIT))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 2.1, max(ys) + 1.3)
    ax.set_aspect("equal")
    ax.axis("off")
    _regions(ax, graph, positions, shown)
    patches = {n: _node(ax, graph.nodes[n], positions[n]) for n in shown}
    _edges(ax, graph, patches, positions)
    _texts(ax, graph, positions, (min(xs) - 0.8, min(ys), max(ys)))
    _legend(ax, graph, shown)
    with rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable, editable
        fig.savefig(out, format=fmt, dpi=150, facecolor="white")
    return out


def _color(data: dict) -> str:
    account = data["user"] if data["kind"] == "program" else data.get("owner", "")
    return UID_COLORS.get(account, NEUTRAL)


def _tint(color: str, amount: float, dark: float = 0.0) -> tuple[float, float, float]:
    """The colour mixed with white (0 = white, 1 = the colour), then darkened by `dark`."""
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    return tuple((1 - amount * (1 - c)) * (1 - dark) for c in rgb)  # type: ignore[return-value]


def _texts(ax, graph: nx.MultiDiGraph, positions: dict, frame: tuple) -> None:
    """Title and subtitle, the readers of summarized nodes, and the footnote of hidden edges."""
    left, bottom, top = frame
    variant = graph.graph.get("variant")
    title = "qmail 1.03" if variant == "qmail" else "a sendmail-like monolith"
    ax.text(left, top + 1.15, f"{title}: programs, accounts and channels",
            fontsize=FONT["title"], fontweight="bold", va="top")  # fmt: skip
    ax.text(left, top + 0.55, SUBTITLE, fontsize=FONT["subtitle"], va="top")
    for node in SUMMARIZED:
        if graph.degree(node):
            readers = ", ".join(sorted({v for _, v in graph.out_edges(node)}))
            x, y = positions[node]
            ax.text(x, y - 0.42, f"read by {readers}", ha="center", va="top",
                    fontsize=FONT["sub"], color="#555555")  # fmt: skip
    notes = [text for (u, v), text in HIDDEN.items() if text and graph.has_edge(u, v)]
    if notes:
        ax.text(left, bottom - 0.85, "Not drawn: " + "; ".join(notes) + ".",
                fontsize=FONT["note"], color="#555555", va="bottom")  # fmt: skip


def _sub(data: dict) -> str:
    """The second line: account and lifetime of a program, owner and mode of a resource."""
    if data["kind"] == "program":
        return f"{data['user']} · {data['lifetime']}"
    mode = f" {data['mode']:04o}" if data.get("mode") is not None else ""
    return (data["owner"] + mode).strip()


def _text_width(chars: int, points: float) -> float:
    """About how wide `chars` characters of this font size are, in layout units."""
    return chars * 0.6 * points / 72 / INCH_PER_UNIT


def _title(data: dict) -> str:
    if data["kind"] == "resource" and data.get("path") in OUTSIDE_QUEUE_BOX:
        return data["path"]
    return data["label"]


def _node(ax, data: dict, xy: tuple[float, float]) -> FancyBboxPatch:
    """One node: programs as rounded boxes, resources as square ones; returns the patch."""
    program = data["kind"] == "program"
    title, sub = _title(data), _sub(data)
    lines = title.split("\n")
    size = FONT["program" if program else "resource"] - 2 * (len(lines) > 1)
    line_height = size / 72 / INCH_PER_UNIT * 1.2
    w, h = PROGRAM_SIZE if program else RESOURCE_SIZE
    h += line_height * (len(lines) - 1)
    w = max(w, _text_width(max(map(len, lines)), size) + 0.2, _text_width(len(sub), FONT["sub"]))
    color = _color(data)
    style = "round,pad=0.02,rounding_size=0.18" if program else "square,pad=0.02"
    if data.get("rtype") in ("socket", "network", "syslog"):
        style = "round,pad=0.02,rounding_size=0.28"
    patch = FancyBboxPatch(
        (xy[0] - w / 2, xy[1] - h / 2),
        w,
        h,
        boxstyle=style,
        zorder=3,
        facecolor=_tint(color, 0.45) if program else "white",
        edgecolor=color,
        linewidth=2.2 if program else 1.4,
        linestyle="-" if program else (0, (3, 1)),
    )
    ax.add_patch(patch)
    top, bottom = xy[1] + h / 2, xy[1] - h / 2
    weight = "bold" if program else "normal"
    title_y = top - 0.12 - line_height * len(lines) / 2
    ax.text(
        xy[0],
        title_y,
        title,
        ha="center",
        va="center",
        fontsize=size,
        fontweight=weight,
        zorder=4,
        linespacing=1.0,
    )
    ax.text(
        xy[0],
        bottom + 0.15,
        sub,
        ha="center",
        va="center",
        fontsize=FONT["sub"],
        zorder=4,
        color="#222222" if program else "#555555",
    )
    if data.get("setuid"):  # the badge: this binary changes the account it runs as
        badge = {"boxstyle": "round,pad=0.2", "facecolor": "#A01010", "edgecolor": "none"}
        ax.text(
            xy[0] + w / 2,
            top,
            f"setuid {data['setuid_to']}",
            ha="center",
            va="center",
            fontsize=FONT["sub"],
            color="white",
            fontweight="bold",
            zorder=5,
            bbox=badge,
        )
    return patch


def _regions(ax, graph: nx.MultiDiGraph, positions: dict, shown: list[str]) -> None:
    """Shaded boxes around neighbouring programs of one account, and the queue's dashed box."""
    queue = [positions[n] for n in shown if n.startswith("queue/") and n not in OUTSIDE_QUEUE_BOX]
    if queue:
        qx, qy = zip(*queue, strict=True)
        q = graph.graph["queue_dir"]
        box = FancyBboxPatch(
            (min(qx) - 0.85, min(qy) - 0.6),
            max(qx) - min(qx) + 1.7,
            max(qy) - min(qy) + 1.25,
            boxstyle="round,pad=0,rounding_size=0.2",
            facecolor="#F4F4F4",
            edgecolor="#777777",
            linestyle="--",
            linewidth=1.2,
            zorder=0,
        )
        ax.add_patch(box)
        who = f"group {q['group']}" if q["mode"] & 0o050 else q["owner"]
        ax.text(
            min(qx) - 0.75,
            max(qy) + 0.5,
            f"{q['path']}/  {q['owner']}:{q['group']} {q['mode']:04o}: only {who} may enter",
            fontsize=FONT["region"],
            color="#555555",
            va="bottom",
        )
    for account, members in _clusters(graph, positions, shown):
        px, py = zip(*(positions[n] for n in members), strict=True)
        color = UID_COLORS.get(account, NEUTRAL)
        x0, y0 = min(px) - PROGRAM_SIZE[0] / 2 - 0.15, min(py) - PROGRAM_SIZE[1] / 2 - 0.15
        w = max(px) - min(px) + PROGRAM_SIZE[0] + 0.3
        h = max(py) - min(py) + PROGRAM_SIZE[1] + 0.55
        ax.add_patch(
            FancyBboxPatch(
                (x0, y0),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.15",
                facecolor=_tint(color, 0.16),
                edgecolor=_tint(color, 0.7),
                linewidth=1.0,
                zorder=1,
            )
        )
        ax.text(
            x0 + 0.08,
            y0 + h - 0.05,
            f"uid {account}",
            fontsize=FONT["region"],
            va="top",
            color=_tint(color, 1.0, dark=0.35),
            fontweight="bold",
            zorder=2,
        )


def _clusters(graph: nx.MultiDiGraph, positions: dict, shown: list[str], reach: float = 2.5):
    """Programs of one account within `reach` of each other, chained: [(account, nodes)]."""
    out = []
    by_account = defaultdict(list)
    for n in shown:
        if graph.nodes[n]["kind"] == "program":
            by_account[graph.nodes[n]["user"]].append(n)
    for account, nodes in by_account.items():
        near = nx.Graph()
        near.add_nodes_from(nodes)
        for a in nodes:
            for b in nodes:
                (ax_, ay), (bx, by) = positions[a], positions[b]
                if a < b and abs(ax_ - bx) <= reach and abs(ay - by) <= reach * 0.6:
                    near.add_edge(a, b)
        out += [(account, sorted(c)) for c in nx.connected_components(near)]
    return sorted(out, key=lambda item: (item[0], item[1]))


def _channels(graph: nx.MultiDiGraph, shown: set[str]) -> dict:
    """(a, b) unordered -> {channel: (src, dst, kinds, label)}, one line per channel."""
    pairs: dict = defaultdict(dict)
    for u, v, data in graph.edges(data=True):
        if u not in shown or v not in shown or (u, v) in HIDDEN or {u, v} & set(SUMMARIZED):
            continue
        kind = data["kind"]
        channel = kind if kind in ("pipe", "fork-exec", "net") else "file"
        key = tuple(sorted((u, v)))
        name = (channel, (u, v)) if channel == "pipe" else (channel,)
        src, dst, kinds, label = pairs[key].get(name, (u, v, set(), ""))
        if channel == "file" and kind == "read" and graph.nodes[u]["kind"] == "program":
            src, dst = v, u
        pairs[key][name] = (src, dst, kinds | {kind}, label or data.get("label", ""))
    return pairs


def _edges(ax, graph: nx.MultiDiGraph, patches: dict, centers: dict) -> None:
    labelled: set[str] = set()
    for (a, _b), channels in sorted(_channels(graph, set(patches)).items()):
        order = sorted(channels, key=lambda c: ("pipe", "fork-exec", "net", "file").index(c[0]))
        bends = {1: [0.0], 2: [0.18, -0.18], 3: [0.0, 0.25, -0.25]}.get(len(order))
        bends = bends or [0.12 * i for i in range(len(order))]
        for name, bend in zip(order, bends, strict=True):
            src, dst, kinds, label = channels[name]
            kind = next((k for k in (*FILE_KINDS, name[0]) if k in kinds), name[0])
            both = "read" in kinds and len(kinds) > 1
            rad = bend if src == a else -bend
            rad = BENDS.get((src, dst), rad)
            color, style, lw = EDGE_STYLES[kind]
            arrow = FancyArrowPatch(
                patchA=patches[src],
                patchB=patches[dst],
                posA=centers[src],
                posB=centers[dst],
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="<|-|>" if both else "-|>",
                mutation_scale=11,
                color=color,
                linestyle=style,
                linewidth=lw,
                shrinkA=1,
                shrinkB=1,
                zorder=2,
            )
            ax.add_patch(arrow)
            if label and label not in labelled:
                labelled.add(label)
                _label(ax, centers[src], centers[dst], rad, label)


def _label(ax, p: tuple, q: tuple, rad: float, text: str) -> None:
    """An edge label at the middle of the (bent) line, on a white ground."""
    mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
    dx, dy = q[0] - p[0], q[1] - p[1]
    mx, my = mx + rad * dy / 2, my - rad * dx / 2
    ax.text(
        mx,
        my,
        text,
        fontsize=FONT["edge"],
        ha="center",
        va="center",
        zorder=5,
        bbox={
            "boxstyle": "round,pad=0.15",
            "facecolor": "white",
            "edgecolor": "none",
            "alpha": 0.9,
        },
    )


def _legend(ax, graph: nx.MultiDiGraph, shown: list[str]) -> None:
    accounts = []
    for n in shown:
        data = graph.nodes[n]
        account = data["user"] if data["kind"] == "program" else data.get("owner")
        if account in UID_COLORS and account not in accounts:
            accounts.append(account)
    uid_handles = [
        Patch(facecolor=_tint(UID_COLORS[a], 0.45), edgecolor=UID_COLORS[a], label=a)
        for a in sorted(accounts)
    ]
    kinds = sorted({d["kind"] for _, _, d in graph.edges(data=True)}, key=list(EDGE_STYLES).index)
    edge_handles = [
        Line2D(
            [],
            [],
            color=EDGE_STYLES[k][0],
            linestyle=EDGE_STYLES[k][1],
            linewidth=EDGE_STYLES[k][2],
            label=k,
        )
        for k in kinds
    ]
    shapes = [
        Patch(facecolor="#DDDDDD", edgecolor="#444444", label="program (rounded)"),
        Patch(
            facecolor="white", edgecolor="#444444", linestyle="--", label="file, directory, socket"
        ),
    ]
    first = ax.legend(
        handles=uid_handles,
        title="account (uid)",
        loc="lower left",
        ncol=5,
        fontsize=FONT["legend"],
        title_fontsize=FONT["legend"],
        frameon=False,
    )
    ax.add_artist(first)
    ax.legend(
        handles=edge_handles + shapes,
        title="edges and shapes",
        loc="lower right",
        ncol=5,
        fontsize=FONT["legend"],
        title_fontsize=FONT["legend"],
        frameon=False,
    )
