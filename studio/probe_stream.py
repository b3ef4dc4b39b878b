"""The probe over a sequence too long to hold every gate at once: ProbeAccumulator takes a trace
chunk by chunk (steps in any order) and ranks every (layer, quantity, unit) as experiments.probe
does; accumulate_parts runs several of them side by side, one per thread, and merges them."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from studio.experiments import QUANTITIES, ProbeHit, is_binary
from studio.trace import Trace


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
    PENDING = 4096  # rows of codes binned at once (2 x 6 x 4,096 x 384 int32: 75 MB for a 2 x 384 model)

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
            # off-steps' and on-steps' histograms side by side: an on-row's codes are moved up by
            # one table (TABLE slots), so one bincount of every row fills both
            self.table = self.hidden * self.SLOTS
            self.counts = torch.zeros(*shape[:2], 2 * self.table, dtype=torch.int64, device=device)  # off, on
            # codes wait here for PENDING rows: each bincount's table (2 x H x SLOTS, 3 MB) costs as
            # much to make and add as binning ~2,000 rows, so fewer, longer bincounts
            self.codes = torch.empty(*shape[:2], self.PENDING, self.hidden, dtype=torch.int32, device=device)
            self.filled = 0

    def _flush(self) -> None:
        """Bin the waiting codes into the counts."""
        if not self.binary or self.shift is None or self.filled == 0:
            return
        for layer in range(self.num_layers):
            for q in range(len(QUANTITIES)):
                self._bin(layer, q, self.codes[layer, q, : self.filled])
        self.filled = 0

    def _bin(self, layer: int, q: int, codes: torch.Tensor) -> None:
        # bincount, not index_add_ of ones (~10 ns a value against ~1)
        self.counts[layer, q] += torch.bincount(codes.view(-1), minlength=2 * self.table)

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
            lift = torch.zeros(rows, 1, dtype=blocks[0].dtype, device=blocks[0].device)
            lift[on] = self.table  # an on-row's codes go to the second table
        d, scaled, codes = self._buffers(rows, blocks[0])
        waits = self.binary and rows <= self.PENDING  # a long chunk is binned at once
        if self.binary and self.filled + rows > self.PENDING:
            self._flush()
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
                    if on.numel():
                        scaled.add_(lift)  # float32 stays exact: codes < 2 x 6 x 384 x 1,026
                    if waits:
                        self.codes[layer, q, self.filled : self.filled + rows].copy_(scaled)  # int32 by truncation = floor
                        continue
                    codes.copy_(scaled)  # every slot is >= 0, so truncation is the floor
                    self._bin(layer, q, codes)
        if waits:
            self.filled += rows
        self.n += rows
        self.sy += float(track.sum())
        self.syy += float((track * track).sum())

    def merge(self, other: ProbeAccumulator) -> ProbeAccumulator:
        """Add another accumulator's steps (of the same sequence's other rows) to this one."""
        self._flush()
        other._flush()
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
        self._flush()
        n = self.n
        mean_d, mean_y = (self.s1 / n).cpu().numpy(), self.sy / n
        covariance = (self.sxy / n).cpu().numpy() - mean_d * mean_y
        spread = np.sqrt(np.maximum((self.s2 / n).cpu().numpy() - mean_d**2, 0) * max(self.syy / n - mean_y**2, 0))
        correlations = np.divide(covariance, spread, out=np.zeros_like(covariance), where=spread > 0)
        if not self.binary:
            return correlations, correlations
        counts = self.counts.cpu().numpy().reshape(*self.counts.shape[:2], 2, self.hidden, self.SLOTS)
        off, on = counts[:, :, 0], counts[:, :, 1]
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
