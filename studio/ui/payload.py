"""The compact trace the browser viewer draws from (studio/ui/viewer.js), sent once per generation.

Per layer, the quantities i, f, g, o and tanh(c) are quantised to LEVELS codes (one byte each,
units x steps) over their ranges (gates 0..1, g and tanh(c) -1..1), deflated, and sent as one binary file beside a small JSON description.
h is not sent: the browser rebuilds it as o * tanh(c), as the LSTM defines it. The raw cell c is
rebuilt as atanh(tanh(c)): good where tanh is not flat, shown as saturated beyond about |c| = 2.4.
(Sending c itself over its own range instead would put a 0.6-wide step between codes for a cell
reaching 20, and tanh(c), what h actually sees, would be that coarse too.) 64 levels (steps of
1/63 of a range: 0.016 of a gate) are as many colours as a heatmap can show apart; they keep a
long trace's payload within its goal where 128 levels would not (docs/benchmarks.md, Text tab and
the trace viewer). Hover
values are shown to that precision.

No gradio here: benches and tests build payloads without a server.
"""

from __future__ import annotations

import zlib

import numpy as np

from studio.trace import Trace

LEVELS = 64
SENT = ("i", "f", "g", "o", "tanh_c")  # h and c are rebuilt in the browser
RANGES = {"i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "g": (-1.0, 1.0), "tanh_c": (-1.0, 1.0)}


def codes(values: np.ndarray, low: float, high: float) -> bytes:
    """(T, H) floats -> uint8 codes laid out units x steps (row u = unit u)."""
    scaled = (np.nan_to_num(values.T, nan=low) - low) * ((LEVELS - 1) / (high - low))
    return np.clip(np.rint(scaled), 0, LEVELS - 1).astype(np.uint8).tobytes()


def values(data: bytes, low: float, high: float, units: int) -> np.ndarray:
    """codes' inverse, to the payload's precision: (T, H) floats (tests and exports use it)."""
    quantised = np.frombuffer(data, dtype=np.uint8).reshape(units, -1)
    return (low + quantised.astype(np.float32) / (LEVELS - 1) * (high - low)).T


class Blob:
    """The payload's arrays one after another, deflated as one stream (one stream inflates several
    times faster in the browser than one per array); each array's description says where it lies
    in the inflated bytes."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> dict:
        self.parts.append(data)
        self.size += len(data)
        return {"offset": self.size - len(data), "length": len(data)}

    def bytes(self) -> bytes:
        # Huffman coding alone: quantised activations are noise to LZ77's matching, which costs more
        # time for a larger blob (docs/benchmarks.md, Text tab and the trace viewer)
        packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
        return packer.compress(b"".join(self.parts)) + packer.flush()


def trace_payload(trace: Trace, track: dict, title: str = "") -> tuple[dict, bytes]:
    """(description, blob): what the viewer needs. The description is small JSON (a label per step,
    where the prompt ends and what is shown, the domain's strip `track`: kind "labels" (a character per step), "roll", "pen"
    or "spectrogram", see viewer.js) and points into the blob, which holds the quantised quantities
    of every layer (and a strip's image). The viewer fetches the blob as a file: binary, not base64
    in JSON, so a 5,000-step 2 x 384 trace travels as about 14 MB rather than 19."""
    blob = Blob()
    layers = []
    for k, layer in enumerate(trace.layers):
        quantities = {}
        for name in SENT:
            low, high = RANGES[name]
            quantities[name] = {"lo": low, "hi": high, **blob.add(codes(trace.quantity(k, name), low, high))}
        bound = float(np.nanmax(np.abs(layer["c"]))) if layer["c"].size else 1.0
        layers.append({"name": trace.layer_name(k), "quantities": quantities,
                       "c_bound": bound if np.isfinite(bound) and bound > 0 else 1.0})
    track = dict(track)
    if "image" in track:  # a (rows, T) array, e.g. a spectrogram, over its own range
        image = np.asarray(track.pop("image"), dtype=np.float32)
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        high = high if high > low else low + 1.0
        track["image"] = {"rows": int(image.shape[0]), "lo": low, "hi": high, **blob.add(codes(image.T, low, high))}
    description = {
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
    return description, blob.bytes()


def chunk(blob: bytes, where: dict) -> bytes:
    """One array's codes out of a blob (inflated whole: tests and exports only)."""
    return zlib.decompress(blob)[where["offset"] : where["offset"] + where["length"]]
