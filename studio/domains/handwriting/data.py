"""Handwriting data: stroke-file importers, the synthetic (Hershey font) training corpus, the
contract's `read_input`, and the per-point feature tracks the probes compare units against.

Importers (all return strokes, or raise `StrokeFileError` whose message a user can read):
IAM-OnDB stroke XML (`<StrokeSet><Stroke><Point x= y=/>`), QuickDraw ndjson (`drawing`:
[[xs], [ys], ...] per stroke; the first drawing of the file), sketch-rnn `.npz` stroke-3
(first sequence of `train`/`valid`/`test`; loaded with allow_pickle=False), and plain JSON:
a list of strokes, each a list of [x, y] (or [x, y, t], the drawing pad's) points, or
{"strokes": [...], "text": "..."}. Every format may carry its transcript (`load_stroke_file`
reads it): IAM's `<Transcription><TextLine text=...>`, a "text" field of the ndjson record or the
JSON object, a `text` string array in the .npz; a caller's own transcript (the tab's style text
box, `--style-text`) overrides it.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from studio import limits
from studio.domains.handwriting.codec import Handwriting, HandwritingAlphabet, offsets_to_strokes, strokes_to_offsets

MAX_STROKE_FILE_BYTES = 20_000_000
PROVENANCE = {
    "source": "SYNTHETIC handwriting: phrases cut from Tiny Shakespeare, drawn as pen trajectories from the Hershey "
              "cursive fonts 'scripts' and 'scriptc' (pip hershey-fonts) with random slant, scale, baseline drift, "
              "rotation, jitter and pen speed. The model learned this synthetic handwriting, not real people's.",
    "licence": "Hershey fonts: free use (hershey-fonts package, MIT); Shakespeare's text is in the public domain",
}


class StrokeFileError(ValueError):
    """A stroke file could not be read; the message says which file and why, in plain words."""


# ---------------------------------------------------------------- importers
def _fail(path, why: str):
    raise StrokeFileError(f"{Path(path).name}: {why}")


def _check_strokes(strokes, path) -> list[np.ndarray]:
    out, points = [], 0
    for s in strokes:
        arr = np.asarray(s, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 3:  # [x, y, t]: the time is not used
            arr = arr[:, :2]
        if arr.ndim != 2 or arr.shape[1] != 2:
            _fail(path, "each stroke must be a list of [x, y] points")
        if not np.isfinite(arr).all():
            _fail(path, "contains coordinates that are not finite numbers")
        limits.check_coordinates(Path(path).name, arr)  # huge ones overflow the model (inf/nan probabilities)
        if (points := points + len(arr)) > limits.MAX_FILE_POINTS:
            _fail(path, f"has more than {limits.MAX_FILE_POINTS:,} pen points")
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


def iam_transcript(path) -> str:
    """The text lines of an IAM-OnDB file's <Transcription> (<TextLine text=...>), joined by spaces."""
    try:
        root = ET.fromstring(Path(path).read_bytes())
    except ET.ParseError:
        return ""
    lines = [line.attrib.get("text", "") for line in root.iter("TextLine")]
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


def _record_text(path, suffix: str) -> str:
    """The "text" of an ndjson file's first record, or a .npz's `text` string array ("" if none)."""
    try:
        if suffix == ".ndjson":
            for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip():
                    text = json.loads(line).get("text", "")
                    return text if isinstance(text, str) else ""
        with np.load(path, allow_pickle=False) as data:
            if "text" in data.files and data["text"].dtype.kind == "U":
                return " ".join(str(t) for t in np.ravel(data["text"])[:1])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, AttributeError, RecursionError):
        pass
    return ""


def load_quickdraw_ndjson(path) -> list[np.ndarray]:
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            limits.check_json_text(Path(path).name, line.encode("utf-8", errors="replace"))
            record = json.loads(line)
            drawing = record["drawing"]
            strokes = [np.stack([np.asarray(s[0], float), np.asarray(s[1], float)], axis=1) for s in drawing]
        except limits.LimitError:
            raise
        except (json.JSONDecodeError, KeyError, TypeError, IndexError, ValueError, RecursionError):
            _fail(path, "is not QuickDraw ndjson (each line a JSON object with \"drawing\": [[xs], [ys]] per stroke)")
        return _check_strokes(strokes, path)
    _fail(path, "is empty")


def load_sketch_rnn_npz(path) -> list[np.ndarray]:
    if Path(path).read_bytes()[:2] != b"PK":  # np.load would try to unpickle anything that is not a zip
        _fail(path, "is not a readable .npz (not a zip archive of arrays)")
    shapes = limits.npz_headers(path)  # unpacked size and array shapes checked before any array is read
    for key in set(shapes) & {"train", "valid", "test"}:
        limits.check_array_shape(Path(path).name, shapes[key][0])
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
        if isinstance(error, StrokeFileError | limits.LimitError):
            raise
        if "allow_pickle" in str(error) or "pickle" in str(error).lower():
            _fail(path, "stores Python objects (pickled ragged arrays); for safety only plain numeric arrays are read. "
                        "Re-save one drawing as a (T, 3) float array, e.g. np.savez(f, train=np.asarray(seq, float)[None])")
        _fail(path, f"is not a readable .npz ({error})")
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as error:  # a truncated or forged archive
        _fail(path, f"is not a readable .npz ({error})")
    if seq.ndim != 2 or seq.shape[1] != 3:
        _fail(path, f"holds shape {seq.shape}, not stroke-3 (T, 3) rows of (dx, dy, pen_lift)")
    return _check_strokes(offsets_to_strokes(seq), path)


def load_json_strokes(path) -> tuple[list[np.ndarray], str]:
    data = limits.load_json(path)  # size and nesting checked before parsing
    text = ""
    if isinstance(data, dict):
        text = str(data.get("text", ""))
        data = data.get("strokes")
    if not isinstance(data, list):
        _fail(path, "must be a list of strokes, each a list of [x, y] points (or {\"strokes\": ..., \"text\": ...})")
    try:
        return _check_strokes(data, path), text
    except (TypeError, ValueError) as error:
        if isinstance(error, StrokeFileError | limits.LimitError):
            raise
        _fail(path, "must be a list of strokes, each a list of [x, y] numeric points")


def pad_strokes(value) -> tuple[list[np.ndarray], str]:
    """(strokes, text) of a drawing pad's value {"strokes": [[[x, y, t], ...], ...], "text": ...}."""
    if not isinstance(value, dict) or not isinstance(value.get("strokes"), list) or not value["strokes"]:
        raise StrokeFileError("The drawing pad is empty: write a word on it first (and type it in the box below it).")
    text = value.get("text")
    try:
        return _check_strokes(value["strokes"], "the drawing pad"), text if isinstance(text, str) else ""
    except (TypeError, ValueError) as error:
        if isinstance(error, StrokeFileError | limits.LimitError):
            raise StrokeFileError(str(error)) from None
        raise StrokeFileError("The drawing pad sent strokes that are not lists of [x, y, t] numbers.") from None


def load_stroke_file(path) -> tuple[list[np.ndarray], str]:
    """(strokes, transcript or "") from any supported file, chosen by extension then content."""
    path = Path(path)
    if not path.exists():
        raise StrokeFileError(f"{path.name}: no such file")
    if path.stat().st_size > MAX_STROKE_FILE_BYTES:
        _fail(path, f"is larger than {MAX_STROKE_FILE_BYTES // 1_000_000} MB")
    name = path.name.lower()
    try:
        if name.endswith(".npz"):
            return load_sketch_rnn_npz(path), _record_text(path, ".npz")
        if name.endswith(".xml"):
            return load_iam_xml(path), iam_transcript(path)
        if name.endswith(".ndjson"):
            return load_quickdraw_ndjson(path), _record_text(path, ".ndjson")
        if name.endswith(".json"):
            return load_json_strokes(path)
    except limits.LimitError as error:  # over a cap (studio/limits.py): the same kind of error as the rest
        raise StrokeFileError(str(error)) from None
    _fail(path, "has an unknown extension: use .xml (IAM-OnDB), .ndjson (QuickDraw), .npz (sketch-rnn) or .json")


def read_input(path, loaded=None, text: str = "") -> Handwriting:
    """The contract's reader: a stroke file and its transcript (`text`, when given, overrides the
    file's). A synthesis model reads the transcript through its window, so a sample without one is
    refused for it."""
    strokes, transcript = load_stroke_file(path)
    text = text.strip() or transcript
    if loaded is not None and loaded.codec.alphabet is not None and not text.strip():
        _fail(path, "has no transcript, and this synthesis model reads the text being written: put it in the file "
                    "(JSON \"text\", IAM <TextLine text=...>, ndjson \"text\", .npz text) or give it with the sample")
    return Handwriting(strokes, text)


# ---------------------------------------------------------------- features
def features(sequence: Handwriting, scored=None) -> dict[str, np.ndarray]:
    """Per pen point of `score`'s trace: "pen up" (1 on a stroke's last point), "pen speed" (the
    length of the move to this point, data units), "pen-up travel" (1 where that move was made with
    the pen lifted) and, with `scored` from a synthesis model, "character under the window" (the
    index of the window's peak)."""
    offsets = sequence.offsets()
    travel = np.zeros(len(offsets), np.float32)
    travel[1:] = offsets[:-1, 2]
    tracks = {"pen up": offsets[:, 2].astype(np.float32), "pen speed": np.hypot(offsets[:, 0], offsets[:, 1]).astype(np.float32),
              "pen-up travel": travel}
    if scored is not None and "phi" in scored.distributions:
        tracks["character under the window"] = scored.distributions["phi"].argmax(-1).astype(np.float32)
    return tracks


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
        from HersheyFonts import HersheyFonts  # only the corpus builder needs the fonts

        font = HersheyFonts()
        font.load_default_font(name)
        _FONTS[name] = font
    return _FONTS[name]


def phrases_from_text(corpus: str, alphabet: HandwritingAlphabet, min_chars: int, max_chars: int, seed: int = 0) -> list[str]:
    """Distinct phrases of whole words cut from a corpus, only characters the alphabet knows."""
    words = [w for w in re.split(r"\s+", corpus) if w and all(c in alphabet.index for c in w)]
    return cut_phrases(words, min_chars, max_chars, max_words=5, seed=seed)


def cut_phrases(words: list[str], min_chars: int, max_chars: int, max_words: int, seed: int = 0) -> list[str]:
    """Distinct phrases of 1..max_words consecutive words, kept when their length is in range."""
    rng = np.random.default_rng(seed)
    phrases, seen, k = [], set(), 0
    while k < len(words):
        n = int(rng.integers(1, max_words + 1))
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


def build_dataset(corpus: str, out_dir, config: DataConfig | None = None, alphabet: HandwritingAlphabet | None = None) -> dict:
    """Render the training set into OUT_DIR/train.npz + held_out.npz + summary.json. Returns the summary."""
    config = config or DataConfig()
    alphabet = alphabet or HandwritingAlphabet()
    rng = np.random.default_rng(config.seed)
    phrases = phrases_from_text(corpus, alphabet, config.min_chars, config.max_chars, config.seed)
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
               "offset_scale": scale, "mean_points": float(np.mean(lengths)), "chars": alphabet.chars,
               "config": asdict(config)}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def load_dataset(path) -> tuple[list[str], list[np.ndarray]]:
    """(texts, offsets per phrase) of a train.npz or held_out.npz written by build_dataset."""
    with np.load(path, allow_pickle=False) as data:
        offsets, lengths, texts = data["offsets"], data["lengths"], [str(t) for t in data["texts"]]
    return texts, np.split(offsets, np.cumsum(lengths)[:-1])
