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

import math
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
                if (ch, alt) not in mapped:
                    mapped.append((ch, alt))
            elif ch not in dropped:
                dropped.append(ch)
        cleaned = re.sub(" +", " ", "".join(out)).strip()
        if mapped:
            notes.append("Mapped characters the model never saw to look-alikes: "
                         + ", ".join(f"{c!r} to {alt!r}" for c, alt in mapped[:20]) + ".")
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
    hand: str | None = None  # a synthesis model with styles reads it in this style (model.STYLE_NAMES); None: cursive

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


# ---------------------------------------------------------------- style: statistics and primer normalisation
# Handwriting style: the statistics a hand is compared by, and a style primer brought to the
# training data's scale before a model reads it.
#
# A primer arrives in any units (mouse pixels, tablet units, IAM's 1/1000 inch), tilted, slanted,
# sampled at its device's rate. `normalize_primer` turns it into what the models saw in training:
#
# * **baseline**: a tilted line is rotated level (the least-squares line through its points, for
#   a line of writing at least twice as wide as high; at most 0.35 rad);
# * **height**: scaled so its x-height is the training data's (the transcript says which letters
#   reach above or below the x-height band, so the ink's height gives the x-height);
# * **slant**: sheared into the training data's slant range (a slant inside it is the style, kept);
# * **point spacing**: resampled along the pen path at the training data's spacing between points
#   (a mouse gives points a pixel apart, a tablet far fewer).
#
# `stroke_stats` measures height/width ratio, slant, pen lifts per character and curvature; the
# priming benchmark (bench/bench_handwriting_primer.py) compares hands by them.
# The training data's statistics (Hershey cursive + Omniglot print lines of runs/hw-mixed/data,
# measured by `training_stats` over 2,000 random training lines; also in the model card's
# `primer_normalisation`). Units: Hershey font units, y down, the baseline at y = 9. The line
# heights the transcript predicts (`expected_height`) match the data: measured / predicted has a
# median of 1.06 (cursive 1.28, print 0.94).
TRAINING_STATS = {
    "x_height": 9.0,  # the x-height band of both the cursive and the composed print (Hershey geometry)
    "ascender": 10.0,  # above the x-height band (cursive 12, print 8.5)
    "descender": 10.0,  # below the baseline (cursive 12, print 8)
    "spacing": 4.7,  # median distance between consecutive pen-down points (cursive 4.9, print 4.5)
    "slant_range": (-0.08, 0.45),  # 5th and 95th percentiles of per-line slant (cursive 0.14..0.47, print -0.11..0.12)
    "line_height": 26.6,  # median ink height of a line (a primer without transcript is scaled to it)
}
ASCENDING = set("bdfhklt" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!?'")
DESCENDING = set("gjpqy")


def _segments(strokes) -> np.ndarray:
    """Every pen-down move (n, 2)."""
    parts = [np.diff(np.asarray(s, np.float64).reshape(-1, 2), axis=0) for s in strokes if len(s) > 1]
    return np.vstack(parts) if parts else np.zeros((0, 2))


def slant_of(strokes) -> float:
    """Lean of the near-vertical pen moves: mean of -dx/dy weighted by |dy| (y down), > 0 leans right."""
    moves = _segments(strokes)
    upright = moves[np.abs(moves[:, 1]) > np.abs(moves[:, 0])] if len(moves) else moves
    if not len(upright) or np.abs(upright[:, 1]).sum() < 1e-9:
        return 0.0
    return float(np.sum(-upright[:, 0] * np.sign(upright[:, 1])) / np.abs(upright[:, 1]).sum())


def curvature_of(strokes) -> float:
    """Mean absolute turning angle between consecutive pen-down moves (radians per point)."""
    turns = []
    for s in strokes:
        moves = np.diff(np.asarray(s, np.float64).reshape(-1, 2), axis=0)
        moves = moves[np.hypot(moves[:, 0], moves[:, 1]) > 1e-9]
        if len(moves) > 1:
            angles = np.arctan2(moves[:, 1], moves[:, 0])
            turns.append(np.abs((np.diff(angles) + np.pi) % (2 * np.pi) - np.pi))
    return float(np.mean(np.concatenate(turns))) if turns else 0.0


def stroke_stats(strokes, characters: int) -> dict[str, float]:
    """{"height/width", "slant", "pen lifts per character", "curvature"} of a piece of writing of
    `characters` letters (spaces not counted)."""
    strokes = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s)]
    points = np.vstack(strokes)
    width, height = np.ptp(points[:, 0]), np.ptp(points[:, 1])
    return {"height/width": float(height / max(width, 1e-9)), "slant": slant_of(strokes),
            "pen lifts per character": len(strokes) / max(characters, 1), "curvature": curvature_of(strokes)}


def expected_height(text: str, stats: dict = TRAINING_STATS) -> float:
    """Ink height (training units) of a line of `text`, from which of its letters reach above the
    x-height band or below the baseline."""
    letters = [c for c in text if not c.isspace()]
    up = any(c in ASCENDING or c == "i" or c == "j" for c in letters)
    return stats["x_height"] + (stats["ascender"] if up else 0) + (stats["descender"] if any(c in DESCENDING for c in letters) else 0)


def _even(stroke: np.ndarray, spacing: float) -> np.ndarray:
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))]) if len(stroke) > 1 else np.zeros(1)
    if arc[-1] < spacing * 0.5:
        return stroke[:1] if arc[-1] < 1e-9 else stroke[[0, -1]]
    targets = np.linspace(0, arc[-1], max(2, int(round(arc[-1] / spacing)) + 1))
    return np.stack([np.interp(targets, arc, stroke[:, 0]), np.interp(targets, arc, stroke[:, 1])], axis=1)


def normalize_primer(strokes, text: str = "", stats: dict = TRAINING_STATS) -> tuple[list[np.ndarray], list[str]]:
    """(strokes at the training data's scale, baseline, slant range and point spacing, notes saying
    what was changed in words)."""
    strokes = [np.asarray(s, np.float64).reshape(-1, 2) for s in strokes if len(s)]
    strokes = [s[np.concatenate([[True], np.hypot(*np.diff(s, axis=0).T) > 0])] for s in strokes]  # repeated points
    points = np.vstack(strokes)
    notes = []
    width, height = np.ptp(points[:, 0]), np.ptp(points[:, 1])
    if width >= 2 * height and len(points) > 2:  # a line of writing: level its baseline
        slope = np.polyfit(points[:, 0], points[:, 1], 1)[0]
        angle = float(np.clip(math.atan(slope), -0.35, 0.35))
        if abs(angle) > 0.03:
            cos, sin = math.cos(-angle), math.sin(-angle)
            rotation = np.array([[cos, sin], [-sin, cos]])
            strokes = [s @ rotation for s in strokes]
            notes.append(f"baseline levelled (it rose {math.degrees(-angle):+.0f}°)")
            points = np.vstack(strokes)
    height = max(float(np.ptp(points[:, 1])), 1e-6)
    target = expected_height(text, stats) if text.strip() else stats["line_height"]
    scale = target / height
    strokes = [(s - points.min(0)) * scale for s in strokes]
    notes.append(f"scaled by {scale:.3g} to the training data's letter height")
    low, high = stats["slant_range"]
    slant = slant_of(strokes)
    if not low - 0.01 <= slant <= high + 0.01:  # just outside: not worth a shear
        shear = float(np.clip(slant, low, high)) - slant
        strokes = [np.stack([s[:, 0] - shear * (s[:, 1] - target), s[:, 1]], axis=1) for s in strokes]
        notes.append(f"slant {slant:+.2f} brought to {slant + shear:+.2f} (the edge of the training data's range)")
    strokes = [_even(s, stats["spacing"]) for s in strokes]
    notes.append(f"resampled to a point every {stats['spacing']:g} units along the pen path")
    return [s.astype(np.float32) for s in strokes], notes


def training_stats(texts: list[str], strokes_per_line: list[list[np.ndarray]]) -> dict:
    """The statistics TRAINING_STATS holds, measured on training lines (bench and card)."""
    spacing = np.concatenate([np.hypot(*_segments(s).T) for s in strokes_per_line])
    slants = [slant_of(s) for s in strokes_per_line]
    heights = [np.ptp(np.vstack(s)[:, 1]) for s in strokes_per_line]
    return {"spacing": float(np.median(spacing)), "slant_range": (float(np.percentile(slants, 5)),
                                                                  float(np.percentile(slants, 95))),
            "line_height": float(np.median(heights)), "lines": len(texts)}
