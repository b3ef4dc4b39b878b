"""Text model: embedding -> LSTMCore -> linear head over the vocabulary; logits per step.
Loading and saving go through the one checkpoint format (studio.checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.domains.base import LoadedModel
from studio.domains.text.codec import TextCodec
from studio.lstm import LSTMConfig, LSTMCore, step_linear
from studio.lstm_hard import HardSigmoidCore

NAME = "text"
KIND = "char-rnn"


@dataclass
class TextModelConfig:
    vocab_size: int  # characters in the codec
    embed_size: int = 64  # character embedding width fed to the LSTM
    hidden_size: int = 384  # LSTM units per layer
    num_layers: int = 2
    dropout: float = 0.2  # between layers and before the head, training only
    hard_sigmoid: tuple[float, float] | None = None  # the gates' (slope, offset) hard sigmoid (a Keras model's):
                                                     # studio.lstm_hard


class TextModel(nn.Module):
    def __init__(self, config: TextModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        core_config = LSTMConfig(config.embed_size, config.hidden_size, config.num_layers, config.dropout)
        # an opened Keras model's gates may use the hard sigmoid (its JSON card holds a list)
        self.core = HardSigmoidCore(core_config, config.hard_sigmoid) if config.hard_sigmoid else LSTMCore(core_config)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, tokens: torch.Tensor, state=None):
        """tokens (B, T) -> logits (B, T, V), state. The fused path, for training and plain runs."""
        out, state = self.core(self.embed(tokens), state)
        return self.head(self.drop(out)), state

    def trace(self, tokens: torch.Tensor, state=None):
        """Teacher-forced: logits (B, T, V), state, per-layer gates (B, T, H)."""
        out, state, gates = self.core.trace(self.embed(tokens), state)
        return self.head(out), state, gates

    @torch.no_grad()
    def step(self, token: torch.Tensor, state, hooks=None, step: int = 0):
        """token (B,) -> logits (B, V), state, gates of this step (hooks: studio.lstm). The embedding
        and head are called as functions, the very ops their modules run, without nn.Module's call
        machinery (a noticeable share of a batch-1 step: docs/benchmarks.md, Text: sampling and the
        trace); the head through lstm.step_linear."""
        out, state, gates = self.core.step(F.embedding(token, self.embed.weight), state, hooks, step)
        return step_linear(self.head)(out), state, gates


@torch.no_grad()
def extend_vocabulary(model: TextModel, codec: TextCodec, chars) -> tuple[TextModel, TextCodec]:
    """(model, codec) that also know the characters of `chars` (a string or any iterable of them) the
    codec lacks, for fine-tuning on text with new characters (a word vocabulary: the text's words it
    lacks, in first-seen order, each a new row as a new character is). The base's characters keep their
    tokens; the new ones are appended in sorted order, each with an embedding row and an output row
    (weights and bias) initialised as a fresh model's are; every other weight is copied. So right after
    the extension the logits over the old characters are the base's own: its predictions among them
    are unchanged, only renormalised by the new characters' share. A new model and codec are always
    returned (the given ones are left alone); with nothing to add, a copy."""
    if codec.words:  # a word vocabulary: the text's unknown words, in first-seen order
        extended = TextCodec("", codec.words
                             + tuple(codec.encode(chars if isinstance(chars, str) else " ".join(chars))[1]))
    else:
        extended = TextCodec(codec.chars + "".join(sorted(set(chars) - set(codec.chars))))
    old = codec.size
    if model.config.vocab_size != old:
        raise ValueError(f"the model has {model.config.vocab_size} output rows but its codec {old} characters")
    grown = TextModel(replace(model.config, vocab_size=extended.size)).to(model.head.weight.device)
    state = grown.state_dict()  # fresh: the new rows keep this initialisation
    for name, tensor in model.state_dict().items():
        if name in ("embed.weight", "head.weight", "head.bias"):
            state[name][:old] = tensor
        else:
            state[name] = tensor.clone()
    grown.load_state_dict(state)
    return grown.train(model.training), extended


@torch.no_grad()
def from_network(network, vocabulary: list[str], tokens: str = "chars") -> tuple[TextModel, TextCodec, dict]:
    """(model, codec, card fields) of a network read from a Keras or PyTorch file (studio.importer.Network):
    a one-hot input becomes an identity embedding (a one-hot row times W_ih is W_ih's column exactly).
    ValueError in one sentence for what this domain cannot hold."""
    size = len(vocabulary)
    embedding = network.embedding if network.embedding is not None else torch.eye(size).numpy()
    config = TextModelConfig(size, embedding.shape[1], network.hidden_size, len(network.layers), 0.0,
                             network.hard_sigmoid)
    model = TextModel(config).eval()
    model.embed.weight.copy_(torch.as_tensor(embedding))
    for layer, (w_ih, w_hh, bias) in zip(model.core.layers, network.layers, strict=True):
        layer.weight_ih_l0.copy_(torch.as_tensor(w_ih))
        layer.weight_hh_l0.copy_(torch.as_tensor(w_hh))
        layer.bias_ih_l0.copy_(torch.as_tensor(bias))
        layer.bias_hh_l0.zero_()
    model.head.weight.copy_(torch.as_tensor(network.head_weight))
    model.head.bias.copy_(torch.as_tensor(network.head_bias))
    codec = TextCodec("".join(vocabulary)) if tokens == "chars" else TextCodec("", tuple(vocabulary))
    source = network.source
    origin = f"{source.get('file', 'a file')} ({source.get('format')}"
    origin += f", Keras {source['keras_version']})" if source.get("keras_version") else ")"
    card = {
        "description": (f"Imported from {origin}: {'one-hot' if network.embedding is None else 'embedding'} input -> "
                        f"{config.num_layers}-layer LSTM with {config.hidden_size} units -> softmax over {size} "
                        f"{'characters' if tokens == 'chars' else 'words'}."),
        "data": {"source": f"imported from {source.get('file', 'a file')}", "licence": "unknown (the user's "
                 "own model)"},
        "imported": dict(source, vocabulary_size=size, tokens=tokens,
                         input="one-hot" if network.embedding is None else "embedding"),
        "training": {"window": network.window} if network.window else {},
    }
    return model, codec, card


def load(stem, device="cpu") -> LoadedModel:
    tensors, card = checkpoint.load(stem, domain=NAME)
    try:
        model = TextModel(TextModelConfig(**card["config"]))
        model.load_state_dict(tensors)
        codec = TextCodec(card["codec"].get("chars", ""), tuple(card["codec"].get("words", ())))
    except (KeyError, TypeError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    config, metrics = model.config, card["metrics"]
    val = metrics.get("val_nats_per_char", metrics.get("best_val_loss"))
    summary = (f"{config.num_layers} layers × {config.hidden_size} units, {codec.size} "
               f"{'words' if codec.words else 'characters'}"
               + (f", val loss {val:.3f} nats/char" if val else ""))
    return LoadedModel(checkpoint.paths(stem)[1].stem, model.to(device).eval(), codec, card,
                       [f"layer {k}" for k in range(config.num_layers)], summary)


def make_card(model: TextModel, codec: TextCodec, **fields) -> dict:
    c = model.config
    description = fields.pop("description", None) or (
        f"Character-level LSTM (char-rnn). Embedding {c.embed_size} -> {c.num_layers}-layer LSTM with "
        f"{c.hidden_size} units -> softmax over {c.vocab_size} characters.")
    return checkpoint.make_card(NAME, KIND, model, codec.card(), description, **fields)


def save(stem, model: TextModel, codec: TextCodec, card: dict | None = None):
    """Weights + a complete card (fields in `card` override the made ones)."""
    return checkpoint.save(stem, model.state_dict(), make_card(model, codec, **(card or {})))
