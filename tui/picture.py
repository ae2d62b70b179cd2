"""qmail's big picture as a character canvas: where each box goes and how the lines run.

Theory of operation. The picture reads left to right as mail moves: injection (tcpserver,
qmail-smtpd, qmail-inject), qmail-queue, the queue, qmail-send with its helpers, the
spawners, the delivery programs, and where mail ends up. `PLACES` puts each program in a
column and row (a deliberate drawing, like qmail's own big picture); which boxes are joined
comes from `sim.arch.build_graph()`, reduced to pairs of neighbouring boxes. A line runs
from one box's side through the gap column to the other's; where lines meet, the cell's
character joins their directions (`┬`, `├`, …).

Nothing here knows about Textual or colours: each cell carries a role (`box`, `edge`,
`hot`, …) and an account, and the widget turns those into styles from its CSS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

QUEUE = "queue"
QUEUE_LINES = ("pid", "mess", "intd", "todo", "info", "local", "remote", "bounce")
N, E, S, W = 1, 2, 4, 8
JOINS = {N | S: "│", E | W: "─", S | E: "┌", S | W: "┐", N | E: "└", N | W: "┘",
         N | S | E: "├", N | S | W: "┤", E | W | S: "┬", E | W | N: "┴",
         N | E | S | W: "┼", N: "│", S: "│", E: "─", W: "─"}  # fmt: skip
ARROWS = {E: "▶", W: "◀", N: "▲", S: "▼"}
HEAT_RANK = {"edge": 0, "warm": 1, "hot": 2}


@dataclass(frozen=True, slots=True)
class Place:
    """A box of the picture: an architecture node at a column and row."""

    node: str
    col: int
    row: int
    short: str  # its label when the full name does not fit


PLACES: tuple[Place, ...] = (
    Place("tcpserver", 0, 0, "tcpserver"), Place("qmail-smtpd", 0, 1, "smtpd"),
    Place("qmail-inject", 0, 2, "inject"), Place("qmail-queue", 1, 1, "queue"),
    Place(QUEUE, 2, 0, "queue/"), Place("splogger", 3, 0, "splogger"),
    Place("qmail-send", 3, 1, "send"), Place("qmail-clean", 3, 2, "clean"),
    Place("qmail-lspawn", 4, 1, "lspawn"), Place("qmail-rspawn", 4, 2, "rspawn"),
    Place("qmail-getpw", 5, 0, "getpw"), Place("qmail-local", 5, 1, "local"),
    Place("qmail-remote", 5, 2, "remote"), Place("maildir", 6, 1, "Maildir"),
    Place("network", 6, 2, "network"),
)  # fmt: skip
PLACE = {p.node: p for p in PLACES}
LABELS = {"maildir": "Maildir", "network": "network", QUEUE: "queue/"}


def picture_node(node: str) -> tuple[str, str | None]:
    """An architecture node as a box of the picture: `queue/mess` is line `mess` of `queue`."""
    if node.startswith(QUEUE + "/"):
        line = node.split("/")[-1]
        return QUEUE, line if line in (*QUEUE_LINES, "trigger") else None
    return node, None


def links(edges: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs of boxes to join, left box first: neighbours in a row, column or gap."""
    pairs: dict[tuple[str, str], None] = {}
    for src, dst in edges:
        a, b = picture_node(src)[0], picture_node(dst)[0]
        if a not in PLACE or b not in PLACE or a == b:
            continue
        pa, pb = sorted((PLACE[a], PLACE[b]), key=lambda p: (p.col, p.row))
        same_col = pa.col == pb.col and abs(pa.row - pb.row) == 1
        if same_col or pb.col - pa.col == 1:
            pairs.setdefault((pa.node, pb.node), None)
    return list(pairs)


@dataclass(frozen=True, slots=True)
class Box:
    """Where a box landed: left column, top line, width, height."""

    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True, slots=True)
class Geometry:
    """Box positions for one canvas size, and whether labels are the short ones."""

    boxes: dict[str, Box]
    width: int
    height: int
    box_h: int
    short: bool


def label_of(node: str, short: bool) -> str:
    """A box's label: the program's name, or qmail's own short name where space is tight."""
    return PLACE[node].short if short else LABELS.get(node, node)


def geometry(width: int, tall: bool) -> Geometry:
    """Columns sized to their widest label, gaps sharing what is left (short labels if needed)."""
    box_h = 3 if tall else 2
    pitch = box_h + 1
    cols = max(p.col for p in PLACES) + 1
    for short in (False, True):
        widths = [0] * cols
        for p in PLACES:
            text = "bounce 999" if p.node == QUEUE else label_of(p.node, short)
            widths[p.col] = max(widths[p.col], len(text) + 2)
        spare = width - sum(widths)
        if spare >= 2 * (cols - 1) or short:
            break
    gap = max(1, spare // (cols - 1))
    lefts, x = [], max(0, (width - sum(widths) - gap * (cols - 1)) // 2)
    for w in widths:
        lefts.append(x)
        x += w + gap
    boxes = {}
    for p in PLACES:
        h = len(QUEUE_LINES) + 1 if p.node == QUEUE else box_h
        boxes[p.node] = Box(lefts[p.col], p.row * pitch, widths[p.col], h)
    height = max(b.y + b.h for b in boxes.values())
    return Geometry(boxes, width, height, box_h, short)


@dataclass(slots=True)
class Canvas:
    """A grid of characters, each with a role and an account for its style."""

    width: int
    height: int
    chars: list[list[str]] = field(default_factory=list)
    roles: list[list[tuple[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.chars = [[" "] * self.width for _ in range(self.height)]
        self.roles = [[("", "")] * self.width for _ in range(self.height)]

    def put(self, x: int, y: int, text: str, role: str, account: str = "") -> None:
        for i, char in enumerate(text):
            if 0 <= x + i < self.width and 0 <= y < self.height:
                self.chars[y][x + i] = char
                self.roles[y][x + i] = (role, account)

    def lines(self) -> list[str]:
        return ["".join(row) for row in self.chars]


Path = list[tuple[int, int, int]]  # (x, y, directions)


def port_y(box: Box, line: str | None) -> int | None:
    """The line of the queue box a lit edge points at: its directory, or the title (trigger)."""
    if line in QUEUE_LINES:
        return box.y + 1 + QUEUE_LINES.index(line)
    return box.y if line == "trigger" else None


def route(geo: Geometry, a: str, b: str, port: str | None = None) -> tuple[Path, int]:
    """The cells of the line from box a to box b, and the direction it enters b.

    A line to the queue box runs at the other box's height, or bends to `port`, the
    directory the edge is using now."""
    ba, bb = geo.boxes[a], geo.boxes[b]
    if PLACE[a].col == PLACE[b].col:  # one above the other: the gap line between them
        x = ba.x + ba.w // 2
        return [(x, y, N | S) for y in range(ba.y + ba.h, bb.y)], S
    ya = ba.y if a != QUEUE else port_y(ba, port) or bb.y
    yb = bb.y if b != QUEUE else port_y(bb, port) or ba.y
    x0, x1 = ba.x + ba.w, bb.x - 1
    mid = (x0 + x1) // 2
    if ya == yb:
        return [(x, ya, E | W) for x in range(x0, x1 + 1)], E
    down = yb > ya
    path: Path = [(x, ya, E | W) for x in range(x0, mid)]
    path.append((mid, ya, W | (S if down else N)))
    path += [(mid, y, N | S) for y in range(min(ya, yb) + 1, max(ya, yb))]
    path.append((mid, yb, E | (N if down else S)))
    path += [(x, yb, E | W) for x in range(mid + 1, x1 + 1)]
    return path, E


@dataclass(frozen=True, slots=True)
class ArchView:
    """What to show on the picture now, from the trace (see `tui.archview`)."""

    accounts: Mapping[str, str] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    active: frozenset[str] = frozenset()
    heat: Mapping[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    tokens: Mapping[str, int] = field(default_factory=dict)
    queue_counts: Mapping[str, int] = field(default_factory=dict)
    queue_heat: Mapping[str, str] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[tuple[str, str], str] = field(default_factory=dict)


def draw(geo: Geometry, pairs: list[tuple[str, str]], view: ArchView) -> Canvas:
    """The picture: lines first (joined where they meet), then boxes over their ends."""
    canvas = Canvas(geo.width, geo.height)
    cells: dict[tuple[int, int], list] = {}
    arrows: dict[tuple[int, int], tuple[str, str]] = {}
    for a, b in pairs:
        heat, forward = view.heat.get((a, b), ("edge", True))
        path, enters = route(geo, a, b, view.ports.get((a, b)))
        for x, y, dirs in path:
            cell = cells.setdefault((x, y), [0, "edge"])
            cell[0] |= dirs
            if HEAT_RANK[heat] > HEAT_RANK[cell[1]]:
                cell[1] = heat
        if heat != "edge" and path:
            x, y, _ = path[-1] if forward else path[0]
            arrows[(x, y)] = (ARROWS[enters if forward else {E: W, S: N}[enters]], heat)
    for (x, y), (dirs, heat) in cells.items():
        canvas.put(x, y, JOINS.get(dirs, "·"), heat)
    for (x, y), (arrow, heat) in arrows.items():
        canvas.put(x, y, arrow, heat)
    for node, box in geo.boxes.items():
        if node == QUEUE:
            _queue_box(canvas, box, view)
        else:
            _program_box(canvas, geo, node, box, view)
    return canvas


def _program_box(canvas: Canvas, geo: Geometry, node: str, box: Box, view: ArchView) -> None:
    account = view.accounts.get(node, "")
    role = "active" if node in view.active else "box" if node in view.seen else "idle"
    lines = [label_of(node, geo.short), account]
    if node in view.tokens:
        token = f"✉{view.tokens[node]}"
        token = token if len(token) <= box.w else "✉"
        if geo.box_h == 3:
            lines.append(token)
        else:
            lines[1] = token
    for i in range(box.h):
        text = lines[i] if i < len(lines) else ""
        canvas.put(box.x, box.y + i, text.center(box.w)[: box.w], role, account)


def _queue_box(canvas: Canvas, box: Box, view: ArchView) -> None:
    trigger = view.queue_heat.get("trigger")
    title = "queue/ ⚡" if trigger == "hot" else "queue/"
    canvas.put(box.x, box.y, title.center(box.w), "title", "qmailq")
    for i, name in enumerate(QUEUE_LINES, 1):
        count = view.queue_counts.get(name, 0)
        text = f" {name:<6}{count:>{box.w - 8}} " if count else f" {name:<{box.w - 2}} "
        heat = view.queue_heat.get(name)
        role = {"hot": "active", "warm": "box"}.get(heat or "", "box" if count else "idle")
        canvas.put(box.x, box.y + i, text[: box.w], role, view.owners.get(name, "qmailq"))
