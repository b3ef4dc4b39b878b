"""Small helpers every tab uses."""

from __future__ import annotations

import base64
import io
import math
import tempfile
from pathlib import Path

import numpy as np
from gradio.components.plot import PlotData
from PIL import Image


def output_dir() -> Path:
    """A fresh folder per request for downloads (Gradio serves files under the temp dir)."""
    return Path(tempfile.mkdtemp(prefix="lstm-studio-"))


def notes_markdown(notes: list[str]) -> str:
    return "\n".join(f"- {note}" for note in notes)


def number_or(value, default: float) -> float:
    """A number from a UI field or an API call as a finite float; blank, garbage, NaN or an
    infinity gives `default` (the domains then clamp the range, with a note)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def clamp_int(value, low: int, high: int, default: int) -> int:
    """A number from a UI field as an int in [low, high]; blank, garbage or NaN gives `default`,
    an infinity the nearer end."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if math.isnan(number):
        return default
    return max(low, min(high, int(number))) if math.isfinite(number) else (high if number > 0 else low)


def png_plot(rgba: np.ndarray) -> PlotData:
    """A picture already drawn (an RGBA array, e.g. from viz.SaturationPainter) as a gr.Plot value."""
    with io.BytesIO() as out:
        Image.fromarray(rgba).save(out, format="PNG", compress_level=1)  # fast; a bit larger than level 6
        return PlotData(type="matplotlib", plot="data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii"))
