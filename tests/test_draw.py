"""The picture: a PNG or SVG of the architecture, laid out by hand, and `qmailsim graph`."""

from __future__ import annotations

import argparse

import pytest

from sim import graph_cli
from sim.arch import VARIANTS, build_graph
from sim.draw import POSITIONS, draw
from sim.qmail.errors import BadInput

PROGRAMS = ("qmail-smtpd", "qmail-queue", "qmail-send", "qmail-lspawn", "qmail-local",
            "qmail-remote", "qmail-clean", "qmail-pop3d")  # fmt: skip


@pytest.fixture(scope="module")
def svg(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("draw") / "arch.svg"
    assert draw(build_graph(), out) == out
    return out.read_text()


def test_png_is_written_and_not_trivial(tmp_path):
    out = draw(build_graph(), tmp_path / "arch.png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 100_000


def test_svg_names_the_programs_as_text(svg):
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for program in PROGRAMS:
        assert f">{program}</text>" in svg or f">{program}\n" in svg


def test_svg_shows_accounts_modes_and_the_setuid_badge(svg):
    for text in ("uid qmaild", "uid qmailq", "setuid qmailq", "qmailq 0750", "fd 0 msg, fd 1 env"):
        assert text in svg


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_connected_node_has_a_hand_made_position(variant):
    graph = build_graph(variant)
    assert [n for n in graph if graph.degree(n) and n not in POSITIONS[variant]] == []


def test_a_node_without_a_position_is_an_error_not_a_silent_gap(tmp_path):
    graph = build_graph()
    graph.add_node("qmail-todo", kind="program", program="qmail-todo", user="qmails")
    graph.add_edge("qmail-send", "qmail-todo", kind="pipe", label="", detail="")
    with pytest.raises(ValueError, match="no position in the picture for qmail-todo"):
        draw(graph, tmp_path / "arch.png")


def test_the_monolith_is_drawn_too(tmp_path):
    out = draw(build_graph("monolith"), tmp_path / "mono.svg")
    text = out.read_text()
    assert "a sendmail-like monolith" in text and "setuid root" in text


def test_only_png_and_svg(tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        draw(build_graph(), tmp_path / "arch.pdf")


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qmailsim graph")
    graph_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults():
    args = cli()
    assert (str(args.out), args.compromise, args.variant) == ("arch.png", None, "qmail")


def test_cli_draws_to_out(tmp_path, capsys):
    out = tmp_path / "arch.svg"
    assert graph_cli.run(cli("--out", str(out))) == 0
    assert out.stat().st_size > 10_000 and str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "problem"),
    [("arch.gif", "a .png or an .svg file"), ("missing/arch.png", "there is no directory")],
)
def test_cli_refuses_what_it_cannot_draw(tmp_path, name, problem):
    with pytest.raises(BadInput, match=problem):
        graph_cli.run(cli("--out", str(tmp_path / name)))
