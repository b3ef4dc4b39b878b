"""One checkpoint format for every domain: NAME.safetensors (weights) + NAME.json (model card).

The card carries everything needed to rebuild and judge the model: format version, domain,
model config, codec/vocabulary, data source and licence, hyperparameters, metrics, and the
command that reproduces it. Loading reads tensors with safetensors and the card with json,
so nothing is ever unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt or not what the caller expected; the message names the file."""


def paths(stem) -> tuple[Path, Path]:
    stem = str(stem)
    for suffix in (".json", ".safetensors"):
        stem = stem.removesuffix(suffix)
    # appended, not Path.with_suffix: names such as "shakespeare.resume" keep their dot
    return Path(stem + ".safetensors"), Path(stem + ".json")


def save(stem, tensors: dict[str, torch.Tensor], card: dict) -> Path:
    """Write STEM.safetensors and STEM.json; returns the weights path."""
    weights_path = paths(stem)[0]
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(weights_path))
    write_card(stem, {"format_version": FORMAT_VERSION, **card})
    return weights_path


def write_card(stem, card: dict) -> None:
    """(Re)write STEM.json, e.g. to add metrics measured after training."""
    paths(stem)[1].write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")


def read_card(stem) -> dict:
    _, card_path = paths(stem)
    if not card_path.exists():
        raise CheckpointError(f"model card {card_path} is missing")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"model card {card_path} is not valid JSON: {error}") from None
    if not isinstance(card, dict) or "domain" not in card or "config" not in card:
        raise CheckpointError(f"model card {card_path} lacks 'domain' or 'config'")
    if card.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"model card {card_path} has format_version {card.get('format_version')!r}, expected {FORMAT_VERSION}")
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
        if card.get("kind") != "resume-state":
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
        except CheckpointError as error:
            problems.append(str(error))
    return models, problems
