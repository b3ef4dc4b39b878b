"""Music training task for studio.train.train: whole pieces per batch row, randomly transposed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from studio.domains.base import Training, describe
from studio.domains.music.codec import PitchCodec
from studio.domains.music.data import MIDI_SUFFIXES, SCORE_SUFFIXES, MusicInputError
from studio.domains.music.evaluate import nll_per_frame, pad_batch, token_nll


@dataclass
class MusicBatch:
    tokens: torch.Tensor  # (B, T) BOS + frames' tokens, padded with END
    lengths: torch.Tensor  # (B,)
    num_tokens: int = 0


class MusicTask:
    """Whole pieces per batch row (chorales are short: no truncated BPTT needed), each randomly
    transposed by up to `transpose` semitones within the codec's range, a fresh draw per step."""

    def __init__(self, train_pieces, valid_pieces, codec: PitchCodec, batch_size: int = 16, transpose: int = 6, seed: int = 0):
        if not train_pieces or not valid_pieces:
            raise MusicInputError("need at least one training and one validation piece")
        self.codec, self.batch_size, self.transpose, self.seed = codec, batch_size, transpose, seed
        self.valid_pieces = valid_pieces
        sequences = [codec.encode(piece) for piece in train_pieces]
        self.tokens, self.lengths = pad_batch(sequences, codec.end)
        is_pitch = self.tokens < codec.num_pitches
        big = codec.num_pitches
        self.lowest = torch.where(is_pitch, self.tokens, big).min(1).values  # (N,)
        self.highest = torch.where(is_pitch, self.tokens, -1).max(1).values

    def train_batch(self, step: int, rank: int, world_size: int, device) -> MusicBatch:
        count = len(self.tokens)
        per_epoch = max(1, count // (self.batch_size * world_size))
        epoch, within = divmod(step, per_epoch)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        first = (within * world_size + rank) * self.batch_size
        rows = order[torch.arange(first, first + self.batch_size) % count]
        generator = torch.Generator().manual_seed(self.seed * 104729 + step * world_size + rank)
        low = torch.clamp(-self.lowest[rows], min=-self.transpose)  # keep every pitch in range
        high = torch.clamp(self.codec.num_pitches - 1 - self.highest[rows], max=self.transpose)
        high = torch.maximum(high, low)  # a piece that is only rests
        shift = low + (torch.rand(len(rows), generator=generator) * (high - low + 1)).long().clamp(max=high - low)
        length = int(self.lengths[rows].max())
        tokens = self.tokens[rows, :length]
        tokens = torch.where(tokens < self.codec.num_pitches, tokens + shift[:, None], tokens)
        lengths = self.lengths[rows]
        return MusicBatch(tokens.to(device), lengths.to(device), num_tokens=int(lengths.sum()))

    def loss(self, model, batch: MusicBatch) -> torch.Tensor:
        nll = token_nll(model, batch.tokens, batch.lengths, self.codec)
        return nll.sum() / (batch.lengths - 1).sum()

    def evaluate(self, model) -> float:
        return nll_per_frame(model, self.valid_pieces)[0]


# ---------------------------------------------------------------- a user's files (python -m studio train music --data,
# the Train tab)
def pieces_of(paths: list[Path], folder: Path) -> tuple[list[Path], list[dict]]:
    """MIDI / MusicXML files (or a JSB Chorales JSON) go to the trainer as they are: it reads them."""
    return list(paths), [describe(path) for path in paths]


TRAINING = Training(
    suffixes=frozenset(MIDI_SUFFIXES + SCORE_SUFFIXES + (".json",)), what="MIDI or MusicXML files", prepare=pieces_of,
    shape_flags=lambda shape: ["--hidden-size", str(shape[0]), "--layers", str(shape[1])],
    corpora=("jsb-chorales-quarter.json",), hint="Your data: MIDI or MusicXML files (a zip of them too)")
