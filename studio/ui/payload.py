"""The compact trace the browser viewer draws from (studio/ui/viewer.js), sent once per generation.

Per layer, the quantities i, f, g, o and tanh(c) are quantised to LEVELS codes (one byte each,
units x steps) over their ranges (gates 0..1, g and tanh(c) -1..1), deflated and base64-encoded.
h is not sent: the browser rebuilds it as o * tanh(c), as the LSTM defines it. The raw cell c is
rebuilt as atanh(tanh(c)): exact in the range where tanh is not flat, shown as saturated beyond
about |c| = 3. (Sending c itself over its own range instead would put a 0.3-wide step between codes
for a cell reaching 20, and tanh(c), what h actually sees, would be that coarse too.) 128 levels
(steps of 1/127 of a range) are finer than any colour map shows and keep a 5,000-step 2 x 384
trace under 15 MB (docs/benchmarks.md); hover values are shown to that precision.

No gradio here: benches and tests build payloads without a server.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

from studio.trace import Trace

LEVELS = 128
SENT = ("i", "f", "g", "o", "tanh_c")  # h and c are rebuilt in the browser
RANGES = {"i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "g": (-1.0, 1.0), "tanh_c": (-1.0, 1.0)}


def pack(values: np.ndarray, low: float, high: float) -> str:
    """(T, H) floats -> base64 of deflated uint8 codes laid out units x steps (row u = unit u)."""
    scaled = (np.nan_to_num(values.T, nan=low) - low) / (high - low) * (LEVELS - 1)
    codes = np.clip(np.rint(scaled), 0, LEVELS - 1).astype(np.uint8)
    return base64.b64encode(zlib.compress(np.ascontiguousarray(codes).tobytes(), 1)).decode("ascii")


def unpack(data: str, low: float, high: float, units: int) -> np.ndarray:
    """pack's inverse, to the payload's precision: (T, H) floats (tests and exports use it)."""
    codes = np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=np.uint8).reshape(units, -1)
    return (low + codes.astype(np.float32) / (LEVELS - 1) * (high - low)).T


def trace_payload(trace: Trace, track: dict, title: str = "") -> dict:
    """Everything the viewer needs, JSON-ready: the packed quantities per layer, a label per step,
    where the prompt ends and what is shown, and the domain's own strip (`track`, see viewer.js:
    kind "text", "roll", "pen" or "spectrogram")."""
    layers = []
    for k, layer in enumerate(trace.layers):
        quantities = {}
        for name in SENT:
            low, high = RANGES[name]
            quantities[name] = {"lo": low, "hi": high, "data": pack(trace.quantity(k, name), low, high)}
        bound = float(np.nanmax(np.abs(layer["c"]))) if layer["c"].size else 1.0
        layers.append({"name": trace.layer_name(k), "quantities": quantities,
                       "c_bound": bound if np.isfinite(bound) and bound > 0 else 1.0})
    return {
        "version": 1,
        "title": title,
        "steps": trace.steps,
        "units": trace.hidden_size,
        "levels": LEVELS,
        "shown_from": trace.shown_from,
        "prompt_length": trace.prompt_length,
        "labels": list(trace.labels),
        "layers": layers,
        "track": track,
    }


def pack_image(image: np.ndarray) -> dict:
    """A (rows, T) array (a spectrogram) as deflated byte codes over its own range, for a strip."""
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    high = high if high > low else low + 1.0
    return {"rows": int(image.shape[0]), "lo": low, "hi": high, "data": pack(image.T, low, high)}
