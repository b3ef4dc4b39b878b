"""Text data: reading a corpus or an input file, the train/validation split, and the per-character
feature tracks the probes compare units against."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

MAX_INPUT_BYTES = 20_000_000  # an input file larger than this is refused before reading

SHAKESPEARE = {
    "source": "Tiny Shakespeare (karpathy/char-rnn data/tinyshakespeare/input.txt), 1,115,394 characters",
    "licence": "Shakespeare's text is in the public domain",
}


def read_text(path) -> str:
    """A UTF-8 text file (undecodable bytes replaced); ValueError with a sentence otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise ValueError(f"{path.name} is larger than {MAX_INPUT_BYTES // 1_000_000} MB")
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def read_input(path, loaded=None) -> str:
    """The contract's reader: a text file is the sequence itself."""
    return read_text(path)


def split_train_val(text: str, train_fraction: float = 0.9) -> tuple[str, str]:
    """nanoGPT's shakespeare_char split: the first 90% trains, the rest validates."""
    cut = int(len(text) * train_fraction)
    return text[:cut], text[cut:]


def provenance(path, corpus: str, source: str | None = None, licence: str | None = None) -> dict:
    """The card's data section: Tiny Shakespeare is recognised; any other file is described by the
    given source and licence (or says they were not given)."""
    name = Path(path).name
    known = SHAKESPEARE if name == "tinyshakespeare.txt" else {}
    return {
        "file": name,
        "characters": len(corpus),
        "source": source or known.get("source", f"{name} (no --source given)"),
        "licence": licence or known.get("licence", "unknown (no --licence given)"),
        "split": "first 90% of characters train, last 10% validate (as nanoGPT's shakespeare_char)",
    }


def _inside(codes: np.ndarray, opening: str, closing: str) -> np.ndarray:
    """1 where a character lies between an opening mark and its closing one (the marks included), from
    the text's code points. Quotes (the same mark both ways) alternate: inside after an odd count of
    them. Brackets nest: the depth is a walk of +1 / -1 held at 0 (a stray closing mark closes
    nothing), which is its running sum minus that sum's lowest point so far (Lindley's recursion)."""
    opens = codes == ord(opening)
    if opening == closing:
        before = np.cumsum(opens) - opens  # marks strictly before each character
        return ((before % 2 == 1) | opens).astype(np.float32)
    walk = np.cumsum(opens.astype(np.int64) - (codes == ord(closing)))
    depth = walk - np.minimum(np.minimum.accumulate(walk), 0)
    depth_before = np.concatenate([[0], depth[:-1]])
    return ((depth_before > 0) | opens).astype(np.float32)


def regex_track(text: str, pattern: str) -> np.ndarray:
    """1 on every character inside a match of `pattern` (the probe's user-typed features)."""
    track = np.zeros(len(text), dtype=np.float32)
    for match in re.finditer(pattern, text):
        track[match.start() : match.end()] = 1
    return track


def features(text: str, scored=None) -> dict[str, np.ndarray]:
    """Per character: on/off tracks and the position in the line (Karpathy's cells track these). In
    numpy over code points, each distinct character classified once: 100,000 characters take ~10 ms
    (the probe computes them for its whole reference)."""
    from studio.domains.text.codec import code_points

    codes = code_points(text)
    distinct, inverse = np.unique(codes, return_inverse=True)

    def per_character(test) -> np.ndarray:
        return np.array([test(chr(code)) for code in distinct], dtype=np.float32)[inverse.reshape(-1)]

    steps = np.arange(len(codes))
    newline_at_or_before = np.maximum.accumulate(np.where(codes == 10, steps, -1))
    last_newline_before = np.concatenate([[-1], newline_at_or_before[:-1]])[: len(codes)]
    return {
        "space": (codes == 32).astype(np.float32),
        "newline": (codes == 10).astype(np.float32),
        "uppercase": per_character(str.isupper),
        "vowel": per_character(lambda ch: ch.lower() in "aeiou"),
        "inside quotes": _inside(codes, '"', '"'),
        "inside parentheses": _inside(codes, "(", ")"),
        "position in line": (steps - last_newline_before - 1).astype(np.float32),
    }


def example() -> tuple[str, object]:
    """A short input for `score` and short settings for `generate` (tests, docs, benches)."""
    from studio.domains.text.generate import TextSettings

    return 'He said "to be (or not)" and left.\nNext line', TextSettings(prompt="The ", length=20)


def tiny(seed: int = 0):
    """(model, codec): a small random text model for tests (no training, no files)."""
    import torch

    from studio.domains.text.codec import TextCodec
    from studio.domains.text.model import TextModel, TextModelConfig

    torch.manual_seed(seed)
    codec = TextCodec.from_text("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"()-\n")
    return TextModel(TextModelConfig(codec.size, 8, 16, 2, 0.0)).eval(), codec
