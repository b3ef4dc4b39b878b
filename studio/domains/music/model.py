"""Music model: [token embedding, previous frame, current frame so far] -> LSTMCore -> linear head
over the pitch tokens (raw logits; the codec's valid-next mask is applied by whoever samples or
scores). Loading and saving go through the one checkpoint format (studio.checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from studio import checkpoint
from studio.domains.base import LoadedModel
from studio.domains.music.codec import FrameContextTracker, PitchCodec, frame_context, note_name
from studio.lstm import LSTMConfig, LSTMCore

NAME = "music"
KIND = "pitch-lstm"


@dataclass
class MusicModelConfig:
    min_pitch: int = 36  # codec range, so a checkpoint carries its vocabulary
    max_pitch: int = 102
    steps_per_quarter: int = 1  # grid frames per quarter note
    embed_size: int = 32  # token embedding width
    hidden_size: int = 256  # LSTM units per layer
    num_layers: int = 2
    dropout: float = 0.3  # on the LSTM input, between layers and before the head; training only

    @property
    def codec(self) -> PitchCodec:
        return PitchCodec(self.min_pitch, self.max_pitch, self.steps_per_quarter)


class MusicModel(nn.Module):
    def __init__(self, config: MusicModelConfig):
        super().__init__()
        self.config = config
        self.codec = config.codec
        num_pitches = self.codec.num_pitches
        self.embed = nn.Embedding(self.codec.size, config.embed_size)
        self.core = LSTMCore(LSTMConfig(config.embed_size + 2 * num_pitches, config.hidden_size, config.num_layers, config.dropout))
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, self.codec.size)

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, E + 2P): what the LSTM reads at each step."""
        return torch.cat([self.embed(tokens), frame_context(tokens, self.codec.num_pitches)], dim=-1)

    def forward(self, tokens: torch.Tensor, state=None):
        """tokens (B, T) -> raw logits (B, T, V), state. The fused path, for training and scoring;
        mask the logits with codec.masked_log_probs."""
        out, state = self.core(self.drop(self.inputs(tokens)), state)
        return self.head(self.drop(out)), state

    def trace(self, tokens: torch.Tensor, state=None):
        """Teacher-forced: raw logits (B, T, V), state, per-layer gates (B, T, H)."""
        out, state, gates = self.core.trace(self.inputs(tokens), state)
        return self.head(out), state, gates

    @torch.no_grad()
    def step(self, token: int, tracker: FrameContextTracker, state, hooks=None, step: int = 0):
        """Read one token -> raw logits (V,), state, this step's gates. `tracker` follows the
        frames; hooks see this step as number `step` (studio.lstm)."""
        device = self.head.weight.device
        x = torch.cat([self.embed(torch.tensor([token], device=device)), tracker.read(token)], dim=-1)
        out, state, gates = self.core.step(x, state, hooks, step)
        return self.head(out)[0], state, gates


def load(stem, device="cpu") -> LoadedModel:
    tensors, card = checkpoint.load(stem, domain=NAME)
    try:
        model = MusicModel(MusicModelConfig(**card["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    config, test = model.config, card["metrics"].get("test_nll_per_frame")
    summary = (f"{config.num_layers} layers × {config.hidden_size} units, pitches "
               f"{note_name(config.min_pitch)}–{note_name(config.max_pitch)}"
               + (f", JSB test NLL {test:.2f} nats per frame" if test else ""))
    return LoadedModel(checkpoint.paths(stem)[1].stem, model.to(device).eval(), model.codec, card,
                       [f"layer {k}" for k in range(config.num_layers)], summary)


def make_card(model: MusicModel, codec: PitchCodec | None = None, **fields) -> dict:
    c, codec = model.config, codec or model.codec
    if codec != model.codec:
        raise ValueError(f"the codec {codec} is not the model's own {model.codec}")
    description = (f"Polyphonic chorale LSTM: each frame is read as its pitches low to high plus an end-of-frame token "
                   f"(embedding {c.embed_size} -> {c.num_layers} LSTM layers x {c.hidden_size} units -> softmax over "
                   f"{codec.num_pitches} pitches and end of frame).")
    return checkpoint.make_card(NAME, KIND, model, codec.card(), description, **fields)


def save(stem, model: MusicModel, codec: PitchCodec | None = None, card: dict | None = None):
    """Weights + a complete card (fields in `card` override the made ones). The codec is the
    model's own (its config holds the pitch range); one given must equal it."""
    return checkpoint.save(stem, model.state_dict(), make_card(model, codec, **(card or {})))
