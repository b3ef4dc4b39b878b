"""Handwriting scoring: batches of phrases, the held-out NLL per pen point, the finishing rate
(does the pen reach the end of the text?), the contract's teacher-forced `score` / `fused`, the
per-point feature tracks the probes compare units against, how far apart two generations'
mixture densities are (`step_divergence`), and the tiny model and example of the tests.

`score` reads a sample as training does (`make_batch`: a start point with the pen lifted, then
every point but the last as inputs, normalised by the codec's offset scale), so row t of its
distributions is the mixture predicting pen point t from the points before it (and, for a
synthesis model, the transcript read through the window: "phi", (T, U), is the window's weight on
each character at each step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from studio.domains.base import LoadedModel, Scored
from studio.domains.handwriting.codec import (
    MAX_SCORE_POINTS,
    Handwriting,
    HandwritingAlphabet,
    HandwritingCodec,
    HandwritingDetail,
    offsets_to_strokes,
    strokes_to_offsets,
)
from studio.domains.handwriting.generate import HandwritingSettings, generate
from studio.domains.handwriting.model import (
    NAME,
    STYLE_NAMES,
    MDNParams,
    SynthesisConfig,
    SynthesisModel,
    mdn_log_likelihood,
    mdn_split,
)
from studio.experiments import bernoulli_kl
from studio.trace import Trace

NLL_UNITS = "nats per pen point, offsets divided by codec.offset_scale"
VAL_HOW = ("mean -log p(pen point | the points before it and the text) over the held-out phrases, teacher-forced; "
           "`python -m studio eval handwriting --data-dir DIR` prints it")
FINISHED_HOW = ("the window passed the last character and then the pen lifted, sampling each held-out phrase once "
                "(seed = its index)")


@dataclass
class StrokeBatch:
    points: torch.Tensor  # (B, T, 3) inputs: start token then offsets[:-1], normalised
    targets: torch.Tensor  # (B, T, 3) normalised offsets
    mask: torch.Tensor  # (B, T) 1 on real points
    chars: torch.Tensor | None  # (B, U, V) one-hot text
    char_mask: torch.Tensor | None  # (B, U)
    num_tokens: int = 0
    style: torch.Tensor | None = None  # (B,) style indices (model.STYLE_NAMES) or None: style 0

    def to(self, device) -> StrokeBatch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return StrokeBatch(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in moved.items()})


def make_batch(offsets: list[np.ndarray], texts: list[str] | None, alphabet: HandwritingAlphabet | None, scale: float,
               max_points: int = 10_000, styles=None) -> StrokeBatch:
    """Phrases as one padded batch (texts None: a prediction model's batch, no characters; styles:
    one style index per phrase, read by a synthesis model with styles)."""
    lengths = [min(len(o), max_points) for o in offsets]
    steps = max(lengths)
    targets = torch.zeros(len(offsets), steps, 3)
    mask = torch.zeros(len(offsets), steps)
    for b, (off, n) in enumerate(zip(offsets, lengths, strict=True)):
        t = torch.as_tensor(off[:n], dtype=torch.float32)
        targets[b, :n, :2] = t[:, :2] / scale
        targets[b, :n, 2] = t[:, 2]
        mask[b, :n] = 1
    start = torch.zeros(len(offsets), 1, 3)
    start[:, 0, 2] = 1  # the pen begins lifted
    points = torch.cat([start, targets[:, :-1]], 1)
    chars = char_mask = None
    if texts is not None:
        width = max(len(t) for t in texts)
        chars = torch.zeros(len(texts), width, alphabet.size)
        char_mask = torch.zeros(len(texts), width)
        for b, text in enumerate(texts):
            chars[b, : len(text)] = alphabet.one_hot(text)
            char_mask[b, : len(text)] = 1
    style = None if styles is None else torch.as_tensor(np.asarray(styles, np.int64))
    return StrokeBatch(points, targets, mask, chars, char_mask, int(mask.sum()), style)


def batch_nll(model, batch: StrokeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of -log p over real points, number of points). `model` may be DDP-wrapped."""
    inner = getattr(model, "module", model)
    if isinstance(inner, SynthesisModel):
        raw, _ = model(batch.points, batch.chars, batch.char_mask, batch.style)
    else:
        raw, _ = model(batch.points)
    log_p = mdn_log_likelihood(mdn_split(raw, inner.config.mixtures), batch.targets)
    return -(log_p * batch.mask).sum(), batch.mask.sum()


@torch.no_grad()
def nll_per_point(model, texts: list[str], offsets: list[np.ndarray], codec: HandwritingCodec,
                  max_points: int = 600, batch_size: int = 25, styles=None) -> float:
    """Mean -log p per real pen point over phrases (nats; NLL_UNITS), 25 phrases a batch; `styles`
    (one index per phrase) is the style a model with styles reads (None: the default, 0)."""
    device = next(model.parameters()).device
    synthesis = isinstance(getattr(model, "module", model), SynthesisModel)
    total, count = 0.0, 0.0
    for k in range(0, len(offsets), batch_size):
        batch = make_batch(offsets[k : k + batch_size], texts[k : k + batch_size] if synthesis else None,
                           codec.alphabet, codec.offset_scale, max_points,
                           None if styles is None else styles[k : k + batch_size])
        t, n = batch_nll(model, batch.to(device))
        total, count = total + float(t), count + float(n)
    return total / max(count, 1)


@torch.no_grad()
def finished_fraction(loaded: LoadedModel, phrases: list[str], bias: float = 0.5, seed: int = 0) -> float:
    """The share of phrases the pen writes to the end (FINISHED_HOW)."""
    done = 0
    for k, phrase in enumerate(phrases):
        done += generate(loaded, HandwritingSettings(text=phrase, bias=bias, seed=seed + k)).result.finished
    return done / max(len(phrases), 1)


def _read(loaded: LoadedModel, sequence: Handwriting) -> tuple[StrokeBatch, np.ndarray, str, list[str]]:
    """The sample as the model reads it: (a batch of one on the model's device, its offsets, the
    transcript read through the window ("" for a prediction model), notes)."""
    offsets = sequence.offsets()
    if not len(offsets):
        raise ValueError("the handwriting sample has no pen points")
    notes = []
    if len(strokes_to_offsets(sequence.strokes)) > MAX_SCORE_POINTS:
        notes.append(f"Only the first {MAX_SCORE_POINTS:,} pen points were read.")
    alphabet, text = loaded.codec.alphabet, ""
    if alphabet is not None:
        text, clean_notes = alphabet.clean(sequence.text or "", max_chars=None)
        notes += clean_notes
        if not text:
            raise ValueError("the sample's transcript has no character this model knows (a synthesis model reads "
                             "the text being written)")
    elif (sequence.text or "").strip():
        notes.append("A prediction model reads no text: the transcript was ignored.")
    style = None
    if alphabet is not None and getattr(loaded.model.config, "styles", 0) and sequence.hand:
        if sequence.hand not in STYLE_NAMES[: loaded.model.config.styles]:
            raise ValueError(f"the hand must be one of {', '.join(STYLE_NAMES[: loaded.model.config.styles])}, "
                             f"not {sequence.hand!r}")
        style = [STYLE_NAMES.index(sequence.hand)]
    batch = make_batch([offsets], [text] if alphabet is not None else None, alphabet, loaded.codec.offset_scale,
                       styles=style)
    dtype = next(loaded.model.parameters()).dtype  # float64 in the explanation checks
    return batch.to(loaded.device).to(dtype), offsets, text, notes


@torch.no_grad()
def score(loaded: LoadedModel, sequence: Handwriting) -> Scored:
    """Teacher-forced over a handwriting sample from a fresh state: the exact trace (the attention
    layer stepped, the core in one batched recovery: LSTMCore.trace) and per pen point the mixture
    that predicted it. Labels: the character under the window (synthesis) or the step number."""
    batch, offsets, text, notes = _read(loaded, sequence)
    model = loaded.model
    if isinstance(model, SynthesisModel):
        raw, phi, gates = model.trace(batch.points, batch.chars, batch.style)
        labels = [text[k] if text[k] != " " else "␣" for k in phi[0].argmax(-1).tolist()]
        distributions = {**mdn_split(raw[0], model.config.mixtures).arrays(), "phi": phi[0].float().cpu().numpy()}
        detail = HandwritingDetail("synthesis", text)
    else:
        raw, _, gates = model.trace(batch.points)
        labels = [str(k) for k in range(raw.shape[1])]
        distributions = mdn_split(raw[0], model.config.mixtures).arrays()
        detail = HandwritingDetail("scribble")
    trace = Trace.from_sequence(gates, labels, domain=NAME, model=loaded.name, prompt_length=len(labels),
                                layer_names=list(loaded.layer_names), detail=detail)
    return Scored(trace, distributions, Handwriting(offsets_to_strokes(offsets), text, sequence.from_origin), notes)


@torch.no_grad()
def fused(loaded: LoadedModel, sequence: Handwriting) -> dict:
    """score's distributions computed by the training forward (the attention layer through
    LSTMCore.cell, the core fused, no trace): the contract test checks the two agree."""
    batch, _, _, _ = _read(loaded, sequence)
    model = loaded.model
    if isinstance(model, SynthesisModel):
        raw, phi = model(batch.points, batch.chars, batch.char_mask, batch.style)
        return {**mdn_split(raw[0], model.config.mixtures).arrays(), "phi": phi[0].float().cpu().numpy()}
    raw, _ = model(batch.points)
    return mdn_split(raw[0], model.config.mixtures).arrays()


# ---------------------------------------------------------------- asking the model why
PEN_UP, PEN_DOWN = ("end of stroke", "pen up", "pen lift", "lift"), ("pen down", "go on", "continue")


def _target_picker(target, mixtures: int):
    """A named next value -> params (MDNParams, (N,) at one step) -> its (N,) log-probability:
    "end of stroke" (the pen lifts after the next point), "pen down" (it does not), or
    "component k" (the mixture's weight on Gaussian k, as the guesses name it)."""
    name = str(target).strip().lower() if isinstance(target, str) else ""
    if name in PEN_UP:
        return lambda p: F.logsigmoid(p.eos_logit[..., 0])
    if name in PEN_DOWN:
        return lambda p: F.logsigmoid(-p.eos_logit[..., 0])
    found = re.match(r"component\s*(\d+)\b", name)
    if found and int(found.group(1)) < mixtures:
        k = int(found.group(1))
        return lambda p: p.log_pi[..., k]
    raise ValueError(f'the target must be "end of stroke", "pen down" or "component k" with k from 0 to '
                     f"{mixtures - 1}, not {target!r}")


def explainable(loaded: LoadedModel, sequence: Handwriting):
    """(Scored, studio.explain.Explainable) of a handwriting sample, read teacher-forced from a
    fresh state as `score` reads it.

    The differentiable inputs are the pen offsets the model reads, (1, T, 3): (dx, dy) divided by
    the codec's offset scale and the pen-lift bit, the start point (0, 0, lifted) first. The text
    is held fixed (a synthesis model's characters are not inputs); the window over it is the
    model's own, computed from the offsets by the training forward, so an attribution includes
    how an earlier point moved the window. log_likelihood row t is log p(pen point t | the points
    before it, the text): the MDN log-density of the next offset times the end-of-stroke
    Bernoulli, without sampling bias, exactly the terms the held-out NLL averages. Unlike text,
    the last step has a real next value (score predicts every point of the sample), so its row is
    not 0. Named targets: "end of stroke", "pen down", "component k"."""
    from studio.explain import Explainable, core_weights, topk

    scored = score(loaded, sequence)
    batch, _, text, _ = _read(loaded, sequence)
    model = loaded.model
    mixtures, synthesis = model.config.mixtures, isinstance(model, SynthesisModel)

    def params_of(x):
        if not synthesis:
            return mdn_split(model(x)[0], mixtures)
        n = x.shape[0]
        chars, char_mask = batch.chars.to(x.dtype).expand(n, -1, -1), batch.char_mask.to(x.dtype).expand(n, -1)
        style = None if batch.style is None else batch.style.expand(n)
        return mdn_split(model(x, chars, char_mask, style)[0], mixtures)

    def log_likelihood(x):
        return mdn_log_likelihood(params_of(x), batch.targets.to(x.dtype).expand(x.shape[0], -1, -1))

    def target_log_prob(x, step, target):
        pick = _target_picker(target, mixtures)
        last = params_of(x[:, : step + 1])  # the steps after `step` cannot change it: not computed
        return pick(MDNParams(*(getattr(last, f.name)[:, step] for f in fields(MDNParams))))

    d, scale = scored.distributions, loaded.codec.offset_scale

    def guesses(step):
        names = [f"component {k} ({mu[0] * scale:.3g}, {mu[1] * scale:.3g})" for k, mu in enumerate(d["mu"][step])]
        with np.errstate(divide="ignore"):  # a weight of 0 is a log-weight of -inf: probability 0
            top, entropy = topk(np.log(d["pi"][step].astype(np.float64)), names)
        out = {"topk": top, "entropy": entropy, "end_of_stroke": float(d["eos"][step])}
        if synthesis:
            peak = int(np.argmax(d["phi"][step]))
            out["window_peak"] = {"index": peak, "char": text[peak] if text[peak] != " " else "␣",
                                  "weight": float(d["phi"][step, peak])}
        return out

    trace = scored.trace
    points = batch.points[0].float().cpu().numpy()
    if synthesis:  # attention layer: [point_t, w_{t-1}, style]; core layer 1: [point_t, w_t, h1_t, style]; above: h
        window = d["phi"] @ batch.chars[0].float().cpu().numpy()  # (T, V) w_t
        before = np.vstack([np.zeros_like(window[:1]), window[:-1]])
        style = model.style_vector(batch.style, 1)[0].float().cpu().numpy()  # the style score read
        styles = np.repeat(style[None], len(points), 0)
        layer_inputs = [np.hstack([points, before, styles]), np.hstack([points, window, trace.layers[0]["h"], styles])]
        weights = core_weights(model.attention) + core_weights(model.core)
    else:
        layer_inputs, weights = [points], core_weights(model.core)
    layer_inputs += [trace.layers[k]["h"] for k in range(len(layer_inputs) - 1, trace.num_layers - 1)]
    ex = Explainable(batch.points.detach(), log_likelihood, layer_inputs, weights, guesses, target_log_prob,
                     list(trace.labels))
    return scored, ex


def step_divergence(plain: dict, changed: dict, samples: int = 256) -> tuple[np.ndarray, str]:
    """The contract's comparison of two generations' next-step predictions: per step, the pen-lift
    Bernoulli's KL plus the 2-D mixture density's KL(plain || changed), estimated from `samples`
    fixed draws of the plain one (the same numbers every call)."""
    steps = min(len(plain["mu"]), len(changed["mu"]))
    p = {k: np.asarray(v[:steps], np.float64) for k, v in plain.items()}
    q = {k: np.asarray(v[:steps], np.float64) for k, v in changed.items()}
    mixture_p, mixture_q = _mixture(p), _mixture(q)
    xy = torch.from_numpy(_draws(p, samples)).transpose(0, 1)  # (S, T, 2): log_prob broadcasts over the steps
    with torch.no_grad():
        kl = (mixture_p.log_prob(xy) - mixture_q.log_prob(xy)).mean(0).clamp(min=0).numpy()
    return kl + bernoulli_kl(p["eos"], q["eos"]), ("KL of the next pen move's mixture density "
                                                   "(nats; the 2-D part sampled)")


def _mixture(d: dict) -> torch.distributions.MixtureSameFamily:
    """The bivariate Gaussian mixture of each step (float64), its covariance by its Cholesky factor
    [[s1, 0], [rho s2, s2 sqrt(1 - rho^2)]] (no factorisation to fail near |rho| = 1)."""
    sigma, rho = torch.from_numpy(d["sigma"]), torch.from_numpy(d["rho"])
    tril = torch.zeros(*rho.shape, 2, 2, dtype=torch.float64)
    tril[..., 0, 0] = sigma[..., 0]
    tril[..., 1, 0] = rho * sigma[..., 1]
    tril[..., 1, 1] = sigma[..., 1] * torch.sqrt(1 - rho**2)
    weights = torch.distributions.Categorical(logits=torch.from_numpy(np.log(np.maximum(d["pi"], 1e-30))))
    return torch.distributions.MixtureSameFamily(
        weights, torch.distributions.MultivariateNormal(torch.from_numpy(d["mu"]), scale_tril=tril))


def _draws(p: dict, samples: int) -> np.ndarray:
    """(T, S, 2) points drawn from each step's mixture with a fixed seed."""
    rng = np.random.default_rng(0)
    steps, mixtures = p["pi"].shape
    pi = p["pi"] / p["pi"].sum(-1, keepdims=True)
    component = (rng.random((steps, samples, 1)) > np.cumsum(pi, -1)[:, None]).sum(-1).clip(0, mixtures - 1)  # (T, S)
    mu = np.take_along_axis(p["mu"], component[..., None], 1)  # (T, S, 2)
    sigma = np.take_along_axis(p["sigma"], component[..., None], 1)
    rho = np.take_along_axis(p["rho"], component, 1)
    e1, e2 = rng.standard_normal((2, steps, samples))
    return np.stack([mu[..., 0] + sigma[..., 0] * e1,
                     mu[..., 1] + sigma[..., 1] * (rho * e1 + np.sqrt(1 - rho**2) * e2)], -1)


# ---------------------------------------------------------------- features
def features(sequence: Handwriting, scored=None) -> dict[str, np.ndarray]:
    """Per pen point of `score`'s trace: "pen up" (1 on a stroke's last point), "pen speed" (the
    length of the move to this point, data units), "pen-up travel" (1 where that move was made with
    the pen lifted) and, with `scored` from a synthesis model, "character under the window" (the
    index of the window's peak)."""
    offsets = sequence.offsets()
    travel = np.zeros(len(offsets), np.float32)
    travel[1:] = offsets[:-1, 2]
    tracks = {"pen up": offsets[:, 2].astype(np.float32),
              "pen speed": np.hypot(offsets[:, 0], offsets[:, 1]).astype(np.float32),
              "pen-up travel": travel}
    if scored is not None and "phi" in scored.distributions:
        tracks["character under the window"] = scored.distributions["phi"].argmax(-1).astype(np.float32)
    return tracks


def example() -> tuple[Handwriting, HandwritingSettings]:
    """A short sample for `score` (two strokes, transcript "hi") and short settings for `generate`:
    that sample as the style primer, then 24 written points whatever the window does."""
    sample = Handwriting([np.array([[0, 0], [1, 2], [3, 2.5], [4, 1]], np.float32),
                          np.array([[5, 1], [6, 0], [7, 1], [7.5, 2.5]], np.float32)], "hi")
    return sample, HandwritingSettings(text="ok", seed=0, primer_strokes=sample.strokes, primer_text=sample.text,
                                       fixed_points=24)


def tiny(seed: int = 0, styles: int = 0):
    """(model, codec): a small random synthesis model for tests (no training, no files)."""
    torch.manual_seed(seed)
    alphabet = HandwritingAlphabet()
    model = SynthesisModel(SynthesisConfig(alphabet.size, hidden_size=16, num_layers=2, mixtures=3, window_gaussians=2,
                                           styles=styles))
    return model.eval(), HandwritingCodec(2.0, alphabet)
