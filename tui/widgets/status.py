"""The status line: playing or paused, speed, where the cursor is, following or not."""

from __future__ import annotations

from textual.widgets import Static

from tui.player import Player


def status_text(player: Player, name: str, total_steps: int) -> str:
    """One line: `▶ playing 4/s · step 12/40 · event 57/200 · +0.052 s · trace.jsonl`."""
    mode = "⟳ following" if player.following else "▶ playing" if player.playing else "❚❚ paused"
    speed = f"{player.speed:g}/s"
    state = player.state
    parts = [
        f"{mode} {speed}",
        f"step {state.step}/{total_steps}",
        f"event {player.position}/{len(player.events)}",
        f"+{state.t:.3f} s",
        name,
    ]
    return " · ".join(parts)


class StatusLine(Static):
    """Where we are in the trace (the app updates it after every move)."""
