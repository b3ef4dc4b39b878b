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

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

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


class ProbeAccumulator:
    """The probe over a sequence too long to trace at once (100,000 characters of a 2 x 384 model
    are 1.8 GB of gates): gates are fed chunk by chunk, their steps in any order. Per (layer,
    quantity, unit) it keeps, for an on/off track, histograms of its values on on-steps and on
    all steps (BINS bins over the values mapped to 0..1 by a monotonic squash, so the ranking is
    the values'), giving the AUC to within one bin's ties; and, for the correlation, sums of the
    values minus the first chunk's means (in float32 a saturated gate's sum of squares near its
    mean of 1 would lose its tiny spread). Everything runs in torch on whole layers, (rows, 6 x H)
    at once: the float64 numpy passes it replaced took 5 s over 100,000 characters."""

    BINS = 1024
    # per unit: a guard slot below the bins for the rare value that rounding puts just under 0, the
    # BINS bins, and one above them for a value of exactly 1 (a saturated gate): all in order
    SLOTS = BINS + 2

    def __init__(self, num_layers: int, hidden: int, binary: bool):
        self.num_layers, self.hidden, self.binary = num_layers, hidden, binary
        self.n = 0
        self.shift = None  # (layers, 6, H): the first chunk's means; made on the values' device
        self.sy = self.syy = 0.0

    def _start(self, blocks: list) -> None:
        device, shape = blocks[0].device, (self.num_layers, len(QUANTITIES), self.hidden)
        self.shift = torch.stack([block.mean(0) for block in blocks])  # (layers, 6, H)
        self.s1, self.s2, self.sxy = (torch.zeros(shape, dtype=torch.float64, device=device) for _ in range(3))
        if self.binary:
            # The bins come from the shifted values d = x - shift that the sums use (read once,
            # while in cache): slot = offset + 1 + BINS * squash(x), the squash to 0..1 monotonic
            # (i, f, o are in [0, 1]: x; g and h in [-1, 1]: (x + 1) / 2; c is unbounded:
            # sigmoid(2c) = (tanh(c) + 1) / 2), unit u's offset u x SLOTS; float32 keeps these
            # integers exact below 2^24 (6 x 384 x 1,026 = 2.4M per layer).
            self.offsets = torch.arange(self.hidden, device=device, dtype=torch.float32) * self.SLOTS + 1
            self.slope = {name: self.BINS / 2 if name in ("g", "h") else 2.0 if name == "c" else float(self.BINS)
                          for name in QUANTITIES}
            self.base = torch.stack([torch.stack([self._base(name, self.shift[layer, q]) for q, name in enumerate(QUANTITIES)])
                                     for layer in range(self.num_layers)])
            self.counts = torch.zeros(*shape[:2], 2, self.hidden * self.SLOTS, dtype=torch.int64, device=device)  # all, on

    def _base(self, name: str, shift: torch.Tensor) -> torch.Tensor:
        """What slope * d is added to, so that offset + 1 + BINS * squash(x) (for c: 2x) comes out."""
        if name == "c":
            return 2 * shift
        return self.offsets + self.slope[name] * shift + (self.BINS / 2 if name in ("g", "h") else 0.0)

    def _buffers(self, rows: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Work memory for `rows` steps, kept from chunk to chunk: new tensors of this size (MBs)
        come from fresh pages, and their page faults cost as much as the arithmetic."""
        if getattr(self, "_work", None) is None or self._work[0].shape[0] < rows:
            self._work = (like.new_empty(rows, self.hidden), like.new_empty(rows, self.hidden),
                          torch.empty(rows, self.hidden, dtype=torch.int32, device=like.device))
        return tuple(buffer[:rows] for buffer in self._work)

    def add(self, trace: Trace, track: np.ndarray) -> None:
        """A Trace's steps (numpy, as trace_chunks yields them) and the track's values at them."""
        blocks = [torch.stack([torch.from_numpy(np.ascontiguousarray(layer[name])) for name in QUANTITIES], 1)
                  for layer in trace.layers]
        self.add_blocks(blocks, torch.as_tensor(np.asarray(track, np.float64)))

    def add_blocks(self, blocks: list, track: torch.Tensor) -> None:
        """blocks[k]: layer k's (rows, 6, H) values of i, f, g, o, c, h; track: (rows,) its values there."""
        rows = len(track)
        if rows == 0:
            return
        if self.shift is None:
            self._start(blocks)
        track = track.to(self.s1.device, torch.float64)
        y = track.to(blocks[0].dtype)
        weights = torch.stack([torch.ones_like(y), y])  # one GEMM gives sum(d) and sum(y d)
        if self.binary:
            on = torch.nonzero(y > 0)[:, 0]
        d, scaled, codes = self._buffers(rows, blocks[0])
        for layer, block in enumerate(blocks):
            for q, name in enumerate(QUANTITIES):
                torch.sub(block[:, q], self.shift[layer, q], out=d)  # (rows, H)
                sums = weights @ d
                self.s1[layer, q] += sums[0]
                self.sxy[layer, q] += sums[1]
                self.s2[layer, q] += torch.linalg.vecdot(d, d, dim=0)
                if self.binary:
                    torch.add(self.base[layer, q], d, alpha=self.slope[name], out=scaled)
                    if name == "c":
                        scaled.sigmoid_().mul_(self.BINS).add_(self.offsets)
                    codes.copy_(scaled)  # to int32 by truncation = floor: every slot is >= 0
                    # a bincount each (index_add_ of ones took ~10 ns a value, bincount ~1)
                    self.counts[layer, q, 0] += torch.bincount(codes.view(-1), minlength=self.hidden * self.SLOTS)
                    self.counts[layer, q, 1] += torch.bincount(codes[on].view(-1), minlength=self.hidden * self.SLOTS)
        self.n += rows
        self.sy += float(track.sum())
        self.syy += float((track * track).sum())

    def merge(self, other: ProbeAccumulator) -> ProbeAccumulator:
        """Add another accumulator's steps (of the same sequence's other rows) to this one."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        delta = (other.shift - self.shift).double()  # other's sums, re-centred on this one's shift
        self.s2 += other.s2 + 2 * delta * other.s1 + other.n * delta**2
        self.s1 += other.s1 + other.n * delta
        self.sxy += other.sxy + delta * other.sy
        if self.binary:
            self.counts += other.counts
        self.n += other.n
        self.sy += other.sy
        self.syy += other.syy
        return self

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, correlations), each (layers, quantities, units)."""
        n = self.n
        mean_d, mean_y = (self.s1 / n).cpu().numpy(), self.sy / n
        covariance = (self.sxy / n).cpu().numpy() - mean_d * mean_y
        spread = np.sqrt(np.maximum((self.s2 / n).cpu().numpy() - mean_d**2, 0) * max(self.syy / n - mean_y**2, 0))
        correlations = np.divide(covariance, spread, out=np.zeros_like(covariance), where=spread > 0)
        if not self.binary:
            return correlations, correlations
        counts = self.counts.cpu().numpy().reshape(*self.counts.shape[:3], self.hidden, self.SLOTS)
        on, off = counts[:, :, 1], counts[:, :, 0] - counts[:, :, 1]
        positives, negatives = on.sum(-1), off.sum(-1)
        if positives.min() == 0 or negatives.min() == 0:
            raise ValueError("the feature is on everywhere or nowhere in this input: nothing to compare")
        below = np.cumsum(off, -1) - off  # off-steps in lower bins
        wins = (on * (below + 0.5 * off)).sum(-1)
        return wins / (positives * negatives), correlations

    def top(self, count: int = 10) -> list[ProbeHit]:
        scores, correlations = self.scores()
        strengths = np.abs(scores - 0.5) * 2 if self.binary else np.abs(scores)
        order = np.lexsort((-np.abs(correlations).ravel(), -np.round(strengths, 9).ravel()))[:count]
        hits = []
        for flat in order:
            layer, q, unit = np.unravel_index(flat, strengths.shape)
            hits.append(ProbeHit(int(layer), int(unit), QUANTITIES[q], float(scores[layer, q, unit]),
                                 float(strengths[layer, q, unit]), float(correlations[layer, q, unit])))
        return hits


def accumulate_parts(parts: list, track: np.ndarray, num_layers: int, hidden: int) -> ProbeAccumulator:
    """A ProbeAccumulator fed by `parts`: iterables of (blocks, positions) over disjoint groups of a
    sequence's steps, as text.evaluate.trace_streams returns them. With several, each runs in its
    own thread with one torch thread (the count is restored afterwards), so they never wait for
    each other, where two intra-op threads meet at every step's small GEMM."""
    values = torch.as_tensor(np.asarray(track, np.float64))
    binary = is_binary(values.numpy())

    def run(chunks) -> ProbeAccumulator:
        accumulator = ProbeAccumulator(num_layers, hidden, binary)
        for blocks, positions in chunks:
            accumulator.add_blocks(blocks, values[positions.cpu()])
        return accumulator

    if len(parts) <= 1:
        return run(parts[0] if parts else [])
    threads_before = torch.get_num_threads()
    torch.set_num_threads(1)  # a new thread takes this count when it first runs a torch op
    try:
        with ThreadPoolExecutor(len(parts)) as pool:
            accumulators = list(pool.map(run, parts))
    finally:
        torch.set_num_threads(threads_before)
    return functools.reduce(ProbeAccumulator.merge, accumulators)


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
