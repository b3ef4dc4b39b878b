"""The compact trace the browser viewer draws from (studio/ui/viewer.js), sent once per generation.

Per layer, the quantities i, f, g, o and c are quantised to LEVELS codes (one byte each, units x
steps) over a fixed range per quantity (gates 0..1, g -1..1, c symmetric around 0 from its largest
magnitude), deflated and base64-encoded. h and tanh(c) are not sent: the browser rebuilds them as
o * tanh(c) and tanh(c), exactly as the LSTM defines them. 128 levels (steps of 1/127 of a range)
are finer than any colour map shows and keep a 5,000-step 2 x 384 trace under 15 MB
(docs/benchmarks.md); hover values are shown to that precision.

No gradio here: benches and tests build payloads without a server.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np

from studio.trace import Trace

LEVELS = 128
SENT = ("i", "f", "g", "o", "c")  # h and tanh(c) are rebuilt in the browser
FIXED_RANGES = {"i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "g": (-1.0, 1.0)}


def pack(values: np.ndarray, low: float, high: float) -> str:
    """(T, H) floats -> base64 of deflated uint8 codes laid out units x steps (row u = unit u)."""
    scaled = (np.nan_to_num(values.T, nan=low) - low) / (high - low) * (LEVELS - 1)
    codes = np.clip(np.rint(scaled), 0, LEVELS - 1).astype(np.uint8)
    return base64.b64encode(zlib.compress(np.ascontiguousarray(codes).tobytes(), 1)).decode("ascii")


def unpack(data: str, low: float, high: float, units: int) -> np.ndarray:
    """pack's inverse, to the payload's precision: (T, H) floats (tests and exports use it)."""
    codes = np.frombuffer(zlib.decompress(base64.b64decode(data)), dtype=np.uint8).reshape(units, -1)
    return (low + codes.astype(np.float32) / (LEVELS - 1) * (high - low)).T


def quantity_range(name: str, values: np.ndarray) -> tuple[float, float]:
    if name in FIXED_RANGES:
        return FIXED_RANGES[name]
    bound = float(np.nanmax(np.abs(values))) if values.size else 0.0
    bound = bound if np.isfinite(bound) and bound > 0 else 1.0
    return -bound, bound


def trace_payload(trace: Trace, track: dict, title: str = "") -> dict:
    """Everything the viewer needs, JSON-ready: the packed quantities per layer, a label per step,
    where the prompt ends and what is shown, and the domain's own strip (`track`, see viewer.js:
    kind "text", "roll", "pen" or "spectrogram")."""
    layers = []
    for k, layer in enumerate(trace.layers):
        quantities = {}
        for name in SENT:
            low, high = quantity_range(name, layer[name])
            quantities[name] = {"lo": low, "hi": high, "data": pack(layer[name], low, high)}
        layers.append({"name": trace.layer_name(k), "quantities": quantities})
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
