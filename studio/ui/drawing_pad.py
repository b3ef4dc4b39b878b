"""A drawing pad in the page: write a word with a mouse, a pen or a finger (pointer events, with
the time of every point), undo, clear, type what was written, download the strokes as JSON.
A gr.HTML component drawn in the browser (drawing_pad.js): its value is
{"strokes": [[[x, y, t], ...], ...], "text": "..."} (CSS pixels, y down, milliseconds), the same
{"strokes", "text"} the handwriting JSON importer reads.

    pad = drawing_pad("handwriting-pad")   # in a layout; pad is an input of any event
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
PAD_JS = (HERE / "drawing_pad.js").read_text(encoding="utf-8")
PAD_CSS = (HERE / "drawing_pad.css").read_text(encoding="utf-8")

TEMPLATE = """
<div class="dp-root">
  <canvas class="dp-canvas" aria-label="drawing pad: write here"></canvas>
  <div class="dp-bar">
    <button class="dp-undo" type="button">Undo</button>
    <button class="dp-clear" type="button">Clear</button>
    <button class="dp-download" type="button">Download JSON</button>
    <span class="dp-status">empty</span>
  </div>
  <input class="dp-text" type="text" placeholder="What you wrote on the pad (e.g. hello)" aria-label="What you wrote on the pad">
</div>
"""


def drawing_pad(elem_id: str) -> gr.HTML:
    """The pad (a factory: Gradio components are never subclassed here)."""
    return gr.HTML(None, html_template=TEMPLATE, css_template=PAD_CSS, js_on_load=PAD_JS, elem_id=elem_id,
                   apply_default_css=False)
