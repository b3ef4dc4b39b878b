"""Experiments on units, written once against the domain contract (no gradio here):

- probe: rank every (layer, quantity, unit) of a teacher-forced trace against a feature track of
  the domain (`features()`, or for text any regex): ROC-AUC for on/off tracks (NeuroX-style), the
  Pearson correlation for numeric ones. A unit that tracks the feature scores far from 0.5 / 0.
- pattern match (LSTMVis): the units above a threshold throughout a selected range of steps, and
  every other place where those same units are on together.
- intervene: generate twice with the same seed, without and with hooks (an ablation, a clamp, a
  held gate), and compare: the first step where the outputs differ and, per step, the KL divergence
  between the two next-step distributions.
- cka: linear CKA between two sets of activations (two layers, or two models on one input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.lstm import GATE_NAMES, set_units
from studio.trace import Trace

QUANTITIES = GATE_NAMES  # i, f, g, o, c, h


@dataclass
class ProbeHit:
    layer: int
    unit: int
    quantity: str
    score: float  # ROC-AUC (on/off tracks) or correlation (numeric)
    strength: float  # |AUC - 0.5| * 2 or |correlation|: what the ranking sorts by
    correlation: float  # with the track; breaks ties between perfect AUCs (a unit that is also 0/1 wins)


def is_binary(track: np.ndarray) -> bool:
    return set(np.unique(track).tolist()) <= {0.0, 1.0}


def roc_auc(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC-AUC of every column of `values` (T, N) for the on/off `labels` (T,), by ranks
    (Mann-Whitney U; ties share their mean rank). 0.5 = unrelated."""
    labels = labels.astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("the feature is on everywhere or nowhere in this input: nothing to compare")
    order = values.argsort(0, kind="stable")
    ranks = np.empty_like(values, dtype=np.float64)
    np.put_along_axis(ranks, order, np.arange(1, len(values) + 1, dtype=np.float64)[:, None].repeat(values.shape[1], 1), 0)
    ranks = _tie_ranks(values, ranks)
    return (ranks[labels].sum(0) - positives * (positives + 1) / 2) / (positives * negatives)


def _tie_ranks(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Give tied values their mean rank (saturated gates tie a lot)."""
    for column in range(values.shape[1]):
        column_values = values[:, column]
        unique, inverse, counts = np.unique(column_values, return_inverse=True, return_counts=True)
        if len(unique) == len(column_values):
            continue
        sums = np.bincount(inverse, weights=ranks[:, column])
        ranks[:, column] = (sums / counts)[inverse]
    return ranks


def correlation(values: np.ndarray, track: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of `values` (T, N) with `track` (T,); 0 for a constant column."""
    centred = values - values.mean(0)
    track = track - track.mean()
    denominator = np.sqrt((centred**2).sum(0) * (track**2).sum())
    return np.divide(centred.T @ track, denominator, out=np.zeros(values.shape[1]), where=denominator > 0)


def probe(trace: Trace, track: np.ndarray, top: int = 10) -> list[ProbeHit]:
    """The `top` (layer, unit, quantity) that follow `track` (one value per step of the trace) best."""
    track = np.asarray(track, dtype=np.float64)
    if len(track) != trace.steps:
        raise ValueError(f"the feature has {len(track)} values for {trace.steps} steps")
    binary = is_binary(track)
    hits = []
    for layer in range(trace.num_layers):
        for name in QUANTITIES:
            values = trace.layers[layer][name].astype(np.float64)
            correlations = correlation(values, track)
            scores = roc_auc(values, track) if binary else correlations
            strengths = np.abs(scores - 0.5) * 2 if binary else np.abs(scores)
            for unit in np.lexsort((-np.abs(correlations), -strengths))[:top]:
                hits.append(ProbeHit(layer, int(unit), name, float(scores[unit]), float(strengths[unit]),
                                     float(correlations[unit])))
    return sorted(hits, key=lambda hit: (-round(hit.strength, 9), -abs(hit.correlation)))[:top]


def pattern(trace: Trace, layer: int, start: int, end: int, threshold: float = 0.5, quantity: str = "h",
            min_units: int = 1) -> tuple[list[int], list[tuple[int, int, int]]]:
    """(units above `threshold` at every step of [start, end], matches): every run of steps where
    all those units are above the threshold together, as (start, end, length), longest first,
    the selection itself included (LSTMVis' "match")."""
    values = trace.quantity(layer, quantity)
    on = values > threshold  # (T, H)
    units = np.flatnonzero(on[start : end + 1].all(0)).tolist()
    if len(units) < min_units:
        return units, []
    return units, sorted(runs(on[:, units].all(1)), key=lambda run: (-run[2], run[0]))


def runs(flags: np.ndarray) -> list[tuple[int, int, int]]:
    """Every run of consecutive True steps as (start, end, length), in order."""
    edges = np.diff(np.concatenate([[0], np.asarray(flags, np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b) - 1, int(b - a)) for a, b in zip(starts, stops, strict=True)]


def parse_units(spec: str) -> list[tuple[int, int]]:
    """'L:U,L:U' -> [(layer, unit), ...]"""
    pairs = []
    for item in filter(None, (part.strip() for part in str(spec or "").split(","))):
        try:
            layer, unit = item.split(":")
            pairs.append((int(layer), int(unit)))
        except ValueError:
            raise ValueError(f"{item!r} is not a unit: write layer:unit, e.g. 1:7") from None
    return pairs


def intervention_hooks(ablate: str = "", clamp: str = "", from_step: int = 0) -> list:
    """Hooks from the CLI's forms: ablate 'L:U,...' (h set to 0), clamp 'L:U:QUANTITY=VALUE,...'
    (e.g. '1:7:f=1' holds a forget gate open, '0:3:i=0' shuts an input gate, '1:2:c=0')."""
    hooks = [set_units(layer, [unit], "h", 0.0, from_step) for layer, unit in parse_units(ablate)]
    for item in filter(None, (part.strip() for part in str(clamp or "").split(","))):
        try:
            where, value = item.split("=")
            layer, unit, quantity = where.split(":")
            float(value), int(layer), int(unit)
        except ValueError:
            raise ValueError(f"{item!r} is not a clamp: write layer:unit:quantity=value, e.g. 1:7:f=1") from None
        if quantity not in GATE_NAMES:
            raise ValueError(f"{quantity!r} is not one of {', '.join(GATE_NAMES)}")
        hooks.append(set_units(int(layer), [int(unit)], quantity, float(value), from_step))
    return hooks


def kl_per_step(plain_logits: np.ndarray, changed_logits: np.ndarray) -> np.ndarray:
    """KL(plain || changed) of the next-step softmax distributions, for the steps both runs have."""
    steps = min(len(plain_logits), len(changed_logits))
    p = _log_softmax(plain_logits[:steps])
    q = _log_softmax(changed_logits[:steps])
    return (np.exp(p) * (p - q)).sum(-1)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def first_divergence(plain: list, changed: list) -> int | None:
    """The first index where two outputs differ (None when they are the same)."""
    for k, (a, b) in enumerate(zip(plain, changed, strict=False)):
        if a != b:
            return k
    return None if len(plain) == len(changed) else min(len(plain), len(changed))


def cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two activation matrices over the same steps: (T, A), (T, B)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def step_divergence(plain: dict, changed: dict, samples: int = 256) -> tuple[np.ndarray | None, str]:
    """Per step, how far apart two generations' next-step predictions are (the contract's
    `distributions` of each), and what the number is:
    - "logits" (text, music): KL(plain || changed) of the softmax;
    - "pi", "mu", "sigma", "rho", "eos" (handwriting's mixture density): the pen-lift Bernoulli's KL
      plus the 2-D mixture's KL estimated from `samples` fixed draws of the plain one per step;
    - "frames" (speech): half the squared distance of the predicted frames, the KL of unit-variance
      Gaussians around them, plus the stop Bernoulli's KL where there is one.
    (None, reason) when the two predict nothing comparable."""
    if "logits" in plain and "logits" in changed:
        return kl_per_step(plain["logits"], changed["logits"]), "KL of the next-token distributions (nats)"
    if "mu" in plain and "mu" in changed:
        steps = min(len(plain["mu"]), len(changed["mu"]))
        values = _mixture_kl({k: v[:steps] for k, v in plain.items()}, {k: v[:steps] for k, v in changed.items()}, samples)
        return values + _bernoulli_kl(plain["eos"][:steps], changed["eos"][:steps]), \
            "KL of the next pen move's mixture density (nats; the 2-D part sampled)"
    if "frames" in plain and "frames" in changed:
        steps = min(len(plain["frames"]), len(changed["frames"]))
        a = plain["frames"][:steps].reshape(steps, -1).astype(np.float64)
        b = changed["frames"][:steps].reshape(steps, -1).astype(np.float64)
        values = 0.5 * ((a - b) ** 2).sum(1)
        if "stop" in plain and "stop" in changed:
            values = values + _bernoulli_kl(plain["stop"][:steps].reshape(steps, -1).mean(1), changed["stop"][:steps].reshape(steps, -1).mean(1))
        return values, "½‖Δ predicted frames‖², the KL of unit-variance Gaussians around them (nats)"
    return None, "these outputs come with no comparable predictions"


def _bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    q = np.clip(np.asarray(q, np.float64), 1e-7, 1 - 1e-7)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def _mixture_log_density(d: dict, xy: np.ndarray) -> np.ndarray:
    """log of a bivariate Gaussian mixture per step at points xy (T, S, 2) -> (T, S)."""
    mu, sigma, rho = d["mu"][:, None].astype(np.float64), d["sigma"][:, None].astype(np.float64), d["rho"][:, None].astype(np.float64)
    z = (xy[:, :, None, :] - mu) / sigma  # (T, S, M, 2)
    one_minus = 1 - rho**2
    quad = (z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * rho * z[..., 0] * z[..., 1]) / one_minus
    log_n = -quad / 2 - np.log(2 * np.pi * sigma[..., 0] * sigma[..., 1] * np.sqrt(one_minus))
    weighted = log_n + np.log(np.maximum(d["pi"][:, None].astype(np.float64), 1e-30))
    top = weighted.max(-1, keepdims=True)
    return (top + np.log(np.exp(weighted - top).sum(-1, keepdims=True)))[..., 0]


def _mixture_kl(p: dict, q: dict, samples: int) -> np.ndarray:
    """Monte Carlo KL(p || q) of two mixtures per step, from fixed draws (the same numbers every call)."""
    rng = np.random.default_rng(0)
    steps, mixtures = p["pi"].shape
    pi = p["pi"].astype(np.float64) / p["pi"].sum(-1, keepdims=True)
    component = (rng.random((steps, samples, 1)) > np.cumsum(pi, -1)[:, None]).sum(-1).clip(0, mixtures - 1)  # (T, S)
    mu = np.take_along_axis(p["mu"].astype(np.float64), component[..., None], 1)  # (T, S, 2)
    sigma = np.take_along_axis(p["sigma"].astype(np.float64), component[..., None], 1)
    rho = np.take_along_axis(p["rho"].astype(np.float64), component, 1)
    e1, e2 = rng.standard_normal((2, steps, samples))
    xy = np.stack([mu[..., 0] + sigma[..., 0] * e1,
                   mu[..., 1] + sigma[..., 1] * (rho * e1 + np.sqrt(1 - rho**2) * e2)], -1)
    return np.maximum((_mixture_log_density(p, xy) - _mixture_log_density(q, xy)).mean(1), 0.0)
