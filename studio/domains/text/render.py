"""Text rendering: the prompt and generated text, each character painted by one unit."""

from __future__ import annotations

from html import escape

from studio.domains.base import Generation, View
from studio.domains.text.codec import TokenText
from studio.viz import activation_colors, unit_values


def render_html(trace, layer: int, quantity: str, unit: int) -> str:
    """Each character painted by one unit's value after reading it (Karpathy 2015). Prompt
    characters are underlined; hovering a character shows the value."""
    values, vmin, vmax = unit_values(trace, layer, quantity, unit)
    labels = trace.labels[trace.shown_from :]
    prompt_end = trace.prompt_length - trace.shown_from
    spans = []
    for k, (ch, colour, value) in enumerate(zip(labels, activation_colors(values, vmin, vmax), values, strict=False)):
        kind = "ch prompt" if k < prompt_end else "ch"
        spans.append(f'<span class="{kind}" style="background:{colour}" title="{value:+.3f}">{escape(ch)}</span>')
    return (
        '<div class="lstm-text" style="font-family:monospace;white-space:pre-wrap;line-height:1.5;'
        'padding:8px;border:1px solid #ddd;border-radius:6px;max-height:32em;overflow:auto">'
        + "".join(spans)
        + "</div>"
    )


def render(generation: Generation, view: View) -> str:
    return render_html(generation.trace, view.layer, view.quantity, view.unit)


def sequence_of(generation: Generation) -> TokenText:
    """What `score` reads to give this generation's trace again: every token the model read (a fresh
    start's implicit line break included), with the window it was sampled with (score re-reads it so)."""
    return TokenText(generation.trace.labels, getattr(generation.settings, "window", 0))


def track(generation: Generation) -> dict:
    """The viewer's strip for text: the characters themselves (the trace's labels)."""
    return {"kind": "labels"}


def write_files(generation: Generation, folder) -> dict:
    """The downloads of one generation: {label: path}."""
    path = folder / "generated.txt"
    path.write_text(generation.result.prompt + generation.result.text, encoding="utf-8")
    return {"text": path}
