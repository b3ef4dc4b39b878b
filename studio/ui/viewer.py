"""The trace viewer: a gr.HTML component drawn in the browser (viewer.js) from a compact payload
(payload.py), and its companion that turns the viewer's clicks, brushes and export requests into
Gradio events. Layer, quantity, unit, row order, zoom and scroll never reach the server.

    viewer = trace_viewer("text")          # in a tab's layout
    viewer.html                            # the output to return viewer_value(trace, track) to
    viewer.events.select(fn, viewer.events, outputs)   # fn gets {"kind": "step"|"unit"|"range"|"export", ...}

Other panels steer it with DOM events naming it ({viewer: id, ...}): 'lstm-viewer-goto' {step, end?}
moves the cursor (and marks steps..end), 'lstm-viewer-unit' {layer, unit, quantity?} shows a unit,
'lstm-viewer-overlay' {values, title} paints the output by other values (the saliency). A viewer
announces its cursor and hover as 'lstm-viewer-cursor' {step, hover?}: a linked viewer follows.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import matplotlib

from studio.trace import Trace
from studio.ui.common import OUTPUT_ROOT, serve_outputs_in_place
from studio.ui.payload import trace_payload

HERE = Path(__file__).resolve().parent
VIEWER_JS = (HERE / "viewer.js").read_text(encoding="utf-8")
VIEWER_CSS = (HERE / "viewer.css").read_text(encoding="utf-8")
# Payload blobs are served from here as static files: binary, no base64 inflation, no JSON to parse.
# (Inlined as a base64 data URL in the JSON instead, a trace reaches the page later: Gradio's front
# end handles a large value slowly; docs/benchmarks.md, Text tab and the trace viewer.)
BLOB_DIR = OUTPUT_ROOT / "viewer"

TEMPLATE = """
<div class="lv-root" tabindex="0" role="group"
     aria-label="Trace viewer. Left and right arrows select the step, up and down the unit, plus adds it to Intervene">
  <div class="lv-bar">
    <label>Layer <select class="lv-layer"></select></label>
    <label>Quantity <select class="lv-quantity"></select></label>
    <label>Unit <input class="lv-unit" type="number" min="0" value="0"></label>
    <label>Rows by <select class="lv-order"><option value="variance">variance</option>
      <option value="saturation">saturation</option><option value="index">index</option></select></label>
    <button class="lv-zoom-in" title="zoom in">+</button><button class="lv-zoom-out" title="zoom out">−</button>
    <button class="lv-fit" title="show every step">fit</button>
    <button class="lv-export" data-format="png">PNG</button><button class="lv-export" data-format="svg">SVG</button>
  </div>
  <div class="lv-status"></div>
  <canvas class="lv-lines"></canvas>
  <div class="lv-heat-wrap"><canvas class="lv-heat"></canvas><canvas class="lv-overlay"></canvas></div>
  <input class="lv-scroll" type="range" min="0" max="0" value="0" step="1" aria-label="Scroll through the steps">
  <div class="lv-legend"></div>
  <canvas class="lv-strip"></canvas>
  <canvas class="lv-pen"></canvas>
  <div class="lv-text"></div>
  <div class="lv-sat-legend"></div>
  <canvas class="lv-sat"></canvas>
  <div class="lv-tip"></div>
  <span class="lv-loaded" hidden></span>
</div>
"""

# A viewer event becomes a Gradio "select" on the companion (its value: the event's fields).
EVENTS_JS = """
document.addEventListener('lstm-viewer', (event) => {
  if (event.detail.viewer !== props.viewer_id) return;
  props.value = event.detail;
  trigger('select');
});
"""


@functools.cache
def colormaps() -> dict:
    """256 RGB triples per map, from matplotlib so browser and exported pictures agree. Both maps get
    lighter monotonically, so they read in greyscale too: viridis for gates (0..1), cividis for
    signed values (-1..1 and the cell)."""
    def table(name):
        return [[int(round(255 * c)) for c in matplotlib.colormaps[name](k / 255)[:3]] for k in range(256)]

    return {"sequential": table("viridis"), "diverging": table("cividis")}


@dataclass
class TraceViewer:
    html: gr.HTML  # the viewer; its value is a payload (studio.ui.payload.trace_payload) or None
    events: gr.HTML  # fires .select(fn, events, ...) with the viewer's event as a dict


def viewer_value(trace: Trace, track: dict, title: str = "") -> dict:
    """The viewer's value for one trace: the payload's description, with the URL of its blob."""
    description, blob = trace_payload(trace, track, title)
    BLOB_DIR.mkdir(parents=True, exist_ok=True)
    path = BLOB_DIR / f"{uuid.uuid4().hex}.bin"
    path.write_bytes(blob)
    return {**description, "blob": f"gradio_api/file={path}"}


def trace_viewer(prefix: str, link: str | None = None) -> TraceViewer:
    """The viewer `{prefix}-viewer`; `link`: another viewer's id whose cursor and hover this one
    follows, and which follows this one's (two models reading one output, step by step)."""
    serve_outputs_in_place()  # the blobs are written once and never change
    viewer_id = f"{prefix}-viewer"
    html = gr.HTML(None, html_template=TEMPLATE, css_template=VIEWER_CSS, js_on_load=VIEWER_JS,
                   elem_id=viewer_id, viewer_id=viewer_id, link_id=link or "", colormaps=colormaps(), apply_default_css=False)
    events = gr.HTML(None, html_template="<span></span>", js_on_load=EVENTS_JS, elem_id=f"{viewer_id}-events",
                     viewer_id=viewer_id, visible="hidden")
    return TraceViewer(html, events)
