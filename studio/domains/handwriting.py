"""Handwriting domain: Graves (2013) sections 4-5 pen-stroke LSTMs.

Codec formats (pure numpy):

* **strokes**: a list of polylines, one per pen-down stroke, each an (N, 2) float array of
  absolute (x, y) pen positions. y grows *downwards* (screen, SVG, IAM-OnDB, QuickDraw
  convention), so a picture is drawn as stored.
* **offsets** (stroke-3, as sketch-rnn and Graves): a (T, 3) float32 array, one row per pen
  point: (dx, dy, pen_lift). dx, dy is the move from the previous point (the first point's
  from the origin (0, 0)); pen_lift = 1 marks the *last* point of a stroke (the pen leaves the
  paper after it, and the next row's move is pen-up travel). ``strokes_to_offsets`` and
  ``offsets_to_strokes`` are exact inverses up to float rounding.
* **normalised offsets**: the model sees dx, dy divided by the card's ``codec.offset_scale``
  (the training data's offset standard deviation) so the network works near unit scale.
* **characters**: the model card's ``codec.chars`` string; char k is index k of the one-hot
  vectors the attention window reads. Unknown characters are mapped (curly quotes to straight
  ones, accents removed) or dropped, with a note.

Importers (all return strokes, or raise ``StrokeFileError`` whose message a user can read):
IAM-OnDB stroke XML (``<StrokeSet><Stroke><Point x= y=/>``), QuickDraw ndjson (``drawing``:
[[xs], [ys], ...] per stroke; the first drawing of the file), sketch-rnn ``.npz`` stroke-3
(first sequence of ``train``/``valid``/``test``; loaded with allow_pickle=False), and plain JSON:
a list of strokes, each a list of [x, y] pairs, or {"strokes": [...], "text": "..."}.

Models (both on the shared LSTMCore; outputs are mixture density parameters):

* ``PredictionModel`` (section 4): LSTMCore over normalised offsets -> MDN head of M
  bivariate Gaussians with correlation plus a Bernoulli end-of-stroke (pen_lift).
* ``SynthesisModel`` (section 5): attention LSTM (one layer) whose hidden state sets a soft
  window of K Gaussians over the one-hot characters; the window vector w_t and h1 feed a
  fused LSTMCore; the MDN head reads every layer (skip connections). The attention layer reads
  w_{t-1}, so it runs step by step in training (``torch.lstm_cell``, the same math as
  ``LSTMCore.step``); the layers above run fused.

Sampling bias b (section 5.4): sigma = exp(sigma_hat - b), pi = softmax(pi_hat (1 + b)).
Priming (5.5): the style strokes are read teacher-forced with the style text prefixed to the
text, then sampling continues. Stopping: Graves' rule, the window has passed the last
character (phi at u = U exceeds phi at every real character), then the pen finishes its stroke.

Trace alignment: step t is the pen point the model *produced* at t (the input that led to it was
the point before); label = the character under the window (synthesis) or the step number.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from studio import checkpoint
from studio.lstm import LSTMConfig, LSTMCore
from studio.trace import Trace

DOMAIN = "handwriting"
MAX_TEXT = 160  # characters per request; longer text is capped with a note
LINE_CHARS = 26  # longer text is written line by line: the training phrases were at most 28 characters
MAX_STROKE_FILE_BYTES = 20_000_000
DEFAULT_CHARS = " !',-.:;?ABCDEFGHIJKLMNOPRSTUVWYabcdefghijklmnopqrstuvwxyz"
CHAR_MAP = {"\u2018": "'", "\u2019": "'", "\u201c": "'", "\u201d": "'", '"': "'", "\u2013": "-", "\u2014": "-", "\t": " ", "\n": " "}


class StrokeFileError(ValueError):
    """A stroke file could not be read; the message says which file and why, in plain words."""


# ---------------------------------------------------------------- codec
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


def offsets_to_strokes(offsets) -> list[np.ndarray]:
    """(T, 3) offsets -> list of (N, 2) float32 absolute polylines. A trailing stroke without a
    pen lift (a sample cut short) is kept."""
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
    points = np.cumsum(offsets[:, :2], axis=0)
    ends = np.flatnonzero(offsets[:, 2] > 0.5) + 1
    pieces = np.split(points, ends)
    return [p.astype(np.float32) for p in pieces if len(p)]


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
    allpts = np.vstack([np.asarray(s).reshape(-1, 2) for s in strokes]) if strokes else np.zeros((1, 2))
    (x0, y0), (x1, y1) = allpts.min(0), allpts.max(0)
    return float(x0), float(y0), float(x1), float(y1)


def _svg_frame(strokes, margin: float, width_px: float):
    x0, y0, x1, y1 = bounds(strokes)
    span = max(x1 - x0, y1 - y0, 1e-6)
    pad = margin * span
    vb = (x0 - pad, y0 - pad, (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad)
    height_px = width_px * vb[3] / max(vb[2], 1e-6)
    return vb, height_px, span


def _curve_controls(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Bezier control points (c1, c2), each (N-1, 2), of a Catmull-Rom curve through `points`.

    Pen points are ~10 per letter, so straight segments look like a polygon; the curve passes
    through every stored point exactly (the codec stays exact), it only bends between them."""
    padded = np.vstack([points[:1], points, points[-1:]])  # the ends repeat: no overshoot there
    c1 = points[:-1] + (padded[2:-1] - padded[:-3]) / 6.0
    c2 = points[1:] - (padded[3:] - padded[1:-2]) / 6.0
    return c1, c2


def _smooth(points: np.ndarray, per_segment: int = 5) -> np.ndarray:
    """The Catmull-Rom curve sampled `per_segment` times per segment: ((N-1) * per_segment + 1, 2)."""
    if len(points) < 3:
        return points
    c1, c2 = _curve_controls(points)
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None, None]  # (S, 1, 1)
    a, b = points[:-1][None], points[1:][None]
    curve = (1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * c1[None] + 3 * (1 - t) * t**2 * c2[None] + t**3 * b  # (S, N-1, 2)
    return np.vstack([curve.transpose(1, 0, 2).reshape(-1, 2), points[-1:]])


def strokes_to_svg(strokes, colors: list[list[str]] | None = None, width_px: float = 800, stroke_width: float = 0.0035,
                   margin: float = 0.04, animate_seconds: float | None = None) -> str:
    """An SVG document: one smooth path per stroke through its points (cubic Bezier segments).
    colors: per stroke, per segment (N-1) CSS colours (one path per segment then).
    animate_seconds: draw the pen moving, each segment appearing at its turn (SMIL, no script)."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    vb, height_px, span = _svg_frame(strokes, margin, width_px)
    width = stroke_width * span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{vb[0]:.3f} {vb[1]:.3f} {vb[2]:.3f} {vb[3]:.3f}" '
             f'width="{width_px:.0f}" height="{height_px:.0f}" style="max-width:100%;height:auto" class="handwriting">',
             f'<rect x="{vb[0]:.3f}" y="{vb[1]:.3f}" width="{vb[2]:.3f}" height="{vb[3]:.3f}" fill="white"/>',
             f'<g fill="none" stroke-linecap="round" stroke-linejoin="round" stroke-width="{width:.4f}">']
    total_segments = sum(max(len(s) - 1, 1) for s in strokes)
    done = 0
    for k, s in enumerate(strokes):
        if len(s) == 1:  # a dot: a tiny segment, so the round caps draw it
            s = np.vstack([s, s + [1e-3, 0]])
        c1, c2 = _curve_controls(s)
        segments = [f"C {a[0]:.3f},{a[1]:.3f} {b[0]:.3f},{b[1]:.3f} {p[0]:.3f},{p[1]:.3f}"
                    for a, b, p in zip(c1, c2, s[1:], strict=True)]
        if colors is None and animate_seconds is None:
            parts.append(f'<path stroke="black" d="M {s[0, 0]:.3f},{s[0, 1]:.3f} {" ".join(segments)}"/>')
            continue
        for j, segment in enumerate(segments):
            colour = colors[k][min(j, len(colors[k]) - 1)] if colors is not None and len(colors[k]) else "black"
            path = f'<path stroke="{colour}" d="M {s[j, 0]:.3f},{s[j, 1]:.3f} {segment}"'
            if animate_seconds:
                begin = animate_seconds * done / max(total_segments, 1)
                path += f' opacity="0"><set attributeName="opacity" to="1" begin="{begin:.3f}s" fill="freeze"/></path>'
            else:
                path += "/>"
            parts.append(path)
            done += 1
    parts.append("</g></svg>")
    return "\n".join(parts)


def svg_to_strokes(svg: str) -> list[np.ndarray]:
    """Read back the strokes of an SVG written by strokes_to_svg (uncoloured form): the points
    each path passes through (its start, then the end of every curve segment)."""
    strokes = []
    for d in re.findall(r'<path[^>]*\sd="([^"]*)"', svg):
        numbers = [[float(v) for v in pair.split(",")] for pair in re.findall(r"-?[\d.]+,-?[\d.]+", d)]
        strokes.append(np.array([numbers[0]] + numbers[3::3], dtype=np.float32))
    return strokes


def render_figure(strokes, colors=None, title: str = "", width: float = 10.0):
    """Matplotlib Figure of the strokes (y down, aspect kept), drawn along the same smooth curves
    as the SVG; colors as in strokes_to_svg."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    per_segment = 5
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    x0, y0, x1, y1 = bounds(strokes)
    aspect = (y1 - y0 + 1e-6) / (x1 - x0 + 1e-6)
    fig = Figure(figsize=(width, float(np.clip(width * aspect, 1.2, 8)) + 0.3), dpi=80)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9 if title else 0.98))
    for k, s in enumerate(strokes):
        if len(s) < 2:
            s = np.vstack([s, s + [1e-3, 0]])
        curve = _smooth(s, per_segment)
        segments = np.stack([curve[:-1], curve[1:]], axis=1)
        if colors is None:
            ax.add_collection(LineCollection(segments, colors="black", linewidths=2, capstyle="round"))
        else:
            cols = colors[k] if len(colors[k]) else ["black"]
            step = per_segment if len(s) >= 3 else 1  # sub-segments of segment j share its colour
            cols = [cols[min(j // step, len(cols) - 1)] for j in range(len(segments))]
            ax.add_collection(LineCollection(segments, colors=[_css_to_rgba(c) for c in cols], linewidths=2.5, capstyle="round"))
    pad = 0.03 * max(x1 - x0, y1 - y0, 1e-6)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y1 + pad, y0 - pad)  # y grows downwards
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _css_to_rgba(colour: str):
    m = re.match(r"rgba?\(([^)]*)\)", colour)
    if not m:
        return colour
    vals = [float(v) for v in m.group(1).split(",")]
    r, g, b = (v / 255 for v in vals[:3])
    return (r, g, b, vals[3] if len(vals) > 3 else 1.0)


def write_png(strokes, path, colors=None) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = render_figure(strokes, colors)
    FigureCanvasAgg(fig)
    fig.savefig(str(path), format="png", facecolor="white")
    return Path(path)


# ---------------------------------------------------------------- importers
def _fail(path, why: str):
    raise StrokeFileError(f"{Path(path).name}: {why}")


def _check_strokes(strokes, path) -> list[np.ndarray]:
    out = []
    for s in strokes:
        arr = np.asarray(s, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2:
            _fail(path, "each stroke must be a list of [x, y] points")
        if not np.isfinite(arr).all():
            _fail(path, "contains coordinates that are not finite numbers")
        if len(arr):
            out.append(arr.astype(np.float32))
    if not out:
        _fail(path, "contains no pen points")
    return out


def load_iam_xml(path) -> list[np.ndarray]:
    try:
        root = ET.fromstring(Path(path).read_bytes())
    except ET.ParseError as error:
        _fail(path, f"is not well-formed XML ({error})")
    strokes = []
    for stroke in root.iter("Stroke"):
        try:
            strokes.append([[float(p.attrib["x"]), float(p.attrib["y"])] for p in stroke.iter("Point")])
        except (KeyError, ValueError):
            _fail(path, "has a <Point> without numeric x and y attributes (is this IAM-OnDB stroke XML?)")
    if not strokes:
        _fail(path, "has no <Stroke> elements (expected IAM-OnDB <StrokeSet><Stroke><Point x= y=/>)")
    return _check_strokes(strokes, path)


def load_quickdraw_ndjson(path) -> list[np.ndarray]:
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            drawing = record["drawing"]
            strokes = [np.stack([np.asarray(s[0], float), np.asarray(s[1], float)], axis=1) for s in drawing]
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, ValueError):
            _fail(path, "is not QuickDraw ndjson (each line a JSON object with \"drawing\": [[xs], [ys]] per stroke)")
        return _check_strokes(strokes, path)
    _fail(path, "is empty")


def load_sketch_rnn_npz(path) -> list[np.ndarray]:
    if Path(path).read_bytes()[:2] != b"PK":  # np.load would try to unpickle anything that is not a zip
        _fail(path, "is not a readable .npz (not a zip archive of arrays)")
    try:
        with np.load(path, allow_pickle=False, encoding="latin1") as data:
            for key in ("train", "valid", "test"):
                if key in data.files:
                    seq = np.asarray(data[key][0] if data[key].dtype == object else data[key], dtype=np.float64)
                    if seq.ndim == 3:
                        seq = seq[0]
                    break
            else:
                _fail(path, f"has no 'train', 'valid' or 'test' array (found {', '.join(data.files) or 'none'})")
    except ValueError as error:
        if isinstance(error, StrokeFileError):
            raise
        if "allow_pickle" in str(error) or "pickle" in str(error).lower():
            _fail(path, "stores Python objects (pickled ragged arrays); for safety only plain numeric arrays are read. "
                        "Re-save one drawing as a (T, 3) float array, e.g. np.savez(f, train=np.asarray(seq, float)[None])")
        _fail(path, f"is not a readable .npz ({error})")
    except (OSError, EOFError) as error:
        _fail(path, f"is not a readable .npz ({error})")
    if seq.ndim != 2 or seq.shape[1] != 3:
        _fail(path, f"holds shape {seq.shape}, not stroke-3 (T, 3) rows of (dx, dy, pen_lift)")
    return _check_strokes(offsets_to_strokes(seq), path)


def load_json_strokes(path) -> tuple[list[np.ndarray], str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _fail(path, f"is not valid JSON ({error})")
    text = ""
    if isinstance(data, dict):
        text = str(data.get("text", ""))
        data = data.get("strokes")
    if not isinstance(data, list):
        _fail(path, "must be a list of strokes, each a list of [x, y] points (or {\"strokes\": ..., \"text\": ...})")
    try:
        return _check_strokes(data, path), text
    except (TypeError, ValueError) as error:
        if isinstance(error, StrokeFileError):
            raise
        _fail(path, "must be a list of strokes, each a list of [x, y] numeric points")


def load_stroke_file(path) -> tuple[list[np.ndarray], str]:
    """(strokes, transcript or "") from any supported file, chosen by extension then content."""
    path = Path(path)
    if not path.exists():
        raise StrokeFileError(f"{path.name}: no such file")
    if path.stat().st_size > MAX_STROKE_FILE_BYTES:
        _fail(path, f"is larger than {MAX_STROKE_FILE_BYTES // 1_000_000} MB")
    name = path.name.lower()
    if name.endswith(".npz"):
        return load_sketch_rnn_npz(path), ""
    if name.endswith(".xml"):
        return load_iam_xml(path), ""
    if name.endswith(".ndjson"):
        return load_quickdraw_ndjson(path), ""
    if name.endswith(".json"):
        return load_json_strokes(path)
    _fail(path, "has an unknown extension: use .xml (IAM-OnDB), .ndjson (QuickDraw), .npz (sketch-rnn) or .json")


# ---------------------------------------------------------------- characters
@dataclass
class CharCodec:
    chars: str = DEFAULT_CHARS  # char k is one-hot index k

    def __post_init__(self):
        self.index = {ch: k for k, ch in enumerate(self.chars)}

    @property
    def size(self) -> int:
        return len(self.chars)

    def clean(self, text: str) -> tuple[str, list[str]]:
        """(text the model can write, notes). Maps look-alikes, drops the rest, caps the length."""
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
        if len(cleaned) > MAX_TEXT:
            cut = cleaned[:MAX_TEXT]
            cut = cut[: cut.rfind(" ")] if " " in cut[MAX_TEXT // 2 :] else cut
            notes.append(f"The text was longer than {MAX_TEXT} characters; wrote the first {len(cut)}.")
            cleaned = cut.strip()
        return cleaned, notes

    def one_hot(self, text: str) -> torch.Tensor:
        ids = torch.tensor([self.index[c] for c in text], dtype=torch.long)
        return F.one_hot(ids, self.size).float()  # (U, V)


# ---------------------------------------------------------------- synthetic training data
@dataclass
class DataConfig:
    samples: int = 4_000  # training trajectories rendered
    held_out: int = 50  # phrases never used in training (finished_fraction is measured on them)
    min_chars: int = 6
    max_chars: int = 28
    seed: int = 0
    fonts: tuple[str, ...] = ("scripts", "scriptc")
    spacing: tuple[float, float] = (4.5, 6.0)  # font units between resampled points (pen speed)


_FONTS: dict[str, object] = {}


def _font(name: str):
    if name not in _FONTS:
        from HersheyFonts import HersheyFonts

        font = HersheyFonts()
        font.load_default_font(name)
        _FONTS[name] = font
    return _FONTS[name]


def phrases_from_text(corpus: str, codec: CharCodec, min_chars: int, max_chars: int, seed: int = 0) -> list[str]:
    """Distinct phrases of whole words cut from a corpus, only characters the codec knows."""
    rng = np.random.default_rng(seed)
    words = [w for w in re.split(r"\s+", corpus) if w and all(c in codec.index for c in w)]
    phrases, seen, k = [], set(), 0
    while k < len(words):
        n = int(rng.integers(1, 6))
        phrase = " ".join(words[k : k + n])
        k += n
        if min_chars <= len(phrase) <= max_chars and phrase not in seen:
            seen.add(phrase)
            phrases.append(phrase)
    return phrases


def _resample(stroke: np.ndarray, spacing: float, rng) -> np.ndarray:
    """Points at roughly `spacing` apart along the stroke, the pen's speed wavering a little."""
    if len(stroke) < 2:
        return stroke
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))])
    if arc[-1] < 1e-6:
        return stroke[:1]
    count = max(2, int(round(arc[-1] / spacing)) + 1)
    targets = np.linspace(0, arc[-1], count)
    if count > 2:  # uneven pen speed: interior points slide by up to a quarter of a step
        targets[1:-1] += rng.uniform(-0.25, 0.25, count - 2) * (arc[-1] / (count - 1))
    return np.stack([np.interp(targets, arc, stroke[:, 0]), np.interp(targets, arc, stroke[:, 1])], axis=1)


def render_phrase(text: str, rng, config: DataConfig | None = None, style: dict | None = None) -> list[np.ndarray]:
    """A synthetic handwritten trajectory of `text`: Hershey cursive strokes, joined where they
    touch, with random slant, scale, baseline drift, rotation, jitter and pen speed."""
    config = config or DataConfig()
    style = style or {}
    font_name = style.get("font") or (config.fonts[0] if rng.random() < 0.7 else config.fonts[-1])
    raw = [np.asarray(s, dtype=np.float64) for s in _font(font_name).strokes_for_text(text)]
    joined: list[np.ndarray] = []
    for s in raw:
        if joined and np.abs(joined[-1][-1] - s[0]).max() < 0.6:
            joined[-1] = np.vstack([joined[-1], s[1:]])
        else:
            joined.append(s)
    slant = style.get("slant", rng.uniform(-0.35, 0.15))
    scale = style.get("scale", rng.uniform(0.85, 1.15))
    squash = style.get("squash", rng.uniform(0.9, 1.1))
    rotation = style.get("rotation", rng.normal(0, 0.03))
    drift_amp, drift_freq, drift_phase = rng.uniform(0, 2.0), rng.uniform(0.004, 0.015), rng.uniform(0, 2 * np.pi)
    spacing = style.get("spacing", rng.uniform(*config.spacing))
    jitter = style.get("jitter", rng.uniform(0.05, 0.25))
    pieces = [_resample(s, spacing / scale, rng) for s in joined]
    pts = np.vstack(pieces)  # transform every point at once, then cut back into strokes
    x, y = pts[:, 0], pts[:, 1]
    y = y + drift_amp * np.sin(drift_freq * x + drift_phase)
    x = x + slant * (y - 9.0)  # shear about the baseline (y = 9 in Hershey units)
    x, y = x * scale * squash, y * scale
    cos, sin = math.cos(rotation), math.sin(rotation)
    pts = np.stack([cos * x - sin * y, sin * x + cos * y], axis=1) + rng.normal(0, jitter, (len(x), 2))
    return [p.astype(np.float32) for p in np.split(pts, np.cumsum([len(p) for p in pieces])[:-1])]


def build_dataset(corpus: str, out_dir, config: DataConfig | None = None, codec: CharCodec | None = None) -> dict:
    """Render the training set into OUT_DIR/train.npz + held_out.json. Returns a summary."""
    config = config or DataConfig()
    codec = codec or CharCodec()
    rng = np.random.default_rng(config.seed)
    phrases = phrases_from_text(corpus, codec, config.min_chars, config.max_chars, config.seed)
    order = rng.permutation(len(phrases))
    if len(phrases) <= config.held_out:
        raise ValueError(f"the corpus gives only {len(phrases)} distinct phrases of {config.min_chars}-{config.max_chars} "
                         f"known characters; {config.held_out} are held out, so at least {config.held_out + 1} are needed")
    held = [phrases[i] for i in order[: config.held_out]]
    train_phrases = [phrases[i] for i in order[config.held_out :]]
    texts, offsets, lengths = [], [], []
    for k in range(config.samples):
        phrase = train_phrases[k % len(train_phrases)]
        off = strokes_to_offsets(render_phrase(phrase, rng, config))
        texts.append(phrase)
        offsets.append(off)
        lengths.append(len(off))
    flat = np.concatenate(offsets)
    scale = float(np.std(flat[:, :2]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "train.npz", offsets=flat, lengths=np.array(lengths, np.int64), texts=np.array(texts, dtype=np.str_))
    held_offsets = [strokes_to_offsets(render_phrase(p, rng, config)) for p in held]
    np.savez(out_dir / "held_out.npz", offsets=np.concatenate(held_offsets),
             lengths=np.array([len(o) for o in held_offsets], np.int64), texts=np.array(held, dtype=np.str_))
    summary = {"samples": config.samples, "distinct_train_phrases": len(train_phrases), "held_out": held,
               "offset_scale": scale, "mean_points": float(np.mean(lengths)), "chars": codec.chars,
               "config": asdict(config)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_dataset(path) -> tuple[list[str], list[np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        offsets, lengths, texts = data["offsets"], data["lengths"], [str(t) for t in data["texts"]]
    return texts, np.split(offsets, np.cumsum(lengths)[:-1])


# ---------------------------------------------------------------- models
@dataclass
class MDNParams:
    eos_logit: torch.Tensor  # (..., 1)
    log_pi: torch.Tensor  # (..., M) log mixture weights
    mu: torch.Tensor  # (..., M, 2)
    log_sigma: torch.Tensor  # (..., M, 2)
    rho: torch.Tensor  # (..., M) correlation in (-1, 1)


def mdn_split(raw: torch.Tensor, mixtures: int, bias: float = 0.0) -> MDNParams:
    """Graves eqs 18-22 (and 61-62 with bias): raw (..., 1 + 6M) -> MDN parameters."""
    m = mixtures
    eos, pi, mu, sigma, rho = raw.split([1, m, 2 * m, 2 * m, m], dim=-1)
    return MDNParams(
        eos_logit=eos,
        log_pi=torch.log_softmax(pi * (1 + bias), dim=-1),
        mu=mu.reshape(*mu.shape[:-1], m, 2),
        log_sigma=sigma.reshape(*sigma.shape[:-1], m, 2) - bias,
        rho=torch.tanh(rho) * 0.999,  # keeps 1 - rho^2 away from 0
    )


def mdn_log_likelihood(params: MDNParams, target: torch.Tensor) -> torch.Tensor:
    """log p(target) per point: log sum_j pi_j N(dx, dy | mu_j, sigma_j, rho_j) + log Bernoulli(pen_lift).
    target (..., 3) normalised offsets -> (...,)."""
    xy = target[..., None, :2]  # (..., 1, 2)
    z = (xy - params.mu) / params.log_sigma.exp()  # (..., M, 2)
    one_minus = 1 - params.rho**2
    quad = (z[..., 0] ** 2 + z[..., 1] ** 2 - 2 * params.rho * z[..., 0] * z[..., 1]) / one_minus
    log_gauss = -quad / 2 - math.log(2 * math.pi) - params.log_sigma.sum(-1) - 0.5 * torch.log(one_minus)
    log_xy = torch.logsumexp(params.log_pi + log_gauss, dim=-1)
    log_eos = -F.binary_cross_entropy_with_logits(params.eos_logit[..., 0], target[..., 2], reduction="none")
    return log_xy + log_eos


def mdn_sample(params: MDNParams, generator: torch.Generator) -> torch.Tensor:
    """One point (3,) from unbatched params (M,) shapes."""
    j = int(torch.multinomial(params.log_pi.exp(), 1, generator=generator))
    mu, sigma, rho = params.mu[j], params.log_sigma[j].exp(), params.rho[j]
    n = torch.randn(2, generator=generator)
    dx = mu[0] + sigma[0] * n[0]
    dy = mu[1] + sigma[1] * (rho * n[0] + torch.sqrt(1 - rho**2) * n[1])
    lift = float(torch.rand(1, generator=generator) < torch.sigmoid(params.eos_logit[0]))
    return torch.stack([dx, dy, torch.tensor(lift)])


@dataclass
class PredictionConfig:
    hidden_size: int = 256  # LSTM units per layer
    num_layers: int = 2
    mixtures: int = 20  # M bivariate Gaussians in the output mixture
    dropout: float = 0.0


class PredictionModel(nn.Module):
    """Section 4: LSTMCore over normalised offsets -> mixture density output."""

    def __init__(self, config: PredictionConfig):
        super().__init__()
        self.config = config
        self.core = LSTMCore(LSTMConfig(3, config.hidden_size, config.num_layers, config.dropout))
        self.head = nn.Linear(config.hidden_size, 1 + 6 * config.mixtures)

    def forward(self, points: torch.Tensor, state=None):
        """points (B, T, 3) -> raw MDN outputs (B, T, 1 + 6M), state."""
        out, state = self.core(points, state)
        return self.head(out), state

    def step(self, point: torch.Tensor, state):
        """point (B, 3) -> raw (B, 1+6M), state, gates."""
        out, state, gates = self.core.step(point, state)
        return self.head(out), state, gates


@dataclass
class SynthesisConfig:
    vocab_size: int  # characters the window reads
    hidden_size: int = 128  # units of every LSTM layer (the attention layer and those above)
    num_layers: int = 2  # fused LSTMCore layers above the attention layer
    mixtures: int = 20  # M output Gaussians
    window_gaussians: int = 10  # K Gaussians of the soft window


@dataclass
class WindowState:
    kappa: torch.Tensor  # (B, K) window positions (in characters)
    w: torch.Tensor  # (B, V) last window vector


class SynthesisModel(nn.Module):
    """Section 5: attention LSTM -> soft window over the text -> LSTMCore -> MDN head."""

    def __init__(self, config: SynthesisConfig):
        super().__init__()
        self.config = config
        h, v = config.hidden_size, config.vocab_size
        self.attention = LSTMCore(LSTMConfig(3 + v, h, 1))
        self.window = nn.Linear(h, 3 * config.window_gaussians)
        self.core = LSTMCore(LSTMConfig(3 + v + h, h, config.num_layers))
        self.head = nn.Linear(h * (1 + config.num_layers), 1 + 6 * config.mixtures)
        with torch.no_grad():  # start the window moving slowly: ~1 character per 12 points
            self.window.bias[2 * config.window_gaussians :] = math.log(1 / 12)

    def initial_state(self, batch: int):
        k, v = self.config.window_gaussians, self.config.vocab_size
        return (self.attention.initial_state(batch), WindowState(torch.zeros(batch, k), torch.zeros(batch, v)),
                self.core.initial_state(batch))

    def window_weights(self, h1: torch.Tensor, kappa: torch.Tensor, chars: torch.Tensor, char_mask: torch.Tensor | None,
                       extra: int = 0):
        """Graves eqs 46-51. h1 (B, H), kappa (B, K), chars (B, U, V) ->
        (phi (B, U+extra), new kappa, alpha, beta). extra=1 also scores position U (past the end)."""
        alpha_hat, beta_hat, kappa_hat = self.window(h1).chunk(3, dim=-1)
        alpha, beta = alpha_hat.exp(), beta_hat.exp()
        kappa = kappa + kappa_hat.exp()
        u = torch.arange(chars.shape[1] + extra, device=h1.device, dtype=h1.dtype)
        phi = (alpha[:, :, None] * torch.exp(-beta[:, :, None] * (kappa[:, :, None] - u) ** 2)).sum(1)  # (B, U+extra)
        if char_mask is not None:
            phi = phi * torch.cat([char_mask, char_mask.new_ones(char_mask.shape[0], extra)], 1) if extra else phi * char_mask
        return phi, kappa

    def forward(self, points: torch.Tensor, chars: torch.Tensor, char_mask: torch.Tensor):
        """Teacher-forced: points (B, T, 3), chars (B, U, V), char_mask (B, U) ->
        raw (B, T, 1+6M), phi (B, T, U). The attention layer is stepped (it reads w_{t-1})."""
        batch, steps, _ = points.shape
        layer = self.attention.layers[0]
        h = points.new_zeros(batch, self.config.hidden_size)
        c = torch.zeros_like(h)
        kappa = points.new_zeros(batch, self.config.window_gaussians)
        w = points.new_zeros(batch, self.config.vocab_size)
        hs, ws, phis = [], [], []
        for t in range(steps):
            h, c = torch.lstm_cell(torch.cat([points[:, t], w], -1), (h, c), layer.weight_ih_l0, layer.weight_hh_l0,
                                   layer.bias_ih_l0, layer.bias_hh_l0)
            phi, kappa = self.window_weights(h, kappa, chars, char_mask)
            w = torch.bmm(phi[:, None], chars)[:, 0]
            hs.append(h)
            ws.append(w)
            phis.append(phi)
        h1, window = torch.stack(hs, 1), torch.stack(ws, 1)
        upper_in = torch.cat([points, window, h1], -1)
        outs, _, layer_io = self.core._run_layers(upper_in, None, keep_layer_io=True)
        raw = self.head(torch.cat([h1] + [io[1] for io in layer_io], -1))
        return raw, torch.stack(phis, 1)

    @torch.no_grad()
    def step(self, point: torch.Tensor, chars: torch.Tensor, state, bias: float = 0.0):
        """point (1, 3), chars (1, U, V) -> (MDN params for the next point, state, gates, phi (U+1,))."""
        att_state, window, core_state = state
        h1, att_state, att_gates = self.attention.step(torch.cat([point, window.w], -1), att_state)
        phi, kappa = self.window_weights(h1, window.kappa, chars, None, extra=1)
        w = torch.bmm(phi[:, None, :-1], chars)[:, 0]
        out, core_state, core_gates = self.core.step(torch.cat([point, w, h1], -1), core_state)
        raw = self.head(torch.cat([h1] + [g["h"] for g in core_gates], -1))
        params = mdn_split(raw[0], self.config.mixtures, bias)
        return params, (att_state, WindowState(kappa, w), core_state), att_gates + core_gates, phi[0]


# ---------------------------------------------------------------- checkpoints
def make_card(kind: str, model, codec: CharCodec | None, offset_scale: float, extra: dict) -> dict:
    card = {"domain": DOMAIN, "kind_of_model": kind, "config": asdict(model.config),
            "codec": {"offset_scale": offset_scale, **({"chars": codec.chars} if codec else {})}, **extra}
    return card


def load_model(stem, device="cpu"):
    """(model, codec or None, card); the card says prediction or synthesis."""
    tensors, card = checkpoint.load(stem, domain=DOMAIN)
    try:
        if card.get("kind_of_model") == "synthesis":
            model = SynthesisModel(SynthesisConfig(**card["config"]))
            codec = CharCodec(card["codec"]["chars"])
        else:
            model = PredictionModel(PredictionConfig(**card["config"]))
            codec = None
        model.load_state_dict(tensors)
        float(card["codec"]["offset_scale"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise checkpoint.CheckpointError(f"{checkpoint.paths(stem)[0]} does not match its card: {error}") from None
    return model.to(device).eval(), codec, card


# ---------------------------------------------------------------- training
@dataclass
class StrokeBatch:
    points: torch.Tensor  # (B, T, 3) inputs: start token then offsets[:-1], normalised
    targets: torch.Tensor  # (B, T, 3) normalised offsets
    mask: torch.Tensor  # (B, T) 1 on real points
    chars: torch.Tensor | None  # (B, U, V) one-hot text
    char_mask: torch.Tensor | None  # (B, U)
    num_tokens: int = 0


def make_batch(offsets: list[np.ndarray], texts: list[str] | None, codec: CharCodec | None, scale: float,
               max_points: int = 10_000) -> StrokeBatch:
    lengths = [min(len(o), max_points) for o in offsets]
    steps = max(lengths)
    targets = torch.zeros(len(offsets), steps, 3)
    mask = torch.zeros(len(offsets), steps)
    for b, (off, n) in enumerate(zip(offsets, lengths, strict=True)):
        t = torch.as_tensor(off[:n], dtype=torch.float32)
        targets[b, :n, :2] = t[:, :2] / scale
        targets[b, :n, 2] = t[:, 2]
        mask[b, :n] = 1
    start = torch.zeros(len(offsets), 1, 3)
    start[:, 0, 2] = 1  # the pen begins lifted
    points = torch.cat([start, targets[:, :-1]], 1)
    chars = char_mask = None
    if texts is not None:
        width = max(len(t) for t in texts)
        chars = torch.zeros(len(texts), width, codec.size)
        char_mask = torch.zeros(len(texts), width)
        for b, text in enumerate(texts):
            chars[b, : len(text)] = codec.one_hot(text)
            char_mask[b, : len(text)] = 1
    return StrokeBatch(points, targets, mask, chars, char_mask, int(mask.sum()))


def batch_nll(model, batch: StrokeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of -log p over real points, number of points)."""
    if isinstance(model, SynthesisModel) or getattr(getattr(model, "module", None), "config", None).__class__ is SynthesisConfig:
        raw, _ = model(batch.points, batch.chars, batch.char_mask)
        mixtures = (model.module if hasattr(model, "module") else model).config.mixtures
    else:
        raw, _ = model(batch.points)
        mixtures = (model.module if hasattr(model, "module") else model).config.mixtures
    log_p = mdn_log_likelihood(mdn_split(raw, mixtures), batch.targets)
    return -(log_p * batch.mask).sum(), batch.mask.sum()


class StrokeTask:
    """TrainTask for both models: batches of phrases of similar length (little padding)."""

    def __init__(self, texts, offsets, val_texts, val_offsets, codec: CharCodec | None, scale: float,
                 batch_size: int = 32, synthesis: bool = True, seed: int = 0, max_points: int = 600):
        self.texts, self.offsets = texts, offsets
        self.val_texts, self.val_offsets = val_texts, val_offsets
        self.codec, self.scale, self.batch_size, self.synthesis = codec, scale, batch_size, synthesis
        self.max_points = max_points
        self.order = np.argsort([len(o) for o in offsets], kind="stable")
        self.rng = np.random.default_rng(seed)

    def train_batch(self, step, rank, world_size, device):
        start = int(self.rng.integers(0, max(1, len(self.order) - self.batch_size * 4)))
        pool = self.order[start : start + self.batch_size * 4]
        pick = self.rng.choice(pool, size=min(self.batch_size, len(pool)), replace=False)
        return self._batch([self.offsets[i] for i in pick], [self.texts[i] for i in pick], device)

    def _batch(self, offsets, texts, device):
        b = make_batch(offsets, texts if self.synthesis else None, self.codec, self.scale, self.max_points)
        return StrokeBatch(b.points.to(device), b.targets.to(device), b.mask.to(device),
                           None if b.chars is None else b.chars.to(device),
                           None if b.char_mask is None else b.char_mask.to(device), b.num_tokens)

    def loss(self, model, batch):
        total, count = batch_nll(model, batch)
        return total / count

    def evaluate(self, model) -> float:
        device = next(model.parameters()).device
        total, count = 0.0, 0.0
        for k in range(0, len(self.val_offsets), 25):
            b = self._batch(self.val_offsets[k : k + 25], self.val_texts[k : k + 25], device)
            t, n = batch_nll(model, b)
            total, count = total + float(t), count + float(n)
        return total / max(count, 1)


# ---------------------------------------------------------------- generation
@dataclass
class HandwritingSettings:
    text: str = ""  # what to write; empty with a prediction model = free scribble
    bias: float = 0.5  # Graves' sampling bias: 0 = raw samples, larger = neater
    seed: int = 0
    style: str | None = None  # path of a stroke file with a transcript (priming), or None
    max_points: int = 1500  # free scribble length / hard cap per request
    primer_strokes: list | None = None  # strokes given directly (instead of a style file)
    primer_text: str = ""  # their transcript


@dataclass
class HandwritingResult:
    strokes: list[np.ndarray]  # the generated handwriting, absolute, y down (primer excluded)
    offsets: np.ndarray  # (T, 3) the same as offsets, in data units
    text: str  # the text as written (after cleaning)
    notes: list[str]
    finished: bool  # the window passed the last character and the pen lifted (synthesis)
    phi: np.ndarray | None = None  # (T, U) attention window over the text's characters
    chars: str = ""  # the characters phi indexes (the primer's text, a space, then the text)
    primer_points: int = 0  # leading rows of phi that read the primer


def max_steps_for(text: str) -> int:
    return 30 * len(text) + 60


@torch.no_grad()
def generate(model, codec: CharCodec | None, card: dict, settings: HandwritingSettings) -> tuple[HandwritingResult, Trace]:
    """Write `settings.text` (synthesis model) or scribble freely (prediction model), sampling
    one point at a time with LSTMCore.step so every gate is traced as it runs."""
    scale = float(card["codec"]["offset_scale"])
    generator = torch.Generator().manual_seed(int(settings.seed))
    bias = float(settings.bias)
    notes: list[str] = []
    if bias < 0:
        notes.append(f"Bias {bias} is below 0; used 0.")
        bias = 0.0
    if bias > 10:
        notes.append(f"Bias {bias} is above 10; used 10.")
        bias = 10.0
    max_points = int(max(10, min(settings.max_points, 3000)))
    if isinstance(model, SynthesisModel):
        text, clean_notes = codec.clean(settings.text or "")
        notes.extend(clean_notes)
        if not text:
            raise ValueError("There is nothing to write: the text is empty" + (" after removing characters the model does not know." if settings.text.strip() else "."))
        lines = textwrap.wrap(text, LINE_CHARS)
        if len(lines) <= 1:
            return _generate_synthesis(model, codec, scale, replace(settings, text=text), bias, generator, notes)
        notes.append(f"Written in {len(lines)} lines of up to {LINE_CHARS} characters (the model learned phrases of "
                     "at most 28), each from a fresh state" + (" primed with the style." if _has_style(settings) else "."))
        parts = [_generate_synthesis(model, codec, scale, replace(settings, text=line), bias, generator, [])
                 for line in lines]
        return _stack_lines(parts, notes)
    if settings.text.strip():
        notes.append("This is an unconditional (free-scribble) model: the text was ignored.")
    state = model.core.initial_state(1)
    point = torch.tensor([[0.0, 0.0, 1.0]])
    rows, step_gates = [], []
    for _ in range(max_points):
        raw, state, gates = model.step(point, state)
        point = mdn_sample(mdn_split(raw[0], model.config.mixtures, bias), generator)[None]
        rows.append(point[0].numpy().copy())
        step_gates.append(gates)
    offsets = np.array(rows, np.float32)
    offsets[:, :2] *= scale
    offsets[-1, 2] = 1
    trace = Trace.from_steps(step_gates, [str(k) for k in range(len(rows))], {"domain": DOMAIN, "mode": "scribble"})
    return HandwritingResult(offsets_to_strokes(offsets), offsets, "", notes, True), trace


def _generate_synthesis(model, codec, scale, settings, bias, generator, notes):
    """One line of text, already cleaned by `generate` (settings.text is what gets written)."""
    text = settings.text
    primer_strokes, primer_text = settings.primer_strokes, settings.primer_text
    if settings.style and primer_strokes is None:
        primer_strokes, primer_text = load_stroke_file(settings.style)
    primer_offsets = np.zeros((0, 3), np.float32)
    if primer_strokes is not None:
        primer_text, primer_notes = codec.clean(primer_text or "")
        if not primer_text:
            notes.append("The style sample has no transcript the model can read; it was not used.")
        else:
            primer_offsets = strokes_to_offsets(primer_strokes)
            primer_offsets[0, :2] = 0  # the primer starts where the pen is
            primer_offsets = primer_offsets[:MAX_PRIMER_POINTS]
            if primer_notes:
                notes.append("Style transcript: " + " ".join(primer_notes))
    full = (primer_text + " " + text) if len(primer_offsets) else text
    chars = codec.one_hot(full)[None]  # (1, U, V)
    state = model.initial_state(1)
    point = torch.tensor([[0.0, 0.0, 1.0]])
    step_gates, labels, phis = [], [], []
    for row in primer_offsets:  # priming: teacher-forced over the style sample
        _, state, gates, phi = model.step(point, chars, state, bias)
        point = torch.tensor([[row[0] / scale, row[1] / scale, row[2]]])
        step_gates.append(gates)
        phis.append(phi.numpy())
        labels.append("·")
    primer_points = len(primer_offsets)
    rows, finished, passed = [], False, False
    limit = max_steps_for(text) + primer_points
    for _ in range(limit):
        params, state, gates, phi = model.step(point, chars, state, bias)
        point = mdn_sample(params, generator)[None]
        rows.append(point[0].numpy().copy())
        step_gates.append(gates)
        phis.append(phi.numpy())
        position = int(phi[:-1].argmax())
        labels.append(full[position] if full[position] != " " else "␣")
        # Graves' rule (phi past the end outweighs every character), or every window Gaussian
        # already beyond the last character (where all phi may underflow to 0)
        if not passed and (float(phi[-1]) > float(phi[:-1].max()) or float(state[1].kappa.min()) > len(full) + 0.5):
            passed = True
        if passed and point[0, 2] > 0.5:
            finished = True
            break
    if not finished:
        notes.append(f"The pen did not reach the end of the text within {limit - primer_points} points; stopped there.")
    offsets = np.array(rows, np.float32).reshape(-1, 3)
    offsets[:, :2] *= scale
    if len(offsets):
        offsets[-1, 2] = 1
    phi_all = np.array(phis)[:, : len(full)]
    meta = {"domain": DOMAIN, "mode": "synthesis", "text": full, "shown_from": primer_points, "finished": finished}
    trace = Trace.from_steps(step_gates, labels, meta)
    return HandwritingResult(offsets_to_strokes(offsets), offsets, text, notes, finished, phi_all, full, primer_points), trace


MAX_PRIMER_POINTS = 800


def _has_style(settings: HandwritingSettings) -> bool:
    return bool(settings.style) or settings.primer_strokes is not None


def _stack_lines(parts: list[tuple[HandwritingResult, Trace]], notes: list[str]) -> tuple[HandwritingResult, Trace]:
    """One result from lines written separately: lines stacked top to bottom, left-aligned; the
    trace and the attention window keep only the written steps (a style primer is read again
    for every line and not repeated in the output), the window's columns spanning the whole text."""
    strokes, phis, traces = [], [], []
    top, width, column = 0.0, sum(len(r.text) for r, _ in parts) + len(parts) - 1, 0
    for k, (result, trace) in enumerate(parts):
        x0, y0, _, y1 = bounds(result.strokes)
        strokes += [s - np.array([x0, y0 - top], np.float32) for s in result.strokes]
        top += (y1 - y0) * 1.25
        start = trace.meta.get("shown_from", 0)
        traces.append(Trace([{n: layer[n][start:] for n in layer} for layer in trace.layers], trace.labels[start:]))
        phi = np.zeros((len(result.phi) - result.primer_points, width), np.float32)
        own = result.phi[result.primer_points :, -len(result.text) :]  # the line's characters (after any primer)
        phi[:, column : column + len(result.text)] = own
        phis.append(phi)
        column += len(result.text) + 1
        notes.extend(f"Line {k + 1}: {note}" for note in result.notes)
    text = " ".join(r.text for r, _ in parts)
    finished = all(r.finished for r, _ in parts)
    trace = traces[0]
    for more in traces[1:]:
        trace = Trace.concat(trace, more)
    trace.meta = {"domain": DOMAIN, "mode": "synthesis", "text": text, "shown_from": 0, "finished": finished,
                  "lines": len(parts)}
    return HandwritingResult(strokes, strokes_to_offsets(strokes), text, notes, finished, np.concatenate(phis), text, 0), trace


@torch.no_grad()
def finished_fraction(model, codec, card, phrases: list[str], bias: float = 0.5, seed: int = 0) -> float:
    done = 0
    for k, phrase in enumerate(phrases):
        result, _ = generate(model, codec, card, HandwritingSettings(text=phrase, bias=bias, seed=seed + k))
        done += result.finished
    return done / max(len(phrases), 1)


# ---------------------------------------------------------------- render
QUANTITY_RANGES = {"i": (0, 1), "f": (0, 1), "o": (0, 1), "g": (-1, 1), "h": (-1, 1), "tanh_c": (-1, 1)}


def unit_colors(result: HandwritingResult, trace: Trace, layer: int, quantity: str, unit: int) -> list[list[str]]:
    """Per stroke, per segment: the colour of one unit's value at the point that ends the segment."""
    from studio.viz import activation_colors

    values = trace.quantity(layer, quantity)[trace.meta.get("shown_from", 0) :, unit]
    vmin, vmax = QUANTITY_RANGES.get(quantity, (-(float(np.abs(values).max()) or 1.0), float(np.abs(values).max()) or 1.0))
    # opaque: a value near the middle gives grey ink, not invisible ink, so the writing stays legible
    colours = [_over_grey(colour) for colour in activation_colors(values, vmin, vmax)]
    out, k = [], 0
    for s in result.strokes:
        out.append([colours[min(k + j + 1, len(colours) - 1)] for j in range(max(len(s) - 1, 1))])
        k += len(s)
    return out


def _over_grey(colour: str, grey: int = 150) -> str:
    """An rgba() colour laid over grey ink, as an opaque rgb()."""
    r, g, b, a = _css_to_rgba(colour)
    return "rgb({}, {}, {})".format(*(round(255 * a * v + (1 - a) * grey) for v in (r, g, b)))


def attention_figure(result: HandwritingResult):
    """Characters x pen steps: where the soft window looked while writing (Graves fig. 13)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.2), dpi=80)
    ax = fig.add_subplot(1, 1, 1)
    if result.phi is None or not len(result.phi):
        ax.text(0.5, 0.5, "No attention window: free scribble has no text.", ha="center", va="center")
        ax.axis("off")
        return fig
    image = ax.imshow(result.phi.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label="window weight φ")
    ax.set_yticks(range(len(result.chars)))
    ax.set_yticklabels([c if c != " " else "␣" for c in result.chars], fontsize=7)
    if result.primer_points:
        ax.axvline(result.primer_points - 0.5, color="tab:red", lw=1)
    ax.set_xlabel("pen step")
    ax.set_ylabel("character")
    ax.set_title("Attention window: which character the network was writing at each pen step", loc="left", fontsize=10)
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.17, top=0.88)
    return fig


def strokes_figure(result: HandwritingResult, trace: Trace | None = None, layer: int = 0, quantity: str = "tanh_c",
                   unit: int = 0):
    colors = unit_colors(result, trace, layer, quantity, unit) if trace is not None else None
    title = f"layer {layer}, unit {unit}: {quantity}" if trace is not None else ""
    return render_figure(result.strokes, colors, title)


def animated_svg(result: HandwritingResult, colors=None, seconds: float | None = None) -> str:
    """The pen drawing the handwriting, in the page (SMIL animation; replays on each render)."""
    seconds = seconds or float(np.clip(len(result.offsets) / 120, 1.5, 8))
    return strokes_to_svg(result.strokes, colors, width_px=900, animate_seconds=seconds)
