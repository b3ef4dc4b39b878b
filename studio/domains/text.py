"""Text domain: a character-level LSTM (char-rnn).

Codec format: the vocabulary is the model's sorted list of distinct characters, stored as
one string in the model card (`codec.chars`); character k of that string is token k. Text is
encoded one character per token; characters outside the vocabulary are dropped and
reported, never silently mapped. Decoding joins the characters back.

Model: embedding -> LSTMCore -> linear head over the vocabulary; logits per step.
Trace alignment: step t is the character the model *read* at t (prompt characters, then the
generated ones), so each character can be painted with the state right after reading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.lstm import LSTMConfig, LSTMCore
from studio.sampling import SamplingConfig, make_generator, sample_next
from studio.trace import Trace

DOMAIN = "text"
MAX_LENGTH = 5000  # generated characters per request; longer requests are clamped
MAX_PROMPT = 20_000  # prompt characters kept (the most recent ones)


# ---------------------------------------------------------------- codec
@dataclass
class CharCodec:
    chars: str  # the vocabulary; char k is token k

    @classmethod
    def from_text(cls, text: str) -> CharCodec:
        return cls("".join(sorted(set(text))))

    def __post_init__(self):
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> tuple[list[int], str]:
        """(token ids, the distinct characters that were dropped, in first-seen order)."""
        ids, dropped = [], []
        for ch in text:
            if ch in self.index:
                ids.append(self.index[ch])
            elif ch not in dropped:
                dropped.append(ch)
        return ids, "".join(dropped)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(k)] for k in ids)


# ---------------------------------------------------------------- model
@dataclass
class TextModelConfig:
    vocab_size: int  # characters in the codec
    embed_size: int = 64  # character embedding width fed to the LSTM
    hidden_size: int = 384  # LSTM units per layer
    num_layers: int = 2
    dropout: float = 0.2  # between layers and before the head, training only


class TextModel(nn.Module):
    def __init__(self, config: TextModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_size)
        self.core = LSTMCore(LSTMConfig(config.embed_size, config.hidden_size, config.num_layers, config.dropout))
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
    def step(self, token: torch.Tensor, state):
        """token (B,) -> logits (B, V), state, gates of this step."""
        out, state, gates = self.core.step(self.embed(token), state)
        return self.head(out), state, gates


def load_model(stem, device="cpu") -> tuple[TextModel, CharCodec, dict]:
    tensors, card = checkpoint.load(stem, domain=DOMAIN)
    try:
        model = TextModel(TextModelConfig(**card["config"]))
        model.load_state_dict(tensors)
        codec = CharCodec(card["codec"]["chars"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return model.to(device).eval(), codec, card


def save_model(stem, model: TextModel, codec: CharCodec, card: dict) -> None:
    checkpoint.save(stem, model.state_dict(), make_card(model, codec, card))


def make_card(model: TextModel, codec: CharCodec, extra: dict) -> dict:
    config = model.config
    return {
        "domain": DOMAIN,
        "config": asdict(config),
        "codec": {"chars": codec.chars},
        "description": f"Character-level LSTM (char-rnn). Embedding {config.embed_size} -> {config.num_layers}-layer "
                       f"LSTM with {config.hidden_size} units -> softmax over {config.vocab_size} characters.",
        "parameters": sum(p.numel() for p in model.parameters()),
        **extra,
    }


# ---------------------------------------------------------------- training
def split_train_val(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """nanoGPT's shakespeare_char split: the first 90% trains, the rest validates."""
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


@dataclass
class TextBatch:
    inputs: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    fresh: bool  # True at the start of a pass: the carried state is reset
    num_tokens: int = 0


class TextTask:
    """Stateful truncated BPTT (char-rnn style): the training text is cut into contiguous
    streams, one per batch row, read window after window with the LSTM state carried over,
    so the model learns to use context longer than one window. Validation also carries state
    through the whole validation text, so every character is scored given all before it."""

    def __init__(self, train_ids: list[int], val_ids: list[int], batch_size: int = 64, seq_len: int = 128):
        self.train_ids = torch.tensor(train_ids, dtype=torch.long)
        self.val_ids = torch.tensor(val_ids, dtype=torch.long)
        self.batch_size, self.seq_len = batch_size, seq_len
        if len(train_ids) < batch_size * (seq_len + 1) or len(val_ids) < 2:
            raise ValueError(
                f"the training text has {len(train_ids):,} characters, fewer than batch size x (sequence length + 1)"
                f" = {batch_size * (seq_len + 1):,}, or the validation part has fewer than 2: use more text or"
                " a smaller --batch-size / --seq-len"
            )
        self.state = None

    def train_batch(self, step: int, rank: int, world_size: int, device) -> TextBatch:
        rows = self.batch_size * world_size
        stream_len = (len(self.train_ids) - 1) // rows
        windows = max(1, stream_len // self.seq_len)
        window = step % windows
        # Each pass shifts the cut points a little so window borders move between passes.
        offset = (step // windows) * 7 % max(1, stream_len - windows * self.seq_len + 1)
        starts = torch.arange(rank * self.batch_size, (rank + 1) * self.batch_size) * stream_len
        index = starts[:, None] + offset + window * self.seq_len + torch.arange(self.seq_len)[None, :]
        return TextBatch(
            self.train_ids[index].to(device),
            self.train_ids[index + 1].to(device),
            fresh=window == 0,
            num_tokens=self.batch_size * self.seq_len,
        )

    def loss(self, model, batch: TextBatch) -> torch.Tensor:
        state = None if batch.fresh or self.state is None else self.state
        logits, state = model(batch.inputs, state)
        self.state = tuple(s.detach() for s in state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))

    def evaluate(self, model) -> float:
        return nats_per_char(model, self.val_ids)


@torch.no_grad()
def nats_per_char(model: TextModel, ids, streams: int = 16, chunk: int = 1024) -> float:
    """Mean -log P(char | all earlier chars) in nats, state carried through the text.

    The text is cut into `streams` contiguous pieces run side by side for speed; each piece's
    first character has no prediction, all others are scored."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if len(ids) < 2:
        raise ValueError("need at least 2 characters to score a prediction")
    device = next(model.parameters()).device
    streams = max(1, min(streams, (len(ids) - 1) // 2))
    piece = (len(ids) - 1) // streams
    total, count = 0.0, 0
    rows = torch.stack([ids[k * piece : k * piece + piece + 1] for k in range(streams)]).to(device)
    state = None
    for start in range(0, piece, chunk):
        inputs = rows[:, start : min(start + chunk, piece)]
        targets = rows[:, start + 1 : min(start + chunk, piece) + 1]
        logits, state = model(inputs, state)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
        count += targets.numel()
    # Scored characters outside the streams' even split are left out: at most `streams` chars.
    return total / count


# ---------------------------------------------------------------- generation
@dataclass
class TextSettings:
    prompt: str = ""  # primes the state; empty starts from a fresh state after a newline
    length: int = 400  # characters to generate, clamped to [1, MAX_LENGTH]
    sampling: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class TextResult:
    prompt: str  # the prompt as the model read it (unknown characters removed)
    text: str  # the generated characters only
    notes: list[str]  # what was adjusted in the request, in plain words


def clean_settings(settings: TextSettings, codec: CharCodec) -> tuple[list[int], bool, int, list[str]]:
    """(prompt ids, whether they are the implicit fresh start, length, notes): applies the
    documented limits to a user's request."""
    notes = []
    prompt = settings.prompt or ""
    if len(prompt) > MAX_PROMPT:
        prompt = prompt[-MAX_PROMPT:]
        notes.append(f"The prompt was longer than {MAX_PROMPT:,} characters; only its last {MAX_PROMPT:,} were used.")
    ids, dropped = codec.encode(prompt)
    fresh_start = not ids
    if dropped:
        shown = ", ".join(repr(ch) for ch in dropped[:20]) + (" …" if len(dropped) > 20 else "")
        notes.append(f"Dropped characters this model never saw: {shown}.")
    if not ids:
        start = "\n" if "\n" in codec.index else codec.chars[0]
        ids = [codec.index[start]]
        notes.append("Empty prompt: started from a fresh state, as after a line break." if not prompt else "Nothing of the prompt was usable: started from a fresh state, as after a line break.")
    length = int(settings.length)
    if length < 1:
        notes.append(f"Length {length} is below 1; generated 1 character.")
        length = 1
    elif length > MAX_LENGTH:
        notes.append(f"Length {length:,} is above the cap of {MAX_LENGTH:,}; generated {MAX_LENGTH:,} characters.")
        length = MAX_LENGTH
    if settings.sampling.temperature <= 0:
        notes.append("Temperature ≤ 0: greedy decoding (always the most likely character); seed and top-k/top-p have no effect.")
    return ids, fresh_start, length, notes


@torch.no_grad()
def generate(model: TextModel, codec: CharCodec, settings: TextSettings, traced: bool = True) -> tuple[TextResult, Trace | None]:
    """Prime with the prompt (teacher-forced, traced in one pass), then sample step by step.

    With traced=True every step's gates are kept (LSTMCore.step computes them anyway); with
    traced=False the fused kernel runs each step and nothing is kept (benchmarks compare the two).
    """
    prompt_ids, fresh_start, length, notes = clean_settings(settings, codec)
    device = next(model.parameters()).device
    generator = make_generator(settings.sampling.seed)
    prompt = torch.tensor([prompt_ids], device=device)
    if traced:
        logits, state, gates = model.trace(prompt)
        prompt_trace = Trace.from_sequence(gates, codec.decode(prompt_ids))
    else:
        logits, state = model(prompt)
    logits = logits[0, -1]
    out_ids, step_gates = [], []
    for _ in range(length):
        token = sample_next(logits.cpu(), settings.sampling, generator)
        out_ids.append(token)
        # The last character is read too, so every shown character has a state to paint.
        token = torch.tensor([token], device=device)
        if traced:
            logits, state, gates = model.step(token, state)
            step_gates.append(gates)
        else:
            logits, state = model(token[:, None], state)
            logits = logits[:, -1]
        logits = logits[0]
    text = codec.decode(out_ids)
    result = TextResult(prompt="" if fresh_start else codec.decode(prompt_ids), text=text, notes=notes)
    if not traced:
        return result, None
    # shown_from: the implicit line break of a fresh start is traced but not shown
    meta = {"domain": DOMAIN, "prompt_length": len(prompt_ids), "shown_from": int(fresh_start)}
    trace = Trace.concat(prompt_trace, Trace.from_steps(step_gates, text), meta)
    return result, trace


# ---------------------------------------------------------------- render
QUANTITY_RANGES = {"i": (0, 1), "f": (0, 1), "o": (0, 1), "g": (-1, 1), "h": (-1, 1), "tanh_c": (-1, 1)}


def unit_values(trace: Trace, layer: int, quantity: str, unit: int) -> tuple[np.ndarray, float, float]:
    """(values over the shown steps, vmin, vmax) of one unit, with a colour range that suits
    the quantity: gates 0..1, squashed values -1..1, the raw cell symmetric around 0."""
    values = trace.quantity(layer, quantity)[trace.meta.get("shown_from", 0) :, unit]
    if quantity in QUANTITY_RANGES:
        vmin, vmax = QUANTITY_RANGES[quantity]
    else:
        bound = float(np.abs(values).max()) or 1.0
        vmin, vmax = -bound, bound
    return values, vmin, vmax


def render_html(trace: Trace, layer: int, quantity: str, unit: int) -> str:
    """The prompt and generated text, each character painted by one unit's value after reading
    it (Karpathy 2015). Prompt characters are underlined; hovering a character shows the value."""
    from html import escape

    from studio.viz import activation_colors

    values, vmin, vmax = unit_values(trace, layer, quantity, unit)
    labels = trace.labels[trace.meta.get("shown_from", 0) :]
    prompt_end = trace.meta.get("prompt_length", 0) - trace.meta.get("shown_from", 0)
    spans = []
    for k, (ch, colour, value) in enumerate(zip(labels, activation_colors(values, vmin, vmax), values, strict=False)):
        kind = "ch prompt" if k < prompt_end else "ch"
        spans.append(f'<span class="{kind}" style="background:{colour}" title="{value:+.3f}">{escape(ch)}</span>')
    return (
        '<div class="lstm-text" style="font-family:monospace;white-space:pre-wrap;line-height:1.5;'
        'padding:8px;border:1px solid #ddd;border-radius:6px;max-height:32em;overflow:auto">'
        + "".join(spans)
        + "</div>"
    )
