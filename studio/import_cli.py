"""The vocabulary of an opened model and the command that opens one:
python -m studio import DOMAIN FILE --format keras|torch (--vocab FILE | --vocab-text FILE) --out STEM.
The file itself is read by studio.importer; the domain builds its model with `from_network`."""

from __future__ import annotations

import json
from pathlib import Path

from studio.importer import FORMATS, ImportRefused, Network, first_line, read


# ---------------------------------------------------------------- vocabularies
def read_vocabulary(vocab=None, vocab_text=None, lower: bool = False, tokens: str = "chars") -> list[str]:
    """The tokens in index order. `vocab`: a JSON list of tokens (or, for words, one per line);
    `vocab_text`: the training text, from which the vocabulary is built as the source did:
    characters as the Keras tutorial's sorted(set(text)) (after lower-casing with `lower`), words in
    first-occurrence order with <eos> ending each line, as word_language_model's data.py."""
    if (vocab is None) == (vocab_text is None):
        raise ImportRefused("Give the vocabulary either as a token list (--vocab) or as the training text "
                            "(--vocab-text).")
    if tokens not in ("chars", "words"):
        raise ImportRefused(f"Tokens are chars or words, not {tokens!r}.")
    path = Path(vocab if vocab is not None else vocab_text)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ImportRefused(f"The vocabulary file {path.name} cannot be read as UTF-8 text "
                            f"({first_line(error)}).") from None
    if vocab is not None:
        try:
            listed = json.loads(text)
        except json.JSONDecodeError:
            if tokens == "chars":
                raise ImportRefused(f"{path.name} is not a JSON list of characters.") from None
            listed = [line for line in text.split("\n") if line]
        if isinstance(listed, dict):  # {token: index}, as char_to_idx dictionaries are saved
            listed = [token for token, _ in sorted(listed.items(), key=lambda item: item[1])]
        if not isinstance(listed, list) or not all(isinstance(t, str) and t for t in listed):
            raise ImportRefused(f"{path.name} is not a list of tokens (strings) in index order.")
        if len(set(listed)) != len(listed):
            raise ImportRefused(f"{path.name} lists a token twice.")
        if tokens == "chars" and any(len(t) != 1 for t in listed):
            raise ImportRefused(f"{path.name} has tokens longer than one character; give --tokens words for a word "
                                "vocabulary.")
        return listed
    if lower:
        text = text.lower()
    if tokens == "chars":
        return sorted(set(text))
    words: dict[str, None] = {}
    lines = text.split("\n")  # as `for line in file`: no line after a final newline
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        for word in line.split() + ["<eos>"]:
            words.setdefault(word, None)
    return list(words)


def check_vocabulary(network: Network, vocabulary: list[str]) -> None:
    size = len(vocabulary)
    if network.output_size != size:
        raise ImportRefused(f"The vocabulary has {size} tokens but the model's head predicts {network.output_size}; "
                            "give the vocabulary (or the training text) the model was trained with.")
    rows = network.embedding.shape[0] if network.embedding is not None else network.input_size
    if rows != size:
        what = "embedding table has" if network.embedding is not None else "one-hot input has"
        raise ImportRefused(f"The vocabulary has {size} tokens but the model's {what} {rows} rows.")


# ---------------------------------------------------------------- command line
def main(argv=None) -> int:
    """python -m studio import DOMAIN FILE --format keras|torch (--vocab FILE | --vocab-text FILE) --out STEM"""
    import argparse
    import sys

    from studio.domains import by_name, member

    parser = argparse.ArgumentParser(prog="python -m studio import", allow_abbrev=False,
                                     description="Open a Keras (.keras, .h5) or PyTorch (state_dict) LSTM as a "
                                                 "studio model.")
    parser.add_argument("domain")
    parser.add_argument("file")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--vocab", help="the tokens in index order: a JSON list (or, for words, one token per line)")
    parser.add_argument("--vocab-text", help="the training text; the vocabulary is built from it as the source did")
    parser.add_argument("--lower", action="store_true", help="lower-case the training text first (as the tutorial)")
    parser.add_argument("--tokens", choices=("chars", "words"), default="chars")
    parser.add_argument("--window", type=int, help="the training window in tokens, when the file does not say it")
    parser.add_argument("--out", required=True, help="the studio model's stem (writes STEM.safetensors and STEM.json)")
    args = parser.parse_args(argv)
    try:
        domain = by_name(args.domain)
    except ValueError as error:
        sys.exit(f"error: {error}")
    build = member(domain, "from_network")
    if build is None:
        sys.exit(f"error: the {domain.TITLE} tab does not open models made elsewhere.")
    try:
        stem = import_file(domain, args.file, args.format, args.out, vocab=args.vocab, vocab_text=args.vocab_text,
                           lower=args.lower, tokens=args.tokens, window=args.window)
    except ImportRefused as error:
        sys.exit(f"error: {error}")
    print(f"wrote {stem}.safetensors and {stem}.json")
    return 0


def import_file(domain, file, fmt: str, out, vocab=None, vocab_text=None, lower=False, tokens="chars",
                window=None) -> str:
    """Read `file`, build the domain's model with its `from_network` and save it at `out`; returns the stem."""
    from studio import checkpoint
    from studio.domains import member

    network = read(file, fmt)
    vocabulary = read_vocabulary(vocab, vocab_text, lower, tokens)
    check_vocabulary(network, vocabulary)
    if window:
        network.window = int(window)
    try:
        model, codec, card = member(domain, "from_network")(network, vocabulary, tokens)
    except ValueError as error:
        raise ImportRefused(str(error)) from None
    card.setdefault("data", {})["vocabulary"] = (f"built from {Path(vocab_text).name}"
                                                 + (" (lower-cased)" if lower else "")
                                                 if vocab_text else f"listed in {Path(vocab).name}")
    stem = str(checkpoint.paths(out)[0].with_suffix(""))
    domain.save(stem, model, codec, card)
    return stem
