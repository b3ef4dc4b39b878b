"""The probe's compiled pass (studio/probe_kernel.py) against plain numpy, and the accumulator's
folding of its uint16 histograms."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from studio import probe_kernel, probe_stream
from studio.experiments import QUANTITIES

BINS, SLOTS = probe_kernel.BINS, probe_kernel.SLOTS


def values_at_bin_centres(rng, rows: int, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(block (rows, 6, H) float32, slots): every value in the middle of a bin, so its slot is
    the same however the rounding goes (i, f, o in [0, 1]; g, h in [-1, 1]; c unbounded)."""
    bins = rng.integers(0, BINS, (rows, len(QUANTITIES), hidden))
    centre = (bins + 0.5) / BINS  # in 0..1: the squashed value
    block = centre.copy()
    for q, name in enumerate(QUANTITIES):
        if name in ("g", "h", "c"):
            block[:, q] = 2 * centre[:, q] - 1
        if name == "c":  # c / (1 + |c|) = v  <=>  c = v / (1 - |v|)
            v = block[:, q]
            block[:, q] = v / (1 - np.abs(v))
    return block.astype(np.float32), bins + 1


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 40), hidden=st.integers(1, 150), seed=st.integers(0, 2**31))
def test_the_compiled_pass_is_the_plain_computation(rows, hidden, seed):
    """Sums of d = x - shift, d^2 and y d, and one count per value in slot unit x SLOTS + slot of
    the off-rows' or on-rows' table: hidden sizes that are not a multiple of the 64 units binned
    together included."""
    rng = np.random.default_rng(seed)
    block, slots = values_at_bin_centres(rng, rows, hidden)
    y = (rng.random(rows) < 0.3).astype(np.float32) * rng.integers(1, 3, rows)  # on-rows: y > 0
    shift = block.mean(0) + rng.normal(0, 0.01, block.shape[1:]).astype(np.float32)
    sums = np.zeros((3, len(QUANTITIES), hidden))
    counts = np.zeros((len(QUANTITIES), 2 * hidden * SLOTS), np.uint16)
    probe_kernel.accumulate(block, y, shift, sums, counts)

    d = block.astype(np.float64) - shift
    for got, terms in zip(sums, (d, d * d, y[:, None, None] * d), strict=True):
        # float32 sums of up to 40 rows: within ~40 float32 roundings of the terms (c runs to ~1,000 here)
        assert np.all(np.abs(got - terms.sum(0)) <= 5e-6 * np.abs(terms).sum(0) + 1e-9)
    expected = np.zeros(counts.shape, np.int64)
    lift = np.where(y > 0, hidden * SLOTS, 0)[:, None]
    for q in range(len(QUANTITIES)):
        np.add.at(expected[q], (lift + np.arange(hidden) * SLOTS + slots[:, q]).ravel(), 1)
    assert np.array_equal(counts, expected)
    # without counts (a numeric track) the sums are the same
    alone = np.zeros_like(sums)
    probe_kernel.accumulate(block, y, shift, alone, None)
    np.testing.assert_allclose(alone, sums, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(hidden=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_the_compiled_auc_is_the_histogram_formula(hidden, seed):
    """probe_kernel.auc against numpy over the same counts: P(on-step's slot > off-step's), ties half."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, (2, len(QUANTITIES), 2 * hidden * SLOTS)).astype(np.uint32)
    counts[..., rng.random(counts.shape[-1]) < 0.9] = 0  # sparse, as real histograms are
    scores, positives, negatives = probe_kernel.auc(counts, hidden)
    shaped = counts.astype(np.int64).reshape(2, len(QUANTITIES), 2, hidden, SLOTS)
    off, on = shaped[:, :, 0], shaped[:, :, 1]
    below = np.cumsum(off, -1) - off
    wins = (on * (below + 0.5 * off)).sum(-1)
    total = on.sum(-1) * off.sum(-1)
    assert np.array_equal(positives, on.sum(-1)) and np.array_equal(negatives, off.sum(-1))
    np.testing.assert_allclose(scores, np.divide(wins, total, out=np.zeros(wins.shape), where=total > 0), rtol=1e-12)


def test_a_slot_counted_past_the_uint16_range_is_folded_not_wrapped():
    """70,000 rows in one slot, in chunks or in one call: the uint16 counts are folded before they
    could wrap, and two accumulators merge to the sum of both."""
    rows, hidden = 70_000, 2
    block = np.full((rows, len(QUANTITIES), hidden), 0.25, np.float32)
    track = np.zeros(rows)
    track[::7] = 1.0
    first, second, whole = (probe_stream.ProbeAccumulator(1, hidden, binary=True) for _ in range(3))
    for start in range(0, rows, 20_000):
        first.add_blocks([block[start : start + 20_000]], track[start : start + 20_000])
    second.add_blocks([block[:1000]], track[:1000])
    rare = np.zeros(rows)
    rare[:10] = 1.0
    whole.add_blocks([block], rare)  # all 70,000 rows in one call: 69,990 off-rows in one slot
    whole._fold()
    assert whole.counts.reshape(len(QUANTITIES), 2, hidden, SLOTS)[:, 0].sum(-1).tolist() == [[rows - 10] * hidden] * 6
    merged = first.merge(second)
    merged._fold()
    counts = merged.counts.reshape(len(QUANTITIES), 2, hidden, SLOTS)
    on = int((track > 0).sum()) + int((track[:1000] > 0).sum())
    assert counts[:, 1].sum(-1).tolist() == [[on] * hidden] * len(QUANTITIES)
    assert counts[:, 0].sum(-1).tolist() == [[rows + 1000 - on] * hidden] * len(QUANTITIES)
    assert merged.n == rows + 1000
