"""Handwriting codec (pure numpy, plus the alphabet's one-hot tensors). Formats:

* **strokes**: a list of polylines, one per pen-down stroke, each an (N, 2) float array of
  absolute (x, y) pen positions. y grows *downwards* (screen, SVG, IAM-OnDB, QuickDraw
  convention), so a picture is drawn as stored.
* **offsets** (stroke-3, as sketch-rnn and Graves): a (T, 3) float32 array, one row per pen
  point: (dx, dy, pen_lift). dx, dy is the move from the previous point (the first point's
  from the origin (0, 0)); pen_lift = 1 marks the *last* point of a stroke (the pen leaves the
  paper after it, and the next row's move is pen-up travel). `strokes_to_offsets` and
  `offsets_to_strokes` are exact inverses up to float rounding.
* **normalised offsets**: the model sees dx, dy divided by the card's `codec.offset_scale`
  (the training data's offset standard deviation) so the network works near unit scale.
* **characters** (`HandwritingAlphabet`): the model card's `codec.chars` string; char k is index
  k of the one-hot vectors the attention window reads. Unknown characters are mapped (curly
  quotes to straight ones, accents removed) or dropped, with a note.
* **a handwriting sample** (`Handwriting`, what `score` reads): strokes plus their transcript.
  Read teacher-forced, its first move is zeroed (the pen starts where it is, as a style primer
  does: a file's absolute start position says nothing about the hand), unless `from_origin`
  says the strokes start from the pen at (0, 0) (a generation read again: its first move is
  what the model wrote).

A model card's `codec` is {"offset_scale": float, "chars": str} ("chars" only for synthesis
models); `HandwritingCodec` is that record. Traces carry a `HandwritingDetail`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_TEXT = 160  # characters per request; longer text is capped with a note
MAX_SCORE_POINTS = 5_000  # pen points `score` reads from a sample (the attention layer is stepped)
DEFAULT_CHARS = " !',-.:;?ABCDEFGHIJKLMNOPRSTUVWYabcdefghijklmnopqrstuvwxyz"
CHAR_MAP = {"\u2018": "'", "\u2019": "'", "\u201c": "'", "\u201d": "'", '"': "'", "\u2013": "-", "\u2014": "-", "\t": " ", "\n": " "}


# ---------------------------------------------------------------- strokes <-> offsets
def strokes_to_offsets(strokes) -> np.ndarray:
    """list of (N, 2) absolute polylines -> (T, 3) float32 offsets (dx, dy, pen_lift)."""
    rows, previous = [], np.zeros(2)
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
        if len(points) == 0:
            continue
        deltas = np.diff(np.vstack([previous, points]), axis=0)
        lift = np.zeros((len(points), 1))
        lift[-1] = 1
        rows.append(np.hstack([deltas, lift]))
        previous = points[-1]
    if not rows:
        return np.zeros((0, 3), np.float32)
    return np.vstack(rows).astype(np.float32)


def offsets_to_strokes(offsets, dtype=np.float32) -> list[np.ndarray]:
    """(T, 3) offsets -> list of (N, 2) absolute polylines (float32, or `dtype`: float64 keeps the
    offsets exactly through strokes_to_offsets). A trailing stroke without a pen lift (a sample
    cut short) is kept."""
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
    points = np.cumsum(offsets[:, :2], axis=0)
    ends = np.flatnonzero(offsets[:, 2] > 0.5) + 1
    pieces = np.split(points, ends)
    return [p.astype(dtype) for p in pieces if len(p)]


def normalize_strokes(strokes, height: float = 1.0) -> list[np.ndarray]:
    """Shift to the top-left at (0, 0) and scale so the drawing's height is `height` (aspect kept)."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not strokes:
        return []
    allpts = np.vstack(strokes)
    low = allpts.min(0)
    extent = float(np.ptp(allpts[:, 1])) or float(np.ptp(allpts[:, 0])) or 1.0
    return [((s - low) * (height / extent)).astype(np.float32) for s in strokes]


def bounds(strokes) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of every point of the strokes."""
    allpts = np.vstack([np.asarray(s).reshape(-1, 2) for s in strokes]) if strokes else np.zeros((1, 2))
    (x0, y0), (x1, y1) = allpts.min(0), allpts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


# ---------------------------------------------------------------- characters
@dataclass
class HandwritingAlphabet:
    chars: str = DEFAULT_CHARS  # char k is one-hot index k

    def __post_init__(self):
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def clean(self, text: str, max_chars: int | None = MAX_TEXT) -> tuple[str, list[str]]:
        """(text the model can write, notes). Maps look-alikes, drops the rest, caps the length
        (max_chars None: no cap, for reading a transcript)."""
        notes, out, dropped, mapped = [], [], [], []
        for ch in text:
            if ch in self.index:
                out.append(ch)
                continue
            alt = CHAR_MAP.get(ch)
            if alt is None:
                base = unicodedata.normalize("NFKD", ch)[:1]
                alt = base if base in self.index else (ch.lower() if ch.lower() in self.index else
                                                        ch.upper() if ch.upper() in self.index else None)
            if alt is not None and alt in self.index:
                out.append(alt)
                if ch not in mapped:
                    mapped.append(ch)
            elif ch not in dropped:
                dropped.append(ch)
        cleaned = re.sub(" +", " ", "".join(out)).strip()
        if mapped:
            notes.append("Mapped characters the model never saw to look-alikes: " + ", ".join(repr(c) for c in mapped[:20]) + ".")
        if dropped:
            notes.append("Dropped characters the model never saw: " + ", ".join(repr(c) for c in dropped[:20]) + ".")
        if max_chars is not None and len(cleaned) > max_chars:
            cut = cleaned[:max_chars]
            cut = cut[: cut.rfind(" ")] if " " in cut[max_chars // 2 :] else cut
            notes.append(f"The text was longer than {max_chars} characters; wrote the first {len(cut)}.")
            cleaned = cut.strip()
        return cleaned, notes

    def one_hot(self, text: str) -> torch.Tensor:
        ids = torch.tensor([self.index[c] for c in text], dtype=torch.long)
        return F.one_hot(ids, self.size).float()  # (U, V)


@dataclass
class HandwritingCodec:
    """What a model needs to read and write pen points: the offset scale, and for a synthesis
    model the alphabet its window reads (None for a prediction model)."""

    offset_scale: float  # data units per normalised unit (the training offsets' standard deviation)
    alphabet: HandwritingAlphabet | None = None

    def card(self) -> dict:
        return {"offset_scale": self.offset_scale, **({"chars": self.alphabet.chars} if self.alphabet else {})}


# ---------------------------------------------------------------- sequences and traces
@dataclass
class Handwriting:
    """A handwriting sample: what `score` reads and `features` describes."""

    strokes: list[np.ndarray]  # absolute polylines, y down
    text: str = ""  # the transcript (read by a synthesis model's window, ignored by a prediction model)
    from_origin: bool = False  # the pen starts at (0, 0): the first move is read as it is, not zeroed

    def offsets(self) -> np.ndarray:
        """(T, 3) offsets as `score` reads them: at most MAX_SCORE_POINTS, the first move zeroed
        (kept when `from_origin`)."""
        offsets = strokes_to_offsets(self.strokes)[:MAX_SCORE_POINTS]
        if len(offsets) and not self.from_origin:
            offsets[0, :2] = 0
        return offsets


@dataclass
class HandwritingDetail:
    """A handwriting trace's own record (Trace.detail)."""

    mode: str  # "synthesis" (writing a text) or "scribble" (a prediction model)
    text: str = ""  # the characters the window read (a style primer's transcript, a space, then the text)
    finished: bool = True  # generation: the window passed the last character and the pen lifted
    lines: int = 1  # lines written separately and stacked
