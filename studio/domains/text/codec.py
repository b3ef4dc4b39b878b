"""Text codec. Format: the vocabulary is the model's sorted list of distinct characters (a fine-tuned
model's: its base's list, then the characters the base lacked, sorted: see model.extend_vocabulary),
stored as one string in the model card (`codec.chars`); character k of that string is token k. Text is
encoded one character per token; characters outside the vocabulary are dropped and reported,
never silently mapped. Decoding joins the characters back."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextCodec:
    chars: str  # the vocabulary; char k is token k

    @classmethod
    def from_text(cls, text: str) -> TextCodec:
        return cls("".join(sorted(set(text))))

    def __post_init__(self):
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> tuple[list[int], str]:
        """(token ids, the distinct characters that were dropped, in first-seen order)."""
        ids, dropped = [], []
        for ch in text:
            if ch in self.index:
                ids.append(self.index[ch])
            elif ch not in dropped:
                dropped.append(ch)
        return ids, "".join(dropped)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(k)] for k in ids)

    def card(self) -> dict:
        return {"chars": self.chars}
