"""Screenshots of the app at 120x40 and 80x24, checked for what must be readable in them.

Set QMAILSIM_TUI_SHOTS=DIR to keep the SVGs for looking at them; by default they go to a
temporary directory. The trace is the hand-written one, so every run draws the same picture.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from tests.tui.events import MSG, delivery_story
from tui.app import QmailTui


def svg_text(svg: str) -> str:
    """The characters on screen, from Textual's SVG (one <text> per run of one style)."""
    runs = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return html.unescape("".join(runs)).replace("\xa0", " ")


@pytest.mark.parametrize(
    ("size", "must_show"),
    [
        ((120, 40), ["qmail-queue", "qmailq", "qmail-local", "alice", f"✉{MSG}", "accounts:",
                     "processes", "event log", "inspector", f"local/20/{MSG}"]),
        ((80, 24), ["smtpd", "qmaild", "lspawn", "local", f"local/20/{MSG}", "S5"]),
    ],
)  # fmt: skip
async def test_screenshot_shows_the_delivery_step(tmp_path: Path, size, must_show):
    app = QmailTui(delivery_story(), name="story.jsonl")
    async with app.run_test(size=size) as pilot:
        while not any("execs qmail-local" in line.text for line in app.player.state.log):
            app.player.step()
        app.refresh_views()
        await pilot.pause()
        svg = app.export_screenshot()
    keep = Path(os.environ.get("QMAILSIM_TUI_SHOTS") or tmp_path)
    keep.mkdir(parents=True, exist_ok=True)
    (keep / f"tui-{size[0]}x{size[1]}.svg").write_text(svg)
    shown = svg_text(svg)
    for words in must_show:
        assert words in shown, words
