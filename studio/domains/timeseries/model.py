"""The forecaster: an LSTM with a Gaussian head (DeepAR-style), loading and saving.

Per step it reads (normalised value, sin phase, cos phase) (codec.py) and predicts the next
normalised value as a Gaussian: mean = value read + a learnt change (the head starts from "no change",
a random walk, a good prior for a deseasonalised level), scale = softplus(...) + MIN_SCALE. Sampling
feeds each drawn value back in, so a path's uncertainty grows as the model's own draws compound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.domains.base import LoadedModel
from studio.domains.timeseries.codec import INPUT_SIZE, SeriesCodec
from studio.lstm import LSTMConfig, LSTMCore

NAME = "timeseries"
KIND = "gaussian-lstm"
MIN_SCALE = 1e-3  # the least predicted spread (normalised units): keeps the likelihood finite


@dataclass
class ForecastModelConfig:
    input_size: int = INPUT_SIZE  # features per step (codec.INPUT_SIZE)
    hidden_size: int = 64  # units per LSTM layer
    num_layers: int = 2
    dropout: float = 0.0  # between layers, training only


class ForecastModel(nn.Module):
    def __init__(self, config: ForecastModelConfig):
        super().__init__()
        self.config = config
        self.core = LSTMCore(LSTMConfig(config.input_size, config.hidden_size, config.num_layers, config.dropout))
        self.head = nn.Linear(config.hidden_size, 2)  # (change of the mean, pre-softplus scale)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _head(self, x: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (..., INPUT_SIZE), LSTM output (..., H) -> mean (...), scale (...)."""
        delta, raw = self.head(out).unbind(-1)
        return x[..., 0] + delta, F.softplus(raw) + MIN_SCALE

    def forward(self, x: torch.Tensor, state=None):
        """x (B, T, INPUT_SIZE) -> mean (B, T), scale (B, T), state: the prediction of step t+1 at t."""
        out, state = self.core(x, state)
        mean, scale = self._head(x, out)
        return mean, scale, state

    def trace(self, x: torch.Tensor, state=None):
        out, state, gates = self.core.trace(x, state)
        mean, scale = self._head(x, out)
        return mean, scale, state, gates

    @torch.no_grad()
    def step(self, x: torch.Tensor, state, hooks=None, step: int = 0):
        """x (B, INPUT_SIZE) -> mean (B,), scale (B,), state, this step's gates."""
        out, state, gates = self.core.step(x, state, hooks, step)
        mean, scale = self._head(x, out)
        return mean, scale, state, gates


def gaussian_nll(mean: torch.Tensor, scale: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per element -log N(target; mean, scale)."""
    return 0.5 * ((target - mean) / scale) ** 2 + torch.log(scale) + 0.9189385332046727


# ---------------------------------------------------------------- checkpoints
def layer_names(model: ForecastModel) -> list[str]:
    return [f"layer {k}" for k in range(model.config.num_layers)]


def describe(model: ForecastModel) -> str:
    c = model.config
    return (f"Probabilistic forecaster: a {c.num_layers}-layer LSTM ({c.hidden_size} units) with a Gaussian head "
            "reads a series normalised per series (log, seasonal indices, last level, spread) and samples future "
            "paths step by step.")


def summary(model: ForecastModel, card: dict) -> str:
    c, metrics = model.config, card.get("metrics", {})
    mase = metrics.get("mean_mase")
    return (f"{c.num_layers} layers × {c.hidden_size} units, Gaussian head"
            + (f", mean MASE {mase:.3f} on held-out series" if isinstance(mase, (int, float)) else ""))


def load(stem, device="cpu") -> LoadedModel:
    tensors, card = checkpoint.load(stem, domain=NAME)
    try:
        if card["kind"] != KIND:
            raise ValueError(f"unknown kind {card['kind']!r} (expected {KIND!r})")
        model = ForecastModel(ForecastModelConfig(**card["config"]))
        model.load_state_dict(tensors)
        codec = SeriesCodec.from_card(card["codec"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return LoadedModel(checkpoint.paths(stem)[1].stem, model.to(device).eval(), codec, card, layer_names(model),
                       summary(model, card))


def make_card(model: ForecastModel, codec: SeriesCodec, **fields) -> dict:
    return checkpoint.make_card(NAME, KIND, model, codec.card(), describe(model), **fields)


def save(stem, model: ForecastModel, codec: SeriesCodec, card: dict | None = None):
    """Weights + a complete card (fields in `card` override the made ones)."""
    return checkpoint.save(stem, model.state_dict(), make_card(model, codec, **(card or {})))
