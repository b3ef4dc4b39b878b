"""Handwriting training: the task for studio.train.train (both models: batches of phrases of
similar length, little padding, -log p per real pen point; validation on the held-out phrases), real
people's print letters composed into training lines, a warm start onto a wider alphabet, and a
user's stroke files with transcripts (or drawings from the pad) as a training set (TRAINING).

Real people's print letters (Omniglot, Lake et al. 2015, MIT) composed into words and lines,
in the Hershey training data's units, so one synthesis model learns both the Hershey cursive and
these print hands.

The file (`../shared/data/omniglot-latin.json`, never copied into the repository) holds
`drawings[drawer][letter]`: a list of strokes of [x, y, t] points (105 x 105 canvas, y down, t in
ms). Drawer numbers order the drawings of each letter; one number is taken as one "hand": a word
uses the letters of one drawer number only. Each letter is scaled into the line by its kind
(x-height letters fill the x-height, ascenders and descenders reach above or below), placed with
a hand's own letter gap, word space, size and slant, a little baseline jitter per letter, and
resampled along the pen path at the Hershey data's point spacing. Units are Hershey font units:
the baseline at y = 9, the x-height top at y = 0 (the cursive's own geometry).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio import limits
from studio.domains.base import Training, describe
from studio.domains.handwriting.codec import (
    DEFAULT_CHARS,
    TRAINING_STATS,
    HandwritingAlphabet,
    HandwritingCodec,
    normalize_primer,
    strokes_to_offsets,
)
from studio.domains.handwriting.data import (
    DataConfig,
    StrokeFileError,
    _resample,
    cut_phrases,
    load_stroke_file,
    pad_strokes,
    phrases_from_text,
    render_phrase,
)
from studio.domains.handwriting.evaluate import batch_nll, make_batch, nll_per_point


class StrokeTask:
    """A TrainTask. A codec with an alphabet trains a synthesis model (the batches carry the
    phrases' characters); without one, a prediction model (points only). `styles` / `val_styles`:
    each phrase's style index (model.STYLE_NAMES), read by a synthesis model with styles."""

    def __init__(self, texts, offsets, val_texts, val_offsets, codec: HandwritingCodec, batch_size: int = 32,
                 seed: int = 0, max_points: int = 600, styles=None, val_styles=None):
        self.texts, self.offsets = texts, offsets
        self.val_texts, self.val_offsets = val_texts, val_offsets
        self.styles, self.val_styles = styles, val_styles
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
        styles = None if self.styles is None else [self.styles[i] for i in pick]
        return make_batch([self.offsets[i] for i in pick], texts, self.codec.alphabet, self.codec.offset_scale,
                          self.max_points, styles).to(device)

    def loss(self, model, batch):
        total, count = batch_nll(model, batch)
        return total / count

    def evaluate(self, model) -> float:
        return nll_per_point(model, self.val_texts, self.val_offsets, self.codec, self.max_points,
                             styles=self.val_styles)


def style_labels(summary: dict, train: int, held_out: int) -> tuple[list[int], list[int]]:
    """(train styles, held-out styles) of a mixed set built by build_mixed_dataset: its training lines
    are the Hershey cursive ones (style 0) then the print ones (1); its held-out set is
    `config.held_out` cursive phrases then print lines."""
    cursive, held_cursive = int(summary["hershey_samples"]), int(summary["config"]["held_out"])
    return ([0] * cursive + [1] * (train - cursive), [0] * held_cursive + [1] * (held_out - held_cursive))


# ---------------------------------------------------------------- real print letters (Omniglot)
OMNIGLOT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "omniglot-latin.json"
PRINT_PROVENANCE = {
    "source": "Omniglot (brendenlake/omniglot, strokes_background_small1.zip, alphabet Latin): real people's pen "
              "strokes of a-z drawn with a mouse, 15 drawings per letter, composed into words and lines of Tiny "
              "Shakespeare phrases (studio/domains/handwriting/train.py)",
    "licence": "MIT, (c) 2015 Brenden Lake",
}
HELD_DRAWERS = ("13", "14", "15")  # never trained on: the priming benchmark writes with these hands
EXTRA_CHARS = "QXZ0123456789"  # beyond DEFAULT_CHARS: the Hershey fonts draw them, Shakespeare rarely has them
BASELINE, X_TOP = 9.0, 0.0  # Hershey units
ASCENDER, DESCENDER = 8.5, 8.0  # print ascenders / descenders beyond the x-height band
# (top, bottom) of each letter's ink, in Hershey units
LETTER_BOX = {**{c: (X_TOP, BASELINE) for c in "acemnorsuvwxz"},
              **{c: (X_TOP - ASCENDER, BASELINE) for c in "bdhkl"},
              **{c: (X_TOP, BASELINE + DESCENDER) for c in "gpqy"},
              "f": (X_TOP - ASCENDER, BASELINE), "t": (X_TOP - 5.0, BASELINE), "i": (X_TOP - 4.0, BASELINE),
              "j": (X_TOP - 4.0, BASELINE + DESCENDER)}


def load_omniglot(path=OMNIGLOT) -> dict[str, dict[str, list[np.ndarray]]]:
    """{drawer: {letter: [stroke (N, 2) float64, ...]}}; the timings are dropped (the strokes are
    resampled along the pen path, as the Hershey data is)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["drawings"]
    return {drawer: {letter: [np.asarray(s, np.float64)[:, :2] for s in strokes if len(s)]
                     for letter, strokes in letters.items()} for drawer, letters in data.items()}


@dataclass
class Hand:
    """One drawer number's way of composing letters (drawn once per line)."""

    size: float  # x-height scale
    gap: float  # between letters, Hershey units
    space: float  # between words
    slant: float  # shear of the whole line (x += slant * (baseline - y))
    spacing: float  # pen-point spacing along the path
    jitter: float  # baseline jitter per letter


def random_hand(rng) -> Hand:
    return Hand(size=rng.uniform(0.85, 1.2), gap=rng.uniform(1.0, 4.0), space=rng.uniform(7.0, 12.0),
                slant=rng.uniform(-0.12, 0.12), spacing=rng.uniform(4.5, 6.0), jitter=rng.uniform(0.2, 0.8))


def compose_line(letters: dict[str, list[np.ndarray]], text: str, rng, hand: Hand | None = None) -> list[np.ndarray]:
    """The strokes of `text` (lower-case a-z and spaces) written with one drawer's letters."""
    hand = hand or random_hand(rng)
    out, cursor = [], 0.0
    for word in text.split():
        for ch in word:
            strokes = letters[ch]
            points = np.vstack(strokes)
            (x0, y0), (x1, y1) = points.min(0), points.max(0)
            top, bottom = LETTER_BOX[ch]
            scale = hand.size * (bottom - top) / max(y1 - y0, 1e-6) * rng.uniform(0.95, 1.05)
            scale = min(scale, hand.size * 26.0 / max(x1 - x0, 1e-6))  # a flat stroke (a dash-like 'n') stays narrow
            shift = np.array([cursor - x0 * scale, BASELINE - hand.size * (BASELINE - bottom) - y1 * scale
                              + rng.normal(0, hand.jitter)])
            for stroke in strokes:
                placed = stroke * scale + shift
                out.append(_resample(placed, hand.spacing, rng))
            cursor += (x1 - x0) * scale + hand.gap * hand.size
        cursor += hand.space * hand.size - hand.gap * hand.size
    pts = np.vstack(out)
    pts[:, 0] += hand.slant * (BASELINE - pts[:, 1])
    return [p.astype(np.float32) for p in np.split(pts, np.cumsum([len(p) for p in out])[:-1])]


def print_phrases(corpus: str, min_chars: int = 6, max_chars: int = 28, seed: int = 0) -> list[str]:
    """Distinct lower-case phrases of a-z words (Omniglot has only these letters)."""
    words = re.sub(r"[^a-z]+", " ", corpus.lower()).split()
    return cut_phrases(words, min_chars, max_chars, max_words=4, seed=seed)


def extra_phrase(rng, phrase: str) -> str:
    """A Hershey phrase with a number or a word of a rare capital (Q, X, Z) put in."""
    words = phrase.split()
    pick = rng.random()
    if pick < 0.5:
        word = str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))
    else:
        word = str(rng.choice(["Queen", "Quick", "Quiet", "Zeal", "Zounds", "Zebra", "Xerxes", "X", "Q", "Z",
                               "QUIT", "ZONE", "XI"]))
    words.insert(int(rng.integers(0, len(words) + 1)), word)
    return " ".join(words)[:28].strip()


def build_print_set(corpus: str, omniglot, samples: int, drawers, seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """(texts, offsets): `samples` lines written by the given drawer numbers' hands."""
    rng = np.random.default_rng(seed)
    phrases = print_phrases(corpus, seed=seed)
    drawers = list(drawers)
    texts, offsets = [], []
    for k in range(samples):
        text = phrases[int(rng.integers(len(phrases)))]
        drawer = drawers[k % len(drawers)]
        texts.append(text)
        offsets.append(strokes_to_offsets(compose_line(omniglot[drawer], text, rng)))
    return texts, offsets


def build_mixed_dataset(corpus: str, out_dir, omniglot_path=OMNIGLOT, hershey: int = 6000, printed: int = 6000,
                        held_out: int = 50, held_drawers=HELD_DRAWERS, seed: int = 0) -> dict:
    """train.npz / held_out.npz / summary.json in OUT_DIR: Hershey cursive lines (a tenth with a
    number or a Q, X, Z word) and Omniglot print lines of every drawer number but `held_drawers`.
    The held-out set (validation) is `held_out` unseen phrases of each kind, by training hands."""
    alphabet = HandwritingAlphabet(HandwritingAlphabet().chars + EXTRA_CHARS)
    rng = np.random.default_rng(seed)
    omniglot = load_omniglot(omniglot_path)
    hands = sorted(d for d in omniglot if d not in set(held_drawers))
    cursive = phrases_from_text(corpus, alphabet, 6, 28, seed)
    order = rng.permutation(len(cursive))
    held_cursive = [cursive[i] for i in order[:held_out]]
    train_cursive = [cursive[i] for i in order[held_out:]]
    config = DataConfig(samples=hershey, held_out=held_out, seed=seed)
    texts, offsets = [], []
    for k in range(hershey):
        phrase = train_cursive[k % len(train_cursive)]
        phrase = extra_phrase(rng, phrase) if rng.random() < 0.1 else phrase
        texts.append(phrase)
        offsets.append(strokes_to_offsets(render_phrase(phrase, rng, config)))
    print_texts, print_offsets = build_print_set(corpus, omniglot, printed + held_out, hands, seed + 1)
    held_print = set(print_texts[printed:])
    keep = [k for k in range(printed) if print_texts[k] not in held_print]
    texts += [print_texts[k] for k in keep]
    offsets += [print_offsets[k] for k in keep]
    val_texts = held_cursive + print_texts[printed:]
    val_offsets = [strokes_to_offsets(render_phrase(p, rng, config)) for p in held_cursive] + print_offsets[printed:]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, tt, oo in (("train", texts, offsets), ("held_out", val_texts, val_offsets)):
        np.savez(out_dir / f"{name}.npz", offsets=np.concatenate(oo), lengths=np.array([len(o) for o in oo], np.int64),
                 texts=np.array(tt, dtype=np.str_))
    flat = np.concatenate(offsets)
    summary = {"samples": len(texts), "hershey_samples": hershey, "print_samples": len(keep), "held_out": val_texts,
               "held_drawers": list(held_drawers), "train_drawers": hands, "offset_scale": float(np.std(flat[:, :2])),
               "mean_points": float(np.mean([len(o) for o in offsets])), "chars": alphabet.chars,
               "config": {"hershey": hershey, "printed": printed, "held_out": held_out, "seed": seed}}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def warm_start(model, stem, chars: str) -> list[str]:
    """Load a trained synthesis model's weights into `model`, whose alphabet may be wider: each
    character's input columns (attention layer and first core layer) are copied by character, a
    new character's start at zero. Returns the new characters."""
    import torch

    from studio import checkpoint

    tensors, card = checkpoint.load(stem, domain="handwriting")
    old = card["codec"]["chars"]
    new = model.config.vocab_size
    state = model.state_dict()
    for name, value in tensors.items():
        if name in ("attention.layers.0.weight_ih_l0", "core.layers.0.weight_ih_l0"):
            target = torch.zeros_like(state[name])
            target[:, :3] = value[:, :3]  # the pen point
            for k, ch in enumerate(chars):
                if ch in old:
                    target[:, 3 + k] = value[:, 3 + old.index(ch)]
            rest = value.shape[1] - 3 - len(old)  # h1 of the attention layer (core only), then any old styles
            target[:, 3 + new : 3 + new + rest] = value[:, 3 + len(old) :]  # new style columns start at zero
            value = target
        state[name] = value
    model.load_state_dict(state)
    return [c for c in chars if c not in old]


# ---------------------------------------------------------------- a user's stroke files (python -m studio train
# handwriting --data, the Train tab)
STROKE_SUFFIXES = (".json", ".xml", ".ndjson", ".npz")  # what load_stroke_file reads
TRANSCRIPT_SUFFIX = ".txt"  # a transcript beside a stroke file of the same name (a.ndjson + a.txt)


@dataclass
class StrokeSample:
    name: str  # the file it came from, as the user named it
    strokes: list  # [(N, 2) float32] in the file's own units
    text: str  # what it says


def _stroke_files(paths, scratch: Path):
    """(file, name to show) of every stroke file given, in every folder and in every .zip."""
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in STROKE_SUFFIXES
                            and not limits.hidden(str(p.relative_to(path))))
            if not inside:
                raise StrokeFileError(f"the folder {path.name} holds no stroke files ({', '.join(STROKE_SUFFIXES)}).")
            yield from ((p, p.name) for p in inside)
        elif path.suffix.lower() == ".zip":
            scratch.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="zip-", dir=scratch))  # a folder each: names never collide
            found = limits.extract_zip(path, folder,
                                       lambda name: Path(name).suffix.lower() in (*STROKE_SUFFIXES, TRANSCRIPT_SUFFIX),
                                       None, "stroke files", StrokeFileError)
            yield from ((p, p.name) for p in sorted(found) if p.suffix.lower() in STROKE_SUFFIXES)
        elif path.suffix.lower() in STROKE_SUFFIXES:
            yield path, path.name
        elif path.suffix.lower() != TRANSCRIPT_SUFFIX:  # a transcript is read beside its stroke file
            raise StrokeFileError(f"{path.name}: not a stroke file; use .json, .xml (IAM-OnDB), .ndjson (QuickDraw), "
                                  ".npz (sketch-rnn), with a name.txt transcript beside any without one, or a .zip of them")


def read_samples(paths, scratch) -> tuple[list[StrokeSample], list[str]]:
    """(samples, notes): every stroke file among `paths` (files; folders and .zip files of them) with
    its transcript: the file's own (JSON "text", IAM <TextLine>, ndjson "text", .npz text), else the
    `name.txt` beside it. A file without either, or unreadable, is skipped with a note;
    StrokeFileError with a sentence when none is left."""
    samples, notes, untranscribed = [], [], 0
    for path, name in _stroke_files(paths, Path(scratch)):
        try:
            strokes, text = load_stroke_file(path)
        except StrokeFileError as error:
            notes.append(f"skipped {str(error).replace(path.name, name)}")
            continue
        beside = path.with_suffix(TRANSCRIPT_SUFFIX)
        if not text.strip() and beside.is_file():
            text = beside.read_text(encoding="utf-8", errors="replace")
        text = " ".join(text.split())
        if not text:
            untranscribed += 1
            continue
        samples.append(StrokeSample(name, strokes, text))
    if untranscribed:
        notes.append(f"skipped {untranscribed} stroke file(s) without a transcript (put the text in the file, or in a "
                     f"name{TRANSCRIPT_SUFFIX} beside it)")
    if not samples:
        raise StrokeFileError("None of the stroke files has a transcript a model can learn from: a synthesis model learns "
                              "to write a text, so give each file its text (JSON {\"strokes\", \"text\"}, or name.txt "
                              "beside it)." if untranscribed else (notes[0] if notes else "No stroke files were given."))
    return samples, notes


def pad_file(value, folder) -> Path:
    """A drawing pad's value ({"strokes", "text"}) as a JSON stroke file in `folder` (its text
    required: a synthesis model learns to write it); StrokeFileError with a sentence otherwise."""
    strokes, text = pad_strokes(value)
    if not text.strip():
        raise StrokeFileError("Type what you wrote on the pad in the box under it: the model learns to write that text.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"drawing-{len(list(folder.glob('drawing-*.json'))) + 1:03d}.json"
    target.write_text(json.dumps({"strokes": [s.round(2).tolist() for s in strokes], "text": text.strip()}), encoding="utf-8")
    return target

MIN_SAMPLES = 4  # written lines with transcripts: fewer cannot both train and validate
KEEP_SLANT = {**TRAINING_STATS, "slant_range": (-1.0, 1.0)}  # a user's lines keep their own slant


def user_set(samples, alphabet: HandwritingAlphabet) -> tuple[list[str], list[np.ndarray], list[str]]:
    """(texts, offsets, notes) of a user's samples (read_samples): each brought to the training
    data's letter height, baseline and point spacing (as a style sample is), its text in the alphabet."""
    texts, offsets, notes = [], [], []
    for sample in samples:
        text, dropped = alphabet.clean(sample.text, None)
        notes += [f"{sample.name}: {note}" for note in dropped]
        if not text.strip():
            notes.append(f"{sample.name}: skipped, its transcript has no character the model can write")
            continue
        strokes, _ = normalize_primer(sample.strokes, text, KEEP_SLANT)
        texts.append(text)
        offsets.append(strokes_to_offsets(strokes))
    if len(texts) < MIN_SAMPLES:
        raise ValueError(f"{len(texts)} written line(s) with a transcript were read; give at least {MIN_SAMPLES} "
                         "(a few are kept aside to validate).")
    return texts, offsets, notes


def held_out_split(texts, offsets, seed: int = 0):
    """(train texts, train offsets, held-out texts, held-out offsets): a tenth (at least one) validates."""
    order = np.random.default_rng(seed).permutation(len(texts))
    held = max(1, len(texts) // 10)
    pick = lambda idx: ([texts[k] for k in idx], [offsets[k] for k in idx])  # noqa: E731
    return (*pick(order[held:]), *pick(order[:held]))


def alphabet_for(texts, chars: str = DEFAULT_CHARS) -> HandwritingAlphabet:
    """`chars` and every printable character the transcripts add (a new one starts untrained)."""
    extra = sorted({c for t in texts for c in t if c.isprintable() and not c.isspace() and c not in chars})
    return HandwritingAlphabet(chars + "".join(extra))


def prepare_strokes(paths: list[Path], folder: Path) -> tuple[list[Path], list[dict]]:
    """The Train tab's data: every stroke file read with its transcript (checked now, so a bad upload
    is told at once), written as JSON {"strokes", "text"} files in one folder the trainer reads."""
    samples, _ = read_samples(paths, folder / "unpacked")
    if len(samples) < MIN_SAMPLES:
        raise ValueError(f"{len(samples)} stroke file(s) with a transcript were read; give at least {MIN_SAMPLES} "
                         "(a few are kept aside to validate).")
    out = folder / "strokes"
    out.mkdir(parents=True, exist_ok=True)
    for k, sample in enumerate(samples):
        record = {"strokes": [np.asarray(s).round(3).tolist() for s in sample.strokes], "text": sample.text}
        (out / f"{k:04d}-{Path(sample.name).stem[:40]}.json").write_text(json.dumps(record), encoding="utf-8")
    return [out], [describe(path) for path in paths]


TRAINING = Training(
    suffixes=frozenset((*STROKE_SUFFIXES, TRANSCRIPT_SUFFIX)), what="stroke files with transcripts", prepare=prepare_strokes,
    shape_flags=lambda shape: ["--hidden-size", str(shape[0]), "--layers", str(shape[1])],
    hint="Your data: stroke files (.json {strokes, text}, IAM .xml, QuickDraw .ndjson, sketch-rnn .npz; a name.txt "
         "transcript beside any without one), or a zip of them; or drawings from the pad below",
    drawn=pad_file)
