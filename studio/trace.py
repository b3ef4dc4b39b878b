"""Trace: what every gate of every layer did at every step, plus a label per step.

Extraction (here) is kept apart from display (viz.py), as LSTMVis does: a Trace is plain
numpy arrays, saved to and loaded from .npz without pickle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.lstm import GATE_NAMES

QUANTITY_TITLES = {
    "i": "input gate i",
    "f": "forget gate f",
    "g": "candidate g",
    "o": "output gate o",
    "c": "cell state c",
    "h": "hidden state h",
    "tanh_c": "tanh(cell state)",
}


@dataclass
class Trace:
    layers: list[dict[str, np.ndarray]]  # per layer: i, f, g, o, c, h, each (T, H) float32
    labels: list[str]  # per step: what the model read at that step (a char, a frame number)
    meta: dict = field(default_factory=dict)  # domain, model name, where generation began, ...

    @property
    def steps(self) -> int:
        return len(self.labels)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.layers[0]["h"].shape[1]

    def quantity(self, layer: int, name: str) -> np.ndarray:
        """(T, H) array for a gate name, or 'tanh_c' (the cell squashed to [-1, 1])."""
        if name == "tanh_c":
            return np.tanh(self.layers[layer]["c"])
        return self.layers[layer][name]

    @classmethod
    def from_steps(cls, step_gates: list[list[dict[str, torch.Tensor]]], labels, meta=None) -> Trace:
        """From LSTMCore.step outputs (one list of per-layer dicts of (1, H) tensors per step)."""
        num_layers = len(step_gates[0]) if step_gates else 0
        layers = [
            {name: torch.cat([s[k][name] for s in step_gates]).float().cpu().numpy() for name in GATE_NAMES}
            for k in range(num_layers)
        ]
        return cls(layers, list(labels), dict(meta or {}))

    @classmethod
    def from_sequence(cls, gates: list[dict[str, torch.Tensor]], labels, meta=None, batch_index: int = 0) -> Trace:
        """From LSTMCore.trace output (per-layer dicts of (B, T, H) tensors)."""
        layers = [{name: g[name][batch_index].float().cpu().numpy() for name in GATE_NAMES} for g in gates]
        return cls(layers, list(labels), dict(meta or {}))

    @staticmethod
    def concat(first: Trace, second: Trace, meta=None) -> Trace:
        layers = [{n: np.concatenate([a[n], b[n]]) for n in GATE_NAMES} for a, b in zip(first.layers, second.layers, strict=False)]
        return Trace(layers, first.labels + second.labels, dict(meta or first.meta))

    def save_npz(self, path) -> Path:
        arrays = {f"layer{k}_{name}": layer[name] for k, layer in enumerate(self.layers) for name in GATE_NAMES}
        arrays["labels"] = np.array(self.labels, dtype=np.str_)
        arrays["meta_json"] = np.array(json.dumps(self.meta))
        np.savez(path, **arrays)  # uncompressed: compressing float noise saves little and costs ~0.3 s a request
        return Path(path)

    @classmethod
    def load_npz(cls, path) -> Trace:
        with np.load(path, allow_pickle=False) as data:
            num_layers = len({key.split("_")[0] for key in data.files if key.startswith("layer")})
            layers = [{name: data[f"layer{k}_{name}"] for name in GATE_NAMES} for k in range(num_layers)]
            return cls(layers, [str(x) for x in data["labels"]], json.loads(str(data["meta_json"])))
