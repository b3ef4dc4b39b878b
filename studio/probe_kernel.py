"""The probe's per-value work in one pass, compiled by numba (which librosa already brings): for
every value of a layer's (rows, 6, H) block of i, f, g, o, c, h, the centred sums its correlation
needs and the histogram slot its AUC needs (probe_stream.ProbeAccumulator keeps both). numba is
imported and the kernels compiled on first use (importing numba is slow enough that every CLI
command and the app would notice it at start: docs/benchmarks.md, App start-up), then cached on disk next to this file."""

from __future__ import annotations

import functools

import numpy as np

BINS = 1024
# per unit: a guard slot below the bins for the rare value that rounding puts just under 0, the
# BINS bins, and one above them for a value of exactly 1 (a saturated gate): all in order
SLOTS = BINS + 2
WIDTH = 64  # units binned together: their histograms (2 x 64 x 1,026 uint16, 263 KB) stay in L2
HALF = BINS / 2
# Each quantity is mapped monotonically to 0..1 (the AUC only needs the order), then to slots
# 1..BINS: slot = floor(squash * BINS) + 1 = floor(x * SCALE + OFFSET). i, f, o are in [0, 1]; g
# and h in [-1, 1]; c is unbounded: squashed by x / (1 + |x|) first, which keeps cells that count
# to 10 or 50 apart where a sigmoid would tie them all in the top bin, and needs no exp.
SCALE = np.array([BINS, BINS, HALF, BINS, HALF, HALF], np.float32)
OFFSET = np.array([1, 1, HALF + 1, 1, HALF + 1, HALF + 1], np.float32)
C = 4  # the cell state's index in experiments.QUANTITIES


def accumulate(block, y, shift, sums, counts) -> None:
    """See _accumulate (compiled on the first call)."""
    _compiled()[0](block, y, shift, sums, counts)


def auc(counts, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See _auc (compiled on the first call)."""
    return _compiled()[1](counts, hidden)


@functools.cache
def _compiled():
    import numba

    return (numba.njit(nogil=True, fastmath=True, cache=True)(_accumulate),
            numba.njit(nogil=True, cache=True)(_auc))


def _accumulate(block, y, shift, sums, counts):  # pragma: no cover (compiled)
    """Add one layer's rows to its sums and (when counts is not None) histograms.

    block (rows, 6, H) float32; y (rows,) float32, the track (an on-row: y > 0); shift (6, H)
    float32, the first chunk's means; sums (3, 6, H) float64 += sum(d), sum(d^2), sum(y d) with
    d = x - shift (a call's sums in float32 first); counts (6, 2 x H x SLOTS) uint16, += 1 in
    slot u x SLOTS + slot of the first table (off-rows) or the second (on-rows): the caller keeps
    a call's rows under 65,536. Units go WIDTH at a time through every row, so their histograms
    stay in cache, and the arithmetic is a loop apart from the scattered increments, so it
    vectorizes. nogil: the probe's threads run this side by side."""
    rows, quantities, hidden = block.shape
    table = hidden * SLOTS
    last = np.float32(SLOTS - 1)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    codes = np.empty(WIDTH, np.int32)
    lift = np.empty(rows, np.int64)
    for r in range(rows):
        lift[r] = table if y[r] > 0 else 0
    for q in range(quantities):
        a, b = SCALE[q], OFFSET[q]
        for u0 in range(0, hidden, WIDTH):
            width = min(WIDTH, hidden - u0)
            centre = shift[q, u0 : u0 + width]
            s1 = np.zeros(width, np.float32)
            s2 = np.zeros(width, np.float32)
            sy = np.zeros(width, np.float32)
            for r in range(rows):
                x = block[r, q, u0 : u0 + width]
                yr = y[r]
                for k in range(width):
                    d = x[k] - centre[k]
                    s1[k] += d
                    s2[k] += d * d
                    sy[k] += yr * d
                if counts is None:
                    continue
                base = u0 * SLOTS + lift[r]
                if q == C:
                    for k in range(width):
                        v = x[k] / (one + abs(x[k])) * a + b
                        codes[k] = base + k * SLOTS + np.int32(min(max(v, zero), last))
                else:
                    for k in range(width):
                        codes[k] = base + k * SLOTS + np.int32(min(max(x[k] * a + b, zero), last))
                histogram = counts[q]
                for k in range(width):
                    histogram[codes[k]] += 1
            for k in range(width):
                sums[0, q, u0 + k] += s1[k]
                sums[1, q, u0 + k] += s2[k]
                sums[2, q, u0 + k] += sy[k]


def _auc(counts, hidden):  # pragma: no cover (compiled)
    """Per (layer, quantity, unit) of counts (layers, 6, 2 x H x SLOTS), accumulate's histograms:
    (AUC, on-steps, off-steps). The AUC is the chance that an on-step's value is above an off-step's,
    ties (one slot) counted half: one pass over the slots in order."""
    layers, quantities, _ = counts.shape
    table = hidden * SLOTS
    scores = np.zeros((layers, quantities, hidden))
    positives = np.zeros((layers, quantities, hidden), np.int64)
    negatives = np.zeros((layers, quantities, hidden), np.int64)
    for layer in range(layers):
        for q in range(quantities):
            for u in range(hidden):
                below = 0  # off-steps in lower slots
                wins = 0.0
                on_total = 0
                for s in range(u * SLOTS, (u + 1) * SLOTS):
                    off, on = np.int64(counts[layer, q, s]), np.int64(counts[layer, q, table + s])
                    wins += on * (below + 0.5 * off)
                    below += off
                    on_total += on
                positives[layer, q, u], negatives[layer, q, u] = on_total, below
                if on_total and below:
                    scores[layer, q, u] = wins / (on_total * below)
    return scores, positives, negatives


def warm() -> None:
    """Compile (or load from the disk cache) both kernels on tiny arrays: the app does this in the
    background at start-up, so a user's first probe does not wait for the compilation
    (docs/benchmarks.md, App start-up)."""
    hidden = 1
    block, y, shift = np.zeros((1, 6, hidden), np.float32), np.zeros(1, np.float32), np.zeros((6, hidden), np.float32)
    counts = np.zeros((6, 2 * hidden * SLOTS), np.uint16)
    accumulate(block, y, shift, np.zeros((3, 6, hidden)), counts)
    accumulate(block, y, shift, np.zeros((3, 6, hidden)), None)
    auc(counts[None].astype(np.uint32), hidden)
