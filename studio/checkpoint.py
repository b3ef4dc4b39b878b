"""One checkpoint format for every domain: NAME.safetensors (weights) + NAME.json (model card).

The card carries everything needed to rebuild and judge the model: format version, domain,
model config, codec/vocabulary, data source and licence, hyperparameters, metrics, and the
command that reproduces it. Loading reads tensors with safetensors and the card with json,
so nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
# the shipped corpora (a text model's validation text, the Train tab's corpora): ../shared/data next to the repository
DATA_DIR = Path(os.environ.get("LSTM_STUDIO_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# The one card schema every domain writes (field: (type, what it holds)); read_card checks it.
CARD_FIELDS = {
    "name": (str, "the model's name (its file stem)"),
    "description": (str, "one sentence: what the model is"),
    "domain": (str, "text, music, handwriting or speech"),
    "kind": (str, "which of the domain's models (char-rnn, synthesis, text-to-mel, ...)"),
    "parameters": (int, "number of weights"),
    "config": (dict, "the model config dataclass's fields"),
    "codec": (dict, "everything the codec needs (the vocabulary travels here)"),
    "data": (dict, "where the training data came from: at least source and licence"),
    "training": (dict, "the trainer's settings"),
    "metrics": (dict, "what was measured, and how"),
    "reproduce": (str, "the command that trains it again"),
}
DATA_FIELDS = ("source", "licence")
JSON_TYPES = {str: "a string", int: "an integer", dict: "an object"}  # as a card's reader knows them
RESUME_KEY = "resume"  # a resume state's card (see train.py) holds its step here; it is not a model to offer


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt or not what the caller expected; the message names the file."""


def paths(stem) -> tuple[Path, Path]:
    stem = str(stem)
    for suffix in (".json", ".safetensors"):
        stem = stem.removesuffix(suffix)
    # appended, not Path.with_suffix: names such as "shakespeare.resume" keep their dot
    return Path(stem + ".safetensors"), Path(stem + ".json")


def make_card(domain: str, kind: str, model: torch.nn.Module, codec: dict, description: str, **fields) -> dict:
    """A complete card for `model` (its dataclass config is written as is); the fields the caller
    does not know yet (data, training, metrics, reproduce) start empty and are filled by the trainer
    and the CLI."""
    card = {
        "name": "", "description": description, "domain": domain, "kind": kind,
        "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(model.config), "codec": codec,
        "data": {"source": "unknown", "licence": "unknown"}, "training": {}, "metrics": {}, "reproduce": "",
    }
    card.update(fields)
    return card


def check_card(card, card_path) -> None:
    """Raise CheckpointError naming the file and the first field that is missing or of the wrong type."""
    if not isinstance(card, dict):
        raise CheckpointError(f"model card {card_path} is not a JSON object")
    if card.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"model card {card_path} has format_version {card.get('format_version')!r}, expected {FORMAT_VERSION}")
    for name, (kind, meaning) in CARD_FIELDS.items():
        if name not in card:
            raise CheckpointError(f"model card {card_path} lacks the field '{name}' ({meaning})")
        if not isinstance(card[name], kind) or (kind is int and isinstance(card[name], bool)):
            raise CheckpointError(f"model card {card_path}: field '{name}' should be {JSON_TYPES[kind]} ({meaning}), "
                                  f"not {type(card[name]).__name__}")
    for name in DATA_FIELDS:
        if not isinstance(card["data"].get(name), str):
            raise CheckpointError(f"model card {card_path}: field 'data.{name}' is missing (where the data came from "
                                  "and under which licence)")


def save(stem, tensors: dict[str, torch.Tensor], card: dict) -> Path:
    """Write STEM.safetensors and STEM.json; returns the weights path."""
    weights_path = paths(stem)[0]
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _replace(weights_path, lambda temporary: save_file(tensors, str(temporary)))
    card = {"format_version": FORMAT_VERSION, **card}
    if not card.get("name") and RESUME_KEY not in card:
        card["name"] = weights_path.stem  # a model is named after its file unless its card says otherwise
    write_card(stem, card)
    return weights_path


def write_card(stem, card: dict) -> None:
    """(Re)write STEM.json, e.g. to add metrics measured after training."""
    text = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    _replace(paths(stem)[1], lambda temporary: temporary.write_text(text))


def _replace(path: Path, write) -> None:
    """write(a temporary path beside `path`), then rename it into place: a process killed mid-write (the
    trainer at a validation, the app restarted) leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_card(stem) -> dict:
    _, card_path = paths(stem)
    if not card_path.exists():
        raise CheckpointError(f"model card {card_path} is missing")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"model card {card_path} is not valid JSON: {error}") from None
    if isinstance(card, dict) and RESUME_KEY in card:  # a training state: only the trainer reads it
        if card.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"resume state {card_path} has format_version {card.get('format_version')!r}")
        return card
    check_card(card, card_path)
    return card


def load(stem, domain: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, card) for STEM; raises CheckpointError with the file's name on any problem."""
    weights_path, card_path = paths(stem)
    card = read_card(stem)
    if domain is not None and card["domain"] != domain:
        raise CheckpointError(f"{card_path} is a {card['domain']!r} model, not {domain!r}")
    if not weights_path.exists():
        raise CheckpointError(f"weights file {weights_path} is missing")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"weights file {weights_path} is corrupt: {error}") from None
    return tensors, card


def scan(models_dir=MODELS_DIR) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """({domain: {name: stem}}, problems) for every model card in models_dir.

    Problems are cards that cannot be read, in words that name the file, so the app can say
    at start-up which checkpoint is broken while every other tab keeps working."""
    by_domain: dict[str, dict[str, Path]] = {}
    problems = []
    for card_path in sorted(Path(models_dir).glob("*.json")):
        try:
            card = read_card(card_path)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        # resume states (see train.py) share the format but are not models to offer
        if RESUME_KEY not in card:
            by_domain.setdefault(card["domain"], {})[card_path.stem] = card_path.parent / card_path.stem
    return by_domain, problems


def list_models(domain: str, models_dir=MODELS_DIR) -> dict[str, Path]:
    """{name: stem} of every readable model card in models_dir for this domain."""
    return scan(models_dir)[0].get(domain, {})


def load_models(domain: str, load_model, models_dir=MODELS_DIR, device="cpu") -> tuple[dict, list[str]]:
    """({name: load_model(stem, device=device)}, problems) for one domain's tab. A checkpoint that
    fails to load is reported by name and skipped, so the rest of the studio still works."""
    models, problems = {}, []
    for name, stem in list_models(domain, models_dir).items():
        try:
            models[name] = load_model(stem, device=device)
            models[name].stem = Path(stem)
        except CheckpointError as error:
            problems.append(str(error))
    return models, problems
