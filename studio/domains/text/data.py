"""Text data: reading a corpus or an input file, the train/validation split, and the model's own
long reference (its validation text)."""

from __future__ import annotations

from pathlib import Path

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


def references(loaded) -> list:
    """The contract's long inputs of a model's own: its validation text (the last 10% of its corpus)
    when the corpus file is in the data folder (studio.checkpoint.DATA_DIR)."""
    from studio.checkpoint import DATA_DIR
    from studio.domains.base import Reference

    name = (loaded.card.get("data") or {}).get("file") if loaded is not None else None
    path = DATA_DIR / name if isinstance(name, str) and name else None
    if path is None or not path.is_file():
        return []
    return [Reference(f"the model's validation text ({name}, last 10%)", "validation",
                      lambda: split_train_val(read_text(path))[1])]


def sequence_from_text(text: str) -> str:
    """An API call's plain-text input is the sequence itself."""
    return text
