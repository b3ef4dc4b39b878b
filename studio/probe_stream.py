"""The probe over a sequence too long to hold every gate at once: ProbeAccumulator takes a trace
chunk by chunk (steps in any order) and ranks every (layer, quantity, unit) as experiments.probe
does; accumulate_parts runs several of them side by side, one per thread, and merges them."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import torch

from studio import limits, probe_kernel
from studio.experiments import QUANTITIES, ProbeHit, is_binary
from studio.trace import Trace

PROGRESS_EVERY = 0.25  # seconds between the threaded probe's progress reports


class ProbeAccumulator:
    """The probe over a sequence too long to trace at once (100,000 characters of a 2 x 384 model
    are 1.8 GB of gates): gates are fed chunk by chunk, their steps in any order. Per (layer,
    quantity, unit) it keeps, for an on/off track, histograms of its values on off-steps and on
    on-steps (BINS bins over the values mapped to 0..1 by a monotonic squash, so the ranking is the
    values'), giving the AUC to within one bin's ties; and, for the correlation, sums of the values
    minus the first chunk's means (in float32 a saturated gate's sum of squares near its mean of 1
    would lose its tiny spread). probe_kernel does both in one pass over each layer's values on a
    CPU (values elsewhere are copied there first); docs/benchmarks.md, Experiments on units, says
    where the probe's time goes."""

    BINS = probe_kernel.BINS
    SLOTS = probe_kernel.SLOTS
    # the counts are kept in uint16 (half the cache of int32: docs/benchmarks.md), folded into uint32
    # before any slot could pass 65,535
    FOLD = np.iinfo(np.uint16).max

    def __init__(self, num_layers: int, hidden: int, binary: bool):
        self.num_layers, self.hidden, self.binary = num_layers, hidden, binary
        self.n = 0
        self.shift = None  # (layers, 6, H) float32: the first chunk's means
        self.sy = self.syy = 0.0
        shape = (num_layers, len(QUANTITIES), hidden)
        self.sums = np.zeros((num_layers, 3, *shape[1:]))  # per layer sum(d), sum(d^2), sum(y d)
        self.counts = None  # uint32: the histograms folded so far
        if binary:
            table = 2 * hidden * self.SLOTS  # off-steps' histograms, then on-steps'
            self.recent = np.zeros((*shape[:2], table), np.uint16)
            self.unfolded = 0  # rows in `recent`

    def add(self, trace: Trace, track: np.ndarray) -> None:
        """A Trace's steps (numpy, as trace_chunks yields them) and the track's values at them."""
        blocks = [np.stack([layer[name] for name in QUANTITIES], 1) for layer in trace.layers]
        self.add_blocks(blocks, torch.as_tensor(np.asarray(track, np.float64)))

    def add_blocks(self, blocks: list, track: torch.Tensor) -> None:
        """blocks[k]: layer k's (rows, 6, H) values of i, f, g, o, c, h (torch or numpy, any
        device); track: (rows,) its values there."""
        rows = len(track)
        if rows == 0:
            return
        if self.binary and rows > self.FOLD:  # a uint16 slot could wrap within one call
            for start in range(0, rows, self.FOLD):
                self.add_blocks([block[start : start + self.FOLD] for block in blocks], track[start : start + self.FOLD])
            return
        blocks = [np.ascontiguousarray(_numpy(block), np.float32) for block in blocks]
        if self.shift is None:
            self.shift = np.stack([block.mean(0) for block in blocks]).astype(np.float32)
        track = np.asarray(_numpy(track), np.float64)
        if self.binary and self.unfolded + rows > self.FOLD:
            self._fold()
        y = track.astype(np.float32)
        for layer, block in enumerate(blocks):
            counts = self.recent[layer] if self.binary else None
            probe_kernel.accumulate(block, y, self.shift[layer], self.sums[layer], counts)
        if self.binary:
            self.unfolded += rows
        self.n += rows
        self.sy += float(track.sum())
        self.syy += float((track * track).sum())

    def _fold(self) -> None:
        if self.binary and self.unfolded:
            if self.counts is None:
                self.counts = self.recent.astype(np.uint32)
            else:
                self.counts += self.recent
            self.recent.fill(0)
            self.unfolded = 0

    def merge(self, other: ProbeAccumulator) -> ProbeAccumulator:
        """Add another accumulator's steps (of the same sequence's other rows) to this one."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        self._fold()
        other._fold()
        delta = (other.shift - self.shift).astype(np.float64)  # other's sums, re-centred on this one's shift
        s1, s2, sxy = self.sums.transpose(1, 0, 2, 3)  # views
        o1, o2, oxy = other.sums.transpose(1, 0, 2, 3)
        s2 += o2 + 2 * delta * o1 + other.n * delta**2
        s1 += o1 + other.n * delta
        sxy += oxy + delta * other.sy
        if self.binary:
            self.counts += other.counts
        self.n += other.n
        self.sy += other.sy
        self.syy += other.syy
        return self

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, correlations), each (layers, quantities, units)."""
        self._fold()
        n = self.n
        s1, s2, sxy = self.sums.transpose(1, 0, 2, 3) / n
        mean_y = self.sy / n
        covariance = sxy - s1 * mean_y
        spread = np.sqrt(np.maximum(s2 - s1**2, 0) * max(self.syy / n - mean_y**2, 0))
        correlations = np.divide(covariance, spread, out=np.zeros_like(covariance), where=spread > 0)
        if not self.binary:
            return correlations, correlations
        scores, positives, negatives = probe_kernel.auc(self.counts, self.hidden)
        if positives.min() == 0 or negatives.min() == 0:
            raise ValueError("the feature is on everywhere or nowhere in this input: nothing to compare")
        return scores, correlations

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


def _numpy(values):
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values


def accumulate_parts(parts: list, track: np.ndarray, num_layers: int, hidden: int, progress=None) -> ProbeAccumulator:
    """A ProbeAccumulator fed by `parts`: iterables of (blocks, positions) over disjoint groups of a
    sequence's steps, as text.evaluate.trace_streams returns them. With several, each runs in its
    own thread with one torch thread (the count is restored afterwards), so they never wait for
    each other, where two intra-op threads meet at every step's small GEMM. progress(fraction)
    hears the share of the track's steps read so far, always in the calling thread (gr.Progress
    finds its page through context variables a pool thread lacks), ending with 1.0."""
    values = torch.as_tensor(np.asarray(track, np.float64))
    binary = is_binary(values.numpy())
    total = max(len(values), 1)
    read = [0] * max(len(parts), 1)  # steps read, one slot per part (each thread writes its own)

    def run(j: int, chunks, tell=None) -> ProbeAccumulator:
        accumulator = ProbeAccumulator(num_layers, hidden, binary)
        for blocks, positions in chunks:
            accumulator.add_blocks(blocks, values[positions.cpu()])
            read[j] += len(positions)
            if tell is not None:
                tell(read[j] / total)
        return accumulator

    if len(parts) <= 1:
        found = run(0, parts[0] if parts else [], progress)
    else:
        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)  # a new thread takes this count when it first runs a torch op
        try:
            with ThreadPoolExecutor(len(parts)) as pool:
                futures = [pool.submit(run, j, part) for j, part in enumerate(parts)]
                while progress is not None and wait(futures, PROGRESS_EVERY).not_done:
                    progress(sum(read) / total)
                accumulators = [future.result() for future in futures]
        finally:
            torch.set_num_threads(threads_before)
        found = functools.reduce(ProbeAccumulator.merge, accumulators)
    if progress is not None:
        progress(1.0)
    return found


def fast_gemm_dtype(device) -> torch.dtype | None:
    """bfloat16 where the hardware multiplies it natively (a GPU; a CPU whose oneDNN has bf16
    kernels), else None (float32)."""
    if torch.device(device).type == "cuda":
        return torch.bfloat16
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return torch.bfloat16 if supported is not None and supported() else None


def probe_parts(device) -> int:
    """How many threads read a text's streams: on a CPU, every core this process may use (not
    torch.get_num_threads(): the app keeps that at 1 for its batch-1 sampling; docs/benchmarks.md,
    Experiments on units, times the app's path); on a GPU one, which steps every stream in one batch."""
    if torch.device(device).type != "cpu":
        return 1
    return min(limits.usable_cores(), 8)
