"""tui.picture and tui.archview: the big picture's boxes, lines and lights, as plain text."""

from __future__ import annotations

import pytest

from tests.tui.events import MSG, Story, delivery_story
from tui.archview import arch_view, heat_of, pairs
from tui.picture import PLACES, QUEUE, ArchView, draw, geometry, links, picture_node, route
from tui.state import TraceState


def test_the_picture_joins_neighbours_along_the_architectures_edges():
    drawn = set(pairs())
    assert ("qmail-smtpd", "qmail-queue") in drawn
    assert ("qmail-queue", QUEUE) in drawn
    assert ("qmail-send", "qmail-lspawn") in drawn
    assert ("qmail-local", "maildir") in drawn
    assert ("qmail-send", "qmail-queue") not in drawn  # bounces jump the queue: not drawn


def test_links_skip_nodes_not_in_the_picture():
    assert links([("control", "qmail-smtpd"), ("queue/todo", "qmail-send")]) == [
        (QUEUE, "qmail-send")
    ]


@pytest.mark.parametrize(
    ("node", "box"),
    [("queue/mess", (QUEUE, "mess")), ("queue/lock/trigger", (QUEUE, "trigger")),
     ("queue/lock/tcpto", (QUEUE, None)), ("qmail-send", ("qmail-send", None))],
)  # fmt: skip
def test_picture_node(node, box):
    assert picture_node(node) == box


@pytest.mark.parametrize(("width", "tall"), [(116, True), (76, False), (76, True)])
def test_boxes_fit_and_do_not_overlap(width, tall):
    geo = geometry(width, tall)
    cells: set[tuple[int, int]] = set()
    for box in geo.boxes.values():
        assert box.x >= 0 and box.x + box.w <= width
        mine = {(x, y) for x in range(box.x, box.x + box.w) for y in range(box.y, box.y + box.h)}
        assert not mine & cells
        cells |= mine
    assert geo.short == (width < 100)


def test_every_label_is_drawn():
    geo = geometry(116, True)
    text = "\n".join(draw(geo, pairs(), ArchView()).lines())
    for place in PLACES:
        assert (place.short if geo.short else place.node.replace("maildir", "Maildir")) in text


def test_lines_join_where_they_meet():
    geo = geometry(116, True)
    lines = draw(geo, pairs(), ArchView()).lines()
    smtpd, queue = geo.boxes["qmail-smtpd"], geo.boxes["qmail-queue"]
    row = lines[smtpd.y][smtpd.x + smtpd.w : queue.x]
    assert set(row) == {"─", "┬"}  # qmail-inject's line joins from below
    assert row.count("┬") == 1


def test_a_hot_line_ends_in_an_arrow_the_way_data_flows():
    geo = geometry(116, True)
    forward = ArchView(heat={("qmail-smtpd", "qmail-queue"): ("hot", True)})
    backward = ArchView(heat={("qmail-send", "qmail-lspawn"): ("hot", False)})
    path, _ = route(geo, "qmail-smtpd", "qmail-queue")
    x, y, _ = path[-1]
    assert draw(geo, pairs(), forward).lines()[y][x] == "▶"
    path, _ = route(geo, "qmail-send", "qmail-lspawn")
    x, y, _ = path[0]
    assert draw(geo, pairs(), backward).lines()[y][x] == "◀"


def test_a_line_to_the_queue_bends_to_the_directory_in_use():
    geo = geometry(116, True)
    path, _ = route(geo, "qmail-queue", QUEUE, "pid")
    assert path[-1][1] == geo.boxes[QUEUE].y + 1


@pytest.mark.parametrize(("used", "now", "heat"), [(5, 5, "hot"), (3, 5, "warm"), (1, 5, "edge")])
def test_heat_fades_over_steps(used, now, heat):
    assert heat_of(used, now) == heat


def test_view_of_a_delivery_in_progress():
    state = TraceState()
    for event in delivery_story():
        state.apply(event)
        if event["kind"] == "link" and "Maildir" in event.get("src", ""):
            break
    view = arch_view(state)
    assert view.heat[("qmail-local", "maildir")] == ("hot", True)
    assert view.tokens["qmail-local"] == MSG
    assert view.accounts["qmail-local"] == "alice"
    assert view.accounts["qmail-lspawn"] == "root"  # its forked child became alice, not it
    assert view.queue_counts["mess"] == 1
    assert "qmail-local" in view.active


def test_view_of_an_empty_trace_shows_the_graphs_accounts():
    view = arch_view(TraceState.fold(Story().events))
    assert view.accounts["qmail-queue"] == "qmailq"
    assert view.accounts["qmail-send"] == "qmails"
    assert not view.seen and not view.heat
