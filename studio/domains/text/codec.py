"""Text codec. Format: the vocabulary is the model's sorted list of distinct characters (a fine-tuned
model's: its base's list, then the characters the base lacked, sorted: see model.extend_vocabulary),
stored as one string in the model card (`codec.chars`); character k of that string is token k. Text is
encoded one character per token; characters outside the vocabulary are dropped and reported,
never silently mapped. Decoding joins the characters back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TextCodec:
    chars: str  # the vocabulary; char k is token k

    @classmethod
    def from_text(cls, text: str) -> TextCodec:
        return cls("".join(sorted(set(text))))

    def __post_init__(self):
        self.index = {ch: k for k, ch in enumerate(self.chars)}
        self.table = code_points(self.chars)  # token k's code point, for decode

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> tuple[list[int], str]:
        """(token ids, the distinct characters that were dropped, in first-seen order). By code
        points in numpy, each distinct character looked up once: a long reference encodes several
        times faster than a loop over characters (docs/benchmarks.md, Experiments on units; the probe
        reads such texts)."""
        codes = code_points(text)
        distinct, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        id_of = np.array([self.index.get(chr(code), -1) for code in distinct], dtype=np.int64)
        ids = id_of[inverse.reshape(-1)]
        unknown = np.flatnonzero(id_of < 0)
        dropped = "".join(chr(distinct[k]) for k in unknown[np.argsort(first[unknown], kind="stable")])
        return ids[ids >= 0].tolist(), dropped

    def decode(self, ids) -> str:
        return self.table[np.asarray(ids, dtype=np.int64)].tobytes().decode("utf-32-le", "surrogatepass")

    def card(self) -> dict:
        return {"chars": self.chars}


def code_points(text: str) -> np.ndarray:
    """A string's code points (uint32), lone surrogates too (a browser can send them)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
