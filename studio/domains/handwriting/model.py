"""Handwriting models (Graves 2013), both on the shared LSTMCore, both with a mixture density
output over the next pen offset; loading and saving through the one checkpoint format.

* `PredictionModel` (section 4, card kind "prediction"): LSTMCore over normalised offsets -> MDN
  head of M bivariate Gaussians with correlation plus a Bernoulli end-of-stroke (pen_lift).
* `SynthesisModel` (section 5, kind "synthesis"): an attention LSTM (one layer) whose hidden state
  sets a soft window of K Gaussians over the one-hot characters; the window vector w_t and h1 feed
  an LSTMCore; the MDN head reads every layer (skip connections). The attention layer reads
  w_{t-1}, so it is stepped even in training (LSTMCore.cell); the layers above run fused.

Layer numbers (traces and hooks): the synthesis model's attention layer is layer 0 and the core's
layers follow (1, 2, ...); a prediction model's layers are its core's (0, 1, ...).

Sampling bias b (section 5.4): sigma = exp(sigma_hat - b), pi = softmax(pi_hat (1 + b)).

Style (optional, `SynthesisConfig.styles` > 0): a one-hot style ("cursive", "print", STYLE_NAMES)
appended to the inputs of the attention layer and of the first core layer at every step, so the
hand is a choice rather than something the network guesses from its own first strokes. The style
rides in the state (`WindowState.style`); None is style 0, cursive, the default of unprimed writing.
A model without styles (every checkpoint before them) reads exactly what it read before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.domains.base import LoadedModel
from studio.domains.handwriting.codec import HandwritingAlphabet, HandwritingCodec
from studio.lstm import GATE_NAMES, LSTMConfig, LSTMCore

NAME = "handwriting"
SYNTHESIS, PREDICTION = "synthesis", "prediction"  # the card's `kind`
STYLE_NAMES = ("cursive", "print")  # style k of a model with styles; 0 is the default


# ---------------------------------------------------------------- mixture density output
@dataclass
class MDNParams:
    eos_logit: torch.Tensor  # (..., 1)
    log_pi: torch.Tensor  # (..., M) log mixture weights
    mu: torch.Tensor  # (..., M, 2)
    log_sigma: torch.Tensor  # (..., M, 2)
    rho: torch.Tensor  # (..., M) correlation in (-1, 1)

    @classmethod
    def stack(cls, steps: list[MDNParams]) -> MDNParams:
        """Per-step params (each unbatched) -> one record with a leading steps axis."""
        return cls(*(torch.stack([getattr(p, f.name) for p in steps]) for f in fields(cls)))

    def to(self, device) -> MDNParams:
        return MDNParams(*(getattr(self, f.name).to(device) for f in fields(self)))

    def arrays(self) -> dict[str, np.ndarray]:
        """The contract's distributions: "pi" (..., M) weights, "mu" and "sigma" (..., M, 2),
        "rho" (..., M) and "eos" (...,) the pen-lift probability, float32, in normalised units."""
        values = {"pi": self.log_pi.exp(), "mu": self.mu, "sigma": self.log_sigma.exp(), "rho": self.rho,
                  "eos": torch.sigmoid(self.eos_logit[..., 0])}
        return {name: value.float().cpu().numpy() for name, value in values.items()}


def mdn_split(raw: torch.Tensor, mixtures: int, bias: float = 0.0) -> MDNParams:
    """Graves eqs 18-22 (and 61-62 with bias): raw (..., 1 + 6M) -> MDN parameters."""
    m = mixtures
    eos, pi, mu, sigma, rho = raw.split([1, m, 2 * m, 2 * m, m], dim=-1)
    return MDNParams(
        eos_logit=eos,
        log_pi=torch.log_softmax(pi * (1 + bias), dim=-1),
        mu=mu.reshape(*mu.shape[:-1], m, 2),
        log_sigma=sigma.reshape(*sigma.shape[:-1], m, 2) - bias,
        rho=torch.tanh(rho) * 0.999,  # keeps 1 - rho^2 away from 0
    )


def mdn_log_likelihood(params: MDNParams, target: torch.Tensor) -> torch.Tensor:
    """log p(target) per point: log sum_j pi_j N(dx, dy | mu_j, sigma_j, rho_j) + log Bernoulli(pen_lift).
    target (..., 3) normalised offsets -> (...,)."""
    xy = target[..., None, :2]  # (..., 1, 2)
    z = (xy - params.mu) / params.log_sigma.exp()  # (..., M, 2)
    one_minus = 1 - params.rho**2
    quad = (z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * params.rho * z[..., 0] * z[..., 1]) / one_minus
    log_gauss = -quad / 2 - math.log(2 * math.pi) - params.log_sigma.sum(-1) - 0.5 * torch.log(one_minus)
    log_xy = torch.logsumexp(params.log_pi + log_gauss, dim=-1)
    log_eos = -F.binary_cross_entropy_with_logits(params.eos_logit[..., 0], target[..., 2], reduction="none")
    return log_xy + log_eos


def mdn_sample(params: MDNParams, generator: torch.Generator) -> torch.Tensor:
    """One point (3,) from unbatched params (M,) shapes, on the generator's device (the CPU)."""
    j = int(torch.multinomial(params.log_pi.exp(), 1, generator=generator))
    mu, sigma, rho = params.mu[j], params.log_sigma[j].exp(), params.rho[j]
    n = torch.randn(2, generator=generator)
    dx = mu[0] + sigma[0] * n[0]
    dy = mu[1] + sigma[1] * (rho * n[0] + torch.sqrt(1 - rho**2) * n[1])
    lift = float(torch.rand(1, generator=generator) < torch.sigmoid(params.eos_logit[0]))
    return torch.stack([dx, dy, torch.tensor(lift)])


# ---------------------------------------------------------------- prediction (section 4)
@dataclass
class PredictionConfig:
    hidden_size: int = 256  # LSTM units per layer
    num_layers: int = 2
    mixtures: int = 20  # M bivariate Gaussians in the output mixture
    dropout: float = 0.0


class PredictionModel(nn.Module):
    """Section 4: LSTMCore over normalised offsets -> mixture density output."""

    def __init__(self, config: PredictionConfig):
        super().__init__()
        self.config = config
        self.core = LSTMCore(LSTMConfig(3, config.hidden_size, config.num_layers, config.dropout))
        self.head = nn.Linear(config.hidden_size, 1 + 6 * config.mixtures)

    def forward(self, points: torch.Tensor, state=None):
        """points (B, T, 3) -> raw MDN outputs (B, T, 1 + 6M), state. The fused path."""
        out, state = self.core(points, state)
        return self.head(out), state

    def trace(self, points: torch.Tensor, state=None):
        """Teacher-forced: raw (B, T, 1 + 6M), state, per-layer gates (B, T, H)."""
        out, state, gates = self.core.trace(points, state)
        return self.head(out), state, gates

    @torch.no_grad()
    def step(self, point: torch.Tensor, state, hooks=None, step: int = 0):
        """point (B, 3) -> raw (B, 1 + 6M), state, gates of this step (hooks: studio.lstm)."""
        out, state, gates = self.core.step(point, state, hooks, step)
        return self.head(out), state, gates


# ---------------------------------------------------------------- synthesis (section 5)
@dataclass
class SynthesisConfig:
    vocab_size: int  # characters the window reads
    hidden_size: int = 128  # units of every LSTM layer (the attention layer and those above)
    num_layers: int = 2  # fused LSTMCore layers above the attention layer
    mixtures: int = 20  # M output Gaussians
    window_gaussians: int = 10  # K Gaussians of the soft window
    styles: int = 0  # one-hot styles appended to the attention and first core inputs (STYLE_NAMES); 0: none
    style_scale: float = 6.0  # the one-hot's height: Adam moves a weight ~lr a step, so a taller input lets a
    # style fine-tuned in from zero weights reach a useful size in a few thousand steps at a gentle lr


@dataclass
class WindowState:
    kappa: torch.Tensor  # (B, K) window positions (in characters)
    w: torch.Tensor  # (B, V) last window vector
    style: torch.Tensor | None = None  # (B, S) one-hot style (S = config.styles; None: style 0)


class SynthesisModel(nn.Module):
    """Section 5: attention LSTM -> soft window over the text -> LSTMCore -> MDN head."""

    def __init__(self, config: SynthesisConfig):
        super().__init__()
        self.config = config
        h, v = config.hidden_size, config.vocab_size
        s = config.styles
        self.attention = LSTMCore(LSTMConfig(3 + v + s, h, 1))
        self.window = nn.Linear(h, 3 * config.window_gaussians)
        self.core = LSTMCore(LSTMConfig(3 + v + h + s, h, config.num_layers))
        self.head = nn.Linear(h * (1 + config.num_layers), 1 + 6 * config.mixtures)
        with torch.no_grad():  # start the window moving slowly: ~1 character per 12 points
            self.window.bias[2 * config.window_gaussians :] = math.log(1 / 12)

    def initial_state(self, batch: int, style: int | None = None):
        """Fresh states; `style` is an index into STYLE_NAMES (None: 0, cursive), ignored without styles."""
        k, v = self.config.window_gaussians, self.config.vocab_size
        device = self.window.weight.device
        styles = self.style_vector(None if style is None else torch.full((batch,), int(style)), batch, device)
        return (self.attention.initial_state(batch), WindowState(torch.zeros(batch, k, device=device),
                                                                 torch.zeros(batch, v, device=device), styles),
                self.core.initial_state(batch))

    def style_vector(self, style: torch.Tensor | None, batch: int, device=None) -> torch.Tensor:
        """style (B,) indices or None (style 0) -> (B, S) one-hot times style_scale; (B, 0) without styles."""
        device = device or self.window.weight.device
        out = torch.zeros(batch, self.config.styles, device=device, dtype=self.window.weight.dtype)
        if self.config.styles:
            index = torch.zeros(batch, dtype=torch.long) if style is None else torch.as_tensor(style).long().cpu()
            if int(index.min()) < 0 or int(index.max()) >= self.config.styles:
                raise ValueError(f"style must be 0..{self.config.styles - 1}, not {index.tolist()}")
            out[torch.arange(batch), index.to(torch.long)] = self.config.style_scale
        return out

    def window_weights(self, h1: torch.Tensor, kappa: torch.Tensor, chars: torch.Tensor, char_mask: torch.Tensor | None,
                       extra: int = 0):
        """Graves eqs 46-51. h1 (B, H), kappa (B, K), chars (B, U, V) ->
        (phi (B, U+extra), new kappa). extra=1 also scores position U (past the end)."""
        alpha_hat, beta_hat, kappa_hat = self.window(h1).chunk(3, dim=-1)
        alpha, beta = alpha_hat.exp(), beta_hat.exp()
        kappa = kappa + kappa_hat.exp()
        u = torch.arange(chars.shape[1] + extra, device=h1.device, dtype=h1.dtype)
        phi = (alpha[:, :, None] * torch.exp(-beta[:, :, None] * (kappa[:, :, None] - u) ** 2)).sum(1)  # (B, U+extra)
        if char_mask is not None:
            phi = phi * torch.cat([char_mask, char_mask.new_ones(char_mask.shape[0], extra)], 1) if extra else phi * char_mask
        return phi, kappa

    def _read_text(self, points, chars, char_mask, traced: bool, styles: torch.Tensor):
        """The attention layer stepped over the points, the window after each:
        (h1 (B, T, H), windows (B, T, V), phi (B, T, U), the layer's gates (B, T, H) or None).
        traced=False is the differentiable training path (LSTMCore.cell); traced=True steps it as
        sampling does (LSTMCore.step, no gradient) and keeps every gate. styles (B, S) one-hot."""
        batch, steps, _ = points.shape
        h = points.new_zeros(batch, self.config.hidden_size)
        c = torch.zeros_like(h)
        kappa = points.new_zeros(batch, self.config.window_gaussians)
        w = points.new_zeros(batch, self.config.vocab_size)
        hs, ws, phis, step_gates = [], [], [], []
        for t in range(steps):
            x = torch.cat([points[:, t], w, styles], -1)
            if traced:
                h, (_, cs), gates = self.attention.step(x, (h[None], c[None]))
                c = cs[0]
                step_gates.append(gates[0])
            else:
                h, c = self.attention.cell(x, h, c)
            phi, kappa = self.window_weights(h, kappa, chars, char_mask)
            w = torch.bmm(phi[:, None], chars)[:, 0]
            hs.append(h)
            ws.append(w)
            phis.append(phi)
        gates = {name: torch.stack([g[name] for g in step_gates], 1) for name in GATE_NAMES} if traced else None
        return torch.stack(hs, 1), torch.stack(ws, 1), torch.stack(phis, 1), gates

    def forward(self, points: torch.Tensor, chars: torch.Tensor, char_mask: torch.Tensor, style=None):
        """Teacher-forced (training): points (B, T, 3), chars (B, U, V), char_mask (B, U), style (B,)
        indices or None (style 0) -> raw (B, T, 1+6M), phi (B, T, U)."""
        styles = self.style_vector(style, points.shape[0], points.device).to(points.dtype)
        h1, window, phi, _ = self._read_text(points, chars, char_mask, False, styles)
        along = styles[:, None].expand(-1, points.shape[1], -1)
        _, _, layer_io = self.core.run_layers(torch.cat([points, window, h1, along], -1), None, keep_layer_io=True)
        raw = self.head(torch.cat([h1] + [io[1] for io in layer_io], -1))
        return raw, phi

    @torch.no_grad()
    def trace(self, points: torch.Tensor, chars: torch.Tensor, style=None):
        """Teacher-forced with every gate: points (B, T, 3), chars (B, U, V), style (B,) or None ->
        raw (B, T, 1+6M), phi (B, T, U), gates [attention layer, core layers...] each a dict of (B, T, H)."""
        styles = self.style_vector(style, points.shape[0], points.device).to(points.dtype)
        h1, window, phi, attention_gates = self._read_text(points, chars, None, True, styles)
        along = styles[:, None].expand(-1, points.shape[1], -1)
        _, _, core_gates = self.core.trace(torch.cat([points, window, h1, along], -1))
        raw = self.head(torch.cat([h1] + [g["h"] for g in core_gates], -1))
        return raw, phi, [attention_gates] + core_gates

    @torch.no_grad()
    def step(self, point: torch.Tensor, chars: torch.Tensor, state, bias: float = 0.0, hooks=None, step: int = 0):
        """point (1, 3), chars (1, U, V) -> (MDN params for the next point, state, gates, phi (U+1,)).
        Hooks (studio.lstm) see the attention layer as layer 0 and the core's as 1, 2, ..."""
        att_state, window, core_state = state
        styles = window.style if window.style is not None else self.style_vector(None, point.shape[0], point.device)
        h1, att_state, att_gates = self.attention.step(torch.cat([point, window.w, styles], -1), att_state, hooks, step)
        phi, kappa = self.window_weights(h1, window.kappa, chars, None, extra=1)
        w = torch.bmm(phi[:, None, :-1], chars)[:, 0]
        out, core_state, core_gates = self.core.step(torch.cat([point, w, h1, styles], -1), core_state, hooks, step,
                                                     first_layer=1)
        raw = self.head(torch.cat([h1] + [g["h"] for g in core_gates], -1))
        params = mdn_split(raw[0], self.config.mixtures, bias)
        return params, (att_state, WindowState(kappa, w, styles), core_state), att_gates + core_gates, phi[0]


# ---------------------------------------------------------------- checkpoints
def kind_of(model) -> str:
    return SYNTHESIS if isinstance(model, SynthesisModel) else PREDICTION


def layer_names(model) -> list[str]:
    if isinstance(model, SynthesisModel):
        return ["attention"] + [f"layer {k + 1}" for k in range(model.config.num_layers)]
    return [f"layer {k}" for k in range(model.config.num_layers)]


def load(stem, device="cpu") -> LoadedModel:
    """The card's kind says which model: "synthesis" writes a text, "prediction" scribbles."""
    tensors, card = checkpoint.load(stem, domain=NAME)
    try:
        if card["kind"] == SYNTHESIS:
            model = SynthesisModel(SynthesisConfig(**card["config"]))
            alphabet = HandwritingAlphabet(card["codec"]["chars"])
        elif card["kind"] == PREDICTION:
            model, alphabet = PredictionModel(PredictionConfig(**card["config"])), None
        else:
            raise ValueError(f"unknown kind {card['kind']!r} (expected {SYNTHESIS!r} or {PREDICTION!r})")
        model.load_state_dict(tensors)
        codec = HandwritingCodec(float(card["codec"]["offset_scale"]), alphabet)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return LoadedModel(checkpoint.paths(stem)[1].stem, model.to(device).eval(), codec, card, layer_names(model),
                       summary(model, card))


def summary(model, card: dict) -> str:
    c, metrics = model.config, card["metrics"]
    if isinstance(model, SynthesisModel):
        line = (f"writes your text: attention 1 × {c.hidden_size} + {c.num_layers} × {c.hidden_size} units, a window "
                f"of {c.window_gaussians} Gaussians over {c.vocab_size} characters"
                + (f", styles {' / '.join(STYLE_NAMES[: c.styles])} (unprimed: {STYLE_NAMES[0]})" if c.styles else ""))
    else:
        line = f"free scribble: {c.num_layers} × {c.hidden_size} units"
    nll, done = metrics.get("held_out_nll_per_point"), metrics.get("finished_fraction")
    return (line + (f", held-out NLL {nll:.3f} nats/point" if nll is not None else "")
            + (f", finishes {done:.0%} of held-out phrases" if done is not None else ""))


def make_card(model, codec: HandwritingCodec, **fields) -> dict:
    c = model.config
    if isinstance(model, SynthesisModel):
        description = (f"Graves (2013) section 5 handwriting synthesis: an attention LSTM ({c.hidden_size} units) with a "
                       f"soft window of {c.window_gaussians} Gaussians over the text, {c.num_layers} LSTM layers x "
                       f"{c.hidden_size} above it, and a {c.mixtures}-component mixture density head over the next "
                       "pen offset.")
    else:
        description = (f"Graves (2013) section 4 handwriting prediction: {c.num_layers} LSTM layers x {c.hidden_size} "
                       f"units -> a mixture of {c.mixtures} bivariate Gaussians over the next pen offset plus an "
                       "end-of-stroke probability (free scribble).")
    return checkpoint.make_card(NAME, kind_of(model), model, codec.card(), description, **fields)


def save(stem, model, codec: HandwritingCodec, card: dict | None = None):
    """Weights + a complete card (fields in `card` override the made ones)."""
    return checkpoint.save(stem, model.state_dict(), make_card(model, codec, **(card or {})))
