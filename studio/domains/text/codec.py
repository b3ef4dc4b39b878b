"""Text codec. Format: the vocabulary is the model's sorted list of distinct characters (a fine-tuned
model's: its base's list, then the characters the base lacked, sorted: see model.extend_vocabulary),
stored as one string in the model card (`codec.chars`); character k of that string is token k. Text is
encoded one character per token; characters outside the vocabulary are dropped and reported,
never silently mapped. Decoding joins the characters back.

A word vocabulary (a model opened from a word-level PyTorch or Keras file, studio.importer) is stored
as a list (`codec.words`): text is split at white space, each line break is the token <eos> (as
pytorch/examples word_language_model's data.py); a word reads back as itself and a space, <eos> as a
line break, so a trace's labels are whole words and "".join(labels) encodes to the same tokens.

The text a model read, as `score` and `sequence_of` hand it on, is a TokenText: the string itself plus
its tokens' labels (the per-token features of a word model need them) and, for a generation sampled
with a window, that window (its "ask why" re-reads each step's window)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

EOS = "<eos>"  # a word vocabulary's line break


@dataclass
class TextCodec:
    chars: str  # the vocabulary; char k is token k ("" for a word vocabulary)
    words: tuple[str, ...] = ()  # a word vocabulary instead: word k is token k

    @classmethod
    def from_text(cls, text: str) -> TextCodec:
        return cls("".join(sorted(set(text))))

    def __post_init__(self):
        self.words = tuple(self.words)
        self.index = {token: k for k, token in enumerate(self.tokens)}
        self.table = code_points(self.chars)  # token k's code point, for decode

    @property
    def tokens(self) -> list[str]:
        """The vocabulary in token order: characters, or words."""
        return list(self.words) if self.words else list(self.chars)

    @property
    def size(self) -> int:
        return len(self.words) if self.words else len(self.chars)

    def encode(self, text: str) -> tuple[list[int], str]:
        """(token ids, the distinct characters that were dropped, in first-seen order). By code
        points in numpy, each distinct character looked up once: a long reference encodes several
        times faster than a loop over characters (docs/benchmarks.md, Experiments on units; the probe
        reads such texts). A word vocabulary: (ids, the dropped words in first-seen order)."""
        if self.words:
            return self._encode_words(text)
        codes = code_points(text)
        distinct, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        id_of = np.array([self.index.get(chr(code), -1) for code in distinct], dtype=np.int64)
        ids = id_of[inverse.reshape(-1)]
        unknown = np.flatnonzero(id_of < 0)
        dropped = "".join(chr(distinct[k]) for k in unknown[np.argsort(first[unknown], kind="stable")])
        return ids[ids >= 0].tolist(), dropped

    def _encode_words(self, text: str) -> tuple[list[int], list[str]]:
        ids, dropped = [], {}
        for match in re.finditer(r"[^\S\n]*(\S+|\n)", text):
            token = EOS if match.group(1) == "\n" else match.group(1)
            if token in self.index:
                ids.append(self.index[token])
            else:
                dropped.setdefault(token, None)
        return ids, list(dropped)

    def labels(self, ids) -> list[str]:
        """What each token reads as, one string per token: a character, or a word and its space."""
        if self.words:
            return ["\n" if self.words[k] == EOS else self.words[k] + " " for k in ids]
        return list(self.decode(ids))

    def decode(self, ids) -> str:
        if self.words:
            return "".join(self.labels(ids))
        return self.table[np.asarray(ids, dtype=np.int64)].tobytes().decode("utf-32-le", "surrogatepass")

    def card(self) -> dict:
        return {"words": list(self.words)} if self.words else {"chars": self.chars}

    def read(self, ids, window: int = 0) -> TokenText:
        """decode(ids) with each token's label kept (a TokenText)."""
        return TokenText(self.labels(ids), window)


class TokenText(str):
    """A text as a model read it: the string is "".join(labels); `labels` holds one string per token
    (a character, or a word and its space); `window` > 0 says each step was read as the last
    `window` tokens from a zero state (TextSettings.window). Its length and its slices count steps
    (tokens), as every other domain's sequence does: text[a:b] is the TokenText of steps a..b-1. For
    characters that is the str's own; str's methods (regexes, encode) see the whole text."""

    def __new__(cls, labels, window: int = 0):
        text = super().__new__(cls, "".join(labels))
        text.labels, text.window = tuple(labels), int(window or 0)
        return text

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return TokenText(self.labels[index], self.window) if isinstance(index, slice) else self.labels[index]

    def __reduce__(self):  # pickled to a worker or a lent GPU with its labels and window
        return TokenText, (self.labels, self.window)

    @property
    def words(self) -> bool:
        """Whether the tokens are longer than one character (a word vocabulary's)."""
        return any(len(label) != 1 for label in self.labels)


def code_points(text: str) -> np.ndarray:
    """A string's code points (uint32), lone surrogates too (a browser can send them)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
