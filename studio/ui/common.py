"""Small helpers every tab uses."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import gradio as gr

# Every file the tabs make (downloads, audio, the viewer's trace blobs) lies under this folder, which
# Gradio serves in place (serve_outputs_in_place): no second copy in Gradio's cache, no hashing of
# a trace's megabytes before the answer leaves.
OUTPUT_ROOT = Path(tempfile.gettempdir()) / "lstm-studio"


def serve_outputs_in_place() -> None:
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([OUTPUT_ROOT])


def output_dir() -> Path:
    """A fresh folder per request for downloads."""
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=OUTPUT_ROOT))


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


def endpoint_model(loaded_by_domain: dict, domain, model, needs: str | None = None):
    """(domain module, LoadedModel) an API call names ("" = the domain's first model); gr.Error
    with the choices otherwise. `needs`: a part of the contract the domain must offer."""
    by_name = {d.NAME: (d, models) for d, (models, _) in loaded_by_domain.items() if needs is None or hasattr(d, needs)}
    if domain not in by_name:
        raise gr.Error(f"Unknown domain {domain!r}; one of {', '.join(by_name)}.")
    module, models = by_name[domain]
    if not models:
        raise gr.Error(f"No {domain} model is loaded.")
    loaded = models.get(model) if isinstance(model, str) and model else next(iter(models.values()))
    if loaded is None:
        raise gr.Error(f"Unknown {domain} model {model!r}; one of {', '.join(models)}.")
    return module, loaded


def endpoint_input(module, loaded, text, file):
    """The sequence an API call gives: an uploaded file in the domain's format, or text for text."""
    if isinstance(file, str) and file:
        return module.read_input(file, loaded)
    if module.NAME == "text" and isinstance(text, str) and text:
        return text
    raise gr.Error("Give the input: text for the text domain, or a file in the domain's format.")
