"""Speech models, loading and saving.

SpeechModel (kind "text-to-mel"): character embedding -> 3 conv layers (encoder, 13-character
receptive field); decoder per step of R frames: prenet(last frame) -> attention LSTM (trace layer
0) -> Graves GMM window over the encoded characters (kappa only moves forward, so the alignment is
monotonic) -> decoder LSTM (layers 1..) fed [attention h, context, voice] -> R mel frames + a stop
logit. The attention LSTM reads the previous step's context (what it was just looking at) next to
the previous frame, as in Graves (2013) and Tacotron: without it the window can only guess its
speed from the sound, and drifts off the text on spellings like "th" or silent letters. So the
teacher-forced pass steps the attention layer (LSTMCore.cell in training, LSTMCore.step when
tracing) and runs the decoder LSTM fused over all steps; generation calls `step`.

FrameModel (kind "frame-lstm", continue mode): an unconditional LSTM over groups of R frames that
predicts the next group; primed with a recording's frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.domains.base import LoadedModel
from studio.domains.speech.codec import CHARS, N_MELS, PAD, VOICES, SpeechCodec
from studio.lstm import LSTMConfig, LSTMCore, State

NAME = "speech"
TTS_KIND = "text-to-mel"
FRAME_KIND = "frame-lstm"


@dataclass
class SpeechModelConfig:
    num_voices: int = len(VOICES)  # speaker ids the voice embedding knows
    reduction: int = 3  # mel frames produced per decoder step (R)
    embed_size: int = 128  # character embedding and encoder width
    voice_size: int = 16  # voice embedding width (appended to both LSTMs' inputs)
    prenet_size: int = 128  # prenet width; its dropout stays on when generating (Tacotron 2)
    prenet_dropout: float = 0.5
    hidden_size: int = 256  # units of the attention LSTM and of each decoder LSTM layer
    decoder_layers: int = 1  # decoder LSTM layers after the attention LSTM
    mixtures: int = 5  # Gaussians in the Graves attention window
    mel_mean: list = field(default_factory=lambda: [0.0] * N_MELS)  # corpus log-mel mean per bin
    mel_std: list = field(default_factory=lambda: [1.0] * N_MELS)  # corpus log-mel std per bin


@dataclass
class DecoderState:
    """What the text-to-mel decoder carries from one step to the next (batch 1 when generating)."""

    encoded: torch.Tensor  # (B, U, E) the encoded characters
    text_mask: torch.Tensor  # (B, U) 1 on real characters
    voice: torch.Tensor  # (B, V) the voice embedding
    attention: State  # the attention LSTM's (h, c)
    decoder: State  # the decoder LSTM's (h, c)
    kappa: torch.Tensor  # (B, K) the window's positions
    context: torch.Tensor  # (B, 1, E) what the window read at the last step


@dataclass
class DecoderStep:
    """What one decoder step produced."""

    group: torch.Tensor  # (B, R*80) the next R frames, normalised
    stop_logit: torch.Tensor  # (B, 1)
    phi: torch.Tensor  # (B, U) the window's weights over the characters
    gates: list  # per trace layer (attention first) a dict of (B, H) tensors


class MelModel(nn.Module):
    """A model over log-mel frames normalised per bin with the corpus mean/std of its config."""

    def register_mel_stats(self, config) -> None:
        self.register_buffer("mel_mean", torch.tensor(config.mel_mean, dtype=torch.float32))
        self.register_buffer("mel_std", torch.tensor(config.mel_std, dtype=torch.float32))

    def normalize(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.mel_mean) / self.mel_std

    def denormalize(self, frames: torch.Tensor) -> torch.Tensor:
        return frames * self.mel_std + self.mel_mean


class SpeechModel(MelModel):
    def __init__(self, config: SpeechModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(len(CHARS), c.embed_size, padding_idx=PAD)
        self.encoder = nn.ModuleList(nn.Conv1d(c.embed_size, c.embed_size, 5, padding=2) for _ in range(3))
        self.encoder_norms = nn.ModuleList(nn.BatchNorm1d(c.embed_size) for _ in range(3))
        self.voice = nn.Embedding(c.num_voices, c.voice_size)
        self.prenet = nn.Sequential(nn.Linear(N_MELS, c.prenet_size), nn.ReLU(), nn.Linear(c.prenet_size, c.prenet_size), nn.ReLU())
        # reads [prenet(previous frame), voice, previous context]
        self.attention_rnn = LSTMCore(LSTMConfig(c.prenet_size + c.voice_size + c.embed_size, c.hidden_size, 1))
        self.window = nn.Linear(c.hidden_size, 3 * c.mixtures)  # -> weight, width, step per Gaussian
        self.decoder_rnn = LSTMCore(LSTMConfig(c.hidden_size + c.embed_size + c.voice_size, c.hidden_size, c.decoder_layers))
        self.frames = nn.Linear(c.hidden_size + c.embed_size, c.reduction * N_MELS)
        self.stop = nn.Linear(c.hidden_size + c.embed_size, 1)
        with torch.no_grad():  # start the window moving ~0.4 characters a step, ~1 character wide
            self.window.bias[2 * c.mixtures :].fill_(math.log(math.expm1(0.4)))
            self.window.bias[c.mixtures : 2 * c.mixtures].fill_(0.0)
        self.register_mel_stats(c)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, U) -> encoded characters (B, U, E)."""
        x = self.embed(tokens).transpose(1, 2)  # (B, E, U)
        for conv, norm in zip(self.encoder, self.encoder_norms, strict=True):
            x = F.dropout(F.relu(norm(conv(x))), 0.1, self.training)
        return x.transpose(1, 2)

    def prenet_masks(self, shape, generator=None, device=None) -> list[torch.Tensor]:
        """The prenet's dropout masks (bool, True = kept), one per layer, (*shape, P) for frames of
        shape (*shape, 80). A seeded read of a sequence (shape (B, T)) draws them step by step, layer
        by layer, as `step` does while generating: read with the generation's seed, the teacher-forced
        pass drops the very units the generation dropped."""
        keep, size = 1 - self.config.prenet_dropout, self.config.prenet_size
        layers = sum(isinstance(layer, nn.ReLU) for layer in self.prenet)
        if generator is None or len(shape) != 2:  # training (unseeded) or one step: one draw per layer
            return [torch.rand((*shape, size), generator=generator, device=device) < keep for _ in range(layers)]
        draws = [[torch.rand((shape[0], size), generator=generator, device=device) < keep for _ in range(layers)]
                 for _ in range(shape[1])]
        return [torch.stack([step[k] for step in draws], 1) for k in range(layers)]

    def _prenet(self, frames: torch.Tensor, generator=None, masks=None) -> torch.Tensor:
        """Dropout on in every mode (Tacotron 2); `generator` seeds its masks, or `masks`
        (prenet_masks, broadcast over the batch) fixes them."""
        masks = iter(self.prenet_masks(frames.shape[:-1], generator, frames.device) if masks is None else masks)
        keep = 1 - self.config.prenet_dropout
        x = frames
        for layer in self.prenet:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                x = x * next(masks) / keep
        return x

    def attention_window(self, h: torch.Tensor, kappa_prev: torch.Tensor | None):
        """h (B, T, H) -> weights, widths, positions (B, T, K): kappa is cumulative over T
        (T = 1 when stepping: pass the previous position as kappa_prev (B, K))."""
        weight, width, step = self.window(h).chunk(3, dim=-1)
        step = F.softplus(step)
        kappa = torch.cumsum(step, dim=1)
        if kappa_prev is not None:
            kappa = kappa + kappa_prev[:, None]
        return torch.softmax(weight, -1), F.softplus(width) + 0.05, kappa

    @staticmethod
    def _attend(weights, widths, kappa, encoded, text_mask):
        """GMM window: phi (B, T, U) = sum_k w_k exp(-width_k (kappa_k - u)^2); context (B, T, E)."""
        u = torch.arange(encoded.shape[1], device=encoded.device, dtype=encoded.dtype)
        distance = kappa[..., None] - u  # (B, T, K, U)
        phi = (weights[..., None] * torch.exp(-widths[..., None] * distance**2)).sum(2)
        phi = phi * text_mask[:, None, :]
        return phi, phi @ encoded

    def _read(self, tokens, voices, mel_in, generator=None, traced=False, masks=None, reads=None):
        """The teacher-forced pass: frames (B, T, R*80), stop logits (B, T), alignment (B, T, U) and,
        when traced, per-layer gates (B, T, H) (attention layer first). `reads`, a list, gets what
        the attention LSTM and the first decoder layer read at each step (B, T, X)."""
        encoded = self.encode(tokens)  # (B, U, E)
        text_mask = (tokens != PAD).float()
        batch, steps = mel_in.shape[:2]
        voice = self.voice(voices)[:, None].expand(-1, steps, -1)
        frames_in = torch.cat([self._prenet(mel_in, generator, masks), voice], -1)  # (B, T, P+V)
        state = self.attention_rnn.initial_state(batch, mel_in.device)
        h, c = state[0][0], state[1][0]
        kappa = mel_in.new_zeros(batch, self.config.mixtures)
        context = mel_in.new_zeros(batch, 1, self.config.embed_size)
        hs, phis, contexts, step_gates, attention_in = [], [], [], [], []
        for t in range(steps):  # the attention layer reads the context it produced a step ago
            x = torch.cat([frames_in[:, t], context[:, 0]], -1)
            attention_in.append(x)
            if traced:  # the exact gates, as generation records them
                h, state, gates = self.attention_rnn.step(x, state)
                step_gates.append(gates[0])
            else:  # differentiable, for training
                h, c = self.attention_rnn.cell(x, h, c)
            weights, widths, kappa_t = self.attention_window(h[:, None], kappa)
            kappa = kappa_t[:, 0]
            phi, context = self._attend(weights, widths, kappa_t, encoded, text_mask)  # (B, 1, U), (B, 1, E)
            hs.append(h)
            phis.append(phi)
            contexts.append(context)
        h_att, phi, context = torch.stack(hs, 1), torch.cat(phis, 1), torch.cat(contexts, 1)
        decoder_in = torch.cat([h_att, context, voice], -1)
        if reads is not None:
            reads += [torch.stack(attention_in, 1), decoder_in]
        if traced:
            h_dec, _, decoder_gates = self.decoder_rnn.trace(decoder_in)
            attention_gates = {name: torch.stack([g[name] for g in step_gates], 1) for name in step_gates[0]}
            gates = [attention_gates] + decoder_gates
        else:
            h_dec, _ = self.decoder_rnn(decoder_in)
            gates = None
        out = torch.cat([h_dec, context], -1)
        return self.frames(out), self.stop(out).squeeze(-1), phi, gates

    def forward(self, tokens, voices, mel_in, generator=None, masks=None):
        """Teacher-forced. tokens (B, U), voices (B,), mel_in (B, T, 80) normalised frames that
        precede each step -> frames (B, T, R*80), stop logits (B, T), alignment (B, T, U)."""
        frames, stop, phi, _ = self._read(tokens, voices, mel_in, generator, masks=masks)
        return frames, stop, phi

    @torch.no_grad()
    def trace(self, tokens, voices, mel_in, generator=None, masks=None, reads=None):
        """forward's outputs plus the gates of every layer (B, T, H), attention layer first."""
        return self._read(tokens, voices, mel_in, generator, traced=True, masks=masks, reads=reads)

    @torch.no_grad()
    def start(self, tokens: torch.Tensor, voices: torch.Tensor) -> DecoderState:
        """The state before the first decoder step: tokens (B, U) encoded, voices (B,) embedded."""
        batch, device = tokens.shape[0], tokens.device
        return DecoderState(
            encoded=self.encode(tokens), text_mask=(tokens != PAD).float(), voice=self.voice(voices),
            attention=self.attention_rnn.initial_state(batch, device), decoder=self.decoder_rnn.initial_state(batch, device),
            kappa=torch.zeros(batch, self.config.mixtures, device=device),
            context=torch.zeros(batch, 1, self.config.embed_size, device=device))

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: DecoderState, hooks=None, step: int = 0,
             generator=None) -> tuple[DecoderStep, DecoderState]:
        """One decoder step: frame (B, 80) normalised (the last frame of the previous group; zeros
        first) -> the next group and stop logit. Hooks (studio.lstm) see the attention LSTM as layer
        0 and the decoder's layers after it; `generator` seeds the prenet dropout."""
        x = torch.cat([self._prenet(frame, generator), state.voice, state.context[:, 0]], -1)
        h_att, attention, attention_gates = self.attention_rnn.step(x, state.attention, hooks, step, first_layer=0)
        weights, widths, kappa = self.attention_window(h_att[:, None], state.kappa)
        kappa = kappa[:, 0]
        phi, context = self._attend(weights, widths, kappa[:, None], state.encoded, state.text_mask)
        decoder_in = torch.cat([h_att, context[:, 0], state.voice], -1)
        h_dec, decoder, decoder_gates = self.decoder_rnn.step(decoder_in, state.decoder, hooks, step, first_layer=1)
        out = torch.cat([h_dec, context[:, 0]], -1)
        made = DecoderStep(self.frames(out), self.stop(out), phi[:, 0], attention_gates + decoder_gates)
        return made, replace(state, attention=attention, decoder=decoder, kappa=kappa, context=context)


@dataclass
class FrameModelConfig:
    reduction: int = 3  # frames per step
    hidden_size: int = 256
    num_layers: int = 2
    mel_mean: list = field(default_factory=lambda: [0.0] * N_MELS)
    mel_std: list = field(default_factory=lambda: [1.0] * N_MELS)
    mel_min: list = field(default_factory=list)  # per-bin least training log-mel (empty: not known)
    mel_max: list = field(default_factory=list)  # per-bin greatest training log-mel (empty: not known)
    # True: predict the change from the group read (the output integrates: noise read is carried on);
    # False: predict the next group itself (bounded by the head, as |h| < 1), see docs/speech.md
    residual: bool = True


class FrameModel(MelModel):
    """Continue mode: groups of R normalised frames in, the next group out."""

    def __init__(self, config: FrameModelConfig):
        super().__init__()
        self.config = config
        size = config.reduction * N_MELS
        self.inp = nn.Linear(size, config.hidden_size)
        self.core = LSTMCore(LSTMConfig(config.hidden_size, config.hidden_size, config.num_layers))
        self.head = nn.Linear(config.hidden_size, size)
        self.register_mel_stats(config)

    def forward(self, groups, state=None):
        """groups (B, T, R*80) -> the next groups (B, T, R*80), state."""
        out, state = self.core(torch.relu(self.inp(groups)), state)
        return self._next(groups, out), state

    def _next(self, groups, out):
        """The next group: the head's output, added to the group read when the model is residual."""
        return groups + self.head(out) if self.config.residual else self.head(out)

    def trace(self, groups, state=None):
        out, state, gates = self.core.trace(torch.relu(self.inp(groups)), state)
        return self._next(groups, out), state, gates

    @torch.no_grad()
    def step(self, group, state, hooks=None, step: int = 0):
        """group (B, R*80) -> the next group (B, R*80), state, this step's gates."""
        out, state, gates = self.core.step(torch.relu(self.inp(group)), state, hooks, step)
        return self._next(group, out), state, gates


def group_frames(frames: torch.Tensor, r: int) -> torch.Tensor:
    """(B, T, 80) -> (B, T // r, r*80); trailing frames that do not fill a group are dropped."""
    b, t, n = frames.shape
    t = t // r * r
    return frames[:, :t].reshape(b, t // r, r * n)


# ---------------------------------------------------------------- checkpoints
def layer_names(model) -> list[str]:
    if isinstance(model, FrameModel):
        return [f"layer {k}" for k in range(model.config.num_layers)]
    return ["attention LSTM"] + [f"decoder LSTM {k + 1}" for k in range(model.config.decoder_layers)]


def describe(model) -> str:
    """The card's one-sentence description."""
    c = model.config
    if isinstance(model, FrameModel):
        return (f"Frame LSTM (continue mode): {c.num_layers} layers x {c.hidden_size} units predict the next group of "
                f"{c.reduction} log-mel frames ({N_MELS} bands) from the ones before, so a recording can be continued.")
    return (f"Text-to-mel LSTM (Tacotron-style): character embeddings read by an attention LSTM with a Graves Gaussian "
            f"window, a {c.decoder_layers}-layer LSTM decoder emitting {c.reduction} log-mel frames ({N_MELS} bands) "
            "per step and a stop token; Griffin-Lim makes the audio.")


def summary(model, card: dict) -> str:
    """One line for the model header."""
    c, metrics = model.config, card.get("metrics", {})
    if isinstance(model, FrameModel):
        val = metrics.get("best_val_loss")
        return (f"{c.num_layers} layers × {c.hidden_size} units, {c.reduction} frames a step"
                + (f", val loss {val:.3f}" if val else ""))
    mcd = metrics.get("mcd_db")
    return (f"{c.hidden_size}-unit attention LSTM + {c.decoder_layers} decoder layer(s), {c.reduction} frames a step"
            + (f", MCD {mcd:.2f} dB on held-out sentences" if mcd else ""))


def load(stem, device="cpu") -> LoadedModel:
    """A SpeechModel or FrameModel checkpoint (card['kind'] says which)."""
    tensors, card = checkpoint.load(stem, domain=NAME)
    try:
        kinds = {TTS_KIND: (SpeechModel, SpeechModelConfig), FRAME_KIND: (FrameModel, FrameModelConfig)}
        if card["kind"] not in kinds:
            raise ValueError(f"unknown kind {card['kind']!r} (expected {' or '.join(kinds)})")
        model_type, config_type = kinds[card["kind"]]
        model = model_type(config_type(**card["config"]))
        model.load_state_dict(tensors)
        codec = SpeechCodec.from_card(card["codec"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return LoadedModel(checkpoint.paths(stem)[1].stem, model.to(device).eval(), codec, card, layer_names(model),
                       summary(model, card))


def make_card(model, codec: SpeechCodec, **fields) -> dict:
    kind = FRAME_KIND if isinstance(model, FrameModel) else TTS_KIND
    return checkpoint.make_card(NAME, kind, model, codec.card(), describe(model), **fields)


def save(stem, model, codec: SpeechCodec, card: dict | None = None):
    """Weights + a complete card (fields in `card` override the made ones)."""
    return checkpoint.save(stem, model.state_dict(), make_card(model, codec, **(card or {})))
