"""Experiments on units, written once against the domain contract (no gradio here):

- probe: rank every (layer, quantity, unit) of a teacher-forced trace against a feature track of
  the domain (`features()`, or its `custom_feature`): ROC-AUC for on/off tracks (NeuroX-style), the
  Pearson correlation for numeric ones. A unit that tracks the feature scores far from 0.5 / 0.
- pattern match (LSTMVis): the units above a threshold throughout a selected range of steps, and
  every other place where those same units are on together.
- intervene: generate twice with the same seed, without and with hooks (an ablation, a clamp, a
  held gate), and compare: the first step where the outputs differ and, per step, how far apart
  the two next-step predictions are (the domain's `step_divergence`; by default the KL divergence of
  the softmax over "logits").
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
    from scipy.stats import rankdata  # here: slow to import (docs/benchmarks.md, App start-up); few commands probe

    ranks = rankdata(values, axis=0)  # ties (saturated gates tie a lot) share their mean rank
    return (ranks[labels].sum(0) - positives * (positives + 1) / 2) / (positives * negatives)


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


def step_divergence(plain: dict, changed: dict) -> tuple[np.ndarray | None, str]:
    """The contract's default comparison of two generations' next-step predictions (their
    `distributions`): per step, KL(plain || changed) of the softmax over "logits"; (None, reason)
    when there are none. A domain whose predictions are something else has its own
    (studio.domains.base.OPTIONAL)."""
    if "logits" in plain and "logits" in changed:
        return kl_per_step(plain["logits"], changed["logits"]), "KL of the next-token distributions (nats)"
    return None, "these outputs come with no comparable predictions"


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) of on/off events (a pen lift, a stop) per step, probabilities kept off 0 and 1."""
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    q = np.clip(np.asarray(q, np.float64), 1e-7, 1 - 1e-7)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
