"""Text training task for studio.train.train: stateful truncated BPTT over contiguous streams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from studio.domains.base import Training, describe
from studio.domains.text.evaluate import nats_per_char


@dataclass
class TextBatch:
    inputs: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    fresh: bool  # True at the start of a pass: the carried state is reset
    num_tokens: int = 0


class TextTask:
    """Stateful truncated BPTT (char-rnn style): the training text is cut into contiguous
    streams, one per batch row, read window after window with the LSTM state carried over,
    so the model learns to use context longer than one window. Validation also carries state
    through the whole validation text, so every character is scored given all before it."""

    def __init__(self, train_ids: list[int], val_ids: list[int], batch_size: int = 64, seq_len: int = 128):
        self.train_ids = torch.tensor(train_ids, dtype=torch.long)
        self.val_ids = torch.tensor(val_ids, dtype=torch.long)
        self.batch_size, self.seq_len = batch_size, seq_len
        if len(train_ids) < batch_size * (seq_len + 1) or len(val_ids) < 2:
            raise ValueError(
                f"the training text has {len(train_ids):,} characters, fewer than batch size x (sequence length + 1)"
                f" = {batch_size * (seq_len + 1):,}, or the validation part has fewer than 2: use more text or"
                " a smaller --batch-size / --seq-len"
            )
        self.state = None

    def train_batch(self, step: int, rank: int, world_size: int, device) -> TextBatch:
        rows = self.batch_size * world_size
        stream_len = (len(self.train_ids) - 1) // rows
        windows = max(1, stream_len // self.seq_len)
        window = step % windows
        # Each pass shifts the cut points a little so window borders move between passes.
        offset = (step // windows) * 7 % max(1, stream_len - windows * self.seq_len + 1)
        starts = torch.arange(rank * self.batch_size, (rank + 1) * self.batch_size) * stream_len
        index = starts[:, None] + offset + window * self.seq_len + torch.arange(self.seq_len)[None, :]
        return TextBatch(
            self.train_ids[index].to(device),
            self.train_ids[index + 1].to(device),
            fresh=window == 0,
            num_tokens=self.batch_size * self.seq_len,
        )

    def loss(self, model, batch: TextBatch) -> torch.Tensor:
        state = None if batch.fresh or self.state is None else self.state
        logits, state = model(batch.inputs, state)
        self.state = tuple(s.detach() for s in state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))

    def evaluate(self, model) -> float:
        return nats_per_char(model, self.val_ids)


# ---------------------------------------------------------------- a user's files (python -m studio train text --data,
# the Train tab)
MIN_CHARACTERS = 2_000  # less text than this cannot train a model
SUFFIXES = frozenset({".txt", ".md", ".text", ".csv", ".tsv", ".json", ".py", ".html", ".tex", ".rst", ""})


def corpus_of(paths: list[Path], folder: Path) -> tuple[list[Path], list[dict]]:
    """The text files joined into one corpus (a blank line between files): ([corpus.txt], files read)."""
    parts, described = [], []
    for path in paths:
        data = path.read_bytes()
        if b"\x00" in data[:65536]:
            raise ValueError(f"{path.name} is not a text file (it holds binary data).")
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") > 0.01 * max(len(text), 1):
            raise ValueError(f"{path.name} is not UTF-8 text.")
        if not text.strip():
            raise ValueError(f"{path.name} holds no text.")
        parts.append(text)
        described.append(describe(path))
    corpus = "\n\n".join(parts)
    if len(corpus) < MIN_CHARACTERS:
        raise ValueError(f"The text has {len(corpus):,} characters; give at least {MIN_CHARACTERS:,} to train on.")
    target = folder / "corpus.txt"
    target.write_text(corpus, encoding="utf-8")
    return [target], described


TRAINING = Training(
    suffixes=SUFFIXES, what="text files", prepare=corpus_of,
    shape_flags=lambda shape: ["--hidden-size", str(shape[0]), "--layers", str(shape[1]), "--embed-size",
                               str(shape[2])],
    corpora=("tinyshakespeare.txt",), hint="Your data: text files (a zip of them too)")
