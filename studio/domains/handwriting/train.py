"""Handwriting training task for studio.train.train (both models): batches of phrases of similar
length (little padding), -log p per real pen point; validation on the held-out phrases."""

from __future__ import annotations

import numpy as np

from studio.domains.handwriting.codec import HandwritingCodec
from studio.domains.handwriting.evaluate import batch_nll, make_batch, nll_per_point


class StrokeTask:
    """A TrainTask. A codec with an alphabet trains a synthesis model (the batches carry the
    phrases' characters); without one, a prediction model (points only)."""

    def __init__(self, texts, offsets, val_texts, val_offsets, codec: HandwritingCodec, batch_size: int = 32,
                 seed: int = 0, max_points: int = 600):
        self.texts, self.offsets = texts, offsets
        self.val_texts, self.val_offsets = val_texts, val_offsets
        self.codec, self.batch_size, self.max_points = codec, batch_size, max_points
        self.synthesis = codec.alphabet is not None
        self.order = np.argsort([len(o) for o in offsets], kind="stable")
        self.rng = np.random.default_rng(seed)

    def train_batch(self, step, rank, world_size, device):
        # a window of the length-sorted phrases, then a random pick inside it: similar lengths
        start = int(self.rng.integers(0, max(1, len(self.order) - self.batch_size * 4)))
        pool = self.order[start : start + self.batch_size * 4]
        pick = self.rng.choice(pool, size=min(self.batch_size, len(pool)), replace=False)
        texts = [self.texts[i] for i in pick] if self.synthesis else None
        return make_batch([self.offsets[i] for i in pick], texts, self.codec.alphabet, self.codec.offset_scale,
                          self.max_points).to(device)

    def loss(self, model, batch):
        total, count = batch_nll(model, batch)
        return total / count

    def evaluate(self, model) -> float:
        return nll_per_point(model, self.val_texts, self.val_offsets, self.codec, self.max_points)
