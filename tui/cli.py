"""`qmailsim tui [TRACE]`: open a trace (a file, or a qmail home's log/trace.jsonl).

Mistakes (no such file, not a trace) raise `BadInput` before the screen is taken over, so the
command line prints one line and no traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tui.player import DEFAULT_SPEED, SPEEDS
from tui.source import load_trace, trace_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `qmailsim tui`."""
    parser.add_argument(
        "trace",
        nargs="?",
        type=Path,
        default=Path("."),
        metavar="TRACE",
        help="a trace file, or a qmail home (its log/trace.jsonl); default: the current directory",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="start at the end and follow the trace as it grows (a running MTA)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=SPEEDS[DEFAULT_SPEED],
        metavar="STEPS",
        help=f"replay speed in steps per second (one of {', '.join(f'{s:g}' for s in SPEEDS)})",
    )


def run(args: argparse.Namespace) -> int:
    """Load the trace, then run the app until the user quits."""
    from tui.app import app_for  # Textual loads only when the UI really starts

    path = trace_path(args.trace)
    events, tail = load_trace(path)
    speed = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - args.speed))
    app = app_for(path, events, tail, follow=args.follow, speed_index=speed)
    app.run()
    return 0
