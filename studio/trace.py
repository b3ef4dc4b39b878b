"""Trace: what every gate of every layer did at every step, plus a label per step.

Extraction (here) is kept apart from display (viz.py), as LSTMVis does: a Trace is plain
numpy arrays, saved to and loaded from .npz without pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

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
    domain: str = ""  # which domain made it ("text", "music", ...)
    model: str = ""  # the model's name, when known
    shown_from: int = 0  # steps before this only set up the state (an implicit start) and are not shown
    prompt_length: int = 0  # steps 0..prompt_length-1 were read from the user's input, teacher-forced
    layer_names: list[str] = field(default_factory=list)  # per layer, when a domain names them; else "layer k"
    detail: Any = None  # a domain's own typed record (a dataclass: music's tokens, speech's reduction, ...)

    @property
    def steps(self) -> int:
        return len(self.labels)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.layers[0]["h"].shape[1]

    def layer_name(self, layer: int) -> str:
        return self.layer_names[layer] if layer < len(self.layer_names) else f"layer {layer}"

    def quantity(self, layer: int, name: str) -> np.ndarray:
        """(T, H) array for a gate name, or 'tanh_c' (the cell squashed to [-1, 1])."""
        if name == "tanh_c":
            return np.tanh(self.layers[layer]["c"])
        return self.layers[layer][name]

    def with_layers(self, layers: list[dict[str, np.ndarray]], labels) -> Trace:
        """The same trace description over other arrays (a selection of steps, say)."""
        return replace(self, layers=layers, labels=list(labels))

    @classmethod
    def from_steps(cls, step_gates: list[list[dict[str, torch.Tensor]]], labels, **fields) -> Trace:
        """From LSTMCore.step outputs (one list of per-layer dicts of (1, H) tensors per step)."""
        num_layers = len(step_gates[0]) if step_gates else 0
        layers = [
            {name: torch.cat([s[k][name] for s in step_gates]).float().cpu().numpy() for name in GATE_NAMES}
            for k in range(num_layers)
        ]
        return cls(layers, list(labels), **fields)

    @classmethod
    def from_sequence(cls, gates: list[dict[str, torch.Tensor]], labels, batch_index: int = 0, **fields) -> Trace:
        """From LSTMCore.trace output (per-layer dicts of (B, T, H) tensors)."""
        layers = [{name: g[name][batch_index].float().cpu().numpy() for name in GATE_NAMES} for g in gates]
        return cls(layers, list(labels), **fields)

    @staticmethod
    def concat(first: Trace, second: Trace, **fields) -> Trace:
        """first's steps then second's; the description is first's, with `fields` changed."""
        if not second.labels:
            return replace(first, **fields)
        if not first.labels:
            return replace(second, **fields)
        layers = [{n: np.concatenate([a[n], b[n]]) for n in GATE_NAMES} for a, b in zip(first.layers, second.layers, strict=True)]
        return replace(first, layers=layers, labels=first.labels + second.labels, **fields)

    def description(self) -> dict:
        """Everything but the arrays, as JSON-ready values (the detail as its fields)."""
        return {
            "domain": self.domain, "model": self.model, "shown_from": self.shown_from,
            "prompt_length": self.prompt_length, "layer_names": list(self.layer_names),
            "detail": _jsonable(asdict(self.detail)) if is_dataclass(self.detail) else None,
        }

    def save_npz(self, path, dtype=np.float32, compressed: bool = False) -> Path:
        """Every array as `dtype`: float32 keeps every bit (the CLI's exact traces); the app's
        downloads use float16 (a 5,000-character 2 x 384 trace: 46 MB instead of 92; 11 significant
        bits are more than a picture or a probe needs). compressed=True deflates too (slower to
        write; float noise compresses little)."""
        arrays = {f"layer{k}_{name}": layer[name].astype(dtype, copy=False)
                  for k, layer in enumerate(self.layers) for name in GATE_NAMES}
        arrays["labels"] = np.array(self.labels, dtype=np.str_)
        arrays["description_json"] = np.array(json.dumps(self.description()))
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        return Path(path)

    @classmethod
    def load_npz(cls, path, detail_type: type | None = None) -> Trace:
        """A saved trace; its domain detail comes back as `detail_type(**fields)` when given, else
        as the plain dict of fields."""
        with np.load(path, allow_pickle=False) as data:
            num_layers = len({key.split("_")[0] for key in data.files if key.startswith("layer")})
            layers = [{name: data[f"layer{k}_{name}"].astype(np.float32, copy=False) for name in GATE_NAMES}
                      for k in range(num_layers)]
            described = json.loads(str(data["description_json"])) if "description_json" in data.files else {}
            labels = [str(x) for x in data["labels"]]
        detail = described.pop("detail", None)
        if detail is not None and detail_type is not None:
            detail = detail_type(**detail)
        return cls(layers, labels, detail=detail, **described)


def _jsonable(value):
    """numpy scalars and arrays inside a detail record as plain JSON values."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
