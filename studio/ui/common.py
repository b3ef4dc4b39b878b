"""Small helpers every tab uses."""

from __future__ import annotations

import tempfile
from pathlib import Path


def output_dir() -> Path:
    """A fresh folder per request for downloads (Gradio serves files under the temp dir)."""
    return Path(tempfile.mkdtemp(prefix="lstm-studio-"))


def notes_markdown(notes: list[str]) -> str:
    return "\n".join(f"- {note}" for note in notes)


def clamp_int(value, low: int, high: int, default: int) -> int:
    """A number from a UI field as an int in [low, high]; blank or garbage gives `default`."""
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))
