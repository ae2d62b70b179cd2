"""`qmailsim graph`: draw the architecture, or say what one compromised program can reach.

Glue only: the graph is `sim.arch`'s, the picture `sim.draw`'s, the analysis
`sim.privilege`'s. Mistakes (an unknown program, a file that is neither .png nor .svg) raise
`BadInput`, which the command line prints as one line, never a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sim.arch import VARIANTS, build_graph
from sim.qmail.errors import BadInput

FORMATS = (".png", ".svg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `qmailsim graph`."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("arch.png"),
        metavar="FILE",
        help="where to draw the picture: FILE.png or FILE.svg (default: arch.png)",
    )
    parser.add_argument(
        "--compromise",
        metavar="PROGRAM",
        help="print what an attacker who owns PROGRAM can reach, instead of drawing",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="qmail",
        help="qmail's architecture, or the sendmail-like monolith it replaced",
    )


def run(args: argparse.Namespace) -> int:
    """Draw the graph or print the compromise table; returns the exit status."""
    graph = build_graph(args.variant)
    if args.compromise:
        from sim.privilege import analyze, format_table

        print(format_table(analyze(graph, args.compromise)), end="")
        return 0
    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise BadInput(f"cannot draw {out}: the picture is a .png or an .svg file")
    if not out.parent.is_dir():
        raise BadInput(f"cannot draw {out}: there is no directory {out.parent}")
    from sim.draw import draw

    print(f"qmailsim: drew the {args.variant} architecture in {draw(graph, out)}")
    return 0
